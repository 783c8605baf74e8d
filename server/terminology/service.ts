/**
 * The terminology service: code systems, value sets and concept maps held in memory with O(1) indexes,
 * and the five operations on them — lookup, expand, validate-code, translate, subsumes. Pure domain logic:
 * no HTTP, no database. Errors are TerminologyErrors naming the input at fault.
 *
 * `Terminology` is the registry of the platform's published content (loaded from `terminology/`);
 * `withExtra()` gives a view that also knows resources supplied by a request or read from the store.
 */
import { randomUUID } from 'node:crypto';
import type {
  CodeSystem,
  CodeSystemConceptDesignation,
  CodeSystemConceptProperty,
  Coding,
  ConceptMap,
  ValueSet,
  ValueSetComposeInclude,
  ValueSetExpansionContains,
  ValueSetExpansionParameter,
} from '@medplum/fhirtypes';
import { CodeSystemIndex, type IndexedConcept } from './codesystem.ts';
import { ConceptMapIndex, type Match } from './conceptmap.ts';
import { TerminologyError } from './errors.ts';

export type TerminologyResource = CodeSystem | ValueSet | ConceptMap;

export interface ExpansionEntry {
  system: string;
  version?: string;
  code: string;
  display?: string;
  abstract: boolean;
  inactive: boolean;
  designations: CodeSystemConceptDesignation[];
  text: string;
}

export interface Expansion {
  entries: ExpansionEntry[];
  /** `system|code` → entry. */
  index: Map<string, ExpansionEntry>;
  /** Codes by code alone, for the systems of the expansion. */
  systems: Set<string>;
}

export interface ExpandOptions {
  filter?: string;
  offset?: number;
  count?: number;
  displayLanguage?: string;
  includeDesignations?: boolean;
  activeOnly?: boolean;
  excludeNotForUI?: boolean;
}

export interface LookupResult {
  name: string;
  version?: string;
  display?: string;
  definition?: string;
  abstract: boolean;
  designations: CodeSystemConceptDesignation[];
  properties: { code: string; value: CodeSystemConceptProperty; description?: string }[];
}

export interface ValidateResult {
  result: boolean;
  message?: string;
  display?: string;
  /** The coding that was found valid (for a CodeableConcept). */
  coding?: Coding;
}

export interface TranslateResult {
  result: boolean;
  message?: string;
  matches: Match[];
}

export type SubsumptionOutcome = 'equivalent' | 'subsumes' | 'subsumed-by' | 'not-subsumed';

/** Largest expansion returned in one answer; larger ones need `count` (paging). */
export const MAX_EXPANSION = 10_000;
/** Nesting depth of ValueSet imports before we call it a cycle. */
const MAX_IMPORT_DEPTH = 8;
const DEFAULT_LANGUAGE = 'zh-CN';

export interface Resolver {
  codeSystem(url: string, version?: string): CodeSystemIndex | undefined;
  valueSet(url: string, version?: string): ValueSet | undefined;
  conceptMap(url: string, version?: string): ConceptMapIndex | undefined;
  conceptMaps(): ConceptMapIndex[];
  expansionOf(vs: ValueSet): Expansion;
}

class Registry implements Resolver {
  protected readonly codeSystems = new Map<string, CodeSystemIndex[]>();
  protected readonly valueSets = new Map<string, ValueSet[]>();
  protected readonly maps = new Map<string, ConceptMapIndex[]>();
  protected readonly ids = new Map<string, TerminologyResource>();
  protected expansions = new WeakMap<ValueSet, Expansion>();

  /** Adds (or replaces, by url and version) one resource. */
  add(resource: TerminologyResource): void {
    if (resource.id) this.ids.set(`${resource.resourceType}/${resource.id}`, resource);
    const url = resource.url;
    if (!url) return;
    const version = resource.version;
    const put = <T extends { version?: string }>(map: Map<string, T[]>, item: T) => {
      const list = (map.get(url) ?? []).filter((x) => x.version !== version);
      list.unshift(item);
      map.set(url, list);
    };
    switch (resource.resourceType) {
      case 'CodeSystem':
        put(this.codeSystems, new CodeSystemIndex(resource));
        break;
      case 'ValueSet':
        put(this.valueSets, resource);
        break;
      case 'ConceptMap':
        put(this.maps, new ConceptMapIndex(resource));
        break;
    }
    this.expansions = new WeakMap();
  }

