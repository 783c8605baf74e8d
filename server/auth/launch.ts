/**
 * SMART App Launch, EHR launch — the launch contexts (docs/his-integration.md 从 HIS 打开报告调阅): a HIS client
 * granted `system/launch` (HUREN_CLIENTS) creates one with its backend-services access token,
 *
 *   POST /auth/launch  { patient, practitioner?, user?, encounter? }  → 201 { launch, expires_in, patient, launch_url }
 *
 * naming the patient (a Patient id or reference, or `Patient?identifier=system|value`, or `{ identifier }`, which
 * the platform resolves) and the user as the HIS asserts it (a Practitioner reference or identifier, and/or the
 * HIS's login of the user: no name). The `launch` value is opaque, random, bound to the HIS client and its
 * institution, valid for 5 minutes and used once (GET /auth/authorize spends it); only its SHA-256 is stored, in
 * the database, so every server process honours it.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Encounter, Patient, Reference } from '@medplum/fhirtypes';
import type { Database } from '../db/database.ts';
import { fail } from '../fhir/errors.ts';
import type { ActingFor, Principal } from '../fhir/principal.ts';
import type { Repository } from '../fhir/repository.ts';
import { parseSearch } from '../fhir/search/parse.ts';
import { parseReference } from '../fhir/search/references.ts';
import { samePerson } from './care.ts';
import { institutionsOf, namesOwn } from './institution.ts';

/** The scope a HIS client needs to create launch contexts (besides its system scopes, in HUREN_CLIENTS). */
export const LAUNCH_SCOPE = 'system/launch';
export const LAUNCH_LIFETIME_SECONDS = 300;

export interface LaunchContext {
  /** The HIS client that created it, and the institution it speaks for. */
  clientId: string;
  organization: string;
  patient: string;
  encounter?: string;
  user: Omit<ActingFor, 'assertedBy'>;
}

export const digestOf = (value: string): string => createHash('sha256').update(value).digest('hex');

const ID = /^[A-Za-z0-9\-.]{1,64}$/;
const LOGIN = /^[\w.@\-]{1,64}$/;

export class LaunchContexts {
  constructor(private readonly db: Database) {}

