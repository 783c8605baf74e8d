/**
 * Finding the patient and the requesting institution a request names: by id, literal or conditional reference,
 * or identifier (a person may be registered by several institutions: every Patient with the identifier).
 */
import type { Organization, Patient, Reference, Resource } from '@medplum/fhirtypes';
import type { Repository } from '../fhir/repository.ts';
import { parseSearch } from '../fhir/search/parse.ts';
import { parseReference } from '../fhir/search/references.ts';
import { EXT } from '../profiles/canonical.ts';
import { RecognitionError } from './errors.ts';
import { institutionsOf, isPlatform } from '../auth/institution.ts';
import { cityOfDistrict, districtOf, type Requester } from './facts.ts';
import { defaultRequester, type PatientSelector, type ServiceContext } from './model.ts';

export function requireRequester(ctx: ServiceContext, given: Reference | undefined): Reference {
  const ref = given ?? defaultRequester(ctx.principal);
  if (!ref) throw new RecognitionError(400, 'required', 'requester (the requesting institution, Reference(Organization)) is required', 'requester');
  return ref;
}

/**
 * A caller bound to an institution asks only as itself (docs/security.md 访问控制): the requester of a check
 * must be its own institution (or one it acts for); the platform may name any.
 */
export async function assertOwnRequester(ctx: ServiceContext, organization: Organization, expression = 'requester'): Promise<void> {
  if (!ctx.principal || isPlatform(ctx.principal) || !ctx.principal.institution) return;
  const own = await institutionsOf(ctx.repo, ctx.principal);
  if (!own.ids.has(organization.id as string)) {
    throw new RecognitionError(403, 'forbidden', 'The requester must be the caller\'s own institution: an institution asks only as itself', expression);
  }
}

/** Escapes a search value (`,` `|` `$` `\`). */
export function esc(value: string): string {
  return value.replace(/([,|$\\])/g, '\\$1');
}

/** The resources of `type` carrying the identifier (by id, at most `limit`): the search's own, not read again. */
export async function byIdentifier<T extends Resource>(repo: Repository, type: string, system: string | undefined, value: string, limit: number): Promise<T[]> {
  const req = parseSearch(type, [['identifier', system !== undefined ? `${esc(system)}|${esc(value)}` : esc(value)], ['_count', String(limit)], ['_sort', '_id']]);
  const bundle = await repo.search(req, '');
  return (bundle.entry ?? []).map((e) => e.resource as T | undefined).filter((r): r is T => r?.resourceType === type && !!r.id);
}

/** Reads `Type?identifier=sys|value` from a conditional reference string, if it is one. */
export function conditionalIdentifier(reference: string, type: string): { system?: string; value: string } | undefined {
  if (!reference.startsWith(`${type}?`)) return undefined;
  const q = new URLSearchParams(reference.slice(type.length + 1));
  const keys = [...q.keys()];
  const v = q.get('identifier');
  if (keys.length !== 1 || !v) return undefined;
  const i = v.indexOf('|');
  return i < 0 ? { value: v } : { system: v.slice(0, i) || undefined, value: v.slice(i + 1) };
}

/**
 * The Patient(s) a selector names. By identifier every Patient carrying it is returned (one person may be
 * registered by several institutions); by id or literal reference exactly one.
 */
export async function resolvePatients(repo: Repository, sel: PatientSelector, param: string, index?: number, path?: string): Promise<Patient[]> {
  const notFound = (what: string) => new RecognitionError(404, 'not-found', `No patient ${what}`, param, index, path);
  let id = sel.id;
  let identifier = sel.identifier;
  const ref = sel.reference;
  if (ref) {
    if (ref.reference) {
      const conditional = ref.reference.includes('?');
      identifier = conditional ? conditionalIdentifier(ref.reference, 'Patient') : undefined;
      const parsed = conditional ? undefined : parseReference(ref.reference);
      if (parsed?.type === 'Patient') id = parsed.id;
      else if (!identifier) throw new RecognitionError(400, 'invalid', 'The patient must be a reference to a Patient (Patient/[id] or Patient?identifier=system|value)', param, index, path);
    } else if (ref.identifier?.value) {
      identifier = { system: ref.identifier.system, value: ref.identifier.value };
    } else throw new RecognitionError(400, 'invalid', 'The patient reference has neither a reference nor an identifier', param, index, path);
  }
  if (id) {
    const found = (await repo.readMany('Patient', [id])) as Patient[];
    if (found.length === 0) throw notFound(`Patient/${id.slice(0, 64)}`);
    return found;
  }
  if (identifier) {
    if (!identifier.value.trim()) throw new RecognitionError(400, 'invalid', 'The patient identifier has no value', param, index, path);
    const found = await byIdentifier<Patient>(repo, 'Patient', identifier.system, identifier.value, 20);
    if (found.length === 0) throw notFound('with that identifier');
    return found;
  }
  throw new RecognitionError(400, 'required', 'A patient is required: call Patient/[id]/$… or give patient or identifier', param, index, path);
}

export interface ResolvedRequester {
  organization: Organization;
  reference: Reference;
  institution: Requester;
}

export async function resolveRequester(repo: Repository, ref: Reference): Promise<ResolvedRequester> {
  const bad = (message: string) => new RecognitionError(400, 'invalid', message, 'requester');
  let organization: Organization | undefined;
  if (ref.reference) {
    const conditional = ref.reference.includes('?');
    const ident = conditional ? conditionalIdentifier(ref.reference, 'Organization') : undefined;
    const parsed = conditional ? undefined : parseReference(ref.reference);
    if (parsed?.type === 'Organization') [organization] = (await repo.readMany('Organization', [parsed.id])) as Organization[];
    else if (ident) [organization] = await byIdentifier<Organization>(repo, 'Organization', ident.system, ident.value, 1);
    else throw bad('requester must be a reference to an Organization (Organization/[id] or Organization?identifier=system|value)');
  } else if (ref.identifier?.value) {
    [organization] = await byIdentifier<Organization>(repo, 'Organization', ref.identifier.system, ref.identifier.value, 1);
  } else throw bad('requester has neither a reference nor an identifier');
  return requesterOf(organization);
}

/** The requesting institution as the rules need it; 404 when unknown, 422 without a district. */
export function requesterOf(organization: Organization | undefined): ResolvedRequester {
  if (!organization) throw new RecognitionError(404, 'not-found', 'The requesting institution is not registered on the platform', 'requester');
  const district = districtOf(organization);
  if (!district) {
    throw new RecognitionError(422, 'business-rule', `Organization/${organization.id} has no district extension (${EXT.district}): its region, and so the recognition scope, is unknown`, 'requester');
  }
  const reference = { reference: `Organization/${organization.id}`, ...(organization.name ? { display: organization.name } : {}) };
  return { organization, reference, institution: { id: organization.id as string, city: cityOfDistrict(district) } };
}

