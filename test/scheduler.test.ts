/**
 * The scheduler (server/scheduler/): each tick of each job runs in exactly one server process. On both stores,
 * two schedulers on one database claim ticks against each other; on PostgreSQL, two real server processes
 * (server/main.ts) run side by side for two minutes with every schedule at its shortest while reports arrive
 * at both, and every tick of every job ran once, no batch was anchored twice, no statistics row is duplicated.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Scheduler, type SchedulerLogger } from '../server/scheduler/scheduler.ts';
import { ANCHORED_TOPIC } from '../server/ledger/evm/contract.ts';
import { deployContract, LEDGER_NAME, Node, platform, reportBundle, CHAIN_ID } from './helpers/chain.ts';
import { ADMIN_DB_URL, startTestServer, storeKind, type TestServer } from './helpers/server.ts';

const quiet: SchedulerLogger = { debug: () => undefined, error: () => undefined };

let s: TestServer;
test.before(async () => {
  s = await startTestServer();
});
test.after.always(async () => {
  await s?.close();
});

test('two schedulers on one database: a tick runs in one of them; the next tick may run in the other', async (t) => {
  const a = new Scheduler(s.huren.db, quiet, { holder: 'a' });
  const b = new Scheduler(s.huren.db, quiet, { holder: 'b' });
  const ran: string[] = [];
  for (const [sched, who] of [[a, 'a'], [b, 'b']] as const) {
    sched.register({ name: 'test.claim', cron: undefined, run: async (tick) => void ran.push(`${who}@${tick.toISOString()}`) });
  }
  const t1 = new Date('2026-12-03T08:00:00.250Z');
  const t1late = new Date('2026-12-03T08:00:00.900Z'); // the same tick seen by a process whose timer fired late
  const [ra, rb] = await Promise.all([a.tick('test.claim', t1), b.tick('test.claim', t1late)]);
  t.is(Number(ra) + Number(rb), 1, 'exactly one of them ran the tick');
  t.deepEqual(ran.map((r) => r.split('@')[1]), ['2026-12-03T08:00:00.000Z']);
  t.true(await b.tick('test.claim', new Date('2026-12-03T08:00:01.000Z')), 'the next tick is a new claim');
  const log = await a.runs('test.claim');
  t.deepEqual(log.map((r) => [r.tick, r.ok]), [['2026-12-03T08:00:00.000Z', true], ['2026-12-03T08:00:01.000Z', true]]);
});

test('a job still running in a process is not started again there; a failed run is logged as failed and the next tick runs', async (t) => {
  const sched = new Scheduler(s.huren.db, quiet, { holder: 'slow' });
  let release!: () => void;
  let entered!: () => void;
  const inside = new Promise<void>((r) => (entered = r));
  let runs = 0;
  sched.register({
    name: 'test.slow',
    cron: undefined,
    run: async () => {
      runs++;
      if (runs === 1) {
        entered();
        await new Promise<void>((r) => (release = r));
      }
      if (runs === 2) throw new Error('boom');
    },
  });
  const first = sched.tick('test.slow', new Date('2026-12-03T09:00:00Z'));
  await inside;
  t.false(await sched.tick('test.slow', new Date('2026-12-03T09:00:01Z')), 'busy: not stacked');
  release();
  t.true(await first);
  t.true(await sched.tick('test.slow', new Date('2026-12-03T09:00:02Z')), 'ran (and failed)');
  t.deepEqual((await sched.runs('test.slow')).map((r) => [r.tick.slice(11, 19), r.ok]), [['09:00:00', true], ['09:00:02', false]]);
  t.throws(() => sched.register({ name: 'test.slow', cron: undefined, run: async () => undefined }), { message: /registered already/ });
  const other = new Scheduler(s.huren.db, quiet);
  other.register({ name: 'test.bad-cron', cron: 'every minute', run: async () => undefined });
  t.throws(() => other.start(), { message: /not a valid cron/ });
  await other.stop();
});

// --- two server processes on one PostgreSQL database -----------------------------------------------------

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DURATION_MS = 120_000;
/** Every schedule at its shortest (node-schedule's six-field cron: seconds first). */
const SCHEDULES: Record<string, [string, string]> = {
  'provenance.anchor': ['HUREN_ANCHOR_CRON', '* * * * * *'],
  'provenance.verify': ['HUREN_VERIFY_CRON', '* * * * * *'],
  'provenance.sweep': ['HUREN_SWEEP_CRON', '*/2 * * * * *'],
  'provenance.deep-sweep': ['HUREN_DEEP_SWEEP_CRON', '*/5 * * * * *'],
  'provenance.statistics': ['HUREN_STATISTICS_CRON', '*/3 * * * * *'],
  'db.analyze': ['HUREN_ANALYZE_CRON', '*/2 * * * * *'],
};

