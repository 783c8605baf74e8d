/**
 * Must-show 2 of issue 5: `$trace` on three real chain nodes (ganache on loopback) with the same genesis —
 * same accounts, chain id and fixed block timestamps. A and B get the same signed transactions and hold
 * identical ledgers; C gets a different transaction at one height. `$trace` shows what each node holds for
 * the report's anchor and names C and the first height where it differs.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { Transaction, getCreateAddress, keccak256, toUtf8Bytes, type HDNodeWallet } from 'ethers';
import { ANCHOR_ARTIFACT, anchorInterface, HttpRpcNode } from '../server/ledger/index.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { CHAIN_ID, fingerprint, institution, ledgerConfig, LEDGER_NAME, Node, platform, reportBundle, testProvenanceConfig, withProvenance } from './helpers/chain.ts';

const GENESIS = { chain: { chainId: CHAIN_ID, time: new Date('2024-06-15T00:00:00Z') }, miner: { timestampIncrement: 5 } };
const nodes = ['node-a', 'node-b', 'node-c'].map((name) => new Node(name, GENESIS));
const [A, B, C] = nodes as [Node, Node, Node];
let s: TestServer;
let contract = '';

const rpc = (n: Node) => new HttpRpcNode(n.name, n.url, 5000);
const nonces = new Map<string, number>();

/** Signs once (the next nonce of `wallet`); the raw transaction is what gets replayed. */
async function sign(wallet: HDNodeWallet, data: string, to: string | null, nonce?: number): Promise<string> {
  const n = nonce ?? nonces.get(wallet.address) ?? 0;
  nonces.set(wallet.address, Math.max(n + 1, nonces.get(wallet.address) ?? 0));
  return wallet.signTransaction(Transaction.from({ type: 0, chainId: CHAIN_ID, nonce: n, gasPrice: 20_000_000_000n, gasLimit: 1_500_000n, to, data }));
}

async function replay(raw: string, on: Node[]): Promise<{ txId: string; height: number; blockHash: string }> {
  let out: { txId: string; height: number; blockHash: string } | undefined;
  for (const n of on) {
    const txId = await rpc(n).request<string>('eth_sendRawTransaction', [raw]);
    const r = await rpc(n).request<{ status: string; blockNumber: string; blockHash: string }>('eth_getTransactionReceipt', [txId]);
    if (BigInt(r.status) !== 1n) throw new Error(`${n.name}: ${txId} failed`);
    out ??= { txId, height: Number(r.blockNumber), blockHash: r.blockHash };
  }
  return out!;
}

const anchorData = (fp: string) => anchorInterface.encodeFunctionData('anchor', ['0x' + fp.split(':')[1], 1, '0x' + randomBytes(32).toString('hex')]);
const blockHash = async (n: Node, h: number) => (await rpc(n).request<{ hash: string }>('eth_getBlockByNumber', ['0x' + h.toString(16), false])).hash;

test.before(async () => {
  await Promise.all(nodes.map((n) => n.start()));
  // the same deployment and the same registration everywhere
  await replay(await sign(platform, ANCHOR_ARTIFACT.bytecode, null), nodes);
  contract = getCreateAddress({ from: platform.address, nonce: 0 });
  await replay(await sign(platform, anchorInterface.encodeFunctionData('register', [institution.address, keccak256(toUtf8Bytes('urn:huren:org|gy1'))]), contract), nodes);
  s = await startTestServer({ ledger: ledgerConfig(nodes, contract), provenance: testProvenanceConfig() });
});

test.after.always(async () => {
  await s?.close();
  await Promise.all(nodes.map((n) => n.close()));
});

const param = (p: any, name: string) => (p.parameter ?? p.part)?.find((x: any) => x.name === name);
const params = (p: any, name: string) => (p.parameter ?? p.part ?? []).filter((x: any) => x.name === name);
const value = (x: any) => (x ? (x.valueCode ?? x.valueString ?? x.valueInteger ?? x.valueBoolean ?? x.valueInstant ?? x.valueReference?.reference) : undefined);
const reportIdOf = (response: any): string =>
  response.entry.map((e: any) => e.fullUrl as string).find((u: string) => u?.includes('/DiagnosticReport/'))!.split('/DiagnosticReport/')[1]!;

async function submit(bundle: unknown): Promise<string> {
  const res = await s.fhir('', { method: 'POST', json: bundle });
  if (res.status !== 200) throw new Error(`upload ${res.status}: ${await res.text()}`);
  return reportIdOf(await res.json());
}

