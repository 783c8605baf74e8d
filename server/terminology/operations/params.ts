/**
 * Shared plumbing of the terminology operations: resolving the CodeSystem / ValueSet / ConceptMap a request
 * refers to (published terminology first, then the store), and mapping terminology errors to 4xx
 * OperationOutcomes.
 */
import type { ConceptMap, ValueSet } from '@medplum/fhirtypes';
import { badRequest, fail } from '../../fhir/errors.ts';
import type { OpInput } from '../../fhir/operations/input.ts';
import type { FhirContext } from '../../fhir/router.ts';
import { parseSearch } from '../../fhir/search/parse.ts';
import { TerminologyError } from '../errors.ts';
import { terminology } from '../load.ts';
import type { Resolver, TerminologyResource } from '../service.ts';

/** Runs a terminology call, turning TerminologyErrors into 4xx OperationOutcomes. */
export function guard<T>(input: OpInput, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof TerminologyError) throw input.error(err);
    throw err;
  }
}

/** `url|version` → [url, version]. */
export function splitCanonical(value: string): [string, string | undefined] {
  const i = value.lastIndexOf('|');
  return i < 0 ? [value, undefined] : [value.slice(0, i), value.slice(i + 1) || undefined];
}

type TermType = 'CodeSystem' | 'ValueSet' | 'ConceptMap';

/** A terminology resource by id: the published one, else the store's. */
export async function resourceById<T extends TerminologyResource>(ctx: FhirContext, type: TermType, id: string): Promise<T> {
  const published = terminology.byId<T>(type, id);
  if (published) return published;
  return (await ctx.repo.read(type, id)) as T;
}

/** A terminology resource by canonical URL (and version) from the store, if any. */
export async function storedByUrl<T extends TerminologyResource>(ctx: FhirContext, type: TermType, url: string, version?: string): Promise<T | undefined> {
  const pairs: [string, string][] = [['url', url]];
  if (version) pairs.push(['version', version]);
  const request = parseSearch(type, pairs);
  request.count = 2;
  const bundle = await ctx.repo.search(request, ctx.baseUrl);
  const found = (bundle.entry ?? []).map((e) => e.resource).filter((r): r is T => r?.resourceType === type);
  if (found[0] || !version) return found[0];
  return earlierVersion<T>(ctx, type, url, version);
}

/**
 * An earlier business version of a terminology resource, from the history of the resource that holds the
 * canonical URL now (a new catalogue edition is a new version of the same resource, so the old edition is
 * in its history: `$lookup?version=2024.1.0`, `$expand?valueSetVersion=…` keep working after an import).
 */
async function earlierVersion<T extends TerminologyResource>(ctx: FhirContext, type: TermType, url: string, version: string): Promise<T | undefined> {
  const request = parseSearch(type, [['url', url], ['_elements', 'id']]);
  request.count = 10;
  const bundle = await ctx.repo.search(request, ctx.baseUrl);
  const ids = (bundle.entry ?? []).map((e) => e.resource?.id).filter((id): id is string => !!id);
  if (ids.length === 0) return undefined;
  const rows = await ctx.repo.db.query<{ content: T }>(
    `SELECT content FROM resource_history WHERE type = $1 AND id = ANY($2::text[]) AND NOT deleted
     AND content->>'url' = $3 AND content->>'version' = $4 ORDER BY version DESC LIMIT 1`,
    [type, ids, url, version]
  );
  return rows[0]?.content;
}

/**
 * A resolver that knows the published terminology plus what the store holds for the systems and value
 * sets a request needs (fetched ahead, so the domain logic stays synchronous).
 */
export async function resolverFor(ctx: FhirContext, needs: { codeSystems?: string[]; valueSets?: ValueSet[]; conceptMaps?: ConceptMap[] }): Promise<Resolver> {
  const unpublished = (r: TerminologyResource) =>
    r.resourceType === 'ValueSet' ? terminology.valueSet(r.url ?? '', r.version) !== r : terminology.conceptMap(r.url ?? '', r.version)?.resource !== r;
  const extra: TerminologyResource[] = [...(needs.valueSets ?? []), ...(needs.conceptMaps ?? [])].filter(unpublished);
  const seenVs = new Set<string>();
  const seenCs = new Set<string>();
  const wantCs = [...(needs.codeSystems ?? [])];
  const queue = [...(needs.valueSets ?? [])];
  for (let guardCount = 0; queue.length > 0 && guardCount < 50; guardCount++) {
    const vs = queue.shift() as ValueSet;
    for (const part of [...(vs.compose?.include ?? []), ...(vs.compose?.exclude ?? [])]) {
      if (part.system) wantCs.push(part.version ? `${part.system}|${part.version}` : part.system);
      for (const imported of part.valueSet ?? []) {
        if (seenVs.has(imported)) continue;
        seenVs.add(imported);
        const [u, v] = splitCanonical(imported);
        if (terminology.valueSet(u, v)) continue;
        const stored = await storedByUrl<ValueSet>(ctx, 'ValueSet', u, v);
        if (stored) {
          extra.push(stored);
          queue.push(stored);
        }
      }
    }
  }
  for (const canonical of wantCs) {
    if (seenCs.has(canonical)) continue;
    seenCs.add(canonical);
    const [u, v] = splitCanonical(canonical);
    if (terminology.codeSystem(u, v)) continue;
    const stored = await storedByUrl(ctx, 'CodeSystem', u, v);
    if (stored) extra.push(stored);
  }
  return terminology.withExtra(extra);
}

/** The ValueSet an operation works on: the instance, `url` (+ `valueSetVersion`), or an inline `valueSet`. */
export async function targetValueSet(ctx: FhirContext, input: OpInput, target: { id?: string }): Promise<ValueSet> {
  if (target.id) return resourceById<ValueSet>(ctx, 'ValueSet', target.id);
  const inline = input.resource<ValueSet>('valueSet', 'ValueSet');
  if (inline) return inline;
  const urlParam = input.text('url');
  if (!urlParam) throw badRequest(`$${input.op} needs a value set: 'url', 'valueSet', or call it on ValueSet/[id]`, input.expr('url'));
  const [url, inlineVersion] = splitCanonical(urlParam);
  const version = input.text('valueSetVersion') ?? inlineVersion;
  const vs = terminology.valueSet(url, version) ?? (await storedByUrl<ValueSet>(ctx, 'ValueSet', url, version));
  if (!vs) throw fail(404, 'not-found', `The value set ${url}${version ? `|${version}` : ''} is not known to this server`, input.expr('url'));
  return vs;
}