interface Proc {
  child: ChildProcess;
  url: string;
  lines: Record<string, unknown>[];
}

function startProcess(env: Record<string, string>): Promise<Proc> {
  const child = spawn(process.execPath, ['--import=tsx', 'server/main.ts'], { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc: Proc = { child, url: '', lines: [] };
  let buffer = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server did not start within 90 s')), 90_000);
    child.once('exit', (code) => reject(new Error(`the server exited with ${code}`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const listening = /listening: (http:\/\/[^ ]+)\/fhir/.exec(line);
        if (listening) {
          proc.url = listening[1]!;
          clearTimeout(timer);
          resolve(proc);
        }
        if (line.startsWith('{')) proc.lines.push(JSON.parse(line) as Record<string, unknown>);
      }
    });
    child.stderr!.resume();
  });
}

function stopProcess(p: Proc): Promise<void> {
  return new Promise((resolve) => {
    if (p.child.exitCode !== null) return resolve();
    p.child.once('exit', () => resolve());
    p.child.kill('SIGTERM');
  });
}

if (storeKind() === 'postgres') {
  test('two server processes on one database for two minutes: every tick of every job ran once, no batch anchored twice, no statistics row twice', async (t) => {
    t.timeout(300_000);
    await twoProcesses(t).catch((e: Error) => {
      console.error('two-process test failed:', e.stack);
      throw e;
    });
  });
}
if (storeKind() !== 'postgres') {
  console.log('scheduler: the two-process test runs on PostgreSQL only (PGlite is one process)');
}

