/**
 * Durability (docs/operations/emergency-plan.md, "实例进程崩溃"): the server process is killed with SIGKILL in the
 * middle of 300 concurrent report uploads. After a restart on the same store every upload that was
 * acknowledged is readable with all its results, no report is half-written (a report is there with every one of
 * its Observations, or not at all), and the anchors catch up: every acknowledged report becomes `consistent`.
 * The server runs as a child process (`server/main.ts`, as `npm start` runs it), on the test's store.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { reportBundle } from './helpers/chain.ts';
import { freePort } from './helpers/pg-cluster.ts';
import { ADMIN_DB_URL, storeKind } from './helpers/server.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_DB_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

test('kill -9 during 300 concurrent uploads: every acknowledged upload survives whole, nothing is half-written, the anchors catch up', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'huren-crash-'));
  const dbName = storeKind() === 'postgres' ? `huren_crash_${process.pid}_${randomBytes(3).toString('hex')}` : undefined;
  if (dbName) await admin(`CREATE DATABASE ${dbName}`);
  const databaseUrl = dbName ? Object.assign(new URL(ADMIN_DB_URL), { pathname: `/${dbName}` }).toString() : undefined;
  const token = randomBytes(16).toString('hex');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    HUREN_DATA_DIR: dataDir,
    HUREN_BOOTSTRAP_TOKEN: token,
    HUREN_EMBEDDED_RPC: 'off',
    HUREN_PLATFORM_ANCHOR_DELAY_SECONDS: '0',
    HUREN_ANCHOR_CRON: '*/2 * * * * *',
    LOG_LEVEL: 'error',
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : { DATABASE_URL: '' }),
  };
  let child: ChildProcess | undefined;
  const launch = async () => {
    child = spawn(process.execPath, ['--import=tsx', 'server/main.ts'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    for (let i = 0; i < 600; i++) {
      if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}`);
      if (await fetch(`${base}/readyz`).then((r) => r.status === 200, () => false)) return;
      await sleep(200);
    }
    throw new Error('the server did not become ready');
  };
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json', accept: 'application/fhir+json' };
  try {
    await launch();
    const uploads = Array.from({ length: 300 }, (_, i) => reportBundle(`crash-${i}`));
    const acknowledged = new Set<string>();
    let answered = 0;
    let killed = false;
    const statuses = new Map<number, number>();
    await Promise.all(
      uploads.map(async (u) => {
        const res = await fetch(`${base}/fhir`, { method: 'POST', headers, body: JSON.stringify(u.bundle) }).catch(() => undefined);
        statuses.set(res?.status ?? 0, (statuses.get(res?.status ?? 0) ?? 0) + 1);
        if (res?.status === 200) {
          acknowledged.add(u.key);
          await res.arrayBuffer().catch(() => undefined);
        }
        answered++;
        // the kill lands while the rest are in flight
        if (!killed && acknowledged.size >= 60) {
          killed = true;
          child!.kill('SIGKILL');
        }
      })
    );
    t.true(killed, `the server was killed during the uploads (answers: ${JSON.stringify([...statuses])})`);
    await new Promise<void>((resolve) => (child!.exitCode !== null || child!.signalCode !== null ? resolve() : child!.once('exit', () => resolve())));
    t.true(acknowledged.size < 300, `some uploads were cut off (${acknowledged.size} acknowledged of ${answered})`);

    await launch();
    const reportCount = async (key: string) => {
      const res = await fetch(`${base}/fhir/DiagnosticReport?identifier=https://his.gy1.example/report-id|LAB-${key}`, { headers });
      return ((await res.json()) as { total: number }).total;
    };
    const resultCount = async (key: string) => {
      const res = await fetch(`${base}/fhir/Observation?identifier=https://his.gy1.example/result-id|LAB-${key}-2823-3,https://his.gy1.example/result-id|LAB-${key}-2951-2`, { headers });
      return ((await res.json()) as { total: number }).total;
    };
    let lost = 0;
    let half = 0;
    for (const u of uploads) {
      const [reports, results] = [await reportCount(u.key), await resultCount(u.key)];
      if (acknowledged.has(u.key) && (reports !== 1 || results !== 2)) lost++;
      if (!(reports === 0 && results === 0) && !(reports === 1 && results === 2)) half++;
    }
    t.is(lost, 0, 'every acknowledged upload is readable with its results');
    t.is(half, 0, 'no upload is half-written');

    // the anchors catch up: the platform anchors what the killed process had not
    const ids: string[] = [];
    for (const key of acknowledged) {
      const res = await fetch(`${base}/fhir/DiagnosticReport?identifier=https://his.gy1.example/report-id|LAB-${key}&_elements=id`, { headers });
      ids.push(((await res.json()) as { entry: { resource: { id: string } }[] }).entry[0].resource.id);
    }
    const statusOf = async (id: string) => {
      const res = await fetch(`${base}/fhir/DiagnosticReport/${id}/$verify`, { headers });
      const body = (await res.json()) as { parameter?: { name: string; valueCode?: string; valueString?: string }[] };
      return body.parameter?.find((p) => p.name === 'status')?.valueCode ?? body.parameter?.find((p) => p.name === 'status')?.valueString;
    };
    let pending = ids;
    for (let round = 0; round < 90 && pending.length > 0; round++) {
      const next: string[] = [];
      for (const id of pending) if ((await statusOf(id)) !== 'consistent') next.push(id);
      pending = next;
      if (pending.length) await sleep(1000);
    }
    t.log(`${acknowledged.size} of 300 uploads acknowledged before the kill; after the restart 0 lost, 0 half-written, ${ids.length - pending.length} of ${ids.length} consistent with the chain`);
    t.deepEqual(pending, [], 'every acknowledged report is anchored and consistent after the restart');
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child!.once('exit', r));
    }
    rmSync(dataDir, { recursive: true, force: true });
    if (dbName) await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  }
});
