/**
 * The figures of a briefing (数据分析简报, docs/monitoring.md "Briefing"), read from the stored MeasureReports of
 * the period and of the one before it — the monitoring indicators (usage, timeliness, saving) and the chain
 * statistics — plus the alerts (Flags) of the period's institutions and their improvement requests (Tasks).
 *
 * A period is a week (ISO week, Monday–Sunday, `2024-W23`) or a month (`2024-06`), in Asia/Shanghai days. An area
 * is the city (440100) or one of its districts (GB/T 2260 code).
 */
import type { Flag, MeasureReport, MeasureReportGroup, Organization, Task } from '@medplum/fhirtypes';
import type { Sql } from '../db/database.ts';
import { STATISTICS_MEASURE_URL } from '../provenance/statistics.ts';
import { TASK_CODE_SYSTEM } from './api.ts';
import { ALERT_IDENTIFIER_SYSTEM } from './evaluate.ts';
import type { MonitoringFacts } from './facts.ts';
import { CITY, EXT_AREA, SAVING_MEASURE, TIMELINESS_MEASURE, USAGE_MEASURE } from './measures.ts';

export type BriefingKind = 'week' | 'month';

export interface BriefingPeriod {
  kind: BriefingKind;
  /** `2024-06` or `2024-W23`. */
  key: string;
  /** First and last day (inclusive), YYYY-MM-DD. */
  from: string;
  to: string;
  /** 2024年6月 / 2024年第23周（6月3日—6月9日）. */
  label: string;
}

export interface BriefingArea {
  scope: 'city' | 'district';
  code: string;
  name: string;
}

/** Guangzhou's districts (GB/T 2260). */
export const DISTRICT_NAMES: Record<string, string> = {
  '440100': '广州市',
  '440103': '荔湾区',
  '440104': '越秀区',
  '440105': '海珠区',
  '440106': '天河区',
  '440111': '白云区',
  '440112': '黄埔区',
  '440113': '番禺区',
  '440114': '花都区',
  '440115': '南沙区',
  '440117': '从化区',
  '440118': '增城区',
};

export class BriefingInputError extends Error {
  constructor(
    message: string,
    readonly param: string
  ) {
    super(message);
  }
}

const DAYMS = 86_400_000;
const utcDay = (t: number) => new Date(t).toISOString().slice(0, 10);
export const addDays = (day: string, n: number) => utcDay(Date.parse(`${day}T00:00:00Z`) + n * DAYMS);
const md = (day: string) => `${Number(day.slice(5, 7))}月${Number(day.slice(8, 10))}日`;

/** The period of a key: `YYYY-MM` for a month, `YYYY-Www` for an ISO week. */
export function parsePeriod(kind: BriefingKind, key: string): BriefingPeriod {
  if (kind === 'month') {
    const m = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(key);
    if (!m) throw new BriefingInputError(`period must be a month YYYY-MM for a monthly briefing, not '${key.slice(0, 20)}'`, 'period');
    const from = `${key}-01`;
    const next = Number(m[2]) === 12 ? `${Number(m[1]) + 1}-01-01` : `${m[1]}-${String(Number(m[2]) + 1).padStart(2, '0')}-01`;
    return { kind, key, from, to: addDays(next, -1), label: `${m[1]}年${Number(m[2])}月` };
  }
  const w = /^(\d{4})-W(0[1-9]|[1-4]\d|5[0-3])$/.exec(key);
  if (!w) throw new BriefingInputError(`period must be an ISO week YYYY-Www for a weekly briefing, not '${key.slice(0, 20)}'`, 'period');
  // ISO week 1 holds 4 January; weeks start on Monday
  const jan4 = Date.parse(`${w[1]}-01-04T00:00:00Z`);
  const monday1 = jan4 - ((new Date(jan4).getUTCDay() + 6) % 7) * DAYMS;
  const from = utcDay(monday1 + (Number(w[2]) - 1) * 7 * DAYMS);
  if (isoWeek(from) !== key) throw new BriefingInputError(`${w[1]} has no week ${w[2]}`, 'period');
  const to = addDays(from, 6);
  return { kind, key, from, to, label: `${w[1]}年第${Number(w[2])}周（${md(from)}—${md(to)}）` };
}

