/**
 * Data-quality monitoring end to end (docs/monitoring.md), on a real server:
 * - a scenario of five institutions over five weeks of generated activity (a steady hospital, a night-silent
 *   clinic, one that stops sending, one that sends only late, one that uploads but never checks), evaluated
 *   through HTTP with the test's clock (`Measure/$evaluate-monitoring?at=…`): each monitor raises exactly the
 *   right level at the right moment and clears;
 * - an alert → improvement request (Task) → the institution's own client sees it, answers, completes it;
 * - the indicator MeasureReports agree with their Measures and with counts made directly in SQL;
 * - the facts of real uploads and calls (a 4xx call counted too), and the live event stream.
 */
import test from 'ava';
import type Koa from 'koa';
import { exportJWK, generateKeyPair } from 'jose';
import { backendToken } from './helpers/backend-token.ts';
import { insertReports } from './helpers/monitoring-facts.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { ORG_ID, organization, reportEntries, transaction, idOf } from './helpers/recognition-data.ts';
import { flagId } from '../server/monitoring/evaluate.ts';
import { MonitoringFacts } from '../server/monitoring/facts.ts';
import { statementsOf } from './helpers/statements.ts';

// the test drives the clock: no scheduled evaluation may interfere
process.env.HUREN_MONITORING_CRON = 'off';
process.env.HUREN_MONITORING_REPORTS_CRON = 'off';

const H = 3_600_000;
const M = 60_000;
const DAYMS = 24 * H;
/** Monday 2024-06-03 00:00 Asia/Shanghai: the generated history starts here; D is four weeks later. */
const T0 = Date.parse('2024-06-03T00:00:00+08:00');
const D = T0 + 28 * DAYMS;
const END = T0 + 35 * DAYMS;
const CLIENT = 'his-nocheck';
const KEYS = ['steady', 'clinic', 'stopper', 'late', 'nocheck', 'other'] as const;
type Key = (typeof KEYS)[number];
const DISTRICT: Record<Key, string> = { steady: '440104', clinic: '440106', stopper: '440104', late: '440111', nocheck: '440111', other: '440106' };

let s: TestServer;
let key: Awaited<ReturnType<typeof generateKeyPair>>;
const org: Record<string, string> = {};

test.before(async () => {
  key = await generateKeyPair('ES384', { extractable: true });
  s = await startTestServer({
    clients: [
      {
        clientId: CLIENT,
        organization: `Organization?identifier=${ORG_ID}|mon-nocheck`,
        scope: 'system/Task.rus system/Flag.rs system/MeasureReport.rs',
        jwks: { keys: [{ ...(await exportJWK(key.publicKey)), kid: 'k1', alg: 'ES384' }] },
      },
    ],
  });
  for (const k of KEYS) {
    const res = await s.fhir('Organization', { method: 'POST', json: organization(`mon-${k}`, `机构-${k}`, DISTRICT[k], []) });
    org[k] = `Organization/${(await res.json()).id}`;
  }
  await generate();
});
test.after.always(async () => {
  await s?.close();
});

