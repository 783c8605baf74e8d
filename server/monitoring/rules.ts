/**
 * The data-quality monitors' rules (docs/monitoring.md), pure: no I/O, no clock — every function gets `now`.
 *
 * - grading: a duration (minutes) into a level 0–4 against ascending thresholds;
 * - baseline: the (weekday, hour) slots, in Asia/Shanghai, in which an institution usually sends, learned from
 *   its last weeks of uploads; an institution with too little history uses the default (every slot);
 * - interruption (断传): the silence since the last report, counted only in the institution's usual slots;
 * - recognition disabled (互认功能停用): activity (uploads, orders) since the last successful recognition call,
 *   graded by the time since that call (or since the first activity when there never was one);
 * - timeliness (及时性): received − issued per report, late above a threshold; per group the counts, the
 *   on-time rate, the median and the 95th percentile (nearest rank), and a level from the on-time rate.
 */

export type Level = 0 | 1 | 2 | 3 | 4;

export const LEVEL_DISPLAY: Record<Level, string> = { 0: '正常', 1: '一级', 2: '二级', 3: '三级', 4: '四级' };

const MINUTE = 60_000;
const HOUR = 3_600_000;
const WEEK = 7 * 24 * HOUR;
/** Asia/Shanghai: UTC+08:00 all year. */
const OFFSET = 8 * HOUR;

/** Thresholds in minutes for levels 1, 2, 3, 4 (ascending). */
export type Thresholds = readonly [number, number, number, number];

export const DEFAULT_INTERRUPTION_THRESHOLDS: Thresholds = [30, 120, 480, 1440];
/** Recognition disabled: 1 day, 3 days, 7 days, 14 days without a successful call while active. */
export const DEFAULT_DISABLED_THRESHOLDS: Thresholds = [1440, 4320, 10080, 20160];
/** Timeliness level from the on-time rate (%): level 1 below 95, 2 below 80, 3 below 50, 4 below 20. */
export const DEFAULT_TIMELINESS_RATES: Thresholds = [95, 80, 50, 20];

export function checkThresholds(t: readonly number[], what: string, descending = false): Thresholds {
  if (t.length !== 4 || t.some((v) => !Number.isFinite(v) || v < 0)) throw new Error(`${what}: four non-negative numbers are needed`);
  for (let i = 1; i < 4; i++) {
    if (descending ? t[i] >= t[i - 1] : t[i] <= t[i - 1]) throw new Error(`${what}: the thresholds must be strictly ${descending ? 'descending' : 'ascending'}`);
  }
  return t as unknown as Thresholds;
}

/** The level of a duration: the highest level whose threshold it reaches. */
export function grade(minutes: number, thresholds: Thresholds): Level {
  let level: Level = 0;
  for (let i = 0; i < 4; i++) if (minutes >= thresholds[i]) level = (i + 1) as Level;
  return level;
}

// ---------------------------------------------------------------------------------------------------
// baseline

/** 168 slots: index = weekday (0 = Monday) × 24 + hour, in Asia/Shanghai. */
export interface Baseline {
  slots: boolean[];
  /** `learned` from history, or the `default` (every slot) for an institution without enough history. */
  source: 'learned' | 'default';
}

export interface BaselineOptions {
  /** How many weeks back are learned from (default 4). */
  weeks: number;
  /** A slot is usual when uploads came in it in at least this share of the weeks (default 0.5). */
  minShare: number;
  /** Less history than this many days → the default baseline (default 7). */
  minHistoryDays: number;
}

export const DEFAULT_BASELINE: BaselineOptions = { weeks: 4, minShare: 0.5, minHistoryDays: 7 };

export function slotOf(t: number): number {
  const local = new Date(t + OFFSET);
  const weekday = (local.getUTCDay() + 6) % 7;
  return weekday * 24 + local.getUTCHours();
}

export const ALWAYS: Baseline = { slots: new Array(168).fill(true), source: 'default' };

/**
 * Learns the usual slots from the upload times (ms) before `now`: over the last `weeks` weeks (or fewer when
 * the history is shorter), a slot is usual when it saw uploads in at least `minShare` of those weeks.
 */
export function learnBaseline(uploads: readonly number[], now: number, options: BaselineOptions = DEFAULT_BASELINE): Baseline {
  const from = now - options.weeks * WEEK;
  const seen = new Map<number, Set<number>>();
  for (const t of uploads) {
    if (t < from || t >= now) continue;
    const slot = slotOf(t);
    if (!seen.has(slot)) seen.set(slot, new Set());
    seen.get(slot)!.add(Math.floor((now - t) / WEEK));
  }
  const first = Math.min(...uploads.filter((t) => t < now));
  return baselineFromSlots(new Map([...seen].map(([slot, weeks]) => [slot, weeks.size])), Number.isFinite(first) ? first : undefined, now, options);
}

/**
 * The same from counts already made (in SQL): for each slot, in how many of the last `weeks` weeks (week n =
 * the n-th 7 days before `now`) uploads came in it; `first` is the first upload ever.
 */
export function baselineFromSlots(weeksPerSlot: ReadonlyMap<number, number>, first: number | undefined, now: number, options: BaselineOptions = DEFAULT_BASELINE): Baseline {
  if (first === undefined || weeksPerSlot.size === 0 || now - first < options.minHistoryDays * 24 * HOUR) return ALWAYS;
  const span = Math.min(options.weeks, Math.max(1, Math.floor((now - Math.max(first, now - options.weeks * WEEK)) / WEEK)));
  const slots = new Array(168).fill(false);
  for (const [slot, weeks] of weeksPerSlot) if (weeks / span >= options.minShare) slots[slot] = true;
  if (!slots.some(Boolean)) return ALWAYS;
  return { slots, source: 'learned' };
}

