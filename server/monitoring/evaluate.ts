/**
 * Evaluating the monitors at an instant (docs/monitoring.md): reads the facts up to `at`, judges every
 * (institution, monitor, flow) with the pure rules, and moves the alerts — one Flag per (institution, monitor,
 * flow), id derived from the three, a new version only when the level changes (its history is the alert's
 * history). Idempotent (the same `at` again writes nothing) and restart-safe (the state is in the database);
 * one evaluation at a time (the state row is locked), and flags only move forward: an `at` before the last
 * evaluation changes no Flag.
 */
import { createHash } from 'node:crypto';
import type { Flag } from '@medplum/fhirtypes';
import type { Sql } from '../db/database.ts';
import type { Repository } from '../fhir/repository.ts';
import { CANONICAL_BASE } from '../terminology/canonical.ts';
import type { MonitoringConfig } from './config.ts';
import { baselineFromSlots, judgeDisabled, judgeInterruption, judgeTimeliness, LEVEL_DISPLAY, summariseTimeliness, type Judgement, type Level } from './rules.ts';

export const MONITOR_SYSTEM = `${CANONICAL_BASE}/CodeSystem/monitoring-monitor`;
export const LEVEL_SYSTEM = `${CANONICAL_BASE}/CodeSystem/monitoring-level`;
export const ALERT_IDENTIFIER_SYSTEM = `${CANONICAL_BASE}/monitoring-alert`;
export const EXT_FLOW = `${CANONICAL_BASE}/StructureDefinition/monitoring-flow`;
export const EXT_REASON = `${CANONICAL_BASE}/StructureDefinition/monitoring-reason`;

export type Monitor = 'interruption' | 'recognition-disabled' | 'timeliness';
export const MONITOR_DISPLAY: Record<Monitor, string> = { interruption: '报告数据断传', 'recognition-disabled': '互认功能停用', timeliness: '报告上传及时性' };
export const FLOW_DISPLAY: Record<string, string> = { lab: '检验', exam: '检查', all: '全部' };
const REASON_DISPLAY: Record<string, string> = { silent: '未收到报告', 'no-calls': '有上传或开单但无互认调用', 'all-failed': '互认调用全部失败', late: '上传不及时' };

export interface Judged extends Judgement {
  institution: string;
  monitor: Monitor;
  flow: string;
}

export interface AlertChange {
  institution: string;
  monitor: Monitor;
  flow: string;
  from: Level;
  to: Level;
  flag: string;
}

export interface Evaluation {
  at: string;
  /** Every judgement with a level above 0 now. */
  active: Judged[];
  changes: AlertChange[];
  /** Set when `at` is before the last evaluation: no Flag was changed. */
  skipped?: string;
}

const ms = (v: unknown) => (v === null || v === undefined ? undefined : new Date(v as string).getTime());
const WEEK_SECONDS = 7 * 86_400;
/** The local (Asia/Shanghai) time of a timestamptz column, as SQL. */
export const local = (column: string) => `((${column} AT TIME ZONE 'UTC') + interval '8 hours')`;