/** The ISO week (`YYYY-Www`) a day is in. */
export function isoWeek(day: string): string {
  const t = Date.parse(`${day}T00:00:00Z`);
  const thursday = t + (3 - ((new Date(t).getUTCDay() + 6) % 7)) * DAYMS;
  const year = new Date(thursday).getUTCFullYear();
  const week = Math.floor((thursday - Date.parse(`${year}-01-01T00:00:00Z`)) / (7 * DAYMS)) + 1;
  return `${year}-W${String(week).padStart(2, '0')}`;
}

/** The period containing a day. */
export function periodOf(kind: BriefingKind, day: string): BriefingPeriod {
  return parsePeriod(kind, kind === 'month' ? day.slice(0, 7) : isoWeek(day));
}

export function previousPeriod(p: BriefingPeriod): BriefingPeriod {
  return periodOf(p.kind, addDays(p.from, -1));
}

/** The last period that ended before `today` (YYYY-MM-DD, Asia/Shanghai). */
export function lastCompletePeriod(kind: BriefingKind, today: string): BriefingPeriod {
  return previousPeriod(periodOf(kind, today));
}

export function parseArea(code: string | undefined): BriefingArea {
  const c = code ?? CITY;
  if (!/^\d{6}$/.test(c)) throw new BriefingInputError(`area must be a GB/T 2260 code (440100 for the city, or a district), not '${c.slice(0, 20)}'`, 'area');
  if (c === CITY) return { scope: 'city', code: c, name: DISTRICT_NAMES[c] };
  if (!c.startsWith('4401')) throw new BriefingInputError(`area ${c} is not the city (440100) or one of its districts`, 'area');
  return { scope: 'district', code: c, name: DISTRICT_NAMES[c] ?? `行政区划 ${c}` };
}

export interface Figures {
  labReports: number;
  examReports: number;
  reports: number;
  checks: number;
  reminders: number;
  recognised: number;
  notRecognised: number;
  undecided: number;
  duplicatesAvoided: number;
  /** recognised / (recognised + not recognised); null without decisions. */
  recognitionRate: number | null;
  /** Reports with an issued time, and of them on time. */
  timedReports: number;
  onTime: number;
  onTimeRate: number | null;
  /** 元. */
  saving: number;
  recognisedItems: number;
  pricedItems: number;
  chainReceived: number;
  chainAnchored: number;
  chainConsistent: number;
  chainInconsistent: number;
  /** anchored / received. */
  chainCoverage: number | null;
  /** consistent / (consistent + inconsistent). */
  hashConsistency: number | null;
}

export interface DayFigures {
  day: string;
  reports: number;
  checks: number;
  recognised: number;
  notRecognised: number;
  saving: number;
}

export interface PartFigures {
  /** A district code (city briefing) or `Organization/<id>` (district briefing). */
  key: string;
  name: string;
  reports: number;
  recognised: number;
  notRecognised: number;
  saving: number;
}

export interface AlertFollowUp {
  institution: string;
  name: string;
  monitor: string;
  flow: string;
  /** The highest level the alert reached in the period. */
  level: number;
  /** active now, or cleared (inactive). */
  status: string;
  since?: string;
  requests: { task: string; status: string; authoredOn?: string; lastModified?: string }[];
}

export interface BriefingData {
  period: BriefingPeriod;
  previous: BriefingPeriod;
  area: BriefingArea;
  figures: Figures;
  previousFigures: Figures;
  daily: DayFigures[];
  parts: PartFigures[];
  alerts: AlertFollowUp[];
  /** The MeasureReports the figures were summed from. */
  sources: number;
}

const count = (r: MeasureReport, code: string) => r.group?.find((g) => g.code?.coding?.[0]?.code === code)?.population?.[0]?.count ?? 0;
const score = (r: MeasureReport, code: string) => r.group?.find((g: MeasureReportGroup) => g.code?.coding?.[0]?.code === code)?.measureScore?.value ?? 0;
const ratio = (a: number, b: number) => (b > 0 ? a / b : null);
const parse = <T>(c: T | string): T => (typeof c === 'string' ? (JSON.parse(c) as T) : c);