  codeSystem(url: string, version?: string): CodeSystemIndex | undefined {
    const list = this.codeSystems.get(url);
    return version ? list?.find((c) => c.version === version) : list?.[0];
  }

  valueSet(url: string, version?: string): ValueSet | undefined {
    const list = this.valueSets.get(url);
    return version ? list?.find((v) => v.version === version) : list?.[0];
  }

  conceptMap(url: string, version?: string): ConceptMapIndex | undefined {
    const list = this.maps.get(url);
    return version ? list?.find((m) => m.version === version) : list?.[0];
  }

  conceptMaps(): ConceptMapIndex[] {
    return [...this.maps.values()].map((list) => list[0]);
  }

  /** A resource of the registry by type and id. */
  byId<T extends TerminologyResource>(type: T['resourceType'], id: string): T | undefined {
    return this.ids.get(`${type}/${id}`) as T | undefined;
  }

  expansionOf(vs: ValueSet): Expansion {
    let e = this.expansions.get(vs);
    if (!e) {
      e = computeExpansion(vs, this, 0);
      this.expansions.set(vs, e);
    }
    return e;
  }
}

/** Where the registry looks for a code system or value set it does not hold (the FHIR core terminology). */
export interface TerminologyFallback {
  codeSystem(url: string, version?: string): CodeSystemIndex | undefined;
  valueSet(url: string, version?: string): ValueSet | undefined;
}

/** The platform's terminology: what `terminology/` (or the store) publishes, then its fallback. */
export class Terminology extends Registry {
  private fallback?: TerminologyFallback;

  /** Consulted for what the platform does not publish itself (server/terminology/core.ts). */
  setFallback(fallback: TerminologyFallback | undefined): void {
    this.fallback = fallback;
  }

  override codeSystem(url: string, version?: string): CodeSystemIndex | undefined {
    return super.codeSystem(url, version) ?? this.fallback?.codeSystem(url, version);
  }

  override valueSet(url: string, version?: string): ValueSet | undefined {
    return super.valueSet(url, version) ?? this.fallback?.valueSet(url, version);
  }

  /** Replaces the whole content. */
  load(resources: TerminologyResource[]): void {
    this.codeSystems.clear();
    this.valueSets.clear();
    this.maps.clear();
    this.ids.clear();
    for (const r of resources) this.add(r);
  }

  resources(): TerminologyResource[] {
    return [...this.ids.values()];
  }

  /** A view that also knows `extra` resources (supplied inline or read from the store); they win. */
  withExtra(extra: TerminologyResource[]): Resolver {
    if (extra.length === 0) return this;
    return new Overlay(this, extra);
  }
}

class Overlay extends Registry {
  constructor(
    private readonly base: Terminology,
    extra: TerminologyResource[]
  ) {
    super();
    for (const r of extra) this.add(r);
  }
  override codeSystem(url: string, version?: string) {
    return super.codeSystem(url, version) ?? this.base.codeSystem(url, version);
  }
  override valueSet(url: string, version?: string) {
    return super.valueSet(url, version) ?? this.base.valueSet(url, version);
  }
  override conceptMap(url: string, version?: string) {
    return super.conceptMap(url, version) ?? this.base.conceptMap(url, version);
  }
  override conceptMaps() {
    const mine = super.conceptMaps();
    const urls = new Set(mine.map((m) => m.url));
    return [...mine, ...this.base.conceptMaps().filter((m) => !urls.has(m.url))];
  }
  override expansionOf(vs: ValueSet): Expansion {
    if (this.base.valueSet(vs.url ?? '', vs.version) === vs) {
      try {
        return this.base.expansionOf(vs);
      } catch (err) {
        if (!(err instanceof TerminologyError)) throw err;
      }
    }
    return super.expansionOf(vs);
  }
}

// ---------------------------------------------------------------------------------------------------
// expansion

