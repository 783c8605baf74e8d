/**
 * Data-quality monitoring workload (issue 13; goals in docs/monitoring.md "Benchmarks"):
 *
 *   monitoring-full         one evaluation of every monitor (interruption, recognition disabled, timeliness) for
 *                           all institutions at the end of the loaded activity — the first one, which writes the
 *                           Flags — and the day's indicator MeasureReports (`$evaluate-monitoring?from=&to=`);
 *                           goal ≤ 5 s for the evaluation
 *   monitoring-incremental  the per-minute evaluation that follows (the scheduled job's work), one minute apart;
 *                           goal ≤ 200 ms
 *   monitoring-dashboard    the monitoring app's JSON queries (overview, usage per district over a week, late
 *                           reports of a day, an institution's history, the improvement requests) in a closed
 *                           loop: latency per query; goal p99 ≤ 50 ms
 *
 * The activity (default 300 institutions, 1,000,000 report versions over 30 days, a recognition record for every
 * fourth report, decisions on half the reminders, a few institutions silent for the last hours) is generated in
 * SQL on the server's PostgreSQL database (PostgreSQL only: the bulk load goes through a second connection).
 */
import { round, runLoad, summarize, type Sender } from './client.ts';
import { adminQuery } from './server.ts';

export const MONITORING = ['monitoring-full', 'monitoring-incremental', 'monitoring-dashboard'];

const DISTRICTS = ['440103', '440104', '440105', '440106', '440111', '440112', '440113', '440114', '440115', '440117', '440118'];
const H = 3_600_000;

export interface MonitoringLoadOptions {
  databaseUrl: string;
  institutions: number;
  reports: number;
  days: number;
  log: (m: string) => void;
}

export interface MonitoringFixture {
  institutions: string[];
  /** The end of the generated activity (the instant evaluated). */
  end: Date;
  lastDay: string;
  firstDay: string;
}

/** Creates the institutions through FHIR and bulk-loads their facts in SQL. */
export async function loadMonitoring(client: Sender, options: MonitoringLoadOptions): Promise<{ fixture: MonitoringFixture; summary: Record<string, unknown> }> {
  const t0 = performance.now();
  const institutions: string[] = [];
  for (let i = 0; i < options.institutions; i += 100) {
    const entry = [];
    for (let k = i; k < Math.min(options.institutions, i + 100); k++) {
      entry.push({
        resource: {
          resourceType: 'Organization',
          identifier: [{ system: 'urn:huren:bench-org', value: `mon-${k}` }],
          name: `基准机构${k + 1}`,
          extension: [{ url: 'https://fhir.huren.gz.cn/StructureDefinition/district', valueCoding: { system: 'https://fhir.huren.gz.cn/CodeSystem/admin-division', code: DISTRICTS[k % DISTRICTS.length] } }],
        },
        request: { method: 'POST', url: 'Organization' },
      });
    }
    const reply = await client.send({ method: 'POST', path: '/fhir', body: JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry }), keepBody: true });
    if (reply.status !== 200) throw new Error(`creating institutions: ${reply.status} ${reply.body?.slice(0, 300)}`);
    for (const e of JSON.parse(reply.body as string).entry) institutions.push(/(Organization\/[^/]+)\/_history/.exec(e.response.location)![1]);
  }
  // the activity ends at a whole hour, Asia/Shanghai midnight + days
  const start = Date.parse('2024-06-01T00:00:00+08:00');
  const end = new Date(start + options.days * 24 * H);
  const orgs = `ARRAY[${institutions.map((o) => `'${o}'`).join(',')}]::text[]`;
  const n = institutions.length;
  const span = `${options.days * 86_400} * (g::float8 / ${options.reports})`;
  const at = `(timestamptz '${new Date(start).toISOString()}' + make_interval(secs => ${span}))`;
  // the last 2 % of the institutions stop sending 3 hours before the end (interruption alerts)
  const silent = Math.max(1, Math.floor(n * 0.02));
  const q = (sql: string) => adminQuery(sql, options.databaseUrl);
  options.log(`  monitoring: ${n} institutions created; loading ${options.reports} report versions over ${options.days} days`);
  await q(`INSERT INTO monitoring_report (report_id, version, institution, flow, received_at, issued_at)
           SELECT 'bench-' || g, 1, (${orgs})[(g % ${n}) + 1], CASE WHEN g % 5 = 0 THEN 'exam' ELSE 'lab' END, ${at},
                  ${at} - make_interval(mins => CASE WHEN g % 23 = 0 THEN 50 ELSE 5 END)
             FROM generate_series(1, ${options.reports}) g
            WHERE NOT ((g % ${n}) >= ${n - silent} AND ${at} > timestamptz '${new Date(end.getTime() - 3 * H).toISOString()}')`);
  await q(`INSERT INTO monitoring_record (id, institution, kind, at, implicated)
           SELECT 'bench-r-' || g, (${orgs})[(g % ${n}) + 1], CASE WHEN g % 3 = 0 THEN 'duplicate-order-reminder' ELSE 'encounter-reminder' END,
                  ${at} + interval '2 minutes', CASE WHEN g % 8 = 0 THEN 1 + g % 3 ELSE 0 END
             FROM generate_series(4, ${options.reports}, 4) g`);
  await q(`INSERT INTO monitoring_decision (record_id, idx, decision, reason, items, priced, saving)
           SELECT 'bench-r-' || g, 0, CASE WHEN g % 48 = 0 THEN 'not-recognised' ELSE 'recognised' END, CASE WHEN g % 48 = 0 THEN '01' END,
                  CASE WHEN g % 48 = 0 THEN NULL ELSE 1 END, CASE WHEN g % 48 = 0 THEN NULL ELSE 1 END, CASE WHEN g % 48 = 0 THEN NULL ELSE 25.50 END
             FROM generate_series(16, ${options.reports}, 16) g`);
  await q(`INSERT INTO monitoring_event (institution, kind, operation, at, status)
           SELECT (${orgs})[(g % ${n}) + 1], 'call', '$recognition-check', ${at}, CASE WHEN g % 97 = 0 THEN 400 ELSE 200 END
             FROM generate_series(3, ${options.reports}, 8) g`);
  await q('ANALYZE monitoring_report; ANALYZE monitoring_record; ANALYZE monitoring_decision; ANALYZE monitoring_event');
  const lastDay = new Date(end.getTime() + 8 * H - 1).toISOString().slice(0, 10);
  const firstDay = new Date(start + 8 * H).toISOString().slice(0, 10);
  return { fixture: { institutions, end, lastDay, firstDay }, summary: { institutions: n, reports: options.reports, days: options.days, silent, seconds: round((performance.now() - t0) / 1000, 1) } };
}

