/**
 * Chain statistics per institution and per day (DESIGN.md §1.4, §3 "Measure + MeasureReport";
 * docs/chain-provenance.md): counted from the provenance tables, one row per report version received —
 *
 *   received             report versions received (report_version rows) whose performer is the institution
 *                        (not the versions the platform wrote itself, a code upgrade: revisions.ts)
 *   anchored-institution of which the decisive anchor is the institution's own chain Provenance
 *   anchored-platform    of which the decisive anchor was made by the platform's outbox
 *   consistent | inconsistent | pending | unanchored   their hash-consistency status now
 *
 * A day is a calendar day in Asia/Shanghai (UTC+08:00, no daylight saving): a version received at
 * 2024-06-15T23:30+08:00 counts on 2024-06-15. The same counts are served as MeasureReports (one per
 * institution and day, id derived from both, re-generation updates it) and as JSON for the monitoring app.
 */
import { createHash } from 'node:crypto';
import type { MeasureReport, MeasureReportGroup } from '@medplum/fhirtypes';
import type { Sql } from '../db/database.ts';
import { addDays, dayFigures } from '../db/day-figures.ts';
import type { Repository } from '../fhir/repository.ts';
import { CANONICAL_BASE } from '../terminology/canonical.ts';

export const STATISTICS_MEASURE_URL = `${CANONICAL_BASE}/Measure/chain-statistics`;
/** The codes of the groups of the Measure (one per count). */
export const STATISTIC_SYSTEM = `${CANONICAL_BASE}/CodeSystem/chain-statistic`;
export const STATISTICS_IDENTIFIER_SYSTEM = `${CANONICAL_BASE}/chain-statistics`;
/** Asia/Shanghai: UTC+08:00 all year. */
export const DAY_OFFSET = '+08:00';
/** Longest range one request may ask for (days). */
export const MAX_RANGE_DAYS = 366;

export const STATISTICS = [
  ['received', '收到的报告 (report versions received)'],
  ['anchored-institution', '机构上链 (anchored by the institution)'],
  ['anchored-platform', '平台上链 (anchored by the platform)'],
  ['consistent', '哈希一致 (consistent)'],
  ['inconsistent', '哈希不一致 (inconsistent)'],
  ['pending', '待核验 (pending)'],
  ['unanchored', '未上链 (unanchored)'],
] as const;

export type StatisticCode = (typeof STATISTICS)[number][0];
export type Counts = Record<StatisticCode, number>;

export interface StatisticsRow extends Counts {
  /** `Organization/<id>`. */
  institution: string;
  /** YYYY-MM-DD (Asia/Shanghai). */
  day: string;
}

export interface StatisticsRange {
  /** First day, YYYY-MM-DD (Asia/Shanghai). */
  from: string;
  /** Last day, inclusive. */
  to: string;
  /** `Organization/<id>`: only this institution. */
  institution?: string;
}

