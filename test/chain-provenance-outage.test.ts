/**
 * Must-show 3 of issue 5: the chain stops while reports and checks keep flowing. Uploads still succeed at
 * once (nothing on the upload path waits for the chain), checks answer `pending` instead of failing, the
 * platform's anchoring fails and backs off, the server even restarts in between — and once the chain is back
 * everything is anchored and verified by the retries alone, with nothing lost.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  anchorOf,
  deployContract,
  fingerprint,
  institutionLedger,
  ledgerConfig,
  Node,
  reportBundle,
  testProvenanceConfig,
  withProvenance,
} from './helpers/chain.ts';

const chainDir = mkdtempSync(join(tmpdir(), 'huren-chain-'));
const node = new Node('node-1', { database: { dbPath: chainDir } });
let contract = '';
let s: TestServer;

const logs: string[] = [];
const logStream = new Writable({
  write(chunk, _enc, cb) {
    logs.push(String(chunk));
    cb();
  },
});
const config = () => ({ ledger: ledgerConfig([node], contract), provenance: testProvenanceConfig(), logLevel: 'info' });

test.before(async () => {
  await node.start();
  contract = await deployContract(node);
  s = await startTestServer(config(), { persistent: true, logStream });
});

test.after.always(async () => {
  await s?.close();
  await node.close();
  rmSync(chainDir, { recursive: true, force: true });
});

const param = (p: any, name: string) => (p.parameter ?? p.part)?.find((x: any) => x.name === name);
const value = (x: any) => (x ? (x.valueCode ?? x.valueString ?? x.valueInteger ?? x.valueBoolean) : undefined);
const reportIdOf = (response: any): string =>
  response.entry.map((e: any) => e.fullUrl as string).find((u: string) => u?.includes('/DiagnosticReport/'))!.split('/DiagnosticReport/')[1]!;

async function until(fn: () => Promise<boolean>, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function statuses(): Promise<Record<string, number>> {
  const rows = await s.huren.db.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM report_version WHERE current GROUP BY status');
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

test.serial('the chain stops while uploads and checks flow; nothing is lost, and everything is anchored once it is back', async (t) => {
  // before the outage the institution anchors some reports it will upload later
  const hospital = institutionLedger(node, contract);
  const selfAnchored = [0, 1, 2].map((i) => reportBundle(`self-${i}`));
  const fps = selfAnchored.map((r) => fingerprint(r.bundle));
  const receipt = await hospital.anchor({ records: fps });
  await hospital.close();
  const warm = await s.fhir('', { method: 'POST', json: reportBundle('warm-up').bundle });
  t.is(warm.status, 200);

  await node.stop(); // ------------------------------------------------------------------ the chain is down

  const ids: string[] = [];
  const times: number[] = [];
  const upload = async (bundle: unknown) => {
    const t0 = performance.now();
    const res = await s.fhir('', { method: 'POST', json: bundle });
    times.push(performance.now() - t0);
    t.is(res.status, 200, 'an upload never fails because of the chain');
    ids.push(reportIdOf(await res.json()));
  };
  for (const [i, r] of selfAnchored.entries()) await upload(withProvenance(r, anchorOf(receipt, i, fps[i]!)));
  for (let i = 0; i < 6; i++) await upload(reportBundle(`down-${i}`).bundle);
  t.true(Math.max(...times) < 3000, `uploads do not wait for the chain (slowest ${Math.round(Math.max(...times))} ms)`);

  // checks keep flowing: recognition records are written, $verify answers pending, $trace says the chain is down
  const [patient] = await s.huren.db.query<{ id: string }>("SELECT id FROM resource WHERE type = 'Patient' LIMIT 1");
  for (let i = 0; i < 3; i++) {
    const issue = await s.fhir('DetectedIssue', {
      method: 'POST',
      json: { resourceType: 'DetectedIssue', status: 'final', patient: { reference: `Patient/${patient!.id}` }, detail: `提醒 ${i}`, implicated: [{ reference: `DiagnosticReport/${ids[i]}` }] },
    });
    t.is(issue.status, 201);
  }
  const verify = await s.fhir(`DiagnosticReport/${ids[0]}/$verify`);
  t.is(verify.status, 200);
  const v = (await verify.json()) as any;
  t.is(value(param(v, 'status')), 'pending');
  t.regex(value(param(v, 'reason')), /chain|node/);
  const traced = await s.fhir(`DiagnosticReport/${ids[0]}/$trace`);
  t.is(traced.status, 200);

  const failedRun = await s.huren.provenance.anchorNow();
  t.is(failedRun.anchored, 0);
  t.is(failedRun.failed, 1, 'the batch failed and waits for its retry');
  const waiting = await s.huren.provenance.outbox();
  t.is(waiting.anchored, 0);
  t.is(waiting.queued + waiting.batched, 7 + 3, 'the warm-up and six reports, three recognition records');
  t.deepEqual(await statuses(), { pending: 10 });

  // the server restarts during the outage: nothing is lost
  const store = s.store;
  await s.close({ keepStore: true });
  s = await startTestServer(config(), { store, logStream });
  t.deepEqual(await s.huren.provenance.outbox(), waiting);
  t.deepEqual(await statuses(), { pending: 10 });
  const upload2 = await s.fhir('', { method: 'POST', json: reportBundle('after-restart').bundle });
  t.is(upload2.status, 200);
  const again = await s.huren.provenance.anchorNow(); // still down: fails, and arms the retry with backoff
  t.is(again.failed, 1);

  await node.start(); // ----------------------------------------------------------------- the chain is back

  // the retries (backoff) and the verifier's timer do the rest, without a manual trigger
  await until(async () => {
    const o = await s.huren.provenance.outbox();
    const st = await statuses();
    return o.queued === 0 && o.batched === 0 && st.consistent === 11;
  }, 30_000);
  const done = await s.huren.provenance.outbox();
  t.is(done.anchored, 8 + 3, 'every report and every recognition record anchored');
  t.deepEqual(await statuses(), { consistent: 11 });
  const anchoredBy = await s.huren.db.query<{ source: string; n: number }>(
    'SELECT source, count(*)::int AS n FROM report_anchor WHERE NOT withdrawn GROUP BY source ORDER BY source'
  );
  t.deepEqual(anchoredBy.map((r) => [r.source, Number(r.n)]), [['institution', 3], ['platform', 8]]);
  const log = logs.join('');
  t.regex(log, /anchoring delayed: chain not reachable/);
  t.regex(log, /batch anchored/);
  t.notRegex(log, /"level":50/, 'no error logged');
  for (const id of ids) {
    const check = (await (await s.fhir(`DiagnosticReport/${id}/$verify`)).json()) as any;
    t.is(value(param(check, 'status')), 'consistent');
  }
});
