/**
 * Every core busy (HUREN_WORKERS, server/workers.ts): several server processes behind one port on PostgreSQL
 * with an external chain; a worker that dies is replaced while the others keep answering; PGlite and the
 * embedded chain stay single-process and say so.
 */
import test from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { loadConfig } from '../server/config.ts';
import { planWorkers } from '../server/workers.ts';
import { CHAIN_ID, deployContract, Node, platform } from './helpers/chain.ts';
import { freePort } from './helpers/pg-cluster.ts';
import { ADMIN_DB_URL, storeKind } from './helpers/server.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const evm = { HUREN_LEDGER: 'evm', HUREN_EVM_URLS: 'http://127.0.0.1:1', HUREN_EVM_CONTRACT: `0x${'1'.repeat(40)}` };

test('the worker count: the cores by default, HUREN_WORKERS when set, one for PGlite or the embedded chain (with the reason)', (t) => {
  const shared = loadConfig({ ...evm, DATABASE_URL: 'postgres://db/huren' });
  t.deepEqual(planWorkers(shared, undefined, 4), { workers: 4 });
  t.deepEqual(planWorkers(shared, '3', 4), { workers: 3 });
  t.deepEqual(planWorkers(shared, '1', 4), { workers: 1 });
  t.regex(planWorkers(loadConfig(evm), '4', 4).reason ?? '', /PGlite is single-process/);
  t.is(planWorkers(loadConfig(evm), '4', 4).workers, 1);
  const embedded = planWorkers(loadConfig({ DATABASE_URL: 'postgres://db/huren' }), '4', 4);
  t.is(embedded.workers, 1);
  t.regex(embedded.reason ?? '', /embedded chain/);
  for (const bad of ['0', '-1', '2.5', 'many', '1000']) t.throws(() => planWorkers(shared, bad, 4), { message: /HUREN_WORKERS must be a whole number/ });
});

if (storeKind() === 'postgres') {
  test('two workers serve one port; a killed worker is replaced while the other answers', async (t) => {
    const node = new Node('gz-a', {});
    await node.start();
    const contract = await deployContract(node);
    const dbName = `huren_workers_${process.pid}_${randomBytes(3).toString('hex')}`;
    const adminClient = new pg.Client({ connectionString: ADMIN_DB_URL });
    await adminClient.connect();
    await adminClient.query(`CREATE DATABASE ${dbName}`);
    const dataDir = mkdtempSync(join(tmpdir(), 'huren-workers-'));
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const token = randomBytes(16).toString('hex');
    let primary: ChildProcess | undefined;
    try {
      primary = spawn(process.execPath, ['--import=tsx', 'server/main.ts'], {
        env: {
          ...process.env,
          PORT: String(port),
          HOST: '127.0.0.1',
          HUREN_DATA_DIR: dataDir,
          DATABASE_URL: Object.assign(new URL(ADMIN_DB_URL), { pathname: `/${dbName}` }).toString(),
          HUREN_BOOTSTRAP_TOKEN: token,
          HUREN_WORKERS: '2',
          HUREN_LEDGER: 'evm',
          HUREN_EVM_URLS: node.url,
          HUREN_EVM_CONTRACT: contract,
          HUREN_EVM_KEY: platform.privateKey,
          HUREN_EVM_CHAIN_ID: String(CHAIN_ID),
          LOG_LEVEL: 'error',
        },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      // pgrep answers 1 when the primary has no children yet
      const children = () => (spawnSync('pgrep', ['-P', String(primary!.pid)], { encoding: 'utf8' }).stdout ?? '').trim().split('\n').filter(Boolean).map(Number)
          // the primary's other children (tsx's esbuild service) are not workers
          .filter((pid) => { try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('server/main.ts'); } catch { return false; } });
      for (let i = 0; i < 300 && !(children().length === 2 && (await startTimes(base, token, 8)).size === 2); i++) await sleep(300);
      const first = children();
      t.is(first.length, 2, 'two worker processes');
      t.is((await startTimes(base, token, 8)).size, 2, 'both answer on the one port');

      process.kill(first[0], 'SIGKILL');
      // the primary learns of the death at once and hands new connections to the live worker only
      await sleep(300);
      let refused = 0;
      for (let i = 0; i < 20; i++) {
        const ok = (await get(`${base}/fhir/metadata`)).status === 200;
        if (!ok) refused++;
        await sleep(100);
      }
      t.is(refused, 0, 'the other worker answered while one was down');
      let replaced: number[] = [];
      for (let i = 0; i < 300; i++) {
        replaced = children();
        if (replaced.length === 2 && !replaced.includes(first[0]) && (await startTimes(base, token, 8)).size === 2) break;
        await sleep(300);
      }
      t.is(replaced.length, 2);
      t.false(replaced.includes(first[0]), 'the killed worker was replaced by a new process');
    } finally {
      if (primary && primary.exitCode === null) {
        primary.kill('SIGTERM');
        await new Promise((r) => primary!.once('exit', r));
      }
      await adminClient.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await adminClient.end();
      await node.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('a worker that cannot start is not started again for ever: the primary stops with the error', async (t) => {
    // a database that does not exist: every worker would fail the same way at start-up
    const dataDir = mkdtempSync(join(tmpdir(), 'huren-workers-'));
    const primary = spawn(process.execPath, ['--import=tsx', 'server/main.ts'], {
      env: {
        ...process.env,
        PORT: String(await freePort()),
        HOST: '127.0.0.1',
        HUREN_DATA_DIR: dataDir,
        DATABASE_URL: Object.assign(new URL(ADMIN_DB_URL), { pathname: `/huren_missing_${randomBytes(4).toString('hex')}` }).toString(),
        HUREN_BOOTSTRAP_TOKEN: randomBytes(16).toString('hex'),
        HUREN_WORKERS: '2',
        ...evm,
        HUREN_EVM_KEY: platform.privateKey,
        HUREN_EVM_CHAIN_ID: String(CHAIN_ID),
        LOG_LEVEL: 'error',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    primary.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    try {
      const code = await new Promise<number | null | 'running'>((resolve) => {
        primary.once('exit', (c) => resolve(c));
        setTimeout(() => resolve('running'), 90_000);
      });
      t.is(code, 1, `the primary exits with an error instead of forking workers once a second: ${stderr.slice(-600)}`);
      t.is(stderr.match(/before it could serve/g)?.length, 1, stderr.slice(-600));
      t.false(/; starting another/.test(stderr), 'no second attempt');
    } finally {
      if (primary.exitCode === null) {
        primary.kill('SIGTERM');
        await new Promise((r) => primary.once('exit', r));
      }
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
} else {
  console.log('workers: the multi-process test runs on the PostgreSQL store (HUREN_TEST_DB=postgres); PGlite is single-process');
}

/** The distinct process start times among `n` metrics scrapes on fresh connections (one per process answering). */
async function startTimes(base: string, token: string, n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const { status, text } = await get(`${base}/metrics`, { authorization: `Bearer ${token}` });
    if (status !== 200) continue;
    const m = /^huren_process_start_time_seconds (\S+)/m.exec(text);
    if (m) seen.add(m[1]);
  }
  return seen;
}

/** A GET on a new connection each time (no keep-alive: the cluster hands each connection to the next worker). */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const req = httpGet(url, { agent: false, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', () => resolve({ status: 0, text: '' }));
    });
    req.on('error', () => resolve({ status: 0, text: '' }));
    req.setTimeout(10_000, () => req.destroy());
  });
}
