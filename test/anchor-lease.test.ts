/**
 * Crash recovery of the anchoring batch (issue 12): a worker holds the batch it anchors by a short lease that
 * its heartbeat renews for as long as it lives, however long the chain takes; a worker that died leaves its
 * batch to the next run as soon as the lease expires — seconds, not a fixed 300 s.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import { startTestServer, storeKind, type TestServer } from './helpers/server.ts';
import { deployContract, ledgerConfig, Node, platform, testProvenanceConfig } from './helpers/chain.ts';
import { enqueue } from '../server/provenance/outbox.ts';

const LEASE = 2;
const chainDir = mkdtempSync(join(tmpdir(), 'huren-chain-'));
const node = new Node('node-lease', { database: { dbPath: chainDir } });
let contract = '';

test.before(async () => {
  await node.start();
  contract = await deployContract(node);
});
test.after.always(async () => {
  await node.close();
  rmSync(chainDir, { recursive: true, force: true });
});

const digest = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A chain endpoint that accepts connections and never answers; counts the connections. */
async function hungNode(): Promise<{ url: string; connections: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const hung: Server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(hung.address() as AddressInfo).port}`,
    connections: () => connections,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => hung.close(() => resolve()));
    },
  };
}

async function batchState(s: TestServer): Promise<{ state: string; lease_until: string | null; attempts: number; held: boolean }> {
  const [row] = await s.huren.db.query<{ state: string; lease_until: string | null; attempts: number; held: boolean }>(
    'SELECT state, lease_until::text AS lease_until, attempts, coalesce(lease_until > now(), false) AS held FROM anchor_batch ORDER BY created_at DESC LIMIT 1'
  );
  return row;
}

test.serial('a batch whose worker died mid-anchoring is taken over once its short lease expires', async (t) => {
  const s = await startTestServer({ ledger: ledgerConfig([node], contract), provenance: testProvenanceConfig({ leaseSeconds: LEASE }), logLevel: 'error' });
  try {
    await enqueue(s.huren.db, 'lease-test', 'k-1', digest('one'));
    // the batch is formed and claimed by a worker that dies before the chain answers: its lease stands, no
    // heartbeat renews it (the claim as outbox.ts makes it, left behind)
    await node.stop();
    const failed = await s.huren.provenance.anchorNow({ force: true });
    t.is(failed.formed, 1);
    t.is(failed.anchored, 0);
    await s.huren.db.query(`UPDATE anchor_batch SET lease_until = now() + make_interval(secs => $1), attempts = attempts + 1`, [LEASE]);
    await node.start();
    const whileHeld = await s.huren.provenance.anchorNow({ force: true });
    t.is(whileHeld.anchored, 0, 'the dead worker\'s lease still holds the batch');
    await sleep(LEASE * 1000 + 300);
    // (on a loaded machine the chain may miss the ledger's timeout once: the batch is retried, not lost)
    let after = await s.huren.provenance.anchorNow({ force: true });
    for (let i = 0; i < 10 && after.anchored === 0 && after.failed > 0; i++) after = await s.huren.provenance.anchorNow({ force: true });
    t.is(after.anchored, 1, 'taken over after the lease expired');
    t.is((await batchState(s)).state, 'anchored');
  } finally {
    await s.close();
  }
});

test.serial('a live worker keeps its batch by heartbeat while the chain is slow, longer than the lease', async (t) => {
  // a node that accepts connections and never answers (a hung chain endpoint): the anchor waits for the
  // ledger's request timeout, three leases long
  const sockets = new Set<Socket>();
  const hung: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', () => resolve()));
  const url = `http://127.0.0.1:${(hung.address() as AddressInfo).port}`;
  const ledger = ledgerConfig([node], contract);
  ledger.evm = { ...ledger.evm!, nodes: [{ name: 'hung', url }], timeoutMs: LEASE * 3000 };
  const s = await startTestServer({ ledger, provenance: testProvenanceConfig({ leaseSeconds: LEASE }), logLevel: 'error' });
  try {
    await enqueue(s.huren.db, 'lease-test', 'k-2', digest('two'));
    const run = s.huren.provenance.anchorNow({ force: true });
    await sleep(500);
    const first = await batchState(s);
    t.true(first.held);
    await sleep(LEASE * 1000 + 1000);
    const later = await batchState(s);
    t.is(later.state, 'pending');
    t.true(later.held, 'still held after more than one lease: renewed by the heartbeat');
    t.true(later.lease_until! > first.lease_until!);
    t.is(later.attempts, first.attempts, 'nobody else claimed it');
    const result = await run;
    t.is(result.failed, 1); // the hung node timed out: the batch waits for a retry, released
    t.false((await batchState(s)).held);
  } finally {
    await s.close();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => hung.close(() => resolve()));
  }
});

