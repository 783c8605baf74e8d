/**
 * The monitoring indicators per institution, district and city and per day (Asia/Shanghai), counted from the
 * facts (docs/monitoring.md "Indicators") and served as MeasureReports of the three Measures in profiles/:
 *
 *   Measure/monitoring-timeliness  报告上传及时性: reports with an issued time (denominator), on time (numerator),
 *                                  late, the on-time rate (measureScore), the median and p95 delay (minutes)
 *   Measure/monitoring-usage       互认使用情况: lab and exam reports received, recognition checks, reminders,
 *                                  recognised, not recognised (stratified by reason code), reminders without a
 *                                  decision, duplicate orders avoided
 *
 * One MeasureReport per (measure, scope, day): `individual` for an institution (reporter = the Organization),
 * `summary` for a district (extension monitoring-area = the district code) and for the city (440100). Ids are
 * derived from the three, so re-generation updates in place (a new version only when a number changed) —
 * idempotent, and a backfill of a past range is the same call.
 *
 *   Measure/monitoring-saving      节约费用估算: the items the day's recognised decisions cover, those with a price in
 *                                  the catalogue, and the sum of their prices (元, CNY) — the estimated saving
 */
import { createHash } from 'node:crypto';
import type { Extension, MeasureReport, MeasureReportGroup } from '@medplum/fhirtypes';
import type { Sql } from '../db/database.ts';
import { dayFigures } from '../db/day-figures.ts';
import type { Repository } from '../fhir/repository.ts';
import { CANONICAL_BASE } from '../terminology/canonical.ts';
import type { MonitoringConfig } from './config.ts';
import { local } from './evaluate.ts';
import type { MonitoringFacts } from './facts.ts';
import { summariseTimeliness, type TimelinessSummary } from './rules.ts';

export const INDICATOR_SYSTEM = `${CANONICAL_BASE}/CodeSystem/monitoring-indicator`;
export const TIMELINESS_MEASURE = `${CANONICAL_BASE}/Measure/monitoring-timeliness`;
export const USAGE_MEASURE = `${CANONICAL_BASE}/Measure/monitoring-usage`;
export const SAVING_MEASURE = `${CANONICAL_BASE}/Measure/monitoring-saving`;
export type MeasureKey = 'timeliness' | 'usage' | 'saving';
const MEASURE_URL: Record<MeasureKey, string> = { timeliness: TIMELINESS_MEASURE, usage: USAGE_MEASURE, saving: SAVING_MEASURE };
export const EXT_AREA = `${CANONICAL_BASE}/StructureDefinition/monitoring-area`;
export const REPORT_IDENTIFIER_SYSTEM = `${CANONICAL_BASE}/monitoring-report`;
const DIVISION = `${CANONICAL_BASE}/CodeSystem/admin-division`;
const POP = 'http://terminology.hl7.org/CodeSystem/measure-population';
export const CITY = '440100';

export const USAGE = [
  ['lab-reports', '检验报告'],
  ['exam-reports', '检查报告'],
  ['checks', '互认查询'],
  ['reminders', '互认提醒'],
  ['recognised', '已互认'],
  ['not-recognised', '不予互认'],
  ['undecided-reminders', '提醒未处理'],
  ['duplicates-avoided', '避免重复检查'],
] as const;
export type UsageCode = (typeof USAGE)[number][0];

/** The estimated saving of a day: items covered by recognised decisions, those priced, their sum in 分 (fen). */
export interface Saving {
  items: number;
  priced: number;
  fen: number;
}

export interface DayRow {
  /** `Organization/<id>`. */
  institution: string;
  day: string;
  usage: Record<UsageCode, number>;
  notRecognisedByReason: Record<string, number>;
  delays: number[];
  saving: Saving;
}

export interface ScopeRow {
  scope: 'institution' | 'district' | 'city';
  /** `Organization/<id>` or a district/city code. */
  key: string;
  day: string;
  usage: Record<UsageCode, number>;
  notRecognisedByReason: Record<string, number>;
  timeliness: TimelinessSummary;
  saving: Saving;
}

