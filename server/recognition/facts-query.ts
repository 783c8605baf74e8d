/**
 * Loading the facts the rules judge: a patient's reports with their Observations and performing institutions
 * (and, when named by id, the patient and the requester) in one statement, and the performing institutions'
 * approved local-code mappings (cached, dictionary/mappings.ts).
 */
import type { DiagnosticReport, Observation, Organization, Patient, Reference, Resource } from '@medplum/fhirtypes';
import { prepared, type Database } from '../db/database.ts';
import { approvedMappings } from '../dictionary/mappings.ts';
import type { Repository } from '../fhir/repository.ts';
import { openStored } from '../fhir/engine.ts';
import { parseReference } from '../fhir/search/references.ts';
import { RecognitionError } from './errors.ts';
import { performerId, resultIds, type LoadedReport } from './facts.ts';
import { currentHashStatusColumn, HASH_STATUSES, MAX_REPORTS, type HashStatus, type PatientSelector } from './model.ts';
import { requesterOf, resolvePatients, resolveRequester, type ResolvedRequester } from './patients.ts';

/**
 * The patient's most recent reports (newest first, by `issued`, as `_sort=-issued` orders them) with their
 * Observations and performing institutions, in ONE statement (one round trip), whatever their number: the
 * reports through the `subject` reference index, their results and performers through the reports' own
 * reference index rows (`result` → Observation, `performer` → Organization). Rows come back tagged (0 report,
 * 1 Observation, 2 Organization) with the reports in order. It used to be three round trips (a search, then
 * the Observations and the Organizations) — on loopback the round trips, not the rows, were the cost. Each
 * report row also carries the hash status of its version (`hashStatusColumn`, model.ts: the chain
 * provenance's), which was a statement of its own.
 */
export function factsSql(shape: FactsShape = { single: true, withPatients: true }, statusColumn = currentHashStatusColumn()): string {
  // one patient is `= $1` (the usual call): PostgreSQL then keeps a generic plan of the prepared statement instead
  // of planning it again on every call (planning was a third of its cost), which it does not for `= ANY($1)`
  const patient = shape.single ? '= $1::text' : '= ANY($1::text[])';
  return prepared(`
WITH rep AS MATERIALIZED (
  SELECT r.id, r.content, ${statusColumn} AS hash_status,
         row_number() OVER (ORDER BY (SELECT max(s.high) FROM idx_date s WHERE s.id = r.id AND s.type = r.type AND s.param = 'issued') DESC NULLS LAST,
                                     r.created, r.id) AS n
    FROM resource r
   WHERE r.type = 'DiagnosticReport' AND NOT r.deleted
     AND r.id IN (SELECT i.id FROM idx_reference i
                   WHERE i.target_id ${patient} AND i.param = 'subject' AND i.type = 'DiagnosticReport' AND i.target_type = 'Patient')
   ORDER BY n LIMIT ${MAX_REPORTS}),
refs AS MATERIALIZED (
  SELECT DISTINCT x.param, x.target_id FROM idx_reference x JOIN rep ON x.id = rep.id AND x.type = 'DiagnosticReport'
   WHERE (x.param = 'result' AND x.target_type = 'Observation') OR (x.param = 'performer' AND x.target_type = 'Organization'))
SELECT 0 AS k, rep.n, rep.id, NULL::int AS version, rep.content, rep.hash_status::text AS hash_status FROM rep
UNION ALL
SELECT CASE WHEN o.type = 'Observation' THEN 1 ELSE 2 END, 0, o.id, o.version,
       CASE WHEN o.type = 'Organization' AND o.id || '/' || o.version = ANY($3::text[]) THEN NULL ELSE o.content END, NULL
  FROM refs JOIN resource o ON o.id = refs.target_id AND o.type = CASE WHEN refs.param = 'result' THEN 'Observation' ELSE 'Organization' END
 WHERE NOT o.deleted
UNION ALL${
    shape.withPatients
      ? `
SELECT 3, 0, p.id, NULL, p.content, NULL FROM resource p WHERE p.type = 'Patient' AND p.id ${patient} AND NOT p.deleted
UNION ALL`
      : ''
  }
SELECT 4, 0, g.id, g.version, CASE WHEN g.id || '/' || g.version = ANY($3::text[]) THEN NULL ELSE g.content END, NULL
  FROM resource g WHERE g.type = 'Organization' AND g.id = $2::text AND NOT g.deleted
ORDER BY 1, 2`);
}

/** The variants of the facts statement: one patient or several; with the patients' own rows or not. */
export interface FactsShape {
  single: boolean;
  withPatients: boolean;
}

/**
 * The institutions (Organizations) the facts statement returned in this process, by `id/version`, frozen: the
 * statement is told which it has (`$3`) and sends those only as their id and version — an institution's
 * content (its QC qualifications, ~4 KB) was most of a check's bytes, turned into text by PostgreSQL and
 * parsed again here on every check. A changed institution has a new version, so it is sent again.
 */
const knownInstitutions = new WeakMap<Database, Map<string, Organization>>();
/** Beyond this many kept versions the memory starts afresh (a city has a few hundred institutions). */
const MAX_KNOWN_INSTITUTIONS = 5000;