/** Judges every monitor at `at` from the facts (no writes). */
export async function judgeAll(sql: Sql, config: MonitoringConfig, at: Date): Promise<Judged[]> {
  const now = at.getTime();
  const iso = at.toISOString();
  const out: Judged[] = [];

  // interruption, per institution and flow, against the baseline learned from the last weeks
  const lasts = await sql.query<{ institution: string; flow: string; last: string; first: string }>(
    `SELECT institution, flow, max(received_at) AS last, min(received_at) AS first FROM monitoring_report WHERE received_at <= $1 GROUP BY 1, 2`,
    [iso]
  );
  const slots = await sql.query<{ institution: string; flow: string; slot: number; weeks: number }>(
    `SELECT institution, flow,
            ((extract(isodow FROM ${local('received_at')})::int - 1) * 24 + extract(hour FROM ${local('received_at')})::int) AS slot,
            count(DISTINCT floor(extract(epoch FROM ($1::timestamptz - received_at)) / ${WEEK_SECONDS}))::int AS weeks
       FROM monitoring_report
      WHERE received_at < $1 AND received_at >= $1::timestamptz - make_interval(days => $2::int)
      GROUP BY 1, 2, 3`,
    [iso, config.baseline.weeks * 7]
  );
  const slotMap = new Map<string, Map<number, number>>();
  for (const s of slots) {
    const key = `${s.institution}|${s.flow}`;
    if (!slotMap.has(key)) slotMap.set(key, new Map());
    slotMap.get(key)!.set(Number(s.slot), Number(s.weeks));
  }
  for (const l of lasts) {
    const baseline = baselineFromSlots(slotMap.get(`${l.institution}|${l.flow}`) ?? new Map(), ms(l.first), now, config.baseline);
    out.push({ institution: l.institution, monitor: 'interruption', flow: l.flow, ...judgeInterruption(ms(l.last), now, baseline, config.interruption) });
  }

  // recognition disabled, per institution: uploads and orders since the last successful call
  const activity = await sql.query<{ institution: string; last_ok: string | null; first_after: string | null; last_activity: string | null; failed: number }>(
    `WITH ok AS (
       SELECT institution, max(at) AS last_ok FROM (
         SELECT institution, at FROM monitoring_event WHERE kind = 'call' AND status < 400 AND at <= $1
         UNION ALL SELECT institution, at FROM monitoring_record WHERE at <= $1) c
        GROUP BY 1),
     act AS (
       SELECT institution, received_at AS at FROM monitoring_report WHERE received_at <= $1
       UNION ALL SELECT institution, at FROM monitoring_event WHERE kind = 'order' AND at <= $1)
     SELECT a.institution, ok.last_ok,
            min(a.at) FILTER (WHERE ok.last_ok IS NULL OR a.at > ok.last_ok) AS first_after,
            max(a.at) AS last_activity,
            (SELECT count(*) FROM monitoring_event e
              WHERE e.institution = a.institution AND e.kind = 'call' AND e.status >= 400 AND e.at <= $1
                AND (ok.last_ok IS NULL OR e.at > ok.last_ok))::int AS failed
       FROM act a LEFT JOIN ok ON ok.institution = a.institution
      GROUP BY a.institution, ok.last_ok`,
    [iso]
  );
  for (const a of activity) {
    const judgement = judgeDisabled({ lastOk: ms(a.last_ok), firstActivityAfter: ms(a.first_after), lastActivity: ms(a.last_activity), failedAfter: Number(a.failed) }, now, config.disabled);
    out.push({ institution: a.institution, monitor: 'recognition-disabled', flow: 'all', ...judgement });
  }

  // timeliness, per institution, over the trailing window
  const delays = await sql.query<{ institution: string; delay: number; received_at: string }>(
    `SELECT institution, extract(epoch FROM (received_at - issued_at)) / 60 AS delay, received_at
       FROM monitoring_report
      WHERE issued_at IS NOT NULL AND received_at <= $1 AND received_at > $1::timestamptz - make_interval(hours => $2::int)
      ORDER BY received_at`,
    [iso, config.timelinessWindowHours]
  );
  const per = new Map<string, { delays: number[]; firstLate?: string }>();
  for (const d of delays) {
    const e = per.get(d.institution) ?? { delays: [] };
    const delay = Number(d.delay);
    e.delays.push(delay);
    if (delay > config.lateMinutes && !e.firstLate) e.firstLate = new Date(d.received_at).toISOString();
    per.set(d.institution, e);
  }
  for (const [institution, e] of per) {
    const judgement = judgeTimeliness(summariseTimeliness(e.delays, config.lateMinutes), config.timelinessRates);
    out.push({ institution, monitor: 'timeliness', flow: 'all', ...judgement, ...(judgement.level > 0 && e.firstLate ? { since: e.firstLate } : {}) });
  }
  return out;
}

/** The Flag id of (institution, monitor, flow): stable, so every change is a new version of the same Flag. */
export function flagId(institution: string, monitor: string, flow: string): string {
  return `mon-${createHash('sha256').update(`${institution}|${monitor}|${flow}`).digest('hex').slice(0, 32)}`;
}