const zero = (): Record<UsageCode, number> => Object.fromEntries(USAGE.map(([c]) => [c, 0])) as Record<UsageCode, number>;
const dayOf = (column: string) => `to_char(${local(column)}, 'YYYY-MM-DD')`;

/** Every institution's figures per day in [from, to] (days, Asia/Shanghai, inclusive). */
export async function dayRows(sql: Sql, from: string, to: string, institution?: string): Promise<DayRow[]> {
  const start = `${from}T00:00:00+08:00`;
  const end = new Date(Date.parse(`${to}T00:00:00+08:00`) + 86_400_000).toISOString();
  const params = [start, end, institution ?? null];
  const rows = new Map<string, DayRow>();
  const row = (institution: string, day: string) => {
    const key = `${institution}|${day}`;
    let r = rows.get(key);
    if (!r) rows.set(key, (r = { institution, day, usage: zero(), notRecognisedByReason: {}, delays: [], saving: { items: 0, priced: 0, fen: 0 } }));
    return r;
  };
  for (const r of await sql.query<{ institution: string; day: string; lab: number; exam: number; delays: (number | null)[] }>(
    `SELECT institution, ${dayOf('received_at')} AS day,
            count(*) FILTER (WHERE flow = 'lab')::int AS lab, count(*) FILTER (WHERE flow = 'exam')::int AS exam,
            array_agg(extract(epoch FROM (received_at - issued_at)) / 60) FILTER (WHERE issued_at IS NOT NULL) AS delays
       FROM monitoring_report WHERE received_at >= $1 AND received_at < $2 AND ($3::text IS NULL OR institution = $3)
      GROUP BY 1, 2`,
    params
  )) {
    const d = row(r.institution, r.day);
    d.usage['lab-reports'] = Number(r.lab);
    d.usage['exam-reports'] = Number(r.exam);
    d.delays = (r.delays ?? []).filter((v): v is number => v !== null).map(Number);
  }
  for (const r of await sql.query<{ institution: string; day: string; checks: number; reminders: number; undecided: number; recognised: number; avoided: number }>(
    `SELECT r.institution, ${dayOf('r.at')} AS day, count(*)::int AS checks,
            count(*) FILTER (WHERE r.implicated > 0)::int AS reminders,
            count(*) FILTER (WHERE r.implicated > 0 AND NOT EXISTS (SELECT 1 FROM monitoring_decision d WHERE d.record_id = r.id))::int AS undecided,
            coalesce(sum((SELECT count(*) FROM monitoring_decision d WHERE d.record_id = r.id AND d.decision = 'recognised')), 0)::int AS recognised,
            coalesce(sum((SELECT count(*) FROM monitoring_decision d WHERE d.record_id = r.id AND d.decision = 'recognised') * (CASE WHEN r.kind = 'duplicate-order-reminder' THEN 1 ELSE 0 END)), 0)::int AS avoided
       FROM monitoring_record r WHERE r.at >= $1 AND r.at < $2 AND ($3::text IS NULL OR r.institution = $3)
      GROUP BY 1, 2`,
    params
  )) {
    const d = row(r.institution, r.day);
    d.usage.checks = Number(r.checks);
    d.usage.reminders = Number(r.reminders);
    d.usage['undecided-reminders'] = Number(r.undecided);
    d.usage.recognised = Number(r.recognised);
    d.usage['duplicates-avoided'] = Number(r.avoided);
  }
  for (const r of await sql.query<{ institution: string; day: string; reason: string | null; n: number }>(
    `SELECT r.institution, ${dayOf('r.at')} AS day, d.reason, count(*)::int AS n
       FROM monitoring_record r JOIN monitoring_decision d ON d.record_id = r.id
      WHERE d.decision = 'not-recognised' AND r.at >= $1 AND r.at < $2 AND ($3::text IS NULL OR r.institution = $3)
      GROUP BY 1, 2, 3`,
    params
  )) {
    const d = row(r.institution, r.day);
    const reason = r.reason ?? 'unspecified';
    d.notRecognisedByReason[reason] = (d.notRecognisedByReason[reason] ?? 0) + Number(r.n);
    d.usage['not-recognised'] += Number(r.n);
  }
  for (const r of await sql.query<{ institution: string; day: string; items: number; priced: number; fen: string | number }>(
    `SELECT r.institution, ${dayOf('r.at')} AS day, coalesce(sum(d.items), 0)::int AS items, coalesce(sum(d.priced), 0)::int AS priced,
            coalesce(sum(round(d.saving * 100)), 0)::bigint AS fen
       FROM monitoring_record r JOIN monitoring_decision d ON d.record_id = r.id
      WHERE d.decision = 'recognised' AND r.at >= $1 AND r.at < $2 AND ($3::text IS NULL OR r.institution = $3)
      GROUP BY 1, 2`,
    params
  )) {
    row(r.institution, r.day).saving = { items: Number(r.items), priced: Number(r.priced), fen: Number(r.fen) };
  }
  return [...rows.values()].sort((a, b) => (a.day === b.day ? a.institution.localeCompare(b.institution) : a.day.localeCompare(b.day)));
}