function computeExpansion(vs: ValueSet, resolver: Resolver, depth: number): Expansion {
  if (depth > MAX_IMPORT_DEPTH) throw new TerminologyError(422, 'processing', `ValueSet imports nest deeper than ${MAX_IMPORT_DEPTH} (a cycle?) at ${vs.url ?? vs.id}`);
  const index = new Map<string, ExpansionEntry>();
  const compose = vs.compose;
  if (!compose) {
    // a ValueSet that only carries an expansion
    for (const c of flattenContains(vs.expansion?.contains)) {
      if (!c.code) continue;
      const entry: ExpansionEntry = {
        system: c.system ?? '',
        ...(c.version ? { version: c.version } : {}),
        code: c.code,
        display: c.display,
        abstract: c.abstract === true,
        inactive: c.inactive === true,
        designations: [],
        text: [c.code, c.display ?? ''].join('\u0000').toLowerCase(),
      };
      index.set(`${entry.system}|${entry.code}`, entry);
    }
    if (index.size === 0 && !vs.expansion) throw new TerminologyError(422, 'not-supported', `ValueSet ${vs.url ?? vs.id ?? ''} has neither compose nor expansion`);
    return finish(index);
  }
  for (const include of compose.include ?? []) {
    for (const e of includeEntries(include, resolver, depth, vs)) {
      const key = `${e.system}|${e.code}`;
      if (!index.has(key)) index.set(key, e);
    }
  }
  for (const exclude of compose.exclude ?? []) {
    for (const e of includeEntries(exclude, resolver, depth, vs)) index.delete(`${e.system}|${e.code}`);
  }
  if (compose.inactive === false) {
    for (const [k, e] of index) if (e.inactive) index.delete(k);
  }
  return finish(index);
}

function finish(index: Map<string, ExpansionEntry>): Expansion {
  const entries = [...index.values()];
  return { entries, index, systems: new Set(entries.map((e) => e.system)) };
}

function flattenContains(contains: ValueSetExpansionContains[] | undefined): ValueSetExpansionContains[] {
  const out: ValueSetExpansionContains[] = [];
  for (const c of contains ?? []) {
    out.push(c);
    out.push(...flattenContains(c.contains));
  }
  return out;
}

function includeEntries(include: ValueSetComposeInclude, resolver: Resolver, depth: number, owner: ValueSet): ExpansionEntry[] {
  let result: ExpansionEntry[] | undefined;
  if (include.system) {
    const cs = resolver.codeSystem(include.system, include.version);
    if (include.concept?.length) {
      result = [];
      for (const c of include.concept) {
        if (!c.code) continue;
        const concept = cs?.get(c.code);
        if (cs && !concept && cs.complete) continue; // not a code of the system: not in the set
        result.push(
          concept
            ? fromConcept(cs as CodeSystemIndex, concept, c.display)
            : {
                system: include.system,
                ...(include.version ? { version: include.version } : {}),
                code: c.code,
                display: c.display,
                abstract: false,
                inactive: false,
                designations: (c.designation ?? []) as CodeSystemConceptDesignation[],
                text: [c.code, c.display ?? ''].join('\u0000').toLowerCase(),
              }
        );
      }
    } else {
      if (!cs) {
        throw new TerminologyError(422, 'not-found', `Cannot expand ${owner.url ?? owner.id ?? 'the ValueSet'}: the code system ${include.system}${include.version ? `|${include.version}` : ''} is not known to this server`);
      }
      let concepts: IndexedConcept[] = cs.ordered;
      for (const f of include.filter ?? []) {
        const matched = new Set(cs.filter(f));
        concepts = concepts.filter((c) => matched.has(c));
      }
      result = concepts.map((c) => fromConcept(cs, c));
    }
  }
  for (const url of include.valueSet ?? []) {
    const [u, v] = url.split('|');
    const imported = resolver.valueSet(u, v);
    if (!imported) throw new TerminologyError(422, 'not-found', `Cannot expand ${owner.url ?? owner.id ?? 'the ValueSet'}: the imported value set ${url} is not known to this server`);
    const expansion = computeExpansion(imported, resolver, depth + 1);
    result = result === undefined ? expansion.entries : result.filter((e) => expansion.index.has(`${e.system}|${e.code}`));
  }
  return result ?? [];
}