/** The monitoring and chain MeasureReports whose day is in [from, to]. */
async function reportsOf(sql: Sql, from: string, to: string): Promise<MeasureReport[]> {
  const rows = await sql.query<{ content: MeasureReport | string }>(
    `SELECT content FROM resource WHERE type = 'MeasureReport' AND NOT deleted AND content->>'measure' = ANY($1::text[])
        AND content->'period'->>'start' >= $2 AND content->'period'->>'start' < $3`,
    [[USAGE_MEASURE, TIMELINESS_MEASURE, SAVING_MEASURE, STATISTICS_MEASURE_URL], `${from}T00:00:00`, `${addDays(to, 1)}T00:00:00`]
  );
  return rows.map((r) => parse(r.content));
}

interface Sorted {
  /** Monitoring reports: `measure|scope|key|day` → report. */
  byIdentity: Map<string, MeasureReport>;
  /** Chain statistics per institution and day. */
  chain: MeasureReport[];
}

function sortReports(reports: MeasureReport[]): Sorted {
  const byIdentity = new Map<string, MeasureReport>();
  const chain: MeasureReport[] = [];
  for (const r of reports) {
    if (r.measure === STATISTICS_MEASURE_URL) chain.push(r);
    else {
      const id = r.identifier?.[0]?.value;
      if (id) byIdentity.set(id, r);
    }
  }
  return { byIdentity, chain };
}

const days = (p: BriefingPeriod) => {
  const out: string[] = [];
  for (let d = p.from; d <= p.to; d = addDays(d, 1)) out.push(d);
  return out;
};

function dayFigures(s: Sorted, scope: string, key: string, day: string) {
  const u = s.byIdentity.get(`usage|${scope}|${key}|${day}`);
  const t = s.byIdentity.get(`timeliness|${scope}|${key}|${day}`);
  const v = s.byIdentity.get(`saving|${scope}|${key}|${day}`);
  return { u, t, v, n: [u, t, v].filter(Boolean).length };
}

function figuresOf(s: Sorted, area: BriefingArea, period: BriefingPeriod, inArea: (institution: string) => boolean): { figures: Figures; daily: DayFigures[]; sources: number } {
  const f: Figures = {
    labReports: 0, examReports: 0, reports: 0, checks: 0, reminders: 0, recognised: 0, notRecognised: 0, undecided: 0, duplicatesAvoided: 0,
    recognitionRate: null, timedReports: 0, onTime: 0, onTimeRate: null, saving: 0, recognisedItems: 0, pricedItems: 0,
    chainReceived: 0, chainAnchored: 0, chainConsistent: 0, chainInconsistent: 0, chainCoverage: null, hashConsistency: null,
  };
  let fen = 0;
  let sources = 0;
  const daily: DayFigures[] = [];
  for (const day of days(period)) {
    const { u, t, v, n } = dayFigures(s, area.scope, area.code, day);
    sources += n;
    const d: DayFigures = { day, reports: 0, checks: 0, recognised: 0, notRecognised: 0, saving: 0 };
    if (u) {
      f.labReports += count(u, 'lab-reports');
      f.examReports += count(u, 'exam-reports');
      f.checks += count(u, 'checks');
      f.reminders += count(u, 'reminders');
      f.recognised += count(u, 'recognised');
      f.notRecognised += count(u, 'not-recognised');
      f.undecided += count(u, 'undecided-reminders');
      f.duplicatesAvoided += count(u, 'duplicates-avoided');
      d.reports = count(u, 'lab-reports') + count(u, 'exam-reports');
      d.checks = count(u, 'checks');
      d.recognised = count(u, 'recognised');
      d.notRecognised = count(u, 'not-recognised');
    }
    if (t) {
      const onTime = t.group?.find((g) => g.code?.coding?.[0]?.code === 'on-time')?.population ?? [];
      f.timedReports += onTime.find((p) => p.code?.coding?.[0]?.code === 'denominator')?.count ?? 0;
      f.onTime += onTime.find((p) => p.code?.coding?.[0]?.code === 'numerator')?.count ?? 0;
    }
    if (v) {
      fen += Math.round(score(v, 'saving') * 100);
      d.saving = score(v, 'saving');
      f.recognisedItems += count(v, 'recognised-items');
      f.pricedItems += count(v, 'priced-items');
    }
    daily.push(d);
  }
  for (const c of s.chain) {
    if (!inArea(c.reporter?.reference ?? '')) continue;
    sources++;
    f.chainReceived += count(c, 'received');
    f.chainAnchored += count(c, 'anchored-institution') + count(c, 'anchored-platform');
    f.chainConsistent += count(c, 'consistent');
    f.chainInconsistent += count(c, 'inconsistent');
  }
  f.reports = f.labReports + f.examReports;
  f.saving = fen / 100;
  f.recognitionRate = ratio(f.recognised, f.recognised + f.notRecognised);
  f.onTimeRate = ratio(f.onTime, f.timedReports);
  f.chainCoverage = ratio(f.chainAnchored, f.chainReceived);
  f.hashConsistency = ratio(f.chainConsistent, f.chainConsistent + f.chainInconsistent);
  return { figures: f, daily, sources };
}

