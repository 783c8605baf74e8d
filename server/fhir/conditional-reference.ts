/**
 * Conditional references in a transaction (`Patient?identifier=urn:x|1`, FHIR R4 http.html#trules): a
 * reference resolves to exactly one resource among the stored ones AND the resources the same transaction
 * creates or updates (a Patient created in the Bundle with `ifNoneExist` is found by the Observation that
 * refers to it conditionally). Bundle entries are matched in memory with @medplum/core's search matcher over
 * the same search parameter definitions the store indexes.
 */
import { matchesSearchRequest, parseSearchRequest } from '@medplum/core';
import type { BundleEntry, Resource } from '@medplum/fhirtypes';
import { fail } from './errors.ts';
import type { Repository } from './repository.ts';

/** Resolves `reference` (a conditional reference found at `where`) to `Type/id`; exactly one match required. */
export async function resolveConditionalInTransaction(repo: Repository, entries: readonly BundleEntry[], reference: string, where: string): Promise<string> {
  const [type, query = ''] = reference.split('?', 2);
  // validates the parameters (a 400 naming the unknown one) and finds the stored matches
  const found = new Set((await repo.conditionalMatch(type, query, where)).map((id) => `${type}/${id}`));
  for (const entry of entries) {
    const resource = entry.resource;
    const method = entry.request?.method;
    if (resource?.resourceType !== type || !resource.id || (method !== 'POST' && method !== 'PUT')) continue;
    if (matches(resource, type, query)) found.add(`${type}/${resource.id}`);
  }
  if (found.size !== 1) {
    throw fail(found.size === 0 ? 404 : 412, found.size === 0 ? 'not-found' : 'multiple-matches', `Conditional reference ${type}?… matched ${found.size} resources`, where);
  }
  return [...found][0];
}

function matches(resource: Resource, type: string, query: string): boolean {
  const q = query.startsWith(`${type}?`) ? query.slice(type.length + 1) : query;
  try {
    return matchesSearchRequest(resource, parseSearchRequest(`${type}?${q}`));
  } catch {
    return false; // a parameter the in-memory matcher cannot evaluate (e.g. a chain): stored matches only
  }
}