function fromConcept(cs: CodeSystemIndex, c: IndexedConcept, displayOverride?: string): ExpansionEntry {
  return {
    system: cs.url,
    ...(cs.version ? { version: cs.version } : {}),
    code: c.code,
    display: displayOverride ?? c.display,
    abstract: c.abstract,
    inactive: c.inactive,
    designations: c.designations,
    text: c.text,
  };
}

/** The display in the requested language: a designation of that language, else the display (zh-CN). */
export function displayIn(display: string | undefined, designations: CodeSystemConceptDesignation[], language: string | undefined): string | undefined {
  if (!language) return display;
  const lang = language.toLowerCase();
  if (lang === 'zh' || lang === DEFAULT_LANGUAGE.toLowerCase() || lang === 'zh-hans') return display;
  const d = designations.find((x) => {
    const l = x.language?.toLowerCase();
    return l !== undefined && (l === lang || l.startsWith(`${lang}-`) || lang.startsWith(`${l}-`));
  });
  return d?.value ?? display;
}

// ---------------------------------------------------------------------------------------------------
// operations

/** `ValueSet/$expand`: the expansion with text filter, paging and the display language applied. */
/**
 * A large expansion (the whole catalogue is ~0.7 MB of JSON) is asked for again and again with the same
 * options; building and serialising it costs ~10 ms of CPU each time. Answers over LARGE_ANSWER characters are
 * kept serialised beside their expansion (so a new edition starts afresh), with the expansion identifier and
 * timestamp of when they were first made. Only the platform's published value sets have a kept expansion.
 */
const LARGE_ANSWER = 8 * 1024;
const SERIALISED_CACHE = 16;
const serialisedCache = new WeakMap<Expansion, Map<string, { body: ValueSet; bytes: Buffer }>>();

/** `expand`, with the answer also as UTF-8 JSON bytes, cached for large answers. */
export function expandSerialised(resolver: Resolver, vs: ValueSet, options: ExpandOptions = {}): { body: ValueSet; bytes: Buffer } {
  const expansion = resolver.expansionOf(vs);
  const key = JSON.stringify([vs.url, vs.version, vs.id, options.filter, options.offset, options.count, options.displayLanguage, options.includeDesignations, options.activeOnly, options.excludeNotForUI]);
  let cache = serialisedCache.get(expansion);
  const hit = cache?.get(key);
  if (hit) return hit;
  const body = expand(resolver, vs, options);
  const bytes = Buffer.from(JSON.stringify(body));
  if (bytes.length > LARGE_ANSWER) {
    if (!cache) serialisedCache.set(expansion, (cache = new Map()));
    if (cache.size >= SERIALISED_CACHE) cache.delete(cache.keys().next().value as string);
    cache.set(key, { body, bytes });
  }
  return { body, bytes };
}

export function expand(resolver: Resolver, vs: ValueSet, options: ExpandOptions = {}): ValueSet {
  const expansion = resolver.expansionOf(vs);
  const entries = filtered(expansion, options);
  const total = entries.length;
  const offset = options.offset ?? 0;
  if (options.count === undefined && total - offset > MAX_EXPANSION) {
    throw new TerminologyError(422, 'too-costly', `The expansion has ${total} codes; ask for pages with offset and count (at most ${MAX_EXPANSION})`, 'count');
  }
  const count = Math.min(options.count ?? MAX_EXPANSION, MAX_EXPANSION);
  const page = entries.slice(offset, offset + count);
  const parameter: ValueSetExpansionParameter[] = [];
  if (options.filter !== undefined) parameter.push({ name: 'filter', valueString: options.filter });
  if (options.offset !== undefined) parameter.push({ name: 'offset', valueInteger: offset });
  if (options.count !== undefined) parameter.push({ name: 'count', valueInteger: options.count });
  parameter.push({ name: 'displayLanguage', valueCode: options.displayLanguage ?? DEFAULT_LANGUAGE });
  if (options.activeOnly) parameter.push({ name: 'activeOnly', valueBoolean: true });
  if (options.includeDesignations) parameter.push({ name: 'includeDesignations', valueBoolean: true });
  for (const system of expansion.systems) {
    const version = expansion.entries.find((e) => e.system === system)?.version;
    if (version) parameter.push({ name: 'version', valueUri: `${system}|${version}` });
  }
  const { expansion: _old, compose: _compose, text: _text, meta: _meta, ...rest } = vs;
  return {
    ...rest,
    language: vs.language ?? DEFAULT_LANGUAGE,
    expansion: {
      identifier: `urn:uuid:${randomUUID()}`,
      timestamp: new Date().toISOString(),
      total,
      offset,
      parameter,
      contains: page.map((e) => {
        const display = displayIn(e.display, e.designations, options.displayLanguage);
        return {
          system: e.system,
          ...(e.version ? { version: e.version } : {}),
          ...(e.abstract ? { abstract: true } : {}),
          ...(e.inactive ? { inactive: true } : {}),
          code: e.code,
          ...(display !== undefined ? { display } : {}),
          ...(options.includeDesignations && e.designations.length ? { designation: e.designations } : {}),
        };
      }),
    },
  };
}