function institutionsOf(db: Database): Map<string, Organization> {
  let known = knownInstitutions.get(db);
  if (!known || known.size > MAX_KNOWN_INSTITUTIONS) knownInstitutions.set(db, (known = new Map()));
  return known;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

interface Facts {
  reports: LoadedReport[];
  /** With `withPatients`: the patients themselves (the ids that exist and are not deleted). */
  patients: Patient[];
  /** The Organization `requesterId` names, if it exists. */
  requester?: Organization;
}

export async function queryFacts(repo: Repository, patientIds: string[], options: { withPatients?: boolean; requesterId?: string } = {}): Promise<Facts> {
  const single = patientIds.length === 1;
  const known = institutionsOf(repo.db);
  const rows = await repo.connection.query<{ k: number; id: string; version: number | null; content: Resource | null; hash_status: string | null }>(
    factsSql({ single, withPatients: options.withPatients === true }),
    [single ? patientIds[0] : patientIds, options.requesterId ?? null, [...known.keys()]]
  );
  const reports: DiagnosticReport[] = [];
  const statuses = new Map<DiagnosticReport, HashStatus>();
  const obs = new Map<string, Observation>();
  const orgs = new Map<string, Organization>();
  const patients: Patient[] = [];
  let requester: Organization | undefined;
  const missing: string[] = [];
  /** An institution's row: its content when the statement sent it (then kept), else the one kept here. */
  const institution = (id: string, version: number | null, content: Resource | null): Organization | undefined => {
    const key = `${id}/${version}`;
    if (content) known.set(key, deepFreeze(content as Organization));
    const org = known.get(key);
    if (!org) missing.push(id); // forgotten meanwhile (the memory started afresh): read below
    return org;
  };
  for (const { k, id, version, content, hash_status } of rows) {
    const kind = Number(k);
    if (kind === 0) {
      const report = openStored(repo.db, content as DiagnosticReport);
      reports.push(report);
      statuses.set(report, HASH_STATUSES.includes(hash_status as HashStatus) ? (hash_status as HashStatus) : 'unanchored');
    } else if (kind === 1) obs.set(id, openStored(repo.db, content as Observation));
    else if (kind === 2) {
      const org = institution(id, version, content);
      if (org) orgs.set(id, org);
    } else if (kind === 3) patients.push(openStored(repo.db, content as Patient));
    else requester = institution(id, version, content);
  }
  if (missing.length > 0) {
    for (const org of (await repo.readMany('Organization', missing)) as Organization[]) {
      if (org.id === options.requesterId) requester = org;
      orgs.set(org.id as string, org);
    }
  }
  const local = await approvedMappings(repo.db, reports.map((r) => performerId(r) ?? ''));
  return {
    patients,
    requester,
    reports: reports.map((report) => ({
      report,
      hashStatus: statuses.get(report) as HashStatus,
      observations: resultIds(report).map((id) => obs.get(id)).filter((o): o is Observation => !!o),
      performer: orgs.get(performerId(report) ?? ''),
      localCodes: local.get(performerId(report) ?? ''),
    })),
  };
}

/**
 * The patient(s), the requesting institution and the patient's reports. When both are named by literal id
 * (`Patient/[id]/$recognition-check?requester=Organization/[id]`, the usual call), one statement finds all
 * three; otherwise (identifiers, conditional references) the patient and the requester are resolved first.
 * Errors are the same either way (resolvePatients, resolveRequester).
 */
export async function patientRequesterReports(
  repo: Repository,
  selector: PatientSelector,
  requesterRef: Reference,
  where: { param: string; index?: number; path?: string }
): Promise<{ patients: Patient[]; requester: ResolvedRequester; loaded: LoadedReport[] }> {
  const patientId = selector.id ?? literalId(selector.reference?.reference, 'Patient');
  const requesterId = literalId(requesterRef.reference, 'Organization');
  if (selector.resolved?.length) {
    // the caller found the patients already: only the requester and the reports are left (one statement by id)
    const ids = selector.resolved.map((p) => p.id as string);
    if (requesterId === undefined) {
      const requester = await resolveRequester(repo, requesterRef);
      return { patients: selector.resolved, requester, loaded: await loadReports(repo, ids) };
    }
    const facts = await queryFacts(repo, ids, { requesterId });
    return { patients: selector.resolved, requester: requesterOf(facts.requester), loaded: facts.reports };
  }
  if (patientId === undefined || requesterId === undefined || selector.identifier) {
    const [patients, requester] = await Promise.all([resolvePatients(repo, selector, where.param, where.index, where.path), resolveRequester(repo, requesterRef)]);
    return { patients, requester, loaded: await loadReports(repo, patients.map((p) => p.id as string)) };
  }
  const facts = await queryFacts(repo, [patientId], { withPatients: true, requesterId });
  if (facts.patients.length === 0) throw new RecognitionError(404, 'not-found', `No patient Patient/${patientId.slice(0, 64)}`, where.param, where.index, where.path);
  return { patients: facts.patients, requester: requesterOf(facts.requester), loaded: facts.reports };
}

/** The id of a literal relative reference `Type/[id]` (not conditional), if it is one. */
export function literalId(reference: string | undefined, type: string): string | undefined {
  if (!reference || reference.includes('?')) return undefined;
  const parsed = parseReference(reference);
  return parsed?.type === type ? parsed.id : undefined;
}

export async function loadReports(repo: Repository, patientIds: string[]): Promise<LoadedReport[]> {
  if (patientIds.length === 0) return [];
  return (await queryFacts(repo, patientIds)).reports;
}

// ---------------------------------------------------------------------------------------------------
// filters and outputs