/** Minutes between `from` and `to` that fall in usual slots of the baseline (examined at most 60 days back). */
export function expectedMinutes(from: number, to: number, baseline: Baseline): number {
  if (to <= from) return 0;
  const start = Math.max(from, to - 60 * 24 * HOUR);
  let total = 0;
  let t = start;
  while (t < to) {
    const hourEnd = Math.floor((t + OFFSET) / HOUR) * HOUR + HOUR - OFFSET;
    const end = Math.min(hourEnd, to);
    if (baseline.slots[slotOf(t)]) total += end - t;
    t = end;
  }
  return total / MINUTE;
}

// ---------------------------------------------------------------------------------------------------
// the monitors

export interface Judgement {
  level: Level;
  /** The minutes graded. */
  minutes: number;
  /** Why, as a code: `silent`, `no-calls`, `all-failed`, `late`, or `ok`. */
  reason: string;
  /** Since when the condition holds (ISO), when it does. */
  since?: string;
}

/** Interruption: the silence since the last report, in expected (baseline) minutes. Never sent → level 0. */
export function judgeInterruption(lastReceived: number | undefined, now: number, baseline: Baseline, thresholds: Thresholds = DEFAULT_INTERRUPTION_THRESHOLDS): Judgement {
  if (lastReceived === undefined) return { level: 0, minutes: 0, reason: 'no-history' };
  // the rest of the last report's hour is expected only when the institution usually sends in the next hour
  // too (a clinic whose last report came at 17:10 and which never sends after 18:00 is not silent at 17:50)
  const hourEnd = Math.floor((lastReceived + OFFSET) / HOUR) * HOUR + HOUR - OFFSET;
  const from = baseline.slots[slotOf(hourEnd)] ? lastReceived : hourEnd;
  const minutes = Math.floor(expectedMinutes(from, now, baseline));
  const level = grade(minutes, thresholds);
  return level > 0 ? { level, minutes, reason: 'silent', since: new Date(lastReceived).toISOString() } : { level, minutes, reason: 'ok' };
}

export interface RecognitionActivity {
  /** The last successful (2xx) recognition call, ms. */
  lastOk?: number;
  /** The first upload or order after lastOk (or ever, when there is no lastOk), ms. */
  firstActivityAfter?: number;
  /** The last upload or order, ms. */
  lastActivity?: number;
  /** Calls after lastOk that failed (4xx). */
  failedAfter: number;
}

/**
 * Recognition disabled: the institution uploads or orders but makes no successful recognition call. Graded by
 * the minutes since the last successful call (or since the first activity after it, when there never was one);
 * only while there is activity after that call. `all-failed` when calls were made but all failed.
 */
export function judgeDisabled(a: RecognitionActivity, now: number, thresholds: Thresholds = DEFAULT_DISABLED_THRESHOLDS): Judgement {
  if (a.lastActivity === undefined || (a.lastOk !== undefined && a.lastActivity <= a.lastOk) || a.firstActivityAfter === undefined) {
    return { level: 0, minutes: 0, reason: 'ok' };
  }
  const since = a.lastOk ?? a.firstActivityAfter;
  const minutes = Math.floor(Math.max(0, now - since) / MINUTE);
  const level = grade(minutes, thresholds);
  if (level === 0) return { level, minutes, reason: 'ok' };
  return { level, minutes, reason: a.failedAfter > 0 ? 'all-failed' : 'no-calls', since: new Date(since).toISOString() };
}

/** Delay of one report in minutes (negative when issued after it was received: clocks differ). */
export function delayMinutes(received: number, issued: number): number {
  return (received - issued) / MINUTE;
}

export interface TimelinessSummary {
  reports: number;
  late: number;
  onTime: number;
  /** Percent, 0–100, two decimals; null without reports. */
  onTimeRate: number | null;
  /** Minutes, one decimal; null without reports. */
  medianMinutes: number | null;
  p95Minutes: number | null;
}

/** Nearest-rank percentile of sorted values (p in 0–100). */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

/** Median: the mean of the two middle values for an even count. */
export function median(sorted: readonly number[]): number | null {
  const n = sorted.length;
  if (n === 0) return null;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

const round = (v: number | null, digits: number) => (v === null ? null : Math.round(v * 10 ** digits) / 10 ** digits);

/** Counts and delay statistics of a group of delays (minutes); a report is late when its delay exceeds `lateMinutes`. */
export function summariseTimeliness(delays: readonly number[], lateMinutes = 30): TimelinessSummary {
  const sorted = [...delays].sort((a, b) => a - b);
  const late = sorted.filter((d) => d > lateMinutes).length;
  const reports = sorted.length;
  return {
    reports,
    late,
    onTime: reports - late,
    onTimeRate: reports ? round(((reports - late) / reports) * 100, 2) : null,
    medianMinutes: round(median(sorted), 1),
    p95Minutes: round(percentile(sorted, 95), 1),
  };
}

/** Timeliness level: by the on-time rate of the recent reports (none → level 0). */
export function judgeTimeliness(summary: TimelinessSummary, rates: Thresholds = DEFAULT_TIMELINESS_RATES): Judgement {
  if (summary.onTimeRate === null) return { level: 0, minutes: 0, reason: 'ok' };
  let level: Level = 0;
  for (let i = 0; i < 4; i++) if (summary.onTimeRate < rates[i]) level = (i + 1) as Level;
  return { level, minutes: summary.medianMinutes ?? 0, reason: level > 0 ? 'late' : 'ok' };
}
