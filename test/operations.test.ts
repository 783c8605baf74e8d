/**
 * What operators watch (docs/operations/): liveness, readiness by component, and the Prometheus metrics of the
 * jobs, the chain backlog and the monitors that the shipped alert rules read (deploy/prometheus/).
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { freePort } from './helpers/pg-cluster.ts';
import { startTestServer } from './helpers/server.ts';

test('/livez answers without credentials', async (t) => {
  const server = await startTestServer();
  try {
    const res = await fetch(`${server.huren.url}/livez`);
    t.is(res.status, 200);
    t.deepEqual(await res.json(), { status: 'ok' });
  } finally {
    await server.close();
  }
});

test('/readyz reports each component; the chain backlog makes it degraded, not unavailable', async (t) => {
  const server = await startTestServer();
  try {
    const ready = await fetch(`${server.huren.url}/readyz`);
    t.is(ready.status, 200);
    const body = (await ready.json()) as { status: string; components: Record<string, { status: string; detail?: Record<string, unknown> }> };
    t.is(body.status, 'ready');
    t.deepEqual(Object.keys(body.components).sort(), ['chain', 'database', 'partners', 'scheduler']);
    t.deepEqual(body.components.partners.detail?.partners, {}, 'no partner registered');
    t.is(body.components.database.status, 'up');
    t.is(body.components.scheduler.detail?.running, true);
    t.is(body.components.chain.detail?.backlog, 0);

    // a record that has waited an hour for its anchor: the chain is behind
    await server.huren.db.query(`INSERT INTO anchor_outbox (kind, key, digest, enqueued_at) VALUES ('report', 'ops-test', 'sm3:00', now() - interval '1 hour')`);
    const behind = await fetch(`${server.huren.url}/readyz`);
    t.is(behind.status, 200, 'the instance still serves');
    const b = (await behind.json()) as typeof body;
    t.is(b.status, 'degraded');
    t.is(b.components.chain.status, 'degraded');
    t.true((b.components.chain.detail?.oldestSeconds as number) >= 3600);

    const metrics = await (await fetch(`${server.huren.url}/metrics`, { headers: { authorization: `Bearer ${server.token}` } })).text();
    t.regex(metrics, /^huren_anchor_backlog 1$/m);
    const oldest = Number(/^huren_anchor_backlog_oldest_seconds (\d+)/m.exec(metrics)?.[1]);
    t.true(oldest >= 3600);
  } finally {
    await server.close();
  }
});

test('/readyz: a partner platform that does not answer makes it degraded, not unavailable', async (t) => {
  const server = await startTestServer();
  try {
    const auth = { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' };
    const identity = (await (await fetch(`${server.huren.url}/api/exchange/identity`)).json()) as Record<string, any>;
    const closed = await freePort();
    const put = await fetch(`${server.huren.url}/api/exchange/partners/foshan`, {
      method: 'PUT',
      headers: auth,
      body: JSON.stringify({
        name: '佛山市互认平台',
        city: '440600',
        coverage: ['440100'],
        fhirBase: `http://127.0.0.1:${closed}/fhir`,
        tokenUrl: `http://127.0.0.1:${closed}/auth/token`,
        clientId: 'huren-guangzhou',
        partnerClientId: 'huren-foshan',
        vcKey: identity.vcKey,
        chain: identity.chain,
        idKey: randomBytes(32).toString('hex'),
      }),
    });
    t.is(put.status, 200, await put.text());
    const res = await fetch(`${server.huren.url}/readyz`);
    t.is(res.status, 200, 'the instance still serves: checks answer without the partner');
    const body = (await res.json()) as { status: string; components: Record<string, { status: string; detail?: { partners?: Record<string, { up: boolean }> } }> };
    t.is(body.status, 'degraded');
    t.is(body.components.partners.status, 'degraded');
    t.deepEqual(body.components.partners.detail?.partners, { foshan: { up: false } });
  } finally {
    await server.close();
  }
});

test('/readyz is 503 with Retry-After when the database is gone', async (t) => {
  const server = await startTestServer();
  const { db } = server.huren;
  await server.huren.scheduler.stop();
  await db.close();
  try {
    const res = await fetch(`${server.huren.url}/readyz`);
    t.is(res.status, 503);
    t.truthy(res.headers.get('retry-after'));
    const body = (await res.json()) as { status: string; components: Record<string, { status: string }> };
    t.is(body.status, 'unavailable');
    t.is(body.components.database.status, 'down');
    // the process itself is alive: a restart is not what is needed
    t.is((await fetch(`${server.huren.url}/livez`)).status, 200);
  } finally {
    db.close = async () => undefined;
    await server.close();
  }
});

test('the metrics count every job tick by outcome and the monitors\' active alerts by level', async (t) => {
  const server = await startTestServer();
  try {
    const { scheduler, db } = server.huren;
    t.true(await scheduler.tick('db.analyze', new Date()));
    await db.query(
      `INSERT INTO monitoring_alert (institution, monitor, flow, level, since, changed_at, flag_id) VALUES ('org-1', 'interruption', 'lab', 3, now(), now(), 'f1'), ('org-2', 'interruption', 'lab', 3, now(), now(), 'f2'), ('org-3', 'timeliness', 'exam', 0, now(), now(), 'f3')`
    );
    const metrics = await (await fetch(`${server.huren.url}/metrics`, { headers: { authorization: `Bearer ${server.token}` } })).text();
    t.regex(metrics, /^huren_job_ticks_total\{job="db\.analyze",outcome="ran"\} 1$/m);
    t.regex(metrics, /^huren_job_last_success_timestamp_seconds\{job="db\.analyze"\} \d+/m);
    t.regex(metrics, /^huren_monitoring_alerts\{monitor="interruption",flow="lab",level="3"\} 2$/m);
    t.notRegex(metrics, /monitor="timeliness"/, 'a level-0 alert is no alert');
    t.notRegex(metrics, /org-1/, 'no institution in the metrics');
  } finally {
    await server.close();
  }
});

test('the shipped alert rules name only metrics the server exports', async (t) => {
  const rules = readFileSync(new URL('../deploy/prometheus/huren-alerts.yml', import.meta.url), 'utf8');
  const server = await startTestServer();
  try {
    const metrics = await (await fetch(`${server.huren.url}/metrics`, { headers: { authorization: `Bearer ${server.token}` } })).text();
    const exported = new Set([...metrics.matchAll(/^# TYPE (\S+) (\S+)/gm)].flatMap(([, name, type]) => (type === 'histogram' ? [`${name}_bucket`, `${name}_count`, `${name}_sum`] : [name])));
    const used = [...new Set([...rules.matchAll(/\b(huren_[a-z_]+)/g)].map((m) => m[1]))];
    t.true(used.length >= 5);
    t.deepEqual(used.filter((m) => !exported.has(m)), []);
  } finally {
    await server.close();
  }
});
