/**
 * Loading the platform's terminology at start: the FHIR JSON of `terminology/` is written into the store
 * (so it can be read and searched through the REST API) and indexed in memory for the operations.
 *
 * Idempotent: each resource is written by its fixed id, and an unchanged resource makes no new version,
 * so restarts create no duplicates. A copy in the store with a newer business version (e.g. a catalogue
 * imported later) is kept, and it is that copy the operations use.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import canonicalize from 'canonicalize';
import type { Database, Sql } from '../db/database.ts';
import { present, Repository } from '../fhir/repository.ts';
import { statusOf } from '../fhir/errors.ts';
import { assertValid } from '../fhir/validate.ts';
import { Terminology, type TerminologyResource } from './service.ts';
import { CANONICAL_BASE } from './canonical.ts';
import { coreTerminology } from './core.ts';

export const TERMINOLOGY_DIR = fileURLToPath(new URL('../../terminology/', import.meta.url));
const TYPES = new Set(['CodeSystem', 'ValueSet', 'ConceptMap']);

/** The platform's terminology registry, used by the FHIR terminology operations. */
export const terminology = new Terminology();
// what the platform does not publish itself: the terminology of FHIR R4 (the validator's)
terminology.setFallback(coreTerminology);

/** Reads every CodeSystem, ValueSet and ConceptMap JSON file of a directory (sorted by file name). */
export function readTerminologyDir(dir: string = TERMINOLOGY_DIR): TerminologyResource[] {
  const out: TerminologyResource[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const resource = JSON.parse(readFileSync(`${dir.replace(/\/?$/, '/')}${file}`, 'utf8')) as { resourceType?: string };
    if (typeof resource.resourceType === 'string' && TYPES.has(resource.resourceType)) out.push(resource as TerminologyResource);
  }
  return out;
}

/**
 * Publishes `terminology/` into the store and loads the registry; call once at start, after migrations.
 * Returns how many resources were written (0 on a restart with unchanged files).
 */
export async function loadTerminology(db: Database, dir: string = TERMINOLOGY_DIR): Promise<{ resources: number; written: number }> {
  const files = readTerminologyDir(dir);
  const publishAll = () =>
    new Repository(db).transaction(async (repo) => {
      const effective: TerminologyResource[] = [];
      const fresh: TerminologyResource[] = [];
      let written = 0;
      for (const resource of files) {
        const current = await currentOf(repo, resource);
        if (current === 'absent') {
          assertValid(resource);
          fresh.push(resource);
        } else if (current !== 'deleted' && current.url === resource.url && compareVersions(current.version, resource.version) > 0) {
          effective.push(current); // a newer version in the store wins
        } else if (current !== 'deleted' && sameContent(current, resource)) {
          effective.push(current); // a restart: nothing to write
        } else {
          const result = await repo.update(resource);
          effective.push(result.resource as TerminologyResource);
          if (!result.unchanged) written++;
        }
      }
      // a first start writes everything with one statement per table
      if (fresh.length > 0) effective.push(...((await repo.createMany(fresh)) as TerminologyResource[]));
      return { effective, written: written + fresh.length };
    });
  // one retry: a twin server starting on the same database may have inserted the same rows first
  const { written } = await publishAll().catch(publishAll);
  // what the store holds is what counts: the files (or newer editions of them), plus what an import added
  const resources = await reloadTerminology(db);
  return { resources, written };
}

/**
 * The platform's own terminology in the store: the CodeSystems, ValueSets and ConceptMaps whose canonical
 * URL is `https://fhir.huren.gz.cn/<type>/<id>` — what the generator and the catalogue import write.
 * (Institutions' dictionaries and maps use other URLs and are resolved from the store on demand.)
 */
export async function platformTerminology(sql: Sql): Promise<TerminologyResource[]> {
  const rows = await sql.query<{ content: TerminologyResource }>(
    `SELECT content FROM resource WHERE type IN ('CodeSystem', 'ValueSet', 'ConceptMap') AND NOT deleted
     AND content->>'url' = $1 || type || '/' || id ORDER BY type, id`,
    [`${CANONICAL_BASE}/`]
  );
  return rows.map((r) => present(r.content) as TerminologyResource);
}

/** Version (FHIR versionId) of the catalogue CodeSystem that the registry was last loaded with. */
let loadedCatalogueVersion: number | undefined;

async function catalogueVersionId(sql: Sql): Promise<number | undefined> {
  const rows = await sql.query<{ version: number }>("SELECT version FROM resource WHERE type = 'CodeSystem' AND id = 'recognition-catalogue'");
  return rows[0] ? Number(rows[0].version) : undefined;
}

/** Reloads the registry from the store (after an import); returns how many resources it holds. */
export async function reloadTerminology(db: Database): Promise<number> {
  const version = await catalogueVersionId(db);
  const resources = await platformTerminology(db);
  terminology.load(resources);
  loadedCatalogueVersion = version;
  return resources.length;
}

/**
 * Reloads the registry when the catalogue in the store changed since it was loaded (an import through
 * another server, or the command in direct mode). Cheap: one primary-key read. Returns true on reload.
 */
export async function refreshTerminology(db: Database): Promise<boolean> {
  const version = await catalogueVersionId(db);
  if (version === loadedCatalogueVersion) return false;
  await reloadTerminology(db);
  return true;
}

/** Checks for a new catalogue edition every `intervalMs`; returns the function that stops it. */
export function watchTerminology(db: Database, intervalMs: number, onError: (err: unknown) => void = () => undefined): () => void {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    refreshTerminology(db)
      .catch(onError)
      .finally(() => (busy = false));
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

function sameContent(a: TerminologyResource, b: TerminologyResource): boolean {
  const strip = ({ meta: _meta, ...rest }: TerminologyResource) => canonicalize(rest);
  return strip(a) === strip(b);
}

async function currentOf(repo: Repository, resource: TerminologyResource): Promise<TerminologyResource | 'absent' | 'deleted'> {
  try {
    return (await repo.read(resource.resourceType, resource.id as string)) as TerminologyResource;
  } catch (err) {
    const status = statusOf(err);
    if (status === 404) return 'absent';
    if (status === 410) return 'deleted';
    throw err;
  }
}

/** Compares dotted versions numerically where both parts are numbers (2024.10.0 > 2024.9.1). */
export function compareVersions(a: string | undefined, b: string | undefined): number {
  if (a === b) return 0;
  if (a === undefined) return -1;
  if (b === undefined) return 1;
  const pa = a.split(/[.\-+]/);
  const pb = b.split(/[.\-+]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    const c = !Number.isNaN(nx) && !Number.isNaN(ny) ? nx - ny : x < y ? -1 : x > y ? 1 : 0;
    if (c !== 0) return Math.sign(c);
  }
  return 0;
}