/** Everything a briefing shows, from the stored MeasureReports, Flags and Tasks. */
export async function briefingData(sql: Sql, facts: MonitoringFacts, period: BriefingPeriod, area: BriefingArea): Promise<BriefingData> {
  const previous = previousPeriod(period);
  const current = sortReports(await reportsOf(sql, period.from, period.to));
  const before = sortReports(await reportsOf(sql, previous.from, previous.to));
  const institutions = [
    ...new Set(
      [...current.byIdentity.values(), ...before.byIdentity.values(), ...current.chain, ...before.chain].map((r) => r.reporter?.reference).filter((r): r is string => r?.startsWith('Organization/') === true)
    ),
  ];
  // every version of the monitoring alerts; an episode of an alert is the versions with the same period.start
  // (the monitors' own clock: when the condition started and, once cleared, period.end)
  const flagRows = await sql.query<{ id: string; content: Flag | string }>(
    `SELECT id, content FROM resource_history WHERE type = 'Flag' AND content->'identifier'->0->>'system' = $1 ORDER BY id, version`,
    [ALERT_IDENTIFIER_SYSTEM]
  );
  const flags = flagRows.map((r) => ({ id: r.id, flag: parse(r.content) }));
  const districts = await facts.districtsOf(sql, [...institutions, ...flags.map((f) => f.flag.subject?.reference ?? '')]);
  const inArea = (institution: string) => area.scope === 'city' || districts.get(institution) === area.code;

  const now = figuresOf(current, area, period, inArea);
  const then = figuresOf(before, area, previous, inArea);

  // the parts: districts of the city, institutions of a district
  const partScope = area.scope === 'city' ? 'district' : 'institution';
  const partKeys = new Set<string>();
  for (const id of current.byIdentity.keys()) {
    const [, scope, key] = id.split('|');
    if (scope === partScope && (area.scope === 'city' || inArea(key))) partKeys.add(key);
  }
  const names = await organizationNames(sql, [...partKeys].filter((k) => k.startsWith('Organization/')).concat(flags.map((f) => f.flag.subject?.reference ?? '')));
  const parts: PartFigures[] = [...partKeys]
    .map((key) => {
      const p: PartFigures = { key, name: partScope === 'district' ? (DISTRICT_NAMES[key] ?? key) : (names.get(key) ?? key), reports: 0, recognised: 0, notRecognised: 0, saving: 0 };
      let fen = 0;
      for (const day of days(period)) {
        const { u, v } = dayFigures(current, partScope, key, day);
        if (u) {
          p.reports += count(u, 'lab-reports') + count(u, 'exam-reports');
          p.recognised += count(u, 'recognised');
          p.notRecognised += count(u, 'not-recognised');
        }
        if (v) fen += Math.round(score(v, 'saving') * 100);
      }
      p.saving = fen / 100;
      return p;
    })
    .sort((a, b) => b.reports - a.reports || a.key.localeCompare(b.key));

  // alerts that were raised (level ≥ 1) at some time in the period, with their requests
  const start = Date.parse(`${period.from}T00:00:00+08:00`);
  const end = Date.parse(`${addDays(period.to, 1)}T00:00:00+08:00`);
  const episodes = new Map<string, { id: string; flag: Flag; level: number; from: number; until: number }>();
  for (const { id, flag } of flags) {
    if (!flag.period?.start) continue;
    const key = `${id}|${flag.period.start}`;
    const e = episodes.get(key) ?? { id, flag, level: 0, from: Date.parse(flag.period.start), until: Infinity };
    e.level = Math.max(e.level, flag.status === 'active' ? Number(flag.code?.coding?.[0]?.code ?? 0) : 0);
    if (flag.period.end) e.until = Date.parse(flag.period.end);
    episodes.set(key, e);
  }
  const byFlag = new Map<string, AlertFollowUp>();
  for (const { id, flag, level, from, until } of episodes.values()) {
    const institution = flag.subject?.reference ?? '';
    if (!inArea(institution) || level < 1 || from >= end || until <= start) continue;
    const a = byFlag.get(id) ?? {
      institution,
      name: names.get(institution) ?? institution,
      monitor: flag.category?.[0]?.coding?.[0]?.code ?? '',
      flow: flag.extension?.find((e) => e.url.endsWith('/monitoring-flow'))?.valueCode ?? 'all',
      level: 0,
      status: 'active',
      since: flag.period?.start,
      requests: [],
    };
    a.level = Math.max(a.level, level);
    byFlag.set(id, a);
  }
  if (byFlag.size > 0) {
    const currentFlags = await sql.query<{ id: string; content: Flag | string }>(`SELECT id, content FROM resource WHERE type = 'Flag' AND id = ANY($1::text[])`, [[...byFlag.keys()]]);
    for (const r of currentFlags) byFlag.get(r.id)!.status = parse(r.content).status;
    const tasks = await sql.query<{ content: Task | string }>(
      `SELECT content FROM resource WHERE type = 'Task' AND NOT deleted AND content->'code'->'coding'->0->>'system' = $1 AND content->'focus'->>'reference' = ANY($2::text[]) ORDER BY created, id`,
      [TASK_CODE_SYSTEM, [...byFlag.keys()].map((k) => `Flag/${k}`)]
    );
    for (const r of tasks) {
      const t = parse(r.content);
      byFlag.get((t.focus?.reference ?? '').slice('Flag/'.length))?.requests.push({ task: `Task/${t.id}`, status: t.status, authoredOn: t.authoredOn, lastModified: t.lastModified });
    }
  }
  const alerts = [...byFlag.values()].sort((a, b) => b.level - a.level || a.name.localeCompare(b.name) || a.monitor.localeCompare(b.monitor));
  return { period, previous, area, figures: now.figures, previousFigures: then.figures, daily: now.daily, parts, alerts, sources: now.sources + then.sources };
}