test.serial('a server killed (SIGKILL) in the middle of anchoring: the next server takes its batch over once the short lease runs out', async (t) => {
  const config = () => ({ ledger: ledgerConfig([node], contract), provenance: testProvenanceConfig({ leaseSeconds: LEASE }), logLevel: 'error' as const });
  const first = await startTestServer(config(), { persistent: storeKind() === 'pglite' });
  await enqueue(first.huren.db, 'lease-test', 'k-3', digest('three'));
  await first.close({ keepStore: true });
  // a server process (npm start's entry point) whose chain never answers: it forms the batch, claims it, and
  // hangs in the anchor transaction, its heartbeat renewing the lease — until it is killed
  const hung = await hungNode();
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: new URL('..', import.meta.url).pathname,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PORT: '0',
      HUREN_DATA_DIR: first.store.dataDir,
      ...(first.store.databaseUrl ? { DATABASE_URL: first.store.databaseUrl } : {}),
      HUREN_BOOTSTRAP_TOKEN: 'lease-test-token-0123456789abcdef',
      HUREN_EMBEDDED_RPC: 'off',
      HUREN_LEDGER: 'evm',
      HUREN_WORKERS: '1',
      HUREN_LEDGER_NAME: 'gz-test-chain',
      HUREN_EVM_URLS: `hung=${hung.url}`,
      HUREN_EVM_CONTRACT: contract,
      HUREN_EVM_KEY: platform.privateKey,
      HUREN_EVM_TIMEOUT_MS: '600000',
      HUREN_ANCHOR_CRON: '* * * * * *',
      HUREN_ANCHOR_LEASE_SECONDS: String(LEASE),
      HUREN_SWEEP_CRON: 'off',
      HUREN_DEEP_SWEEP_CRON: 'off',
      LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  let second: TestServer | undefined;
  try {
    // (a loaded machine may take a minute or two to start a server process)
    for (let i = 0; i < 720 && hung.connections() === 0 && child.exitCode === null; i++) await sleep(250);
    t.true(hung.connections() > 0, `the killed server was anchoring (it reached the chain); exit code ${child.exitCode}: ${out.slice(-1500)}`);
    await sleep(LEASE * 1000 + 3000); // the anchor tick after its first chain call (a probe, perhaps) has claimed; the heartbeat holds it past one lease
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    second = await startTestServer(config(), { store: first.store });
    const claimed = await batchState(second);
    t.is(claimed.state, 'pending');
    t.true(claimed.attempts >= 1, 'the killed server had claimed the batch');
    // the next server retries on its schedule; here by hand, until the dead server's lease has run out
    let result = { anchored: 0 };
    for (let i = 0; i < 120 && result.anchored === 0; i++) {
      result = await second.huren.provenance.anchorNow({ force: true });
      if (result.anchored === 0) await sleep(250);
    }
    t.is(result.anchored, 1, 'taken over after the short lease, not a fixed 300 s');
    const after = await batchState(second);
    t.is(after.state, 'anchored');
    t.is(after.attempts, claimed.attempts + 1);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await second?.close();
    if (!second) await first.close().catch(() => undefined);
    await hung.close();
  }
});
