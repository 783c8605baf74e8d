/**
 * Cross-node comparison on three real local nodes (ganache on loopback) with the same genesis: same accounts,
 * chain id and fixed block timestamps. The same signed transactions replayed on nodes A and B give
 * byte-identical ledgers; node C gets a different transaction at one height and `compare` names C and that
 * height. Also: anchor → lookup on every node, and a stopped node reported down.
 */
import test from 'ava';
import ganache from 'ganache';
import { HDNodeWallet, Mnemonic, Transaction } from 'ethers';
import { fingerprint } from '../server/fingerprint/index.ts';
import { ANCHOR_ARTIFACT, EvmLedger, HttpRpcNode, anchorInterface, type RpcNode } from '../server/ledger/index.ts';

const MNEMONIC = 'test test test test test test test test test test test junk';
const CHAIN_ID = 31337;
const GENESIS_TIME = new Date('2024-06-15T00:00:00Z');
const platform = HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(MNEMONIC), "m/44'/60'/0'/0/0");

type Server = ReturnType<typeof ganache.server>;
const servers = new Map<string, Server>();
const nodes = new Map<string, RpcNode>();

async function startNode(name: string): Promise<void> {
  const server = ganache.server({
    logging: { quiet: true },
    chain: { chainId: CHAIN_ID, time: GENESIS_TIME },
    miner: { timestampIncrement: 5 },
    wallet: { mnemonic: MNEMONIC, totalAccounts: 2 },
  } as never);
  await server.listen(0, '127.0.0.1');
  servers.set(name, server);
  nodes.set(name, new HttpRpcNode(name, `http://127.0.0.1:${server.address().port}`, 3000));
}

test.before(async () => {
  await Promise.all(['A', 'B', 'C'].map(startNode));
});

test.after.always(async () => {
  for (const s of servers.values()) await s.close().catch(() => undefined);
});

const N = (name: string) => nodes.get(name)!;
const blockNumber = async (name: string) => Number(await N(name).request<string>('eth_blockNumber'));
const block = (name: string, h: number) => N(name).request<Record<string, unknown>>('eth_getBlockByNumber', ['0x' + h.toString(16), true]);