/**
 * The entries an expansion keeps for the filter options. A type-ahead asks for the same few filters again
 * and again (each a scan of every entry of a 5,000-code catalogue), so the result of each is kept beside its
 * expansion — which is itself cached per ValueSet version, so a new edition starts afresh — for the most
 * recent FILTER_CACHE filters.
 */
const FILTER_CACHE = 500;
const filterCache = new WeakMap<Expansion, Map<string, ExpansionEntry[]>>();

function filtered(expansion: Expansion, options: ExpandOptions): ExpansionEntry[] {
  const words = (options.filter ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  if (!options.activeOnly && !options.excludeNotForUI && words.length === 0) return expansion.entries;
  const key = `${options.activeOnly ? 1 : 0}${options.excludeNotForUI ? 1 : 0}${words.join(' ')}`;
  let cache = filterCache.get(expansion);
  const hit = cache?.get(key);
  if (hit) {
    cache!.delete(key); // most recently used last
    cache!.set(key, hit);
    return hit;
  }
  let entries = expansion.entries;
  if (options.activeOnly) entries = entries.filter((e) => !e.inactive);
  if (options.excludeNotForUI) entries = entries.filter((e) => !e.abstract);
  if (words.length > 0) entries = entries.filter((e) => words.every((w) => e.text.includes(w)));
  if (!cache) filterCache.set(expansion, (cache = new Map()));
  cache.set(key, entries);
  if (cache.size > FILTER_CACHE) cache.delete(cache.keys().next().value as string);
  return entries;
}

/** `ValueSet/$validate-code` for one or more codings (a CodeableConcept is valid when one coding is). */
export function validateCode(resolver: Resolver, vs: ValueSet, codings: Coding[], options: { abstract?: boolean; displayLanguage?: string } = {}): ValidateResult {
  const expansion = resolver.expansionOf(vs);
  const messages: string[] = [];
  const name = vs.url ?? (vs.id ? `ValueSet/${vs.id}` : 'the value set');
  for (const coding of codings) {
    const { system, code, display } = coding;
    if (!code) continue;
    const label = `${system ?? ''}|${code}`;
    const entry = system !== undefined ? expansion.index.get(`${system}|${code}`) : undefined;
    if (!entry) {
      const cs = system ? resolver.codeSystem(system, coding.version) : undefined;
      if (!system) messages.push(`The coding ${code} has no system`);
      else if (!cs && !expansion.systems.has(system)) messages.push(`The code system ${system} is not known to this server and is not part of ${name}`);
      else if (cs && !cs.get(code)) messages.push(`Unknown code '${code}' in the code system ${system}`);
      else messages.push(`The code ${label} is not in the value set ${name}`);
      continue;
    }
    if (entry.abstract && options.abstract === false) {
      messages.push(`The code ${label} is a grouping concept and cannot be selected`);
      continue;
    }
    const preferred = displayIn(entry.display, entry.designations, options.displayLanguage);
    if (display !== undefined && display !== entry.display && !entry.designations.some((d) => d.value === display)) {
      messages.push(`The display '${display}' is not a display of ${label}; it should be '${preferred ?? ''}'`);
      return { result: false, message: messages.join('; '), ...(preferred !== undefined ? { display: preferred } : {}), coding };
    }
    return { result: true, ...(preferred !== undefined ? { display: preferred } : {}), coding };
  }
  return { result: false, message: messages.join('; ') || 'No code to validate' };
}

/** `CodeSystem/$lookup`. */
export function lookup(resolver: Resolver, system: string, code: string, options: { version?: string; properties?: string[]; displayLanguage?: string } = {}): LookupResult {
  const cs = resolver.codeSystem(system, options.version);
  if (!cs) {
    const any = options.version ? resolver.codeSystem(system) : undefined;
    throw new TerminologyError(404, 'not-found', any ? `Version ${options.version} of the code system ${system} is not known (known: ${any.version})` : `The code system ${system} is not known to this server`, options.version && any ? 'version' : 'system');
  }
  const concept = cs.get(code);
  if (!concept) throw new TerminologyError(404, 'not-found', `Unknown code '${code}' in the code system ${system}`, 'code');
  const wanted = options.properties?.length ? new Set(options.properties) : undefined;
  const want = (p: string) => !wanted || wanted.has(p) || wanted.has('*');
  const properties: LookupResult['properties'] = [];
  for (const p of concept.properties) {
    if (!p.code || !want(p.code)) continue;
    properties.push({ code: p.code, value: p });
  }
  if (want('parent')) for (const parent of concept.parents) properties.push({ code: 'parent', value: { code: 'parent', valueCode: parent }, description: cs.get(parent)?.display });
  if (wanted?.has('child')) for (const child of concept.children) properties.push({ code: 'child', value: { code: 'child', valueCode: child }, description: cs.get(child)?.display });
  if (wanted?.has('inactive')) properties.push({ code: 'inactive', value: { code: 'inactive', valueBoolean: concept.inactive } });
  return {
    name: cs.name,
    ...(cs.version ? { version: cs.version } : {}),
    display: displayIn(concept.display, concept.designations, options.displayLanguage),
    ...(concept.definition && want('definition') ? { definition: concept.definition } : {}),
    abstract: concept.abstract,
    designations: want('designation') ? concept.designations : [],
    properties,
  };
}

/** `CodeSystem/$subsumes`: the relationship of A to B in the code system's hierarchy. */
export function subsumes(resolver: Resolver, system: string, codeA: string, codeB: string, version?: string): SubsumptionOutcome {
  const cs = resolver.codeSystem(system, version);
  if (!cs) throw new TerminologyError(404, 'not-found', `The code system ${system}${version ? `|${version}` : ''} is not known to this server`, 'system');
  const a = cs.get(codeA);
  if (!a) throw new TerminologyError(400, 'code-invalid', `Unknown code '${codeA}' in the code system ${system}`, 'codeA');
  const b = cs.get(codeB);
  if (!b) throw new TerminologyError(400, 'code-invalid', `Unknown code '${codeB}' in the code system ${system}`, 'codeB');
  if (a.code === b.code) return 'equivalent';
  if (b.ancestors.has(a.code)) return 'subsumes';
  if (a.ancestors.has(b.code)) return 'subsumed-by';
  return 'not-subsumed';
}

/** `ConceptMap/$translate` through one map, or through every map the server has. */
export function translate(
  resolver: Resolver,
  coding: { system: string; code: string },
  options: { map?: ConceptMapIndex; targetSystem?: string; target?: ValueSet; reverse?: boolean } = {}
): TranslateResult {
  const maps = options.map ? [options.map] : resolver.conceptMaps();
  const reverse = options.reverse === true;
  let matches: Match[] = [];
  for (const m of maps) matches.push(...m.translate(coding.system, coding.code, reverse));
  if (options.targetSystem) matches = matches.filter((m) => m.concept.system === options.targetSystem);
  if (options.target) {
    const expansion = resolver.expansionOf(options.target);
    matches = matches.filter((m) => expansion.index.has(`${m.concept.system}|${m.concept.code}`));
  }
  const result = matches.some((m) => m.equivalence !== 'unmatched' && m.equivalence !== 'disjoint');
  if (result) return { result, matches };
  const covered = maps.some((m) => m.covers(coding.system, reverse));
  return {
    result,
    matches,
    message: covered
      ? `No mapping for ${coding.system}|${coding.code}${options.targetSystem ? ` to ${options.targetSystem}` : ''}`
      : `No concept map ${reverse ? 'into' : 'from'} the code system ${coding.system}${options.map?.url ? ` in ${options.map.url}` : ''}`,
  };
}
