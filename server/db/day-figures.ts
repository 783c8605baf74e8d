/**
 * Figures per closed day, counted once (migration 044): a day that ended more than an hour ago (Asia/Shanghai)
 * is counted from the facts at its first read and kept in day_figures; later reads take the kept rows of the
 * scope asked for. Today (and the hour after midnight) is always counted live.
 *
 * A kept day is used only while it is current: its generation (day_figures_gen, bumped by the triggers of
 * migration 044 whenever a fact of a past day is written, changed or removed) and its basis (the settings the
 * caller says the figures depend on, and the generations of `dependsOn`) are what they were when it was
 * counted. The generations are read before the facts are counted, so a fact that committed after the count
 * always leaves a newer generation behind it: a stale day is counted again, never served.
 *
 * Domain-free: the monitoring usage figures and the chain statistics use it with their own counting functions.
 */
import type { Sql } from './database.ts';

export interface DayFigure<T> {
  /** YYYY-MM-DD (Asia/Shanghai). */
  day: string;
  scope: string;
  key: string;
  figures: T;
}

export interface DayFiguresQuery<T> {
  /** What is counted: 'usage', 'chain' — a kind the triggers of migration 044 keep generations for. */
  kind: string;
  /** First and last day (inclusive), YYYY-MM-DD. */
  from: string;
  to: string;
  /** Only this scope; with `key`, only this key. */
  scope: string;
  key?: string;
  /** The settings the figures depend on (a change counts every day again). */
  basis: string;
  /** Kinds with one generation (day 2000-01-01) the figures also depend on, e.g. 'organizations'. */
  dependsOn?: readonly string[];
  /** Counts every scope of every day in [from, to] from the facts. */
  count: (from: string, to: string) => Promise<DayFigure<T>[]>;
  now?: Date;
}

/** A day kept is counted again only after this long past its end: a transaction open across midnight still lands in it. */
export const SETTLE_MS = 3_600_000;
const SHANGHAI_MS = 8 * 3_600_000;
const GLOBAL_DAY = '2000-01-01';

const shanghaiDay = (ms: number) => new Date(ms + SHANGHAI_MS).toISOString().slice(0, 10);
/** `day` plus `n` days (YYYY-MM-DD). */
export const addDays = (day: string, n: number): string => new Date(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
const dayText = (v: unknown) => (v instanceof Date ? v.toISOString().slice(0, 10) : String(v).slice(0, 10));

/** The last day that may be kept at `now`: it ended at least SETTLE_MS ago. */
export function lastSettledDay(now: Date): string {
  return addDays(shanghaiDay(now.getTime() - SETTLE_MS), -1);
}

/** The figures of `scope` (and `key`) per day in [from, to], ordered by day then key. */
export async function dayFigures<T>(sql: Sql, q: DayFiguresQuery<T>): Promise<DayFigure<T>[]> {
  const settled = lastSettledDay(q.now ?? new Date());
  const keepTo = q.to < settled ? q.to : settled;
  const out: DayFigure<T>[] = [];
  const wanted = (f: DayFigure<T>) => f.scope === q.scope && (q.key === undefined || f.key === q.key);
  if (q.from <= keepTo) {
    // generations first, then the facts (see the header)
    const gens = await sql.query<{ kind: string; day: unknown; gen: string | number }>(
      `SELECT kind, day, gen FROM day_figures_gen WHERE (kind = $1 AND day BETWEEN $2::date AND $3::date) OR (kind = ANY($4::text[]) AND day = $5::date)`,
      [q.kind, q.from, keepTo, [...(q.dependsOn ?? [])], GLOBAL_DAY]
    );
    const genOf = new Map<string, number>();
    const global: string[] = [];
    for (const g of gens) {
      if (g.kind === q.kind) genOf.set(dayText(g.day), Number(g.gen));
      else global.push(`${g.kind}=${Number(g.gen)}`);
    }
    const basis = [q.basis, ...global.sort()].join(';');
    const kept = new Set(
      (
        await sql.query<{ day: unknown; gen: string | number; basis: string }>(`SELECT day, gen, basis FROM day_figures_day WHERE kind = $1 AND day BETWEEN $2::date AND $3::date`, [
          q.kind,
          q.from,
          keepTo,
        ])
      )
        .filter((d) => d.basis === basis && Number(d.gen) === (genOf.get(dayText(d.day)) ?? 0))
        .map((d) => dayText(d.day))
    );
    const missing: string[] = [];
    for (let d = q.from; d <= keepTo; d = addDays(d, 1)) if (!kept.has(d)) missing.push(d);
    if (kept.size > 0) {
      for (const r of await sql.query<{ day: unknown; key: string; figures: T | string }>(
        `SELECT day, key, figures FROM day_figures WHERE kind = $1 AND day = ANY($2::date[]) AND scope = $3 AND ($4::text IS NULL OR key = $4)`,
        [q.kind, [...kept], q.scope, q.key ?? null]
      )) {
        out.push({ day: dayText(r.day), scope: q.scope, key: r.key, figures: typeof r.figures === 'string' ? (JSON.parse(r.figures) as T) : r.figures });
      }
    }
    for (const [from, to] of runs(missing)) {
      const counted = await q.count(from, to);
      await keep(sql, q.kind, from, to, counted, genOf, basis);
      out.push(...counted.filter(wanted));
    }
  }
  const liveFrom = keepTo < q.from ? q.from : addDays(keepTo, 1);
  if (liveFrom <= q.to) out.push(...(await q.count(liveFrom, q.to)).filter(wanted));
  return out.sort((a, b) => (a.day === b.day ? (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) : a.day < b.day ? -1 : 1));
}

/** Consecutive days as [first, last] runs. */
function runs(days: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const d of days) {
    const last = out[out.length - 1];
    if (last && addDays(last[1], 1) === d) last[1] = d;
    else out.push([d, d]);
  }
  return out;
}

/**
 * Keeps the counted days: their figures (upserted, then the keys no longer counted removed) and then the day
 * rows with the generations read before the count. Readers racing on a day write the same figures.
 */
async function keep<T>(sql: Sql, kind: string, from: string, to: string, counted: DayFigure<T>[], genOf: Map<string, number>, basis: string): Promise<void> {
  const days: string[] = [];
  for (let d = from; d <= to; d = addDays(d, 1)) days.push(d);
  if (counted.length > 0) {
    await sql.query(
      `INSERT INTO day_figures (kind, day, scope, key, figures)
       SELECT $1, (e->>0)::date, e->>1, e->>2, e->3 FROM jsonb_array_elements($2::jsonb) AS e
       ON CONFLICT (kind, day, scope, key) DO UPDATE SET figures = EXCLUDED.figures`,
      [kind, JSON.stringify(counted.map((f) => [f.day, f.scope, f.key, f.figures]))]
    );
  }
  await sql.query(
    `DELETE FROM day_figures f WHERE f.kind = $1 AND f.day BETWEEN $2::date AND $3::date AND NOT (f.day::text || '|' || f.scope || '|' || f.key = ANY($4::text[]))`,
    [kind, from, to, counted.map((f) => `${f.day}|${f.scope}|${f.key}`)]
  );
  await sql.query(
    `INSERT INTO day_figures_day (kind, day, gen, basis) SELECT $1, (e->>0)::date, (e->>1)::bigint, $2 FROM jsonb_array_elements($3::jsonb) AS e
     ON CONFLICT (kind, day) DO UPDATE SET gen = EXCLUDED.gen, basis = EXCLUDED.basis, counted_at = now()`,
    [kind, basis, JSON.stringify(days.map((d) => [d, genOf.get(d) ?? 0]))]
  );
}