/** The rows per institution, per district and for the city. */
export async function scopeRows(sql: Sql, facts: MonitoringFacts, config: MonitoringConfig, from: string, to: string): Promise<ScopeRow[]> {
  const rows = await dayRows(sql, from, to);
  const districts = await facts.districtsOf(sql, rows.map((r) => r.institution));
  const groups = new Map<string, { scope: ScopeRow['scope']; key: string; day: string; rows: DayRow[] }>();
  const add = (scope: ScopeRow['scope'], key: string, r: DayRow) => {
    const k = `${scope}|${key}|${r.day}`;
    const g = groups.get(k) ?? { scope, key, day: r.day, rows: [] };
    g.rows.push(r);
    groups.set(k, g);
  };
  for (const r of rows) {
    add('institution', r.institution, r);
    const district = districts.get(r.institution) ?? 'unknown';
    add('district', district, r);
    add('city', CITY, r);
  }
  return [...groups.values()].map((g) => {
    const usage = zero();
    const reasons: Record<string, number> = {};
    const saving: Saving = { items: 0, priced: 0, fen: 0 };
    for (const r of g.rows) {
      for (const [c] of USAGE) usage[c] += r.usage[c];
      saving.items += r.saving.items;
      saving.priced += r.saving.priced;
      saving.fen += r.saving.fen;
      for (const [reason, n] of Object.entries(r.notRecognisedByReason)) reasons[reason] = (reasons[reason] ?? 0) + n;
    }
    return { scope: g.scope, key: g.key, day: g.day, usage, notRecognisedByReason: reasons, timeliness: summariseTimeliness(g.rows.flatMap((r) => r.delays), config.lateMinutes), saving };
  });
}

type UsageFigures = Omit<ScopeRow, 'scope' | 'key' | 'day'>;

/**
 * The rows of one scope (and key) per day in [from, to]: the days that ended are counted once and kept
 * (server/db/day-figures.ts: a late fact of a past day, a changed district or late threshold counts it again),
 * today is counted live — so the big screen reads a few rows per day, however many facts are stored.
 */
export async function usageRows(sql: Sql, facts: MonitoringFacts, config: MonitoringConfig, from: string, to: string, scope: ScopeRow['scope'], key?: string): Promise<ScopeRow[]> {
  const figures = await dayFigures<UsageFigures>(sql, {
    kind: 'usage',
    from,
    to,
    scope,
    key,
    basis: `late=${config.lateMinutes}`,
    dependsOn: ['organizations'],
    count: async (f, t) => (await scopeRows(sql, facts, config, f, t)).map(({ scope, key, day, ...figures }) => ({ scope, key, day, figures })),
  });
  return figures.map((f) => ({ scope: f.scope as ScopeRow['scope'], key: f.key, day: f.day, ...f.figures }));
}

const pop = (code: string, count: number) => ({ code: { coding: [{ system: POP, code }] }, count });
const groupCode = (code: string, display: string) => ({ coding: [{ system: INDICATOR_SYSTEM, code, display }] });

export function reportId(measure: MeasureKey, scope: string, key: string, day: string): string {
  return `mon-${measure}-${day.replaceAll('-', '')}-${createHash('sha256').update(`${scope}|${key}`).digest('hex').slice(0, 24)}`;
}