let nonce = 0;
/** Signs once; the raw transaction is what gets replayed. */
async function sign(data: string, to: string | null): Promise<string> {
  return platform.signTransaction(
    Transaction.from({ type: 0, chainId: CHAIN_ID, nonce: nonce++, gasPrice: 20_000_000_000n, gasLimit: 1_500_000n, to, data }),
  );
}
async function replay(raw: string, on: string[]): Promise<void> {
  for (const name of on) {
    const txId = await N(name).request<string>('eth_sendRawTransaction', [raw]);
    const receipt = await N(name).request<{ status: string } | null>('eth_getTransactionReceipt', [txId]);
    if (!receipt || BigInt(receipt.status) !== 1n) throw new Error(`${name}: ${txId} not mined successfully`);
  }
}
const rootOf = (i: number, variant = '') =>
  '0x' + fingerprint({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Observation', id: `obs-${i}${variant}` } }] }, 'sm3').slice(4);
const anchorData = (root: string, count = 1) => anchorInterface.encodeFunctionData('anchor', [root, count, '0x' + '00'.repeat(31) + '01']);

let contract = '';
const ledger = () => new EvmLedger({ name: 'gz-test', nodes: ['A', 'B', 'C'].map(N), contract, privateKey: platform.privateKey, chainId: CHAIN_ID, pollIntervalMs: 20 });

test.serial('three nodes with the same genesis start identical; the same deployment gives the same contract everywhere', async (t) => {
  const g = await Promise.all(['A', 'B', 'C'].map((n) => block(n, 0)));
  t.deepEqual(g[1], g[0]);
  t.deepEqual(g[2], g[0]);
  t.is(Number(g[0]!.timestamp), GENESIS_TIME.getTime() / 1000);

  await replay(await sign(ANCHOR_ARTIFACT.bytecode, null), ['A', 'B', 'C']);
  const [deployTx] = (await block('A', 1)).transactions as Array<{ hash: string }>;
  const receipt = await N('A').request<{ contractAddress: string }>('eth_getTransactionReceipt', [deployTx!.hash]);
  contract = receipt.contractAddress;
  for (const n of ['A', 'B', 'C']) t.is(await N(n).request('eth_getCode', [contract, 'latest']), ANCHOR_ARTIFACT.deployedBytecode);
});

test.serial('anchor through the port, the transaction propagates: lookup finds the root on every node, all agree', async (t) => {
  const l = ledger();
  const recs = [1, 2, 3].map((i) => 'sm3:' + rootOf(i, '-port').slice(2));
  const r = await l.anchor({ records: recs });
  t.is(r.node, 'A', 'the first node takes the transaction');
  nonce++; // the port used the platform account's next nonce
  // Propagation, as a chain network would do it: the same signed transaction to the other nodes.
  const tx = await N('A').request<Record<string, string>>('eth_getTransactionByHash', [r.txId]);
  const raw = Transaction.from({
    type: 0, chainId: CHAIN_ID, nonce: Number(tx.nonce), gasPrice: BigInt(tx.gasPrice!), gasLimit: BigInt(tx.gas!), to: tx.to!, data: tx.input!, value: 0n,
    signature: { r: tx.r!, s: tx.s!, v: Number(tx.v) },
  }).serialized;
  await replay(raw, ['B', 'C']);

  const held = await l.lookup(r.root);
  t.true(held.found);
  t.true(held.agree);
  t.deepEqual(held.nodes.map((n) => n.node), ['A', 'B', 'C']);
  for (const n of held.nodes) t.like(n, { status: 'found', txId: r.txId, blockHash: r.blockHash, height: r.height, count: 3 });
  t.true((await l.compare()).agree);
});

test.serial('A and B replay the same signed transactions and hold byte-identical ledgers; C diverges at one height', async (t) => {
  // Three more anchors everywhere.
  for (let i = 10; i < 13; i++) await replay(await sign(anchorData(rootOf(i)), contract), ['A', 'B', 'C']);
  const divergeAt = (await blockNumber('A')) + 1;
  // At the next height A and B get one transaction, C another (same sender and nonce).
  const onAB = await sign(anchorData(rootOf(100)), contract);
  nonce--;
  const onC = await sign(anchorData(rootOf(100, '-forged')), contract);
  await replay(onAB, ['A', 'B']);
  await replay(onC, ['C']);
  // Then the same transactions everywhere again.
  for (let i = 20; i < 22; i++) await replay(await sign(anchorData(rootOf(i)), contract), ['A', 'B', 'C']);

  const top = await blockNumber('A');
  t.is(await blockNumber('B'), top);
  t.is(await blockNumber('C'), top);
  for (let h = 0; h <= top; h++) {
    const [a, b, c] = await Promise.all([block('A', h), block('B', h), block('C', h)]);
    t.is(JSON.stringify(b), JSON.stringify(a), `A and B byte-identical at ${h}`);
    if (h < divergeAt) t.is(JSON.stringify(c), JSON.stringify(a), `C identical below the divergence, at ${h}`);
    else t.not(c.hash, a.hash, `C differs from ${divergeAt} on, at ${h}`);
  }

  const l = ledger();
  const cmp = await l.compare();
  t.false(cmp.agree);
  t.is(cmp.reference, 'A');
  t.deepEqual(cmp.firstDivergence, {
    node: 'C',
    height: divergeAt,
    blockHash: (await block('C', divergeAt)).hash as string,
    referenceBlockHash: (await block('A', divergeAt)).hash as string,
  });
  t.deepEqual(
    cmp.nodes.map((n) => [n.node, n.status, n.firstDivergence]),
    [['A', 'reference', undefined], ['B', 'agrees', undefined], ['C', 'diverges', divergeAt]],
  );
  // Only A and B: they agree.
  t.true((await l.compare(['A', 'B'])).agree);
  // With C listed first the majority still decides the reference.
  const fromC = await l.compare(['C', 'B', 'A']);
  t.is(fromC.reference, 'B');
  t.is(fromC.firstDivergence!.node, 'C');
  t.is(fromC.firstDivergence!.height, divergeAt);
  await t.throwsAsync(l.compare(['A', 'Z']), { message: /no node 'Z'/ });

  // What each node holds for the contested roots.
  const contested = await l.lookup(rootOf(100));
  t.false(contested.agree);
  t.deepEqual(contested.nodes.map((n) => n.status), ['found', 'found', 'absent']);
  t.is(contested.nodes[0]!.txId, contested.nodes[1]!.txId);
  const forged = await l.lookup(rootOf(100, '-forged'));
  t.deepEqual(forged.nodes.map((n) => n.status), ['absent', 'absent', 'found']);
  t.is(forged.nodes[2]!.height, divergeAt);
  // A root anchored below the fork: the same transaction in the same block on every node.
  const early = await l.lookup(rootOf(10));
  t.true(early.agree);
  t.deepEqual(early.nodes.map((n) => n.status), ['found', 'found', 'found']);
});

test.serial('a node that is behind is reported as behind, not as diverging', async (t) => {
  await replay(await sign(anchorData(rootOf(200)), contract), ['A']);
  const cmp = await ledger().compare(['A', 'B']);
  t.false(cmp.agree);
  t.like(cmp.nodes[1], { node: 'B', status: 'behind' });
  t.is(cmp.firstDivergence, undefined);
});

test.serial('health reports a stopped node as down, and compare/lookup carry on with the others', async (t) => {
  const l = ledger();
  const before = await l.health();
  t.true(before.up);
  t.deepEqual(before.nodes.map((n) => n.up), [true, true, true]);
  for (const n of before.nodes) t.like(n, { chainId: CHAIN_ID, contract: true });

  await servers.get('C')!.close();
  const after = await l.health();
  t.true(after.up, 'anchoring still possible');
  t.deepEqual(after.nodes.map((n) => [n.node, n.up]), [['A', true], ['B', true], ['C', false]]);
  t.truthy(after.nodes[2]!.error);

  const cmp = await l.compare();
  t.like(cmp.nodes[2], { node: 'C', status: 'down' });
  t.false(cmp.agree);
  const held = await l.lookup(rootOf(10));
  t.deepEqual(held.nodes.map((n) => n.status), ['found', 'found', 'down']);
});
