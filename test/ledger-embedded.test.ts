/** The embedded default ledger (in-process ganache under the data directory), configuration, and the gateway boundary. */
import test from 'ava';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fingerprint } from '../server/fingerprint/index.ts';
import {
  EMBEDDED_CHAIN_ID,
  GOV_GATEWAY_NOT_CONFIGURED,
  GovGatewayLedger,
  LedgerConfigError,
  LedgerError,
  createLedger,
  describeLedgerConfig,
  loadLedgerConfig,
  openEmbeddedLedger,
  parseNodeUrls,
  type LedgerPort,
} from '../server/ledger/index.ts';

const dirs: string[] = [];
const open: LedgerPort[] = [];
test.after.always(async () => {
  for (const l of open) await l.close().catch(() => undefined);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'huren-ledger-'));
  dirs.push(d);
  return d;
};
const fp = (i: number) => fingerprint({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Observation', id: `e${i}` } }] });

test.serial('embedded: created on first use, anchors, and keeps everything across a restart', async (t) => {
  const dataDir = tempDir();
  const ledger = await createLedger(loadLedgerConfig({ HUREN_DATA_DIR: dataDir }));
  open.push(ledger);
  t.is(ledger.kind, 'embedded');
  t.is(ledger.name, 'huren-embedded');
  const health = await ledger.health();
  t.true(health.up);
  t.true(health.canAnchor);
  t.like(health.nodes[0], { node: 'embedded', up: true, chainId: EMBEDDED_CHAIN_ID, contract: true });

  const receipt = await ledger.anchor({ records: [fp(1), fp(2), fp(3)] });
  const single = await ledger.anchor({ records: [fp(4)] });
  t.is(single.root, fp(4));
  t.true((await ledger.lookup(receipt.root)).found);
  t.true((await ledger.compare()).agree);
  await ledger.close();

  const state = statSync(join(dataDir, 'chain', 'ledger.json'));
  t.is(state.mode & 0o777, 0o600, 'the key file is private');
  t.true(readdirSync(join(dataDir, 'chain', 'db')).includes('CURRENT'), 'the chain database is under the data dir');

  const reopened = await openEmbeddedLedger({ dataDir });
  open.push(reopened);
  const held = await reopened.lookup(receipt.root);
  t.like(held.nodes[0], { status: 'found', txId: receipt.txId, blockHash: receipt.blockHash, height: receipt.height });
  t.like((await reopened.lookup(fp(4))).nodes[0], { status: 'found', txId: single.txId });
  t.is((await reopened.health()).nodes[0]!.height, single.height, 'no redeployment on restart');
  const next = await reopened.anchor({ records: [fp(5)] });
  t.is(next.height, single.height + 1);
  t.is(next.submitter, receipt.submitter, 'the same platform account');
  await reopened.close();
});

test('embedded: a chain database without its state file is refused', async (t) => {
  const dataDir = tempDir();
  const l = await openEmbeddedLedger({ dataDir });
  await l.close();
  rmSync(join(dataDir, 'chain', 'ledger.json'));
  await t.throwsAsync(openEmbeddedLedger({ dataDir }), { instanceOf: LedgerError, message: /ledger\.json/ });
});

test('config: defaults, evm nodes, key file, errors; the key never shows', (t) => {
  t.like(loadLedgerConfig({}, { dataDir: '/x' }), { kind: 'embedded', name: 'huren-embedded', dataDir: '/x' });
  const keyFile = join(tempDir(), 'key');
  writeFileSync(keyFile, 'ab'.repeat(32) + '\n');
  const evm = loadLedgerConfig({
    HUREN_LEDGER: 'evm',
    HUREN_EVM_URLS: ' http://10.0.0.1:8545 , b=https://user:secret@chain-b.example/rpc,',
    HUREN_EVM_CONTRACT: '0x' + '12'.repeat(20),
    HUREN_EVM_KEY_FILE: keyFile,
    HUREN_EVM_CHAIN_ID: '1234',
  });
  t.is(evm.kind, 'evm');
  t.is(evm.name, 'evm-1234');
  t.deepEqual(evm.evm!.nodes, [
    { name: '10.0.0.1:8545', url: 'http://10.0.0.1:8545' },
    { name: 'b', url: 'https://user:secret@chain-b.example/rpc' },
  ]);
  t.is(evm.evm!.privateKey, '0x' + 'ab'.repeat(32));
  t.is(evm.evm!.chainId, 1234);
  t.is(evm.evm!.timeoutMs, 5000);
  const shown = JSON.stringify(describeLedgerConfig(evm));
  t.false(shown.includes('ab'.repeat(32)));
  t.false(shown.includes('secret'));
  t.true(shown.includes('configured'));

  const readOnly = loadLedgerConfig({ HUREN_LEDGER: 'evm', HUREN_EVM_URLS: 'http://127.0.0.1:8545', HUREN_EVM_CONTRACT: '0x' + '12'.repeat(20), HUREN_LEDGER_NAME: 'gz-chain' });
  t.is(readOnly.name, 'gz-chain');
  t.is(readOnly.evm!.privateKey, undefined);

  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ HUREN_LEDGER: 'fabric' }, /embedded, evm or gov-gateway/],
    [{ HUREN_LEDGER: 'evm', HUREN_EVM_CONTRACT: '0x' + '12'.repeat(20) }, /HUREN_EVM_URLS/],
    [{ HUREN_LEDGER: 'evm', HUREN_EVM_URLS: 'http://a:1' }, /HUREN_EVM_CONTRACT/],
    [{ HUREN_LEDGER: 'evm', HUREN_EVM_URLS: 'http://a:1', HUREN_EVM_CONTRACT: '0x' + '12'.repeat(20), HUREN_EVM_KEY: 'secret' }, /32-byte/],
    [{ HUREN_LEDGER: 'evm', HUREN_EVM_URLS: 'ftp://a', HUREN_EVM_CONTRACT: '0x' + '12'.repeat(20) }, /http/],
    [{ HUREN_LEDGER: 'evm', HUREN_EVM_URLS: 'http://a:1', HUREN_EVM_CONTRACT: '0x' + '12'.repeat(20), HUREN_EVM_CHAIN_ID: 'x' }, /CHAIN_ID/],
  ];
  for (const [env, message] of bad) t.throws(() => loadLedgerConfig(env), { instanceOf: LedgerConfigError, message });
  t.throws(() => parseNodeUrls('a=http://x:1,a=http://y:1'), { message: /twice/ });
});

