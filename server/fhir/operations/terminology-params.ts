/**
 * Shared plumbing of the terminology operations: reading their input from a GET query or a POST
 * Parameters body (or form), naming a parameter in errors the way the caller sent it, resolving the
 * CodeSystem / ValueSet / ConceptMap a request refers to (published terminology first, then the store),
 * and mapping terminology errors to 4xx OperationOutcomes.
 */
import type { CodeableConcept, Coding, ConceptMap, Parameters, ParametersParameter, Resource, ValueSet } from '@medplum/fhirtypes';
import { badRequest, fail, FhirError } from '../errors.ts';
import type { FhirContext, FhirRequest, FhirResponse } from '../router.ts';
import { parseSearch } from '../search/parse.ts';
import { TerminologyError } from '../../terminology/errors.ts';
import { terminology } from '../../terminology/load.ts';
import type { Resolver, TerminologyResource } from '../../terminology/service.ts';

const IGNORED = new Set(['_format', '_pretty']);

export class OpInput {
  private readonly params: ParametersParameter[];
  readonly posted: boolean;

  constructor(
    readonly op: string,
    req: FhirRequest
  ) {
    const body = req.body;
    this.posted = req.method.toUpperCase() === 'POST' && body !== undefined && !(body instanceof URLSearchParams);
    if (req.method.toUpperCase() === 'POST' && body !== undefined && !(body instanceof URLSearchParams)) {
      const p = body as Parameters;
      if (!p || typeof p !== 'object' || Array.isArray(p) || p.resourceType !== 'Parameters') {
        throw badRequest(`$${op} takes a Parameters resource in a POST body`, 'resourceType');
      }
      if (p.parameter !== undefined && !Array.isArray(p.parameter)) throw badRequest('Parameters.parameter must be an array', 'Parameters.parameter');
      this.params = [...(p.parameter ?? []), ...queryParams(req.query)];
    } else {
      const form = body instanceof URLSearchParams ? ([...body] as [string, string][]) : [];
      this.params = queryParams([...req.query, ...form]);
    }
  }

  /** A FHIRPath-ish expression for a parameter, as the caller sent it. */
  expr(name: string): string {
    return this.posted ? `Parameters.parameter.where(name='${name}')` : name;
  }

  error(err: TerminologyError): FhirError {
    return fail(err.status, err.code, err.message, err.param ? this.expr(err.param) : undefined);
  }

  private all(name: string): ParametersParameter[] {
    return this.params.filter((p) => p.name === name);
  }

  /** Every repetition of a parameter, as sent (GET query values arrive as valueString). */
  list(name: string): ParametersParameter[] {
    return this.all(name);
  }

  /** The names of the parameters sent. */
  names(): string[] {
    return [...new Set(this.params.map((p) => p.name as string))];
  }

  has(name: string): boolean {
    return this.all(name).length > 0;
  }

  /** A primitive parameter as a string (string, code, uri, canonical, integer, boolean…). */
  string(name: string): string | undefined {
    const found = this.all(name);
    if (found.length > 1) throw badRequest(`$${this.op}: the parameter '${name}' may appear only once`, this.expr(name));
    if (found.length === 0) return undefined;
    const v = primitive(found[0]);
    if (v === undefined) throw badRequest(`$${this.op}: the parameter '${name}' needs a primitive value`, this.expr(name));
    return v;
  }

  strings(name: string): string[] {
    return this.all(name).flatMap((p) => {
      const v = primitive(p);
      return v === undefined ? [] : v.split(',').map((s) => s.trim()).filter(Boolean);
    });
  }

  /** A non-empty string parameter (rejecting empty or whitespace-only values). */
  text(name: string): string | undefined {
    const v = this.string(name);
    if (v !== undefined && v.trim() === '') throw badRequest(`$${this.op}: the parameter '${name}' is empty`, this.expr(name));
    return v;
  }

  integer(name: string, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}): number | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
      throw badRequest(`$${this.op}: '${name}' must be an integer from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}, not '${v.slice(0, 20)}'`, this.expr(name));
    }
    return Number(v);
  }

  boolean(name: string): boolean | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    if (v !== 'true' && v !== 'false') throw badRequest(`$${this.op}: '${name}' must be true or false`, this.expr(name));
    return v === 'true';
  }

  coding(name: string): Coding | undefined {
    const found = this.all(name);
    if (found.length === 0) return undefined;
    const p = found[0];
    if (p.valueCoding && typeof p.valueCoding === 'object') return p.valueCoding;
    // GET form: system|code
    const v = primitive(p);
    if (v !== undefined && v.includes('|')) {
      const [system, code] = v.split('|', 2);
      return { system: system || undefined, code };
    }
    throw badRequest(`$${this.op}: '${name}' must be a Coding (or system|code in a query)`, this.expr(name));
  }

  codeableConcept(name: string): CodeableConcept | undefined {
    const found = this.all(name);
    if (found.length === 0) return undefined;
    const cc = found[0].valueCodeableConcept;
    if (!cc || typeof cc !== 'object') throw badRequest(`$${this.op}: '${name}' must be a CodeableConcept`, this.expr(name));
    return cc;
  }

  resource<T extends Resource>(name: string, type: T['resourceType']): T | undefined {
    const found = this.all(name);
    if (found.length === 0) return undefined;
    const r = found[0].resource;
    if (!r || r.resourceType !== type) throw badRequest(`$${this.op}: '${name}' must be a ${type} resource`, this.expr(name));
    return r as T;
  }
}

function queryParams(pairs: [string, string][]): ParametersParameter[] {
  return pairs.filter(([k]) => !IGNORED.has(k)).map(([name, value]) => ({ name, valueString: value }));
}

function primitive(p: ParametersParameter): string | undefined {
  const rec = p as unknown as Record<string, unknown>;
  for (const key of Object.keys(rec)) {
    if (!key.startsWith('value')) continue;
    const v = rec[key];
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  }
  return undefined;
}

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

export function parametersResponse(parameter: ParametersParameter[]): FhirResponse {
  const body: Parameters = { resourceType: 'Parameters', parameter };
  return { status: 200, body };
}
