/**
 * High availability on PostgreSQL (docs/operations/): reads that may be slightly stale on a streaming replica
 * (DATABASE_READ_URL), and a failover — the primary lost, the replica promoted — that the servers ride out by
 * themselves: 503 with Retry-After while no primary is reachable, no acknowledged write lost. The clusters are
 * the test's own (Debian's PostgreSQL binaries, test/helpers/pg-cluster.ts), never the shared test server.
 */
import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, splitHosts } from '../server/db/database.ts';
import { serverBinaries, startReplicatedClusters } from './helpers/pg-cluster.ts';
import { startTestServer, storeKind, type TestServer } from './helpers/server.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a connection string naming several hosts is one per host, with the same user, database and options', (t) => {
  t.deepEqual(splitHosts('postgres://app:pw@db1:5432,db2:5433/huren?target_session_attrs=read-write&sslmode=require'), [
    'postgres://app:pw@db1:5432/huren?sslmode=require',
    'postgres://app:pw@db2:5433/huren?sslmode=require',
  ]);
  t.deepEqual(splitHosts('postgres://db1/huren?target_session_attrs=read-write'), ['postgres://db1/huren']);
  t.deepEqual(splitHosts('postgres://u@h:1/d'), ['postgres://u@h:1/d']);
});

test('a read replica needs a PostgreSQL primary: DATABASE_READ_URL alone is refused', async (t) => {
  await t.throwsAsync(openDatabase({ readUrl: 'postgres://127.0.0.1:5432/x' }), { message: /DATABASE_READ_URL needs DATABASE_URL/ });
});

const bin = serverBinaries();
if (storeKind() !== 'postgres') {
  console.log('replication: the replica and failover tests run on the PostgreSQL store (HUREN_TEST_DB=postgres); PGlite has no replicas');
} else {
  const patient = (n: string) => ({ resourceType: 'Patient', identifier: [{ system: 'urn:huren:test:ha', value: n }], gender: 'female' });

  async function serverOn(databaseUrl: string, databaseReadUrl?: string): Promise<TestServer> {
    return startTestServer({ ...(databaseReadUrl ? { databaseReadUrl } : {}) }, { store: { dataDir: mkdtempSync(join(tmpdir(), 'huren-ha-')), databaseUrl } });
  }

  test.serial('reads that may be stale go to the streaming replica, writes to the primary; a replica down is not an outage', async (t) => {
    t.truthy(bin, 'Debian PostgreSQL server binaries (initdb, pg_basebackup) under /usr/lib/postgresql');
    const { primary, replicas, destroy } = await startReplicatedClusters(bin!, { replicas: 1, synchronous: true });
    const [replica] = replicas;
    const server = await serverOn(primary.url, replica.url);
    try {
      const created = await server.fhir('Patient', { method: 'POST', json: patient('r-1') });
      t.is(created.status, 201);
      const { id } = (await created.json()) as { id: string };
      const found = async () => {
        const res = await server.fhir('Patient?identifier=urn:huren:test:ha|r-1');
        return { status: res.status, total: ((await res.json()) as { total?: number }).total };
      };
      let seen = await found();
      for (let i = 0; i < 50 && seen.total !== 1; i++) seen = ((await sleep(100)), await found());
      t.deepEqual(seen, { status: 200, total: 1 }, 'the replica has the write');

      // the replica down: its reads go to the primary
      replica.stop('fast');
      t.deepEqual(await found(), { status: 200, total: 1 });
      replica.start();
      for (let i = 0; i < 100; i++) {
        const [{ n }] = await primary.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'`);
        if (n === 1) break;
        await sleep(100);
      }

      // the primary down: the search is answered by the replica alone; writes and reads by id are 503s to retry
      primary.stop('immediate');
      t.deepEqual(await found(), { status: 200, total: 1 }, 'search answered from the replica');
      const write = await server.fhir('Patient', { method: 'POST', json: patient('r-2') });
      t.is(write.status, 503);
      t.truthy(write.headers.get('retry-after'));
      const outcome = (await write.json()) as { resourceType: string; issue: { code: string }[] };
      t.is(outcome.resourceType, 'OperationOutcome');
      t.is(outcome.issue[0].code, 'transient');
      t.is((await server.fhir(`Patient/${id}`)).status, 503, 'a read by id goes to the primary (read-your-writes)');
    } finally {
      await server.close();
      destroy();
    }
  });

  test.serial('failover: the primary killed during concurrent writes, the replica promoted — the server finds the new primary, no acknowledged write is lost', async (t) => {
    t.truthy(bin, 'Debian PostgreSQL server binaries (initdb, pg_basebackup) under /usr/lib/postgresql');
    const { primary, replicas, destroy } = await startReplicatedClusters(bin!, { replicas: 1, synchronous: true });
    const [replica] = replicas;
    const hosts = `postgres://postgres@127.0.0.1:${primary.port},127.0.0.1:${replica.port}/huren?target_session_attrs=read-write`;
    const server = await serverOn(hosts);
    const acknowledged: string[] = [];
    const statuses = new Map<number, number>();
    let unavailableWithoutRetryAfter = 0;
    let hung = 0;
    let running = true;
    let n = 0;
    const writer = async () => {
      while (running) {
        const res = await server.fhir('Patient', { method: 'POST', json: patient(`f-${n++}`), signal: AbortSignal.timeout(15_000) }).catch(() => undefined);
        if (!res) {
          hung++;
          continue;
        }
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 201) acknowledged.push(((await res.json()) as { id: string }).id);
        else {
          if (res.status === 503 && !res.headers.get('retry-after')) unavailableWithoutRetryAfter++;
          await res.arrayBuffer();
          await sleep(50);
        }
      }
    };
    try {
      const writers = [writer(), writer(), writer(), writer()];
      await sleep(1500);
      const beforeLoss = acknowledged.length;
      primary.stop('immediate');
      await sleep(1000);
      replica.promote();
      // the promoted replica has no standby of its own: it stops waiting for one (Patroni does the same when
      // the last synchronous standby is gone and synchronous_mode_strict is off)
      await replica.query(`ALTER SYSTEM SET synchronous_standby_names = ''`);
      await replica.query('SELECT pg_reload_conf()');
      // writes resume on the promoted replica by themselves
      const resumedFrom = acknowledged.length;
      for (let i = 0; i < 200 && acknowledged.length <= resumedFrom + 5; i++) await sleep(100);
      running = false;
      await Promise.all(writers);
      t.true(beforeLoss > 0, 'writes were acknowledged before the loss');
      t.true(acknowledged.length > resumedFrom + 5, 'writes were acknowledged after the promotion');
      t.true((statuses.get(503) ?? 0) > 0, 'the outage was answered 503');
      t.is(unavailableWithoutRetryAfter, 0, 'every 503 says when to retry');
      t.is(hung, 0, 'no request went unanswered');
      t.deepEqual([...statuses.keys()].filter((s) => s !== 201 && s !== 503), [], 'nothing but 201 and 503');
      let lost = 0;
      for (const id of acknowledged) if ((await server.fhir(`Patient/${id}`)).status !== 200) lost++;
      t.log(`acknowledged ${acknowledged.length} writes (${beforeLoss} before the loss), ${statuses.get(503) ?? 0} × 503 during the failover, ${lost} lost`);
      t.is(lost, 0);
    } finally {
      running = false;
      await server.close();
      destroy();
    }
  });
}