export function alertFlag(input: { institution: string; monitor: Monitor; flow: string; level: Level; reason: string; start: string; end?: string }): Flag {
  const text = input.level > 0 ? `${MONITOR_DISPLAY[input.monitor]}（${FLOW_DISPLAY[input.flow] ?? input.flow}）${LEVEL_DISPLAY[input.level]}：${REASON_DISPLAY[input.reason] ?? input.reason}` : `${MONITOR_DISPLAY[input.monitor]}（${FLOW_DISPLAY[input.flow] ?? input.flow}）已恢复`;
  return {
    resourceType: 'Flag',
    id: flagId(input.institution, input.monitor, input.flow),
    extension: [
      { url: EXT_FLOW, valueCode: input.flow },
      { url: EXT_REASON, valueCode: input.level > 0 ? input.reason : 'ok' },
    ],
    identifier: [{ system: ALERT_IDENTIFIER_SYSTEM, value: `${input.institution}|${input.monitor}|${input.flow}` }],
    status: input.level > 0 ? 'active' : 'inactive',
    category: [{ coding: [{ system: MONITOR_SYSTEM, code: input.monitor, display: MONITOR_DISPLAY[input.monitor] }] }],
    code: { coding: [{ system: LEVEL_SYSTEM, code: String(input.level), display: LEVEL_DISPLAY[input.level] }], text },
    subject: { reference: input.institution } as Flag['subject'],
    period: { start: input.start, ...(input.end ? { end: input.end } : {}) },
  };
}

/** Evaluates every monitor at `at` and moves the alerts (in one transaction). */
export async function evaluate(repo: Repository, config: MonitoringConfig, at: Date): Promise<Evaluation> {
  return repo.transaction(async (tx) => {
    const sql = tx.connection;
    const iso = at.toISOString();
    await sql.query(`INSERT INTO monitoring_state (key, at) VALUES ('evaluation', '1970-01-01T00:00:00Z') ON CONFLICT (key) DO NOTHING`);
    const [state] = await sql.query<{ at: string }>(`SELECT at FROM monitoring_state WHERE key = 'evaluation' FOR UPDATE`);
    const judged = await judgeAll(sql, config, at);
    const active = judged.filter((j) => j.level > 0);
    if (new Date(state.at).getTime() > at.getTime()) {
      return { at: iso, active, changes: [], skipped: `the alerts were last evaluated at ${new Date(state.at).toISOString()}, after ${iso}: no Flag changed` };
    }
    const rows = await sql.query<{ institution: string; monitor: Monitor; flow: string; level: number; since: string | null }>(`SELECT institution, monitor, flow, level, since FROM monitoring_alert`);
    const current = new Map(rows.map((r) => [`${r.institution}|${r.monitor}|${r.flow}`, r]));
    const next = new Map(judged.map((j) => [`${j.institution}|${j.monitor}|${j.flow}`, j]));
    const changes: AlertChange[] = [];
    for (const key of new Set([...current.keys(), ...active.map((j) => `${j.institution}|${j.monitor}|${j.flow}`)])) {
      const row = current.get(key);
      const j = next.get(key);
      const from = (row?.level ?? 0) as Level;
      const to = (j?.level ?? 0) as Level;
      if (from === to) continue;
      const [institution, monitor, flow] = key.split('|') as [string, Monitor, string];
      // the alert's period starts when its condition started and keeps that start while the level moves
      const start = from > 0 && row?.since ? new Date(row.since).toISOString() : (j?.since ?? iso);
      const flag = alertFlag({ institution, monitor, flow, level: to, reason: j?.reason ?? 'ok', start, ...(to === 0 ? { end: iso } : {}) });
      await tx.update(flag);
      await sql.query(
        `INSERT INTO monitoring_alert (institution, monitor, flow, level, since, changed_at, flag_id) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (institution, monitor, flow) DO UPDATE SET level = EXCLUDED.level, since = EXCLUDED.since, changed_at = EXCLUDED.changed_at`,
        [institution, monitor, flow, to, to > 0 ? start : null, iso, flag.id]
      );
      changes.push({ institution, monitor, flow, from, to, flag: `Flag/${flag.id}` });
    }
    await sql.query(`UPDATE monitoring_state SET at = $1 WHERE key = 'evaluation'`, [iso]);
    return { at: iso, active, changes };
  });
}