/** Report facts (received, issued) and recognition records, inserted as generated activity. */
async function generate() {
  const reports: [string, string, number, number][] = []; // institution, flow, received, issued
  const checks: [string, number][] = [];
  const calls: [string, number, number][] = [];
  const every = (k: Key, from: number, to: number, stepMin: number, delayMin: (t: number) => number, when: (t: number) => boolean = () => true) => {
    for (let t = from; t < to; t += stepMin * M) if (when(t)) reports.push([org[k], 'lab', t, t - delayMin(t) * M]);
  };
  const hourlyChecks = (k: Key, from: number, to: number, when: (t: number) => boolean = () => true) => {
    for (let t = from + 55 * M; t < to; t += H) if (when(t)) checks.push([org[k], t]);
  };
  const local = (t: number) => new Date(t + 8 * H);
  const workHours = (t: number) => {
    const d = local(t);
    return d.getUTCDay() >= 1 && d.getUTCDay() <= 5 && d.getUTCHours() >= 8 && d.getUTCHours() < 18;
  };
  // steady hospital: every 10 min day and night, 5 min late at most, a check every hour
  every('steady', T0, END, 10, () => 5);
  hourlyChecks('steady', T0, END);
  // night-silent clinic: weekdays 08:00–17:50 only
  every('clinic', T0, END, 10, () => 5, workHours);
  hourlyChecks('clinic', T0, END, workHours);
  // stops sending after Monday D 09:50 and resumes Tuesday 12:00; it keeps checking
  every('stopper', T0, D + 10 * H, 10, () => 5);
  every('stopper', D + DAYMS + 12 * H, END, 10, () => 5);
  hourlyChecks('stopper', T0, END);
  // sends every 30 min, 45 min after issue — until D+4d, on time after
  every('late', T0, END, 30, (t) => (t < D + 4 * DAYMS ? 45 : 5));
  hourlyChecks('late', T0, END);
  // new (two days of history at D), uploads every 20 min and never checks; its calls fail from D+1d; one succeeds at D+5d 01:05
  every('nocheck', D - 2 * DAYMS, END, 20, () => 5);
  for (let t = D + DAYMS; t < D + 5 * DAYMS; t += 2 * H) calls.push([org.nocheck, t, 400]);
  calls.push([org.nocheck, D + 5 * DAYMS + 65 * M, 200]);
  const iso = (t: number) => new Date(t).toISOString();
  await insertReports(s.huren.db, reports);
  await s.huren.db.query(
    `INSERT INTO monitoring_record (id, institution, kind, at, implicated)
     SELECT 'gen-' || n, i, 'encounter-reminder', a, 0 FROM unnest($1::text[], $2::timestamptz[]) WITH ORDINALITY AS g(i, a, n)`,
    [checks.map((c) => c[0]), checks.map((c) => iso(c[1]))]
  );
  await s.huren.db.query(
    `INSERT INTO monitoring_event (institution, kind, operation, at, status)
     SELECT i, 'call', '$recognition-check', a, st FROM unnest($1::text[], $2::timestamptz[], $3::int[]) AS g(i, a, st)`,
    [calls.map((c) => c[0]), calls.map((c) => iso(c[1])), calls.map((c) => c[2])]
  );
}

interface Alert {
  institution: string;
  monitor: string;
  flow: string;
  level: number;
  reason: string;
}

async function evaluateAt(t: number, extra = ''): Promise<{ status: number; body: any; alerts: Alert[]; changes: any[] }> {
  const res = await s.fhir(`Measure/$evaluate-monitoring?at=${encodeURIComponent(new Date(t).toISOString())}${extra}`);
  const body = await res.json();
  const parts = (p: any) => Object.fromEntries(p.part.map((x: any) => [x.name, x.valueReference?.reference ?? x.valueCode ?? x.valueInteger]));
  const alerts = (body.parameter ?? []).filter((p: any) => p.name === 'alert').map(parts);
  const changes = (body.parameter ?? []).filter((p: any) => p.name === 'change').map(parts);
  return { status: res.status, body, alerts, changes };
}

const name = (ref: string) => Object.entries(org).find(([, v]) => v === ref)?.[0] ?? ref;
const summary = (alerts: Alert[]) => alerts.map((a) => `${name(a.institution)} ${a.monitor}/${a.flow} ${a.level} ${a.reason}`).sort();

