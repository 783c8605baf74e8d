/** The EVM adapter of the ledger port against a real local node (ganache on loopback). */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import ganache from 'ganache';
import { HDNodeWallet, Mnemonic, Transaction, getAddress, hexlify } from 'ethers';
import { fingerprint } from '../server/fingerprint/index.ts';
import { verifyAnchorProof } from '../server/merkle/index.ts';
import {
  ANCHOR_ARTIFACT,
  EvmLedger,
  HttpRpcNode,
  LedgerError,
  anchorInterface,
  deployAnchorContract,
  type RpcNode,
} from '../server/ledger/index.ts';

const MNEMONIC = 'test test test test test test test test test test test junk';
const CHAIN_ID = 31337;
const account = (i: number) => HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(MNEMONIC), `m/44'/60'/0'/0/${i}`);
const platform = account(0);
const institution = account(1);
const stranger = account(2);

type Server = ReturnType<typeof ganache.server>;
const servers: Server[] = [];
let url = '';
let node: RpcNode;
let contract = '';

test.before(async () => {
  const server = ganache.server({
    logging: { quiet: true },
    chain: { chainId: CHAIN_ID },
    wallet: { mnemonic: MNEMONIC, totalAccounts: 3 },
  } as never);
  servers.push(server);
  await server.listen(0, '127.0.0.1');
  url = `http://127.0.0.1:${server.address().port}`;
  node = new HttpRpcNode('local', url);
  contract = (await deployAnchorContract(node, platform.privateKey, { pollIntervalMs: 20 })).address;
});

test.after.always(async () => {
  for (const s of servers) await s.close().catch(() => undefined);
});

const ledgerFor = (privateKey: string | undefined, nodes: RpcNode[] = [node]) =>
  new EvmLedger({ name: 'test-chain', nodes, contract, privateKey, chainId: CHAIN_ID, pollIntervalMs: 20 });

