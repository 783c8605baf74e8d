/**
 * Who and whom a hook call is about, on the platform: the patient and the requesting institution.
 *
 * Patient — the CDS client's `context.patientId` is an id of *its* FHIR server. With the `patient` prefetch,
 * the Patient's identifiers (the national ID first, then the others in order) find the patient on the
 * platform, with every registration of that person; without it (or when no identifier is known here),
 * `context.patientId` is read as a platform Patient id. A patient the platform does not know has no results:
 * the hook answers with no cards.
 *
 * Requester (the institution asking) — in this order:
 *  1. the request extension `cn.gz.huren.requester`: "Organization/[id]", "Organization?identifier=system|value",
 *     or a FHIR Reference object (with `reference` or `identifier`);
 *  2. the current user's PractitionerRole.organization — from the `user` prefetch (a PractitionerRole) or,
 *     without it, from the platform's store (`context.userId` PractitionerRole/[id], or the roles of
 *     Practitioner/[id]); the organization must be known to the platform (give its `identifier`, or a
 *     platform id);
 *  3. the institution of the caller's credentials (`defaultRequester`: a CDS client's registered institution).
 * None of these: 400.
 */
import type { Patient, PractitionerRole, Reference, Resource } from '@medplum/fhirtypes';
import type { Repository } from '../fhir/repository.ts';
import { badRequest } from '../fhir/errors.ts';
import { parseSearch } from '../fhir/search/parse.ts';
import type { Principal } from '../http/auth.ts';
import { defaultRequester, RecognitionError, resolvePatients, type PatientSelector } from '../recognition/service.ts';
import { REQUESTER_EXTENSION } from './services.ts';
import type { HookRequest } from './request.ts';

/** 居民身份证号码 (the national ID), the identifier most likely shared across institutions. */
export const NATIONAL_ID_SYSTEM = 'urn:oid:2.16.156.10011.1.3';

export interface ResolvedPatient {
  /** The patient as found (carries the patients, so the recognition service does not look them up again). */
  selector: PatientSelector;
  /** As a Reference, for the draft orders' subject. */
  subject: Reference;
}

export async function patientOf(repo: Repository, req: HookRequest): Promise<ResolvedPatient | undefined> {
  const prefetched = req.prefetch.patient;
  if (prefetched) {
    if (prefetched.resourceType !== 'Patient') throw badRequest('prefetch.patient must be the Patient (Patient/{{context.patientId}})', 'prefetch.patient');
    if (prefetched.id !== undefined && prefetched.id !== req.patientId) throw badRequest('prefetch.patient is not the patient context.patientId names', 'prefetch.patient.id');
    const identifiers = ((prefetched as Patient).identifier ?? []).filter((i) => typeof i.value === 'string' && i.value.trim() !== '' && typeof i.system === 'string' && i.system !== '');
    identifiers.sort((a, b) => Number(b.system === NATIONAL_ID_SYSTEM) - Number(a.system === NATIONAL_ID_SYSTEM));
    for (const identifier of identifiers.slice(0, 10)) {
      const sel = { identifier: { system: identifier.system, value: identifier.value as string } };
      const resolved = await found(repo, sel);
      if (resolved.length > 0) return { selector: { ...sel, resolved }, subject: { identifier: sel.identifier } };
    }
  }
  const byId = { id: req.patientId };
  const resolved = await found(repo, byId);
  return resolved.length > 0 ? { selector: { ...byId, resolved }, subject: { reference: `Patient/${req.patientId}` } } : undefined;
}

async function found(repo: Repository, selector: PatientSelector): Promise<Patient[]> {
  try {
    return await resolvePatients(repo, selector, 'patient');
  } catch (err) {
    if (err instanceof RecognitionError && err.status === 404) return [];
    throw err;
  }
}

export interface ResolvedRequester {
  reference: Reference;
  /** Where it came from, to name the input at fault when the platform rejects it. */
  expression: string;
}