async function timed(client: Sender, path: string, method: 'GET' | 'POST' = 'GET'): Promise<number> {
  const t = performance.now();
  const reply = await client.send({ method, path, keepBody: true });
  const ms = performance.now() - t;
  if (reply.status !== 200) throw new Error(`${path}: ${reply.status} ${reply.body?.slice(0, 300)}`);
  return ms;
}

const evaluatePath = (at: Date, extra = '') => `/fhir/Measure/$evaluate-monitoring?at=${encodeURIComponent(at.toISOString())}${extra}`;

/** The first (full) evaluation at the end of the activity, and the day's MeasureReports. */
export async function fullEvaluation(client: Sender, f: MonitoringFixture, log: (m: string) => void) {
  const evaluation = await timed(client, evaluatePath(f.end));
  log(`  monitoring-full: first evaluation ${round(evaluation, 0)} ms`);
  const reports = await timed(client, evaluatePath(f.end, `&from=${f.lastDay}&to=${f.lastDay}`));
  log(`  monitoring-full: with the last day's MeasureReports ${round(reports, 0)} ms`);
  return { evaluationMs: round(evaluation, 1), withDayReportsMs: round(reports, 1), goalMs: 5000 };
}

/** The per-minute evaluations after the first. */
export async function incrementalEvaluation(client: Sender, f: MonitoringFixture, runs: number, log: (m: string) => void) {
  const ms: number[] = [];
  for (let i = 1; i <= runs; i++) ms.push(await timed(client, evaluatePath(new Date(f.end.getTime() + i * 60_000))));
  const s = summarize(ms);
  log(`  monitoring-incremental: ${runs} evaluations a minute apart, p50 ${s.p50} ms, max ${s.max} ms`);
  return { runs, latencyMs: s, goalMs: 200 };
}

/** The dashboard's queries, each in a closed loop on `concurrency` clients. */
export async function dashboardQueries(client: Sender, f: MonitoringFixture, load: { concurrency: number; seconds: number; warmupSeconds: number; maxRequests: number }, log: (m: string) => void) {
  const weekAgo = new Date(Date.parse(`${f.lastDay}T00:00:00Z`) - 6 * 86_400_000).toISOString().slice(0, 10);
  const queries: Record<string, (i: number) => string> = {
    overview: () => '/api/monitoring/overview',
    'usage-district-week': () => `/api/monitoring/usage?from=${weekAgo}&to=${f.lastDay}&scope=district`,
    'late-day': () => `/api/monitoring/late?from=${f.lastDay}&to=${f.lastDay}`,
    history: (i) => `/api/monitoring/institutions/${f.institutions[i % f.institutions.length].split('/')[1]}/history`,
    requests: () => '/api/monitoring/requests',
  };
  const out: Record<string, unknown> = {};
  for (const [name, path] of Object.entries(queries)) {
    const r = await runLoad(client, load, (i) => ({ method: 'GET', path: path(i) }));
    out[name] = r;
    log(`  monitoring-dashboard ${name}: ${r.requestsPerSecond}/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, errors ${r.errors}`);
  }
  return { ...out, goalP99Ms: 50 };
}