async function organizationNames(sql: Sql, refs: string[]): Promise<Map<string, string>> {
  const ids = [...new Set(refs.filter((r) => r.startsWith('Organization/')).map((r) => r.slice('Organization/'.length)))];
  if (ids.length === 0) return new Map();
  const rows = await sql.query<{ id: string; content: Organization | string }>(`SELECT id, content FROM resource WHERE type = 'Organization' AND id = ANY($1::text[])`, [ids]);
  return new Map(rows.map((r) => [`Organization/${r.id}`, parse(r.content).name ?? r.id]));
}

/** The districts with activity in a period (for the scheduled briefings). */
export async function districtsWithActivity(sql: Sql, period: BriefingPeriod): Promise<string[]> {
  const rows = await sql.query<{ code: string | null }>(
    `SELECT DISTINCT content->'extension'->0->'valueCoding'->>'code' AS code FROM resource
      WHERE type = 'MeasureReport' AND NOT deleted AND content->>'measure' = $1 AND content->>'type' = 'summary'
        AND content->'period'->>'start' >= $2 AND content->'period'->>'start' < $3 AND content->'extension'->0->>'url' = $4`,
    [USAGE_MEASURE, `${period.from}T00:00:00`, `${addDays(period.to, 1)}T00:00:00`, EXT_AREA]
  );
  return rows.map((r) => r.code).filter((c): c is string => !!c && /^4401\d\d$/.test(c) && c !== CITY).sort();
}