test('createLedger builds the EVM adapter from configuration (read-only lookups work against a dead node as "down")', async (t) => {
  const ledger = await createLedger(
    loadLedgerConfig({ HUREN_LEDGER: 'evm', HUREN_EVM_URLS: 'n1=http://127.0.0.1:1', HUREN_EVM_CONTRACT: '0x' + '12'.repeat(20), HUREN_EVM_TIMEOUT_MS: '1000' }),
  );
  t.is(ledger.kind, 'evm');
  t.like((await ledger.lookup(fp(1))).nodes[0], { node: 'n1', status: 'down' });
  t.like((await ledger.health()).nodes[0], { node: 'n1', up: false });
  await t.throwsAsync(ledger.anchor({ records: [fp(1)] }), { instanceOf: LedgerError, message: /read-only/ });
  await ledger.close();
});

test('government gateway: a boundary that refuses clearly, no fake', async (t) => {
  const ledger = await createLedger(loadLedgerConfig({ HUREN_LEDGER: 'gov-gateway', HUREN_GOV_GATEWAY_URL: 'https://gateway.gz.example' }));
  t.true(ledger instanceof GovGatewayLedger);
  for (const call of [() => ledger.anchor({ records: [fp(1)] }), () => ledger.lookup(fp(1)), () => ledger.compare()]) {
    const e = await t.throwsAsync(call(), { instanceOf: LedgerError });
    t.is(e!.code, 'not-configured');
    t.true(e!.message.includes(GOV_GATEWAY_NOT_CONFIGURED));
    t.false(e!.retryable);
  }
  const health = await ledger.health();
  t.false(health.up);
  t.like(health.nodes[0], { node: 'https://gateway.gz.example', up: false, error: GOV_GATEWAY_NOT_CONFIGURED });
});