  /** A new launch context for the HIS client `principal` (403 without `system/launch`, 4xx naming the field for bad input). */
  async create(principal: Principal, repo: Repository, body: unknown, now = new Date()): Promise<{ launch: string; expiresIn: number; context: LaunchContext }> {
    if (principal.kind !== 'client' || !principal.scopes.includes(LAUNCH_SCOPE) || !principal.institution) {
      throw fail(403, 'forbidden', `Creating a launch context needs a HIS client's access token with the scope ${LAUNCH_SCOPE}`);
    }
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw fail(400, 'invalid', 'The body must be a JSON object { patient, practitioner?, user?, encounter? }');
    const b = body as Record<string, unknown>;
    const unknown = Object.keys(b).find((k) => !['patient', 'practitioner', 'user', 'encounter'].includes(k));
    if (unknown) throw fail(400, 'invalid', `Unknown member '${unknown.slice(0, 40)}' (patient, practitioner, user, encounter)`, unknown.slice(0, 40));
    const patient = await resolvePatient(repo, principal, b.patient);
    const user = actingFor(b.practitioner, b.user);
    const encounter = b.encounter === undefined ? undefined : await checkEncounter(repo, patient, b.encounter);
    const launch = randomBytes(32).toString('base64url');
    const context: LaunchContext = { clientId: principal.id.replace(/^client:/, ''), organization: principal.institution, patient, ...(encounter ? { encounter } : {}), user };
    await this.db.query(
      `INSERT INTO smart_launch (launch_hash, client_id, organization, patient_id, encounter_id, his_user, created_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [digestOf(launch), context.clientId, context.organization, patient, encounter ?? null, JSON.stringify(user), now.toISOString(), new Date(now.getTime() + LAUNCH_LIFETIME_SECONDS * 1000).toISOString()]
    );
    return { launch, expiresIn: LAUNCH_LIFETIME_SECONDS, context };
  }

  /** Spends a launch value: its context, or undefined when it is unknown, expired or used already. */
  async consume(launch: string, now = new Date()): Promise<{ hash: string; context: LaunchContext } | undefined> {
    const hash = digestOf(launch);
    const [row] = await this.db.query<LaunchRow>(
      `UPDATE smart_launch SET used_at = $2 WHERE launch_hash = $1 AND used_at IS NULL AND expires_at > $2
       RETURNING client_id, organization, patient_id, encounter_id, his_user`,
      [hash, now.toISOString()]
    );
    return row ? { hash, context: contextOf(row) } : undefined;
  }

  /** Forgets launch contexts and codes expired for a day (a scheduled job). */
  async prune(now = new Date()): Promise<void> {
    const before = new Date(now.getTime() - 86_400_000).toISOString();
    await this.db.query('DELETE FROM smart_code WHERE expires_at < $1', [before]);
    await this.db.query('DELETE FROM smart_launch WHERE expires_at < $1', [before]);
  }
}

export interface LaunchRow {
  client_id: string;
  organization: string;
  patient_id: string;
  encounter_id: string | null;
  his_user: string;
}

export function contextOf(row: LaunchRow): LaunchContext {
  return {
    clientId: row.client_id,
    organization: row.organization,
    patient: row.patient_id,
    ...(row.encounter_id ? { encounter: row.encounter_id } : {}),
    user: JSON.parse(row.his_user) as LaunchContext['user'],
  };
}

/** The Patient the launch names: by id or reference, or by identifier (the HIS's own registration first). */
async function resolvePatient(repo: Repository, principal: Principal, value: unknown): Promise<string> {
  if (value === undefined || value === null || value === '') throw fail(400, 'required', 'patient is required (a Patient id, Patient/[id], Patient?identifier=system|value or { identifier })', 'patient');
  let identifier: { system?: string; value: string } | undefined;
  let id: string | undefined;
  if (typeof value === 'string' && value.startsWith('Patient?')) {
    const q = new URLSearchParams(value.slice('Patient?'.length));
    const v = q.get('identifier');
    if ([...q.keys()].length !== 1 || !v) throw fail(400, 'invalid', 'A conditional patient reference is Patient?identifier=system|value', 'patient');
    const bar = v.indexOf('|');
    identifier = bar < 0 ? { value: v } : { ...(bar > 0 ? { system: v.slice(0, bar) } : {}), value: v.slice(bar + 1) };
  } else if (typeof value === 'string') {
    id = value.startsWith('Patient/') ? parseReference(value)?.id : value;
  } else if (typeof value === 'object' && !Array.isArray(value)) {
    const ref = value as Reference;
    if (typeof ref.reference === 'string') id = ref.reference.startsWith('Patient/') ? parseReference(ref.reference)?.id : undefined;
    else if (ref.identifier && typeof ref.identifier.value === 'string' && (ref.identifier.system === undefined || typeof ref.identifier.system === 'string')) {
      identifier = { ...(ref.identifier.system ? { system: ref.identifier.system } : {}), value: ref.identifier.value };
    }
  }
  if (identifier) {
    if (!identifier.value.trim()) throw fail(400, 'invalid', 'The patient identifier has no value', 'patient');
    const search = parseSearch('Patient', [['identifier', `${identifier.system ? `${esc(identifier.system)}|` : ''}${esc(identifier.value)}`], ['_count', '20'], ['_sort', '_id']]);
    const found = ((await repo.search(search, '')).entry ?? []).map((e) => e.resource as Patient);
    if (found.length === 0) throw fail(404, 'not-found', 'No patient with that identifier is registered on the platform', 'patient');
    const own = await institutionsOf(repo, principal);
    return (found.find((p) => p.managingOrganization && namesOwn(p.managingOrganization, own)) ?? found[0]).id as string;
  }
  if (!id || !ID.test(id)) throw fail(400, 'invalid', 'patient must be a Patient id, Patient/[id], Patient?identifier=system|value or { identifier }', 'patient');
  if ((await repo.readMany('Patient', [id])).length === 0) throw fail(404, 'not-found', `No Patient/${id} is registered on the platform`, 'patient');
  return id;
}

/** The user as the HIS asserts it: a Practitioner (reference or identifier) and/or the HIS's login. */
function actingFor(practitioner: unknown, login: unknown): LaunchContext['user'] {
  const user: LaunchContext['user'] = {};
  if (typeof practitioner === 'string') {
    const ref = parseReference(practitioner);
    if (ref?.type !== 'Practitioner' || !ID.test(ref.id)) throw fail(400, 'invalid', 'practitioner must be Practitioner/[id] or { identifier: { system, value } }', 'practitioner');
    user.practitioner = `Practitioner/${ref.id}`;
  } else if (practitioner && typeof practitioner === 'object' && !Array.isArray(practitioner)) {
    const ident = (practitioner as { identifier?: { system?: unknown; value?: unknown } }).identifier;
    if (!ident || typeof ident.value !== 'string' || !ident.value.trim() || ident.value.length > 64 || (ident.system !== undefined && (typeof ident.system !== 'string' || ident.system.length > 200))) {
      throw fail(400, 'invalid', 'practitioner.identifier needs a value (at most 64 characters) and optionally a system', 'practitioner.identifier');
    }
    user.identifier = { ...(ident.system ? { system: ident.system as string } : {}), value: ident.value };
  } else if (practitioner !== undefined) {
    throw fail(400, 'invalid', 'practitioner must be Practitioner/[id] or { identifier: { system, value } }', 'practitioner');
  }
  if (login !== undefined) {
    if (typeof login !== 'string' || !LOGIN.test(login)) throw fail(400, 'invalid', "user must be the HIS's login of the user (letters, digits, . _ @ -, at most 64): never a name", 'user');
    user.login = login;
  }
  if (!user.practitioner && !user.identifier && !user.login) {
    throw fail(400, 'required', 'The user the HIS vouches for is required: practitioner (Practitioner/[id] or { identifier }) and/or user (its login)', 'practitioner');
  }
  return user;
}

/** The encounter of the launch: an Encounter about the patient (or the same person). */
async function checkEncounter(repo: Repository, patient: string, value: unknown): Promise<string> {
  const id = typeof value === 'string' ? (value.startsWith('Encounter/') ? parseReference(value)?.id : value) : undefined;
  if (!id || !ID.test(id)) throw fail(400, 'invalid', 'encounter must be an Encounter id or Encounter/[id]', 'encounter');
  const [encounter] = (await repo.readMany('Encounter', [id])) as Encounter[];
  if (!encounter) throw fail(404, 'not-found', `No Encounter/${id} on the platform`, 'encounter');
  const subject = encounter.subject?.reference ? parseReference(encounter.subject.reference) : undefined;
  const person = (await samePerson(repo, [patient])).get(patient)!;
  if (subject?.type !== 'Patient' || !person.has(subject.id)) throw fail(422, 'business-rule', `Encounter/${id} is not an encounter of the launch patient`, 'encounter');
  return id;
}

function esc(value: string): string {
  return value.replace(/([,|$\\])/g, '\\$1');
}