function frame(measure: MeasureKey, row: ScopeRow): MeasureReport {
  const extension: Extension[] = row.scope === 'institution' ? [] : [{ url: EXT_AREA, valueCoding: { system: DIVISION, code: row.key } }];
  return {
    resourceType: 'MeasureReport',
    id: reportId(measure, row.scope, row.key, row.day),
    ...(extension.length ? { extension } : {}),
    identifier: [{ system: REPORT_IDENTIFIER_SYSTEM, value: `${measure}|${row.scope}|${row.key}|${row.day}` }],
    status: 'complete',
    type: row.scope === 'institution' ? 'individual' : 'summary',
    measure: MEASURE_URL[measure],
    ...(row.scope === 'institution' ? { reporter: { reference: row.key } } : {}),
    period: { start: `${row.day}T00:00:00+08:00`, end: `${row.day}T23:59:59+08:00` },
  };
}

export function timelinessReport(row: ScopeRow): MeasureReport {
  const t = row.timeliness;
  const group: MeasureReportGroup[] = [
    {
      code: groupCode('on-time', '及时上传率'),
      population: [pop('initial-population', t.reports), pop('denominator', t.reports), pop('numerator', t.onTime)],
      ...(t.onTimeRate !== null ? { measureScore: { value: Math.round(t.onTimeRate * 100) / 10000, unit: '1' } } : {}),
    },
    { code: groupCode('late', '超时上传'), population: [pop('initial-population', t.late)] },
    { code: groupCode('median-delay', '上传延迟中位数'), ...(t.medianMinutes !== null ? { measureScore: { value: t.medianMinutes, unit: 'min', system: 'http://unitsofmeasure.org', code: 'min' } } : {}) },
    { code: groupCode('p95-delay', '上传延迟P95'), ...(t.p95Minutes !== null ? { measureScore: { value: t.p95Minutes, unit: 'min', system: 'http://unitsofmeasure.org', code: 'min' } } : {}) },
  ];
  return { ...frame('timeliness', row), group };
}

export function usageReport(row: ScopeRow): MeasureReport {
  const group: MeasureReportGroup[] = USAGE.map(([code, display]) => ({
    code: groupCode(code, display),
    population: [pop('initial-population', row.usage[code])],
    ...(code === 'not-recognised' && Object.keys(row.notRecognisedByReason).length > 0
      ? {
          stratifier: [
            {
              code: [{ coding: [{ system: INDICATOR_SYSTEM, code: 'reason', display: '不予互认原因' }] }],
              stratum: Object.entries(row.notRecognisedByReason)
                .sort(([a], [b]) => a.localeCompare(b))
                .map(([reason, n]) => ({ value: { coding: [{ system: `${CANONICAL_BASE}/CodeSystem/not-recognised-reason`, code: reason }] }, population: [pop('initial-population', n)] })),
            },
          ],
        }
      : {}),
  }));
  return { ...frame('usage', row), group };
}

export function savingReport(row: ScopeRow): MeasureReport {
  const group: MeasureReportGroup[] = [
    { code: groupCode('saving', '节约费用估算（元）'), measureScore: { value: row.saving.fen / 100, unit: '元', system: 'urn:iso:std:iso:4217', code: 'CNY' } },
    { code: groupCode('recognised-items', '已互认项目'), population: [pop('initial-population', row.saving.items)] },
    { code: groupCode('priced-items', '有价格的已互认项目'), population: [pop('initial-population', row.saving.priced)] },
  ];
  return { ...frame('saving', row), group };
}

/** Creates or updates the MeasureReports of [from, to]; returns them and how many changed. */
export async function generateReports(repo: Repository, facts: MonitoringFacts, config: MonitoringConfig, from: string, to: string): Promise<{ reports: MeasureReport[]; written: number }> {
  const rows = await scopeRows(repo.connection, facts, config, from, to);
  const reports: MeasureReport[] = [];
  let written = 0;
  for (const row of rows) {
    for (const report of [timelinessReport(row), usageReport(row), savingReport(row)]) {
      const result = await repo.update(report);
      if (!result.unchanged) written++;
      reports.push(result.resource as MeasureReport);
    }
  }
  return { reports, written };
}
