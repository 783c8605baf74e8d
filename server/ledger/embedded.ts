/**
 * The embedded default ledger: a ganache EVM chain in process, its database under `${dataDir}/chain`, with the
 * HurenAnchor contract deployed on first start — the EVM adapter over an EIP-1193 provider, so the embedded
 * ledger behaves exactly like a real chain (same contract, same receipts, same lookups). See docs/ledger.md.
 *
 * Files: `${dataDir}/chain/db/` (ganache's LevelDB) and `${dataDir}/chain/ledger.json` (mode 0600: chain id,
 * the platform account's key — generated on first start — and the contract address).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSecretFile } from '../secret-file.ts';
import { Wallet, hexlify, randomBytes } from 'ethers';
import { LedgerError } from './port.ts';
import { EvmLedger } from './evm/adapter.ts';
import { deployAnchorContract } from './evm/contract.ts';
import { Eip1193RpcNode, type Eip1193Provider } from './evm/rpc.ts';

/** "HU" — the embedded chain's id. */
export const EMBEDDED_CHAIN_ID = 0x4855;
export const EMBEDDED_LEDGER_NAME = 'huren-embedded';

interface EmbeddedState {
  version: 1;
  chainId: number;
  privateKey: string;
  account: string;
  contract?: string;
  deployedAt?: { txId: string; height: number };
}

export interface EmbeddedLedgerOptions {
  dataDir: string;
  name?: string;
}

/** Opens (creating on first use) the embedded chain. Takes a second or two: ganache is loaded on demand. */
export async function openEmbeddedLedger(opts: EmbeddedLedgerOptions): Promise<EvmLedger> {
  const dir = join(opts.dataDir, 'chain');
  const dbPath = join(dir, 'db');
  const statePath = join(dir, 'ledger.json');
  mkdirSync(dbPath, { recursive: true });

  let state: EmbeddedState;
  if (existsSync(statePath)) {
    state = JSON.parse(readFileSync(statePath, 'utf8'));
    if (state.version !== 1 || !state.privateKey) throw new LedgerError('not-configured', `${statePath} is not an embedded ledger state file`);
  } else {
    if (existsSync(join(dbPath, 'CURRENT'))) {
      throw new LedgerError('not-configured', `${dbPath} holds a chain but ${statePath} (its key and contract) is missing`);
    }
    const wallet = new Wallet(hexlify(randomBytes(32)));
    state = { version: 1, chainId: EMBEDDED_CHAIN_ID, privateKey: wallet.privateKey, account: wallet.address };
    saveState(statePath, state);
  }

  const { default: ganache } = await import('ganache');
  const provider = ganache.provider({
    database: { dbPath },
    chain: { chainId: state.chainId },
    wallet: { accounts: [{ secretKey: state.privateKey, balance: '0x' + (10n ** 27n).toString(16) }] },
    miner: { instamine: 'eager' },
    logging: { quiet: true },
  } as never) as unknown as Eip1193Provider & { disconnect(): Promise<void> };

  const node = new Eip1193RpcNode('embedded', provider);
  try {
    if (!state.contract || (await node.request<string>('eth_getCode', [state.contract, 'latest'])) === '0x') {
      const d = await deployAnchorContract(node, state.privateKey, { chainId: state.chainId, pollIntervalMs: 10 });
      state = { ...state, contract: d.address, deployedAt: { txId: d.txId, height: d.height } };
      saveState(statePath, state);
    }
  } catch (e) {
    await provider.disconnect();
    throw e;
  }

  return new EvmLedger({
    name: opts.name ?? EMBEDDED_LEDGER_NAME,
    kind: 'embedded',
    nodes: [node],
    contract: state.contract!,
    privateKey: state.privateKey,
    chainId: state.chainId,
    pollIntervalMs: 10,
    receiptTimeoutMs: 30_000,
    onClose: () => provider.disconnect(),
  });
}

function saveState(path: string, state: EmbeddedState): void {
  writeSecretFile(path, JSON.stringify(state, null, 2) + '\n');
}