async function twoProcesses(t: import('ava').ExecutionContext): Promise<void> {
  {
    const node = new Node('node-1', {});
    await node.start();
    const contract = await deployContract(node);
    const dbName = `huren_test_sched_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: ADMIN_DB_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${dbName}`);
    const url = new URL(ADMIN_DB_URL);
    url.pathname = `/${dbName}`;
    const dataDir = mkdtempSync(join(tmpdir(), 'huren-sched-'));
    const token = randomBytes(16).toString('hex');
    const env: Record<string, string> = {
      DATABASE_URL: url.toString(),
      // two single server processes (HUREN_WORKERS would otherwise fork one worker per core in each)
      HUREN_WORKERS: '1',
      HUREN_DATA_DIR: dataDir,
      HUREN_BOOTSTRAP_TOKEN: token,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'debug',
      HUREN_LEDGER: 'evm',
      HUREN_LEDGER_NAME: LEDGER_NAME,
      HUREN_EVM_URLS: node.url,
      HUREN_EVM_CONTRACT: contract,
      HUREN_EVM_KEY: platform.privateKey,
      HUREN_EVM_CHAIN_ID: String(CHAIN_ID),
      HUREN_PLATFORM_ANCHOR_DELAY_SECONDS: '0',
      HUREN_ANCHOR_RETRY_SECONDS: '1',
      HUREN_ANCHOR_RETRY_MAX_SECONDS: '2',
      ...Object.fromEntries(Object.values(SCHEDULES)),
    };
    const procs: Proc[] = [];
    try {
      // the first one migrates; the second starts on the migrated database
      procs.push(await startProcess(env));
      procs.push(await startProcess(env));
      const started = Date.now();
      let uploads = 0;
      let k = 0;
      while (Date.now() - started < DURATION_MS) {
        const target = procs[k % 2]!;
        const bundle = reportBundle(`sched-${k++}`).bundle;
        const res = await fetch(`${target.url}/fhir`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' }, body: JSON.stringify(bundle) });
        if (res.status === 200) uploads++;
        await res.arrayBuffer();
        await new Promise((r) => setTimeout(r, 500));
      }
      t.true(uploads > 100, `${uploads} reports uploaded`);
      // let the last anchors land (the schedules keep running), then stop both
      const probe = new pg.Client({ connectionString: url.toString() });
      await probe.connect();
      try {
        for (let i = 0; i < 120; i++) {
          const left = await probe.query<{ n: string }>(`SELECT count(*) AS n FROM anchor_outbox WHERE state <> 'anchored'`);
          if (Number(left.rows[0]!.n) === 0) break;
          await new Promise((r) => setTimeout(r, 1_000));
        }
      } finally {
        await probe.end();
      }
    } finally {
      await Promise.all(procs.map(stopProcess));
    }

    // what each process did with each tick, from its own log
    const outcomes = new Map<string, { holder: string; outcome: string }[]>();
    for (const p of procs) {
      for (const l of p.lines.filter((x) => x.msg === 'scheduled tick')) {
        const key = `${l.job}@${l.tick}`;
        outcomes.set(key, [...(outcomes.get(key) ?? []), { holder: String(l.holder), outcome: String(l.outcome) }]);
      }
    }
    const holders = new Set<string>();
    for (const job of Object.keys(SCHEDULES)) {
      const ticks = [...outcomes.entries()].filter(([key]) => key.startsWith(`${job}@`));
      // ticks both processes saw (not the seconds when one was still starting or already stopping)
      const shared = ticks.filter(([, seen]) => seen.length === 2);
      const ran = shared.filter(([, seen]) => seen.some((x) => x.outcome === 'ran' || x.outcome === 'failed'));
      const twice = ticks.filter(([, seen]) => seen.filter((x) => x.outcome === 'ran' || x.outcome === 'failed').length > 1);
      const lost = shared.filter(([, seen]) => !seen.some((x) => x.outcome === 'ran' || x.outcome === 'failed') && !seen.every((x) => x.outcome === 'busy'));
      t.deepEqual(twice.map(([k]) => k), [], `${job}: no tick ran twice`);
      t.deepEqual(lost.map(([k, seen]) => `${k} ${JSON.stringify(seen)}`), [], `${job}: every tick ran, unless both processes were still busy with the previous one`);
      t.true(ran.length >= 5, `${job}: ${ran.length} ticks ran of ${shared.length} seen by both`);
      for (const [, seen] of ran) for (const x of seen) if (x.outcome === 'ran') holders.add(x.holder);
    }
    t.is(holders.size, 2, 'both processes ran ticks');

    const db = new pg.Client({ connectionString: url.toString() });
    await db.connect();
    try {
      // the run log agrees with the processes' logs
      const runs = await db.query<{ job: string; tick: Date; holder: string }>('SELECT job, tick, holder FROM scheduled_run');
      for (const r of runs.rows) {
        const tick = new Date(r.tick).toISOString();
        const seen = outcomes.get(`${r.job}@${tick}`) ?? [];
        t.true(seen.some((x) => x.holder === r.holder && (x.outcome === 'ran' || x.outcome === 'failed')) || seen.length === 0, `${r.job}@${tick} ran where the log says`);
      }
      // anchoring: every uploaded report's record was anchored, each batch exactly once on the chain
      const batches = await db.query<{ n: string; anchored: string }>(`SELECT count(*) AS n, count(*) FILTER (WHERE state = 'anchored') AS anchored FROM anchor_batch`);
      const queued = await db.query<{ state: string; n: string }>(`SELECT state, count(*) AS n FROM anchor_outbox WHERE state <> 'anchored' GROUP BY state`);
      const errors = await db.query<{ state: string; last_error: string | null }>(`SELECT state, last_error FROM anchor_batch WHERE state <> 'anchored' LIMIT 5`);
      t.deepEqual(queued.rows, [], `nothing is left in the outbox (batches not anchored: ${JSON.stringify(errors.rows)})`);
      const logs = (await (
        await fetch(node.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_getLogs', params: [{ address: contract, fromBlock: '0x0', toBlock: 'latest', topics: [ANCHORED_TOPIC] }] }) })
      ).json()) as { result: { topics: string[] }[] };
      const batchIds = logs.result.map((l) => l.topics[2]);
      t.is(new Set(batchIds).size, batchIds.length, 'no batch anchored twice');
      t.is(batchIds.length, Number(batches.rows[0]!.anchored), 'one chain transaction per anchored batch');
      t.true(batchIds.length > 5, `${batchIds.length} batches anchored`);
      // statistics: one MeasureReport per institution and day, however many ticks wrote it
      const reports = await db.query<{ n: string; distinct_days: string }>(
        `SELECT count(*) AS n, count(DISTINCT (content->'identifier'->0->>'value')) AS distinct_days FROM resource WHERE type = 'MeasureReport' AND NOT deleted`
      );
      t.true(Number(reports.rows[0]!.n) >= 1, 'statistics were written');
      t.is(reports.rows[0]!.n, reports.rows[0]!.distinct_days, 'no statistics row twice');
    } finally {
      await db.end();
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await admin.end();
      await node.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }
}