test.serial('scenario: each monitor raises the right level at the right moment and clears, driven by the test clock through HTTP', async (t) => {
  const steps: [string, number, string[]][] = [
    ['Mon 10:19', D + 10 * H + 19 * M, ['late timeliness/all 4 late', 'nocheck recognition-disabled/all 1 no-calls']],
    ['Mon 10:20', D + 10 * H + 20 * M, ['late timeliness/all 4 late', 'nocheck recognition-disabled/all 1 no-calls', 'stopper interruption/lab 1 silent']],
    ['Mon 11:50', D + 11 * H + 50 * M, ['late timeliness/all 4 late', 'nocheck recognition-disabled/all 1 no-calls', 'stopper interruption/lab 2 silent']],
    ['Mon 17:50', D + 17 * H + 50 * M, ['late timeliness/all 4 late', 'nocheck recognition-disabled/all 1 no-calls', 'stopper interruption/lab 3 silent']],
    // the clinic has been silent since 17:50 — at night that is usual; the new institution's calls now fail
    ['Tue 03:00', D + DAYMS + 3 * H, ['late timeliness/all 4 late', 'nocheck recognition-disabled/all 2 all-failed', 'stopper interruption/lab 3 silent']],
    ['Tue 09:50', D + DAYMS + 9 * H + 50 * M, ['late timeliness/all 4 late', 'nocheck recognition-disabled/all 2 all-failed', 'stopper interruption/lab 4 silent']],
    ['Tue 12:00', D + DAYMS + 12 * H, ['late timeliness/all 4 late', 'nocheck recognition-disabled/all 2 all-failed']],
    ['Fri 12:00', D + 4 * DAYMS + 12 * H, ['late timeliness/all 2 late', 'nocheck recognition-disabled/all 2 all-failed']],
    ['Sat 00:00', D + 5 * DAYMS, ['nocheck recognition-disabled/all 3 all-failed']],
    ['Sat 01:10', D + 5 * DAYMS + 70 * M, []],
  ];
  for (const [label, at, expected] of steps) {
    const r = await evaluateAt(at);
    t.is(r.status, 200, label);
    t.deepEqual(summary(r.alerts), [...expected].sort(), label);
  }
  // the clinic on a weekday morning without uploads would be alarmed: its baseline expects them from 08:00
  // (checked on the rules in test/monitoring-rules.test.ts); here: never alarmed, night or weekend
  const stopperFlag = flagId(org.stopper, 'interruption', 'lab');
  const history = await (await s.fhir(`Flag/${stopperFlag}/_history`)).json();
  const levels = history.entry.map((e: any) => [Number(e.resource.code.coding[0].code), e.resource.status]).reverse();
  t.deepEqual(levels, [[1, 'active'], [2, 'active'], [3, 'active'], [4, 'active'], [0, 'inactive']], 'the alert’s history: 1 → 2 → 3 → 4 → cleared');
  const last = history.entry[0].resource;
  t.deepEqual(last.period, { start: new Date(D + 9 * H + 50 * M).toISOString(), end: new Date(D + DAYMS + 12 * H).toISOString() }, 'period: from the last report to the return');
  t.is(last.subject.reference, org.stopper);
  const lateHistory = await (await s.fhir(`Flag/${flagId(org.late, 'timeliness', 'all')}/_history`)).json();
  t.deepEqual(lateHistory.entry.map((e: any) => Number(e.resource.code.coding[0].code)).reverse(), [4, 2, 0]);
  const none = await (await s.fhir(`Flag?subject=${org.steady}`)).json();
  t.is(none.total ?? none.entry?.length ?? 0, 0, 'the steady hospital never had an alert');
  const clinic = await (await s.fhir(`Flag?subject=${org.clinic}`)).json();
  t.is(clinic.total ?? clinic.entry?.length ?? 0, 0, 'the night-silent clinic never had an alert');
});

test.serial('evaluation is idempotent and only moves forward; a bad instant is a 400 naming the parameter', async (t) => {
  const at = D + 5 * DAYMS + 70 * M;
  const again = await evaluateAt(at);
  t.is(again.status, 200);
  t.deepEqual(again.changes, [], 'the same instant again changes nothing');
  const before = await evaluateAt(D + 10 * H + 20 * M);
  t.deepEqual(before.changes, []);
  t.regex(before.body.parameter.find((p: any) => p.name === 'skipped').valueString, /last evaluated at/);
  t.is(summary(before.alerts).length, 3, 'the judgement of that instant is still answered');
  const count = await s.huren.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM resource_history WHERE type = 'Flag'`);
  const bad = await s.fhir('Measure/$evaluate-monitoring?at=yesterday');
  t.is(bad.status, 400);
  const outcome = await bad.json();
  t.regex(outcome.issue[0].expression[0], /'at'|\bat\b/, 'the expression names the parameter');
  t.regex(outcome.issue[0].diagnostics ?? outcome.issue[0].details?.text, /at must be an instant/);
  t.is((await s.fhir('Measure/$evaluate-monitoring?from=2024-07-05&to=2024-07-01')).status, 400);
  t.is((await s.fhir('Measure/$evaluate-monitoring?colour=red')).status, 400);
  const after = await s.huren.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM resource_history WHERE type = 'Flag'`);
  t.is(after[0].n, count[0].n, 'nothing written by the refused calls');
});