const records = (n: number, alg: 'sm3' | 'sha256' = 'sm3') =>
  Array.from({ length: n }, (_, i) =>
    fingerprint({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Observation', id: `${i}-${randomBytes(8).toString('hex')}` } }] }, alg),
  );

const height = async () => Number(await node.request<string>('eth_blockNumber'));

test.serial('anchor a batch: receipt, proofs, lookup; a retry returns the same anchoring without a new transaction', async (t) => {
  const ledger = ledgerFor(platform.privateKey);
  const recs = records(5);
  const batchId = '0x' + 'b1'.repeat(32);
  const r = await ledger.anchor({ records: recs, batchId });
  t.is(r.ledger, 'test-chain');
  t.is(r.alg, 'sm3');
  t.is(r.count, 5);
  t.is(r.batchId, batchId);
  t.is(r.submitter, platform.address);
  t.false(r.existing);
  t.regex(r.txId, /^0x[0-9a-f]{64}$/);
  t.regex(r.blockHash, /^0x[0-9a-f]{64}$/);
  t.is(r.height, await height());
  t.is(r.proofs.length, 5);
  r.proofs.forEach((p, i) => t.deepEqual(verifyAnchorProof(recs[i]!, p), { ok: true, root: r.root }));

  const found = await ledger.lookup(r.root);
  t.true(found.found);
  t.true(found.agree);
  t.like(found.nodes[0], { node: 'local', status: 'found', txId: r.txId, blockHash: r.blockHash, height: r.height, count: 5, batchId, submitter: platform.address });
  t.is(found.nodes[0]!.timestamp, r.timestamp);
  // The same root written as 0x hex or bare hex.
  t.deepEqual((await ledger.lookup('0x' + r.root.slice(4))).nodes, found.nodes);
  t.deepEqual((await ledger.lookup(r.root.slice(4))).nodes, found.nodes);

  const before = await height();
  const again = await ledger.anchor({ records: recs, batchId: '0x' + 'b2'.repeat(32) });
  t.true(again.existing);
  t.is(again.txId, r.txId);
  t.is(again.batchId, batchId, 'the earlier anchoring is reported');
  t.is(await height(), before, 'no new transaction');

  const absent = await ledger.lookup(records(1)[0]!);
  t.false(absent.found);
  t.true(absent.agree);
  t.is(absent.nodes[0]!.status, 'absent');
});

test.serial('a single record anchors the fingerprint itself; SHA-256 works the same', async (t) => {
  const ledger = ledgerFor(platform.privateKey);
  for (const alg of ['sm3', 'sha256'] as const) {
    const [fp] = records(1, alg);
    const r = await ledger.anchor({ records: [fp!] });
    t.is(r.root, fp);
    t.deepEqual(r.proofs, [{ leafIndex: 0, treeSize: 1, path: [], root: fp }]);
    t.regex(r.batchId, /^0x[0-9a-f]{64}$/, 'a random batch id when none is given');
    const held = await ledger.lookup(fp!);
    t.is(held.nodes[0]!.txId, r.txId);
  }
});

test.serial('privacy: the transaction carries exactly root, count and batch id; the port refuses anything else', async (t) => {
  const ledger = ledgerFor(platform.privateKey);
  const recs = records(3);
  const r = await ledger.anchor({ records: recs, batchId: '0x' + '0c'.repeat(32) });
  const tx = await node.request<{ input: string; to: string; from: string; value: string }>('eth_getTransactionByHash', [r.txId]);
  t.is(getAddress(tx.to), contract);
  t.is(BigInt(tx.value), 0n);
  t.is(tx.input.length, 2 + 2 * (4 + 3 * 32), 'selector + three 32-byte words, nothing more');
  const call = anchorInterface.parseTransaction({ data: tx.input })!;
  t.is(call.name, 'anchor');
  t.is(call.signature, 'anchor(bytes32,uint32,bytes32)');
  t.deepEqual(call.args.toArray(), ['0x' + r.root.slice(4), 3n, '0x' + '0c'.repeat(32)]);
  t.is(anchorInterface.encodeFunctionData('anchor', call.args.toArray()), tx.input);
  // None of the records themselves (only their Merkle root) went on chain.
  for (const rec of recs) t.false(tx.input.includes(rec.slice(4)));

  const receipt = await node.request<{ logs: Array<{ topics: string[]; data: string }> }>('eth_getTransactionReceipt', [r.txId]);
  t.is(receipt.logs.length, 1);
  const log = anchorInterface.parseLog(receipt.logs[0]!)!;
  t.is(log.name, 'Anchored');
  t.deepEqual(log.args.toArray(), ['0x' + r.root.slice(4), 3n, '0x' + '0c'.repeat(32), platform.address]);

  const before = await height();
  const personal = ['张三 440101198001010011', JSON.stringify({ resourceType: 'Patient', name: [{ text: '张三' }] }), '440101198001010011'];
  for (const bad of personal) {
    const e = await t.throwsAsync(ledger.anchor({ records: [bad] }), { instanceOf: LedgerError });
    t.is(e!.code, 'invalid-input');
    t.false(e!.retryable);
  }
  await t.throwsAsync(ledger.anchor({ records: [] }), { instanceOf: LedgerError, message: /at least one record/ });
  await t.throwsAsync(ledger.anchor({ records: [...records(1, 'sm3'), ...records(1, 'sha256')] }), { message: /one algorithm/ });
  await t.throwsAsync(ledger.anchor({ records: records(1), batchId: 'outbox-batch-7 for 张三' }), { instanceOf: LedgerError });
  await t.throwsAsync(ledger.lookup('张三'), { instanceOf: LedgerError });
  t.is(await height(), before, 'nothing was sent');
});

test.serial('institution registry: only the platform and registered institutions anchor', async (t) => {
  const platformLedger = ledgerFor(platform.privateKey);
  const hospital = ledgerFor(institution.privateKey);
  const code = '0x' + Buffer.from('gy1'.padEnd(32, '\0')).toString('hex');

  const refused = await t.throwsAsync(hospital.anchor({ records: records(1) }), { instanceOf: LedgerError });
  t.is(refused!.code, 'rejected');
  t.regex(refused!.message, new RegExp(`NotAuthorized\\(${institution.address}\\)`));
  t.false(await platformLedger.isRegistered(institution.address));

  const notOwner = await t.throwsAsync(hospital.registerInstitution(stranger.address, code), { instanceOf: LedgerError });
  t.regex(notOwner!.message, /NotOwner/);

  await platformLedger.registerInstitution(institution.address, code);
  t.true(await platformLedger.isRegistered(institution.address));
  const r = await hospital.anchor({ records: records(2) });
  t.is(r.submitter, institution.address);
  t.is((await platformLedger.lookup(r.root)).nodes[0]!.submitter, institution.address);

  await platformLedger.deregisterInstitution(institution.address);
  await t.throwsAsync(hospital.anchor({ records: records(1) }), { message: /NotAuthorized/ });
});

test.serial('concurrent anchors are serialised (nonces) and all land', async (t) => {
  const ledger = ledgerFor(platform.privateKey);
  const receipts = await Promise.all(Array.from({ length: 6 }, () => ledger.anchor({ records: records(2) })));
  t.is(new Set(receipts.map((r) => r.txId)).size, 6);
  for (const r of receipts) t.true((await ledger.lookup(r.root)).found);
});

test.serial('unreachable nodes: the next node takes the anchor; with none reachable the error is retryable', async (t) => {
  const dead = new HttpRpcNode('dead', 'http://127.0.0.1:1', 2000);
  const ledger = ledgerFor(platform.privateKey, [dead, node]);
  const r = await ledger.anchor({ records: records(2) });
  t.is(r.node, 'local');
  const held = await ledger.lookup(r.root);
  t.true(held.found);
  t.false(held.agree, 'a node did not answer');
  t.like(held.nodes[0], { node: 'dead', status: 'down' });
  const health = await ledger.health();
  t.true(health.up);
  t.like(health.nodes[0], { node: 'dead', up: false });
  t.like(health.nodes[1], { node: 'local', up: true, chainId: CHAIN_ID, contract: true });

  const offline = ledgerFor(platform.privateKey, [dead]);
  const e = await t.throwsAsync(offline.anchor({ records: records(1) }), { instanceOf: LedgerError });
  t.is(e!.code, 'unavailable');
  t.true(e!.retryable);
  t.false((await offline.health()).up);
});

test.serial('read-only without a key; wrong contract or chain id show in lookup and health', async (t) => {
  const readOnly = ledgerFor(undefined);
  const e = await t.throwsAsync(readOnly.anchor({ records: records(1) }), { instanceOf: LedgerError });
  t.is(e!.code, 'not-configured');
  t.false((await readOnly.health()).canAnchor);

  const nowhere = new EvmLedger({ name: 'x', nodes: [node], contract: getAddress(hexlify(randomBytes(20))) });
  t.like((await nowhere.lookup(records(1)[0]!)).nodes[0], { status: 'error' });
  t.like((await nowhere.health()).nodes[0], { up: false, contract: false });

  const otherChain = new EvmLedger({ name: 'y', nodes: [node], contract, chainId: 1 });
  t.like((await otherChain.health()).nodes[0], { up: false, chainId: CHAIN_ID });
  t.throws(() => new EvmLedger({ name: 'z', nodes: [], contract }), { instanceOf: LedgerError });
  t.throws(() => new EvmLedger({ name: 'z', nodes: [node], contract: 'not an address' }), { instanceOf: LedgerError });
  t.throws(() => new EvmLedger({ name: 'z', nodes: [node], contract, privateKey: '0x1234' }), { instanceOf: LedgerError });
});

test.serial('the deployed code is the committed artifact', async (t) => {
  const code = await node.request<string>('eth_getCode', [contract, 'latest']);
  t.is(code, ANCHOR_ARTIFACT.deployedBytecode);
  // And a transaction signed elsewhere can be sent as is (what hospitals' tools do).
  const nonce = Number(await node.request<string>('eth_getTransactionCount', [platform.address, 'pending']));
  const [fp] = records(1);
  const raw = await platform.signTransaction(
    Transaction.from({ type: 0, chainId: CHAIN_ID, nonce, gasPrice: 10_000_000_000n, gasLimit: 200_000n, to: contract, data: anchorInterface.encodeFunctionData('anchor', ['0x' + fp!.slice(4), 1, '0x' + '00'.repeat(32)]) }),
  );
  await node.request('eth_sendRawTransaction', [raw]);
  t.true((await ledgerFor(undefined).lookup(fp!)).found);
});