test.serial('$trace names the diverging node and the first height where it differs; the anchor is held by the two that agree', async (t) => {
  // report 1: anchored by the institution before the fork, on every node
  const r1 = reportBundle('trace-1');
  const fp1 = fingerprint(r1.bundle);
  const tx1 = await replay(await sign(institution, anchorData(fp1), contract), nodes);
  const id1 = await submit(withProvenance(r1, { alg: 'sm3', fingerprint: fp1, ledger: LEDGER_NAME, transaction: tx1.txId, height: tx1.height }));

  // report 2: its anchor reaches A and B; C gets another transaction at that height (same sender and nonce)
  const r2 = reportBundle('trace-2');
  const fp2 = fingerprint(r2.bundle);
  const onAB = await sign(institution, anchorData(fp2), contract);
  const forgedNonce = nonces.get(institution.address)! - 1;
  const onC = await sign(institution, anchorData(fingerprint(reportBundle('forged').bundle)), contract, forgedNonce);
  const tx2 = await replay(onAB, [A, B]);
  await replay(onC, [C]);
  const divergeAt = tx2.height;
  // and then the same transactions everywhere again
  for (let i = 0; i < 2; i++) await replay(await sign(institution, anchorData(fingerprint(reportBundle(`later-${i}`).bundle)), contract), nodes);
  const id2 = await submit(withProvenance(r2, { alg: 'sm3', fingerprint: fp2, ledger: LEDGER_NAME, transaction: tx2.txId, height: tx2.height }));

  // an access to the report, for the history
  const viewed = await s.fhir(`DiagnosticReport/${id2}/$view`);
  t.is(viewed.status, 200);

  await s.huren.provenance.verifyNow();
  const res = await s.fhir(`DiagnosticReport/${id2}/$trace`);
  t.is(res.status, 200);
  const trace = (await res.json()) as any;
  t.is(value(param(trace, 'ledger')), LEDGER_NAME);

  const [version] = params(trace, 'version');
  t.is(value(param(version, 'version')), 1);
  t.is(value(param(version, 'status')), 'consistent', 'the two nodes that agree hold the anchor');
  t.is(value(param(version, 'fingerprint')), fp2);
  const [anchor] = params(version, 'anchor');
  t.is(value(param(anchor, 'anchoredBy')), 'institution');
  t.is(value(param(anchor, 'txId')), tx2.txId);
  t.is(value(param(anchor, 'height')), divergeAt);
  t.false(value(param(anchor, 'nodesAgree')));
  t.deepEqual(
    params(anchor, 'node').map((n: any) => [value(param(n, 'name')), value(param(n, 'status')), value(param(n, 'txId')), value(param(n, 'blockHash'))]),
    [
      ['node-a', 'found', tx2.txId, tx2.blockHash],
      ['node-b', 'found', tx2.txId, tx2.blockHash],
      ['node-c', 'absent', undefined, undefined],
    ]
  );

  const cmp = param(trace, 'nodes');
  t.false(value(param(cmp, 'agree')));
  t.is(value(param(cmp, 'reference')), 'node-a');
  t.deepEqual(
    params(cmp, 'node').map((n: any) => [value(param(n, 'name')), value(param(n, 'status')), value(param(n, 'firstDivergence'))]),
    [
      ['node-a', 'reference', undefined],
      ['node-b', 'agrees', undefined],
      ['node-c', 'diverges', divergeAt],
    ]
  );
  const first = param(cmp, 'firstDivergence');
  t.is(value(param(first, 'node')), 'node-c');
  t.is(value(param(first, 'height')), divergeAt);
  t.is(value(param(first, 'blockHash')), await blockHash(C, divergeAt));
  t.is(value(param(first, 'referenceBlockHash')), await blockHash(A, divergeAt));
  t.not(await blockHash(C, divergeAt), await blockHash(A, divergeAt));
  t.is(await blockHash(B, divergeAt), await blockHash(A, divergeAt));

  // the $view's access record and the request trail's AuditEvent of that request (server/audit/)
  const access = params(trace, 'access');
  t.is(access.length, 2);
  for (const a of access) t.regex(value(param(a, 'event')), /^AuditEvent\/[A-Za-z0-9-]+$/);

  // report 1 was anchored below the fork: the same transaction in the same block on every node
  const trace1 = (await (await s.fhir(`DiagnosticReport/${id1}/$trace`)).json()) as any;
  const anchor1 = param(param(trace1, 'version'), 'anchor');
  t.true(value(param(anchor1, 'nodesAgree')));
  t.deepEqual(params(anchor1, 'node').map((n: any) => value(param(n, 'blockHash'))), [tx1.blockHash, tx1.blockHash, tx1.blockHash]);
  t.is(value(param(param(param(trace1, 'nodes'), 'firstDivergence'), 'node')), 'node-c');
});

test.serial('$trace with a node down says so; $verify still answers from the others', async (t) => {
  await C.stop();
  const id = (await s.huren.db.query<{ report_id: string }>('SELECT report_id FROM report_version WHERE fingerprint IS NOT NULL ORDER BY created_at LIMIT 1'))[0]!.report_id;
  const res = await s.fhir(`DiagnosticReport/${id}/$trace`);
  t.is(res.status, 200);
  const trace = (await res.json()) as any;
  const anchor = param(param(trace, 'version'), 'anchor');
  t.deepEqual(params(anchor, 'node').map((n: any) => value(param(n, 'status'))), ['found', 'found', 'down']);
  const cmp = param(trace, 'nodes');
  t.deepEqual(params(cmp, 'node').map((n: any) => value(param(n, 'status'))), ['reference', 'agrees', 'down']);
  const v = (await (await s.fhir(`DiagnosticReport/${id}/$verify`)).json()) as any;
  t.is(value(param(v, 'status')), 'consistent');
  t.is(value(param(v, 'nodesChecked')), 3);
});