export async function requesterOf(repo: Repository, principal: Principal | undefined, req: HookRequest): Promise<ResolvedRequester> {
  const ext = req.extension[REQUESTER_EXTENSION];
  if (ext !== undefined) return { reference: extensionReference(ext), expression: `extension.${REQUESTER_EXTENSION}` };
  const fromUser = await userOrganization(repo, req);
  if (fromUser) return fromUser;
  const fromPrincipal = defaultRequester(principal);
  if (fromPrincipal) return { reference: fromPrincipal, expression: 'Authorization' };
  throw badRequest(
    `The requesting institution is unknown: give extension.${REQUESTER_EXTENSION} ("Organization/[id]" or "Organization?identifier=system|value"), ` +
      'or a context.userId whose PractitionerRole (prefetched as user, or registered on the platform) names its organization',
    `extension.${REQUESTER_EXTENSION}`
  );
}

function extensionReference(value: unknown): Reference {
  const at = `extension.${REQUESTER_EXTENSION}`;
  if (typeof value === 'string') {
    if (!/^Organization[/?]/.test(value) || value.length > 500) throw badRequest(`${at} must be "Organization/[id]" or "Organization?identifier=system|value"`, at);
    return { reference: value };
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const ref = value as Reference;
    if (typeof ref.reference === 'string') return { reference: ref.reference };
    if (ref.identifier && typeof ref.identifier.value === 'string') {
      return { identifier: { ...(typeof ref.identifier.system === 'string' ? { system: ref.identifier.system } : {}), value: ref.identifier.value } };
    }
  }
  throw badRequest(`${at} must be an Organization reference (a string or a Reference with reference or identifier)`, at);
}

/** The organization of a PractitionerRole, as the platform can resolve it (its identifier first). */
function roleOrganization(role: PractitionerRole): Reference | undefined {
  const org = role.organization;
  if (!org) return undefined;
  if (org.identifier?.value) return { identifier: { ...(org.identifier.system ? { system: org.identifier.system } : {}), value: org.identifier.value } };
  if (org.reference) return { reference: org.reference };
  return undefined;
}

async function userOrganization(repo: Repository, req: HookRequest): Promise<ResolvedRequester | undefined> {
  const prefetched: Resource | null | undefined = req.prefetch.user;
  if (prefetched && prefetched.resourceType === 'PractitionerRole') {
    const ref = roleOrganization(prefetched);
    if (ref) return { reference: ref, expression: 'prefetch.user.organization' };
  }
  if (prefetched && prefetched.resourceType === 'Bundle') {
    const role = (prefetched.entry ?? []).map((e) => e.resource).find((r): r is PractitionerRole => r?.resourceType === 'PractitionerRole' && !!r.organization);
    const ref = role && roleOrganization(role);
    if (ref) return { reference: ref, expression: 'prefetch.user' };
  }
  // the platform's own register of users
  if (req.userType === 'PractitionerRole') {
    const [role] = (await repo.readMany('PractitionerRole', [req.userLocalId])) as PractitionerRole[];
    const ref = role && roleOrganization(role);
    return ref ? { reference: ref, expression: 'context.userId' } : undefined;
  }
  if (req.userType === 'Practitioner') {
    const search = parseSearch('PractitionerRole', [
      ['practitioner', `Practitioner/${req.userLocalId}`],
      ['_count', '20'],
    ]);
    const roles = ((await repo.search(search, '')).entry ?? []).map((e) => e.resource as PractitionerRole).filter((r) => r?.active !== false);
    const orgs = new Map<string, Reference>();
    for (const role of roles) {
      const ref = roleOrganization(role);
      if (ref) orgs.set(JSON.stringify(ref), ref);
    }
    if (orgs.size > 1) {
      throw badRequest(`The user works for ${orgs.size} institutions: name the requesting one in extension.${REQUESTER_EXTENSION}`, `extension.${REQUESTER_EXTENSION}`);
    }
    const [ref] = orgs.values();
    return ref ? { reference: ref, expression: 'context.userId' } : undefined;
  }
  return undefined;
}