const clientToken = () => backendToken(`${s.huren.url}/auth/token`, CLIENT, key.privateKey, 'system/Task.rus system/Flag.rs system/MeasureReport.rs');

const api = (path: string, token: string, init: RequestInit & { json?: unknown } = {}) =>
  fetch(`${s.huren.url}/api/monitoring${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, ...(init.json !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: init.json !== undefined ? JSON.stringify(init.json) : init.body,
  });

test.serial('alert → improvement request → the institution’s own client sees it, answers, completes it', async (t) => {
  // an active alert on the institution: a day after its one successful call it has made no other
  const at = D + 6 * DAYMS + 2 * H;
  const r = await evaluateAt(at);
  t.deepEqual(summary(r.alerts), ['nocheck recognition-disabled/all 1 no-calls']);
  const flag = flagId(org.nocheck, 'recognition-disabled', 'all');
  // a request for an alert of another institution, to prove the client does not see it
  const other = await api(`/alerts/${flagId(org.stopper, 'interruption', 'lab')}/requests`, s.token, { method: 'POST', json: {} });
  t.is(other.status, 409, 'the stopper’s alert has cleared: no request on it');

  const overview = await (await api('/overview', s.token)).json();
  const row = overview.institutions.find((i: any) => i.institution === org.nocheck);
  t.like(row, { level: 1, district: '440111', name: '机构-nocheck' });
  t.like(row.alerts[0], { monitor: 'recognition-disabled', flow: 'all', level: 1, flag: `Flag/${flag}` });

  const created = await api(`/alerts/${flag}/requests`, s.token, { method: 'POST', json: { description: '请尽快接入互认查询接口', due: '2024-07-15' } });
  t.is(created.status, 201);
  const task = await created.json();
  t.like(task, { status: 'requested', institution: org.nocheck, alert: `Flag/${flag}`, description: '请尽快接入互认查询接口' });
  const taskId = task.task.slice('Task/'.length);
  t.is((await api(`/alerts/${flag}/requests`, s.token, { method: 'POST', json: { colour: 'red' } })).status, 400);
  t.is((await api(`/alerts/nope/requests`, s.token, { method: 'POST', json: {} })).status, 404);

  const token = await clientToken();
  const mine = await (await api('/requests', token)).json();
  t.deepEqual(mine.requests.map((q: any) => q.task), [task.task], 'the institution’s client sees its own request');
  const viaFhir = await (await fetch(`${s.base}/Task?owner=${org.nocheck}`, { headers: { authorization: `Bearer ${token}` } })).json();
  t.deepEqual(viaFhir.entry.map((e: any) => e.resource.id), [taskId], 'and finds it by FHIR search on owner');
  t.is((await api(`/alerts/${flag}/requests`, token, { method: 'POST', json: {} })).status, 403, 'an institution cannot send requests');
  t.is((await api(`/institutions/${org.stopper.slice(13)}/history`, token)).status, 403, 'nor read another institution’s history');
  const myOverview = await (await api('/overview', token)).json();
  t.deepEqual(myOverview.institutions.map((i: any) => i.institution), [org.nocheck]);

  t.is((await api(`/requests/${taskId}/status`, token, { method: 'POST', json: { status: 'cancelled' } })).status, 409, 'the institution cannot cancel');
  const accepted = await api(`/requests/${taskId}/status`, token, { method: 'POST', json: { status: 'accepted', note: '已收到，正在排查' } });
  t.is(accepted.status, 200);
  t.is((await api(`/requests/${taskId}/status`, token, { method: 'POST', json: { status: 'requested' } })).status, 409, 'no step back');
  t.is((await api(`/requests/${taskId}/status`, token, { method: 'POST', json: { status: 'in-progress' } })).status, 200);
  const done = await (await api(`/requests/${taskId}/status`, token, { method: 'POST', json: { status: 'completed', note: '接口已修复' } })).json();
  t.like(done, { status: 'completed' });
  t.deepEqual(done.notes.map((n: any) => [n.text, n.by]), [['已收到，正在排查', org.nocheck], ['接口已修复', org.nocheck]]);
  t.is((await api(`/requests/${taskId}/status`, s.token, { method: 'POST', json: { status: 'cancelled' } })).status, 409, 'closed: nothing more');
  const closed = await (await api('/requests?status=completed', s.token)).json();
  t.deepEqual(closed.requests.map((q: any) => q.task), [task.task]);
  const versions = await (await s.fhir(`Task/${taskId}/_history`)).json();
  t.deepEqual(versions.entry.map((e: any) => e.resource.status).reverse(), ['requested', 'accepted', 'in-progress', 'completed']);
  const history = await (await api(`/institutions/${org.nocheck.slice(13)}/history`, token)).json();
  t.deepEqual(history.requests.map((q: any) => q.status), ['completed']);
  t.deepEqual(history.alerts.filter((a: any) => a.monitor === 'recognition-disabled').map((a: any) => a.level), [1, 2, 3, 0, 1]);
});

test.serial('MeasureReports validate against their Measures and equal counts made in SQL', async (t) => {
  const from = '2024-07-01';
  const to = '2024-07-03';
  const r = await evaluateAt(D + 10 * DAYMS, `&from=${from}&to=${to}`);
  t.is(r.status, 200);
  const ids = r.body.parameter.filter((p: any) => p.name === 'report').map((p: any) => p.valueReference.reference);
  t.true(ids.length > 0);
  const measures: Record<string, any> = {};
  for (const m of ['monitoring-timeliness', 'monitoring-usage', 'monitoring-saving']) measures[`https://fhir.huren.gz.cn/Measure/${m}`] = await (await s.fhir(`Measure/${m}`)).json();
  const reports: any[] = [];
  for (const id of ids) reports.push(await (await s.fhir(id)).json());
  for (const report of reports) {
    const measure = measures[report.measure];
    t.truthy(measure, report.measure);
    const validation = await s.fhir('MeasureReport/$validate', { method: 'POST', json: { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: report }] } });
    const outcome = await validation.json();
    t.deepEqual(outcome.issue.filter((i: any) => i.severity === 'error'), [], `${report.id} is valid FHIR`);
    // every group of the report is a group of its Measure, with the Measure's populations
    t.deepEqual(report.group.map((g: any) => g.code.coding[0].code), measure.group.map((g: any) => g.code.coding[0].code));
    for (const [i, g] of report.group.entries()) {
      t.deepEqual((g.population ?? []).map((p: any) => p.code.coding[0].code), (measure.group[i].population ?? []).map((p: any) => p.code.coding[0].code));
    }
  }
  const find = (measure: string, scope: string, key: string, day: string) =>
    reports.find((x) => x.identifier[0].value === `${measure}|${scope}|${key}|${day}`);
  const count = (g: any[], code: string) => g.find((x) => x.code.coding[0].code === code);
  // lab reports of each institution and day, counted in SQL
  const sql = await s.huren.db.query<{ institution: string; day: string; n: number; late: number }>(
    `SELECT institution, to_char((received_at AT TIME ZONE 'UTC') + interval '8 hours', 'YYYY-MM-DD') AS day, count(*)::int AS n,
            count(*) FILTER (WHERE received_at - issued_at > interval '30 minutes')::int AS late
       FROM monitoring_report WHERE flow = 'lab' AND received_at >= '2024-07-01T00:00:00+08:00' AND received_at < '2024-07-04T00:00:00+08:00' GROUP BY 1, 2`
  );
  t.true(sql.length >= 12);
  for (const row of sql) {
    const usage = find('usage', 'institution', row.institution, row.day);
    t.is(count(usage.group, 'lab-reports').population[0].count, row.n, `${name(row.institution)} ${row.day}`);
    t.is(usage.reporter.reference, row.institution);
    const timely = find('timeliness', 'institution', row.institution, row.day);
    const onTime = count(timely.group, 'on-time');
    t.deepEqual(onTime.population.map((p: any) => p.count), [row.n, row.n, row.n - row.late]);
    t.is(count(timely.group, 'late').population[0].count, row.late);
    t.is(onTime.measureScore.value, Math.round(((row.n - row.late) / row.n) * 10000) / 10000);
  }
  // a district and the city sum their institutions
  const d = await s.huren.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM monitoring_report WHERE institution = ANY($1) AND received_at >= '2024-07-02T00:00:00+08:00' AND received_at < '2024-07-03T00:00:00+08:00'`,
    [[org.late, org.nocheck]]
  );
  t.is(count(find('usage', 'district', '440111', '2024-07-02').group, 'lab-reports').population[0].count, d[0].n);
  const city = await s.huren.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM monitoring_record WHERE at >= '2024-07-02T00:00:00+08:00' AND at < '2024-07-03T00:00:00+08:00'`);
  const cityReport = find('usage', 'city', '440100', '2024-07-02');
  t.is(count(cityReport.group, 'checks').population[0].count, city[0].n);
  t.is(cityReport.type, 'summary');
  // generating again writes nothing new
  const again = await evaluateAt(D + 10 * DAYMS, `&from=${from}&to=${to}`);
  t.is(again.body.parameter.find((p: any) => p.name === 'written').valueInteger, 0);
  // the JSON usage API serves the same figures
  const usage = await (await api(`/usage?from=2024-07-02&to=2024-07-02&scope=district`, s.token)).json();
  t.is(usage.rows.find((x: any) => x.key === '440111').usage['lab-reports'], d[0].n);
  t.true(usage.saving.counted);
  t.deepEqual(usage.rows.find((x: any) => x.key === '440111').saving, { yuan: 0, recognisedItems: 0, pricedItems: 0 }, 'no decision in the generated days: nothing saved');
  t.is((await api(`/usage?scope=planet`, s.token)).status, 400);
  const late = await (await api(`/late?from=2024-07-02&to=2024-07-02&institution=${org.late}`, s.token)).json();
  t.is(late.reports.length, sql.find((x) => x.institution === org.late && x.day === '2024-07-02')!.late);
  t.true(late.reports.every((x: any) => x.delayMinutes === 45));
});

