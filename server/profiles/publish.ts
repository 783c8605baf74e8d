/**
 * Publishing the platform's conformance resources at start: the StructureDefinitions and SearchParameters of
 * `profiles/`, and the OperationDefinitions and Measures it defines under its own canonical base, are written into the
 * store by their fixed ids (so `GET /fhir/StructureDefinition?url=…` finds them).
 *
 * Idempotent, like terminology/load.ts: an unchanged resource makes no new version, so restarts create no
 * duplicates; a changed file (a new release) becomes a new version.
 */
import { readdirSync, readFileSync } from 'node:fs';
import canonicalize from 'canonicalize';
import type { Resource } from '@medplum/fhirtypes';
import type { Database } from '../db/database.ts';
import { statusOf } from '../fhir/errors.ts';
import { Repository } from '../fhir/repository.ts';
import { checkResource } from '../fhir/validate.ts';
import { CANONICAL_BASE } from '../terminology/canonical.ts';
import { PROFILES_DIR, projectSearchParameters, projectStructureDefinitions } from '../fhir/profiles/load.ts';

/** Our OperationDefinitions: those of `profiles/` published under the platform's canonical base. */
export function projectOperationDefinitions(dir: string = PROFILES_DIR): Resource[] {
  return projectResources('OperationDefinition-', dir);
}

/** Our Measures (the chain statistics, server/provenance/statistics.ts). */
export function projectMeasures(dir: string = PROFILES_DIR): Resource[] {
  return projectResources('Measure-', dir);
}

function projectResources(prefix: string, dir: string): Resource[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(`${dir}${f}`, 'utf8')) as Resource & { url?: string })
    .filter((r) => typeof r.url === 'string' && r.url.startsWith(`${CANONICAL_BASE}/`));
}

export interface PublishResult {
  /** Resources published (present in the store after the call). */
  resources: number;
  /** Of which written now (new or changed). */
  written: number;
  /** Files that could not be published (invalid), with the first error: reported, not fatal. */
  skipped: { id: string; error: string }[];
}

/**
 * Writes the conformance resources into the store (call once at start, after migrations). A restart with
 * unchanged files reads them back in one query per type and writes nothing. New ones are validated once and
 * written together; the StructureDefinitions are not validated here (they are generated, and the tests check
 * them), which saves about two seconds of a first start.
 */
export async function publishProfiles(db: Database): Promise<PublishResult> {
  const resources: Resource[] = [...projectStructureDefinitions(), ...projectSearchParameters(), ...projectOperationDefinitions(), ...projectMeasures()];
  const publish = () =>
    new Repository(db).transaction(async (repo) => {
      const skipped: PublishResult['skipped'] = [];
      const current = new Map<string, Resource>();
      for (const type of new Set(resources.map((r) => r.resourceType))) {
        const ids = resources.filter((r) => r.resourceType === type).map((r) => r.id as string);
        for (const r of await repo.readMany(type, ids)) current.set(`${type}/${r.id}`, r);
      }
      const fresh: Resource[] = [];
      let written = 0;
      for (const resource of resources) {
        const key = `${resource.resourceType}/${resource.id}`;
        const stored = current.get(key);
        if (stored && sameContent(stored, resource)) continue;
        if (resource.resourceType !== 'StructureDefinition') {
          const error = checkResource(resource).find((i) => i.severity === 'error' || i.severity === 'fatal');
          if (error) {
            skipped.push({ id: key, error: `${error.details?.text ?? 'invalid'} (${error.expression?.[0] ?? ''})` });
            continue;
          }
        }
        if (stored || (await deleted(repo, resource))) {
          const result = await repo.update(resource);
          if (!result.unchanged) written++;
        } else fresh.push(resource);
      }
      // a first start writes the new ones with one statement per table
      if (fresh.length > 0) await repo.createMany(fresh);
      return { written: written + fresh.length, skipped };
    });
  // one retry: a twin server starting on the same database may have written the same rows first
  const { written, skipped } = await publish().catch(publish);
  return { resources: resources.length - skipped.length, written, skipped };
}

/** Whether the resource was stored once and deleted (it is then written again as a new version). */
async function deleted(repo: Repository, resource: Resource): Promise<boolean> {
  try {
    await repo.read(resource.resourceType, resource.id as string);
    return false;
  } catch (err) {
    const status = statusOf(err);
    if (status === 410) return true;
    if (status === 404) return false;
    throw err;
  }
}

function sameContent(a: Resource, b: Resource): boolean {
  const strip = ({ meta: _meta, ...rest }: Resource) => canonicalize(rest);
  return strip(a) === strip(b);
}
