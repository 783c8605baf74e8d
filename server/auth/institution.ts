/**
 * Which institution a caller speaks for, and which institutions a resource names as its own — the two halves
 * of institution binding (docs/security.md 访问控制).
 *
 * A caller's institutions: the Organization its registration (a backend client's `organization`, an account's
 * institution) names — literal `Organization/[id]` or conditional `Organization?identifier=system|value` — and
 * the Organizations registered as its parts (`Organization.partOf` = it): it acts for its branches.
 *
 * A resource's institutions (its owners) are the Organizations its institution elements name (OWNER_PATHS, e.g.
 * DiagnosticReport.performer); an Observation without a performer belongs to the reports that list it as a
 * result. A resource naming no institution belongs to nobody but the platform.
 */
import type { Organization, Reference, Resource } from '@medplum/fhirtypes';
import type { Principal } from '../fhir/principal.ts';
import type { Repository } from '../fhir/repository.ts';
import { parseSearch } from '../fhir/search/parse.ts';
import { parseReference } from '../fhir/search/references.ts';

/** The elements (FHIRPath, simple paths) that name the institution a resource is from or acts as. */
export const OWNER_PATHS: Record<string, readonly string[]> = {
  DiagnosticReport: ['performer', 'resultsInterpreter'],
  Observation: ['performer'],
  ImagingStudy: ['series.performer.actor'],
  Provenance: ['agent.who', 'agent.onBehalfOf'],
  ServiceRequest: ['requester', 'performer'],
  Encounter: ['serviceProvider'],
  Patient: ['managingOrganization'],
  Consent: ['organization', 'performer'],
  Specimen: ['collection.collector'],
  Task: ['requester', 'owner'],
  Organization: ['partOf'],
  PractitionerRole: ['organization'],
  // an institution's local dictionary and its map (server/dictionary/): the venue they are used at
  CodeSystem: ['useContext.valueReference'],
  ConceptMap: ['useContext.valueReference'],
  Practitioner: [],
};

/** One institution element of a resource: where it is and what it refers to. */
export interface Claim {
  expression: string;
  reference: Reference;
}

/** The references a resource's institution elements hold (all of them, Organization or not). */
export function claimsOf(resource: Resource): Claim[] {
  const paths = OWNER_PATHS[resource.resourceType] ?? [];
  const out: Claim[] = [];
  for (const path of paths) walk(resource as unknown as Record<string, unknown>, path.split('.'), resource.resourceType, out);
  return out;
}

function walk(node: unknown, steps: string[], at: string, out: Claim[]): void {
  if (node === null || typeof node !== 'object') return;
  const [step, ...rest] = steps;
  const value = (node as Record<string, unknown>)[step];
  const visit = (v: unknown, where: string) => {
    if (rest.length > 0) walk(v, rest, where, out);
    else if (v && typeof v === 'object') out.push({ expression: where, reference: v as Reference });
  };
  if (Array.isArray(value)) value.forEach((v, i) => visit(v, `${at}.${step}[${i}]`));
  else if (value !== undefined) visit(value, `${at}.${step}`);
}

/** The institutions a principal acts for: Organization ids and the identifiers they carry. */
export interface Institutions {
  ids: ReadonlySet<string>;
  /** `system|value` of each of those Organizations' identifiers. */
  identifiers: ReadonlySet<string>;
}

const NONE: Institutions = { ids: new Set(), identifiers: new Set() };

/** Whether the platform itself is calling (the bootstrap token): it is bound to no institution. */
export function isPlatform(principal: Principal): boolean {
  return principal.kind === 'bootstrap';
}

/** Resolves the principal's institution and its parts (partOf); none when it names none or it is not stored. */
export async function institutionsOf(repo: Repository, principal: Principal): Promise<Institutions> {
  const own = principal.institution;
  if (!own) return NONE;
  const ids = await organizationIds(repo, own);
  if (ids.length === 0) return NONE;
  const parts = await repo.connection.query<{ id: string }>(
    `SELECT DISTINCT x.id FROM idx_reference x JOIN resource r ON r.type = x.type AND r.id = x.id AND NOT r.deleted
      WHERE x.type = 'Organization' AND x.param = 'partof' AND x.target_type = 'Organization' AND x.target_id = ANY($1::text[])`,
    [ids]
  );
  const all = [...new Set([...ids, ...parts.map((p) => p.id)])];
  const orgs = (await repo.readMany('Organization', all)) as Organization[];
  const identifiers = new Set(orgs.flatMap((o) => (o.identifier ?? []).map((i) => `${i.system ?? ''}|${i.value ?? ''}`)));
  return { ids: new Set(orgs.map((o) => o.id as string)), identifiers };
}

/** The Organization ids a reference string (`Organization/[id]` or `Organization?identifier=…`) stands for. */
async function organizationIds(repo: Repository, reference: string): Promise<string[]> {
  if (reference.startsWith('Organization?')) {
    const pairs = [...new URLSearchParams(reference.slice('Organization?'.length))] as [string, string][];
    if (pairs.length === 0) return [];
    const request = parseSearch('Organization', [...pairs, ['_count', '2']]);
    if (request.unknown.length > 0) return [];
    const bundle = await repo.search(request, '');
    return (bundle.entry ?? []).map((e) => e.resource?.id).filter((id): id is string => !!id);
  }
  const parsed = parseReference(reference.includes('/') ? reference : `Organization/${reference}`);
  return parsed?.type === 'Organization' ? [parsed.id] : [];
}

/**
 * Whether a reference names one of the institutions: a literal Organization reference to one of their ids, a
 * conditional one on one of their identifiers, or a logical reference (identifier) to one of them.
 */
export function namesOwn(reference: Reference, own: Institutions): boolean {
  const text = reference.reference;
  if (typeof text === 'string') {
    if (text.startsWith('Organization?')) {
      const q = new URLSearchParams(text.slice('Organization?'.length));
      const v = q.get('identifier');
      return [...q.keys()].length === 1 && !!v && own.identifiers.has(v.includes('|') ? v : `|${v}`);
    }
    const parsed = parseReference(text);
    return parsed?.type === 'Organization' && own.ids.has(parsed.id);
  }
  const id = reference.identifier;
  return !!id?.value && own.identifiers.has(`${id.system ?? ''}|${id.value}`);
}

/**
 * The institutions a stored resource belongs to, as the claims naming them; an Observation without a
 * performer inherits those of the reports listing it (DiagnosticReport.result).
 */
export async function ownerClaims(repo: Repository, resource: Resource): Promise<Claim[]> {
  const own = claimsOf(resource);
  if (own.length > 0 || resource.resourceType !== 'Observation' || !resource.id) return own;
  const reports = await repo.connection.query<{ content: Resource }>(
    `SELECT r.content FROM idx_reference x JOIN resource r ON r.type = x.type AND r.id = x.id AND NOT r.deleted
      WHERE x.type = 'DiagnosticReport' AND x.param = 'result' AND x.target_type = 'Observation' AND x.target_id = $1 LIMIT 20`,
    [resource.id]
  );
  return reports.flatMap((r) => claimsOf(r.content));
}

/** Whether a stored resource is the institution's own: it names institutions, and all of them are its own. */
export async function isOwnResource(repo: Repository, resource: Resource, own: Institutions): Promise<boolean> {
  const claims = await ownerClaims(repo, resource);
  return claims.length > 0 && claims.every((c) => namesOwn(c.reference, own));
}