async function nextEvent(reader: ReadableStreamDefaultReader<Uint8Array>, wanted: (e: { event: string; data: any }) => boolean, buffer: { text: string }) {
  const decoder = new TextDecoder();
  for (;;) {
    let i;
    while ((i = buffer.text.indexOf('\n\n')) >= 0) {
      const block = buffer.text.slice(0, i);
      buffer.text = buffer.text.slice(i + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event && data) {
        const e = { event, data: JSON.parse(data), raw: data };
        if (wanted(e)) return e;
      }
    }
    const { value, done } = await reader.read();
    if (done) throw new Error('stream ended');
    buffer.text += decoder.decode(value, { stream: true });
  }
}

test.serial('a real upload and calls are recorded as facts (a failed call too), and the stream delivers the counter within 1 s without personal data', async (t) => {
  const res = await fetch(`${s.huren.url}/api/monitoring/events?district=440106`, { headers: { authorization: `Bearer ${s.token}` } });
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /text\/event-stream/);
  const reader = res.body!.getReader();
  const buffer = { text: '' };
  await nextEvent(reader, (e) => e.event === 'ready', buffer);
  const patient = await (await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: '440106199001011234' }], name: [{ text: '张三' }] } })).json();
  const issued = new Date(Date.now() - 50 * M).toISOString();
  const started = Date.now();
  const bundle = await transaction(s, reportEntries(`Patient/${patient.id}`, { key: 'mon-real-1', org: 'mon-other', code: { system: 'https://fhir.huren.gz.cn/CodeSystem/recognition-catalogue', code: 'L-065DC84A', display: '钾' }, issued }));
  const reportId = idOf(bundle.entry[0]);
  const event = (await Promise.race([
    nextEvent(reader, (e) => e.event === 'counters' && e.data.counts.reports === 1, buffer),
    new Promise((_, reject) => setTimeout(() => reject(new Error('no counter event within 1 s')), 1000)),
  ])) as { data: any; raw: string };
  t.true(Date.now() - started < 5000);
  t.deepEqual(Object.keys(event.data).sort(), ['at', 'counts', 'district']);
  t.is(event.data.district, '440106');
  for (const secret of [patient.id, '440106199001011234', '张三', reportId, org.other]) t.false(event.raw.includes(secret), 'no personal data or ids in the event');
  await reader.cancel();

  const [fact] = await s.huren.db.query<any>(`SELECT institution, flow, received_at, issued_at FROM monitoring_report WHERE report_id = $1`, [reportId]);
  t.is(fact.institution, org.other);
  t.is(fact.flow, 'lab');
  t.is(new Date(fact.issued_at).toISOString(), issued);
  const late = await (await api(`/late?institution=${org.other}`, s.token)).json();
  t.deepEqual(late.reports.map((x: any) => x.report), [`DiagnosticReport/${reportId}`], 'received 50 min after issue: late');

  // a recognition call that fails (unknown patient: 404) and one that answers, both counted for the requester
  const failed = await s.fhir(`Patient/nobody/$recognition-check?requester=${org.other}`);
  t.is(failed.status, 404);
  const ok = await s.fhir(`Patient/${patient.id}/$recognition-check?requester=${org.other}`);
  t.is(ok.status, 200);
  // the calls of ~100 ms are written together, in one statement, after their answers (facts.ts flushCalls)
  const recorded = () => s.huren.db.query<{ status: number; operation: string }>(`SELECT status, operation FROM monitoring_event WHERE institution = $1 AND kind = 'call' ORDER BY at, id`, [org.other]);
  let calls = await recorded();
  for (let i = 0; i < 100 && calls.length < 2; i++) {
    await new Promise((r) => setTimeout(r, 50));
    calls = await recorded();
  }
  t.deepEqual(calls.map((c) => [c.operation, c.status]), [['$recognition-check', 404], ['$recognition-check', 200]]);
  const records = await s.huren.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM monitoring_record WHERE institution = $1`, [org.other]);
  t.is(records[0].n, 1, 'the successful check wrote its recognition record');
  t.is((await fetch(`${s.huren.url}/api/monitoring/events?district=abc`, { headers: { authorization: `Bearer ${s.token}` } })).status, 400);
  t.is((await fetch(`${s.huren.url}/api/monitoring/overview`)).status, 401);
});

test.serial('answered calls are written together: the calls of a window in ONE statement, each with its status and time', async (t) => {
  const facts = new MonitoringFacts(s.huren.db);
  const recorder = facts.callRecorder();
  const institution = org.other as string;
  const call = (status: number) => {
    const ctx = { method: 'GET', path: '/fhir/Patient/x/$recognition-check', query: { requester: institution }, state: {}, status } as unknown as Koa.Context;
    return recorder(ctx, async () => undefined);
  };
  const since = new Date().toISOString();
  const { statements } = await statementsOf(s.huren.db, async () => {
    for (const status of [200, 404, 200]) await call(status);
    await facts.flushCalls();
  });
  t.is(statements.length, 1, statements.map((x) => x.slice(0, 60)).join(' / '));
  t.regex(statements[0]!, /^INSERT INTO monitoring_event /);
  const rows = await s.huren.db.query<{ status: number; operation: string; at: string }>(
    `SELECT status, operation, at FROM monitoring_event WHERE institution = $1 AND kind = 'call' AND at >= $2 ORDER BY id`,
    [institution, since]
  );
  t.deepEqual(rows.map((r) => [r.operation, r.status]), [['$recognition-check', 200], ['$recognition-check', 404], ['$recognition-check', 200]]);
  t.true(rows.every((r) => new Date(r.at).getTime() >= Date.parse(since) && new Date(r.at).getTime() <= Date.now()), 'each at the time it answered');
  await facts.stop();
});
