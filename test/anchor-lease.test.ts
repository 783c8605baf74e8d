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
import { startTestServer, type TestServer } from './helpers/server.ts';
import { deployContract, ledgerConfig, Node, testProvenanceConfig } from './helpers/chain.ts';
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
    const after = await s.huren.provenance.anchorNow({ force: true });
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