export class StatisticsError extends Error {
  constructor(
    message: string,
    readonly param: string
  ) {
    super(message);
    this.name = 'StatisticsError';
  }
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** Today in Asia/Shanghai. */
export function today(now: Date = new Date()): string {
  return new Date(now.getTime() + 8 * 3600_000).toISOString().slice(0, 10);
}

/** `day` plus `n` days (the day arithmetic of server/db/day-figures.ts). */
export { addDays };

/** Checks and completes a range: from/to default to today (Asia/Shanghai); at most MAX_RANGE_DAYS days. */
export function statisticsRange(input: { from?: string; to?: string; institution?: string }, now: Date = new Date()): StatisticsRange {
  const day = (v: string | undefined, name: string): string | undefined => {
    if (v === undefined) return undefined;
    if (!DAY.test(v) || Number.isNaN(Date.parse(`${v}T00:00:00Z`)) || new Date(`${v}T00:00:00Z`).toISOString().slice(0, 10) !== v) {
      throw new StatisticsError(`${name} must be a date YYYY-MM-DD (a day in Asia/Shanghai), not '${v.slice(0, 30)}'`, name);
    }
    return v;
  };
  const to = day(input.to, 'to') ?? today(now);
  const from = day(input.from, 'from') ?? to;
  if (from > to) throw new StatisticsError(`from (${from}) is after to (${to})`, 'from');
  if (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`) >= MAX_RANGE_DAYS * 86_400_000) {
    throw new StatisticsError(`a range covers at most ${MAX_RANGE_DAYS} days`, 'to');
  }
  let institution: string | undefined;
  if (input.institution !== undefined) {
    const m = /^(?:Organization\/)?([A-Za-z0-9\-.]{1,64})$/.exec(input.institution.trim());
    if (!m) throw new StatisticsError(`institution must be Organization/<id>, not '${input.institution.slice(0, 80)}'`, 'institution');
    institution = `Organization/${m[1]}`;
  }
  return { from, to, ...(institution ? { institution } : {}) };
}

const zero = (): Counts => Object.fromEntries(STATISTICS.map(([code]) => [code, 0])) as Counts;

/**
 * The counts per (institution, day) in the range, ordered by day then institution; days without reports are
 * left out. Days that ended are counted once and kept (server/db/day-figures.ts: a changed status or anchor of
 * an old version counts its day again); today is counted live.
 */
export async function chainStatistics(sql: Sql, range: StatisticsRange): Promise<StatisticsRow[]> {
  const kept = await dayFigures<Counts>(sql, {
    kind: 'chain',
    from: range.from,
    to: range.to,
    scope: 'institution',
    key: range.institution,
    basis: 'counts-v1',
    count: async (from, to) => (await countChainStatistics(sql, { from, to })).map(({ institution, day, ...counts }) => ({ day, scope: 'institution', key: institution, figures: counts })),
  });
  return kept.map((f) => ({ institution: f.key, day: f.day, ...f.figures }));
}

/** The counts of the range from the provenance tables. */
async function countChainStatistics(sql: Sql, range: StatisticsRange): Promise<StatisticsRow[]> {
  const rows = await sql.query<Record<string, string | number>>(
    `SELECT performer AS institution,
            to_char((created_at AT TIME ZONE 'UTC') + interval '8 hours', 'YYYY-MM-DD') AS day,
            count(*)::int AS "received",
            count(*) FILTER (WHERE anchor_source = 'institution')::int AS "anchored-institution",
            count(*) FILTER (WHERE anchor_source = 'platform')::int AS "anchored-platform",
            count(*) FILTER (WHERE status = 'consistent')::int AS "consistent",
            count(*) FILTER (WHERE status = 'inconsistent')::int AS "inconsistent",
            count(*) FILTER (WHERE status = 'pending')::int AS "pending",
            count(*) FILTER (WHERE status = 'unanchored')::int AS "unanchored"
       FROM report_version
      WHERE performer IS NOT NULL AND derived_from IS NULL AND created_at >= $1::timestamptz AND created_at < $2::timestamptz
        AND ($3::text IS NULL OR performer = $3)
      GROUP BY 1, 2
      ORDER BY 2, 1`,
    [`${range.from}T00:00:00${DAY_OFFSET}`, `${addDays(range.to, 1)}T00:00:00${DAY_OFFSET}`, range.institution ?? null]
  );
  return rows.map((r) => {
    const counts = zero();
    for (const [code] of STATISTICS) counts[code] = Number(r[code] ?? 0);
    return { institution: String(r.institution), day: String(r.day), ...counts };
  });
}

/** Sums of the rows' counts. */
export function totals(rows: StatisticsRow[]): Counts {
  const out = zero();
  for (const r of rows) for (const [code] of STATISTICS) out[code] += r[code];
  return out;
}

/** The MeasureReport id of (institution, day): stable, so re-generation updates the same resource. */
export function measureReportId(institution: string, day: string): string {
  return `chain-${day.replaceAll('-', '')}-${createHash('sha256').update(institution).digest('hex').slice(0, 24)}`;
}

/** The MeasureReport of one row (no generation time in the content: an unchanged count makes no new version). */
export function measureReport(row: StatisticsRow): MeasureReport {
  const group: MeasureReportGroup[] = STATISTICS.map(([code, display]) => ({
    code: { coding: [{ system: STATISTIC_SYSTEM, code, display }] },
    population: [
      {
        code: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/measure-population', code: 'initial-population' }] },
        count: row[code],
      },
    ],
  }));
  return {
    resourceType: 'MeasureReport',
    id: measureReportId(row.institution, row.day),
    identifier: [{ system: STATISTICS_IDENTIFIER_SYSTEM, value: `${row.institution}|${row.day}` }],
    status: 'complete',
    type: 'summary',
    measure: STATISTICS_MEASURE_URL,
    reporter: { reference: row.institution },
    period: { start: `${row.day}T00:00:00${DAY_OFFSET}`, end: `${row.day}T23:59:59${DAY_OFFSET}` },
    group,
  };
}

export interface GenerateResult {
  reports: MeasureReport[];
  /** How many were created or changed (the others were already up to date). */
  written: number;
}

/** Generates (creates or updates) the MeasureReports of the range: one per institution and day with reports. */
export async function generateChainStatistics(repo: Repository, range: StatisticsRange): Promise<GenerateResult> {
  const rows = await chainStatistics(repo.connection, range);
  const reports: MeasureReport[] = [];
  let written = 0;
  for (const row of rows) {
    const result = await repo.update(measureReport(row));
    if (!result.unchanged) written++;
    reports.push(result.resource as MeasureReport);
  }
  return { reports, written };
}
