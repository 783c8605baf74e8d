/**
 * The hospital's side of the chain: its institution account anchors report fingerprints in the HurenAnchor
 * contract through the server's own EVM adapter (server/ledger), and the anchor is written into a chain
 * Provenance with the server's builder (server/fingerprint). Nothing but the 32-byte fingerprint (and a
 * random batch id) is sent to the chain.
 */
import { buildChainProvenance, type ChainAnchor } from '../server/fingerprint/index.ts';
import { EvmLedger, HttpRpcNode, LedgerError, parseNodeUrls, type AnchorReceipt } from '../server/ledger/index.ts';
import { verifyAnchorProof } from '../server/merkle/index.ts';
import { KitError, usageError } from './errors.ts';
import type { Json } from './bundle.ts';

export interface ChainOptions {
  /** Node URLs, comma-separated, each `url` or `name=url` (as HUREN_EVM_URLS). */
  rpc: string;
  contract: string;
  /** The institution account's private key (0x + 64 hex). */
  key: string;
  /**
   * The ledger's name as the platform knows it: it goes into the chain Provenance and must match, or the
   * platform cannot look the anchor up. Needed to anchor, not to check the account.
   */
  ledger?: string;
  timeoutMs?: number;
}

export const LEDGER_HELP = '--ledger: the ledger name the platform uses (ask the platform operator: HUREN_LEDGER_NAME on the platform)';

export interface Account {
  ledger: EvmLedger;
  address: string;
  /** Whether the platform's ledger name was given (needed to anchor). */
  named: boolean;
}

/** Opens the chain with the institution's key. Bad options are usage errors (exit 2). */
export function openChain(o: ChainOptions): Account {
  let nodes;
  try {
    nodes = parseNodeUrls(o.rpc);
  } catch (e) {
    throw usageError(`--rpc: ${(e as Error).message.replace(/^HUREN_EVM_URLS: /, '')}`);
  }
  if (nodes.length === 0) throw usageError('--rpc: give the chain node URL(s), e.g. --rpc http://chain.example:8545');
  if (!/^0x[0-9a-fA-F]{40}$/.test(o.contract)) throw usageError('--contract: the HurenAnchor address is 0x + 40 hex digits');
  const key = /^[0-9a-fA-F]{64}$/.test(o.key) ? `0x${o.key}` : o.key;
  if (!/^0x[0-9a-fA-F]{64}$/.test(key)) throw usageError('--key: the institution account key is 0x + 64 hex digits (give it as env:NAME or file:PATH, not on the command line)');
  const ledger = new EvmLedger({
    name: o.ledger ?? 'unnamed',
    nodes: nodes.map((n) => new HttpRpcNode(n.name, n.url, o.timeoutMs ?? 10_000)),
    contract: o.contract,
    privateKey: key,
    pollIntervalMs: 100,
    receiptTimeoutMs: 120_000,
  });
  return { ledger, address: ledger.account!, named: !!o.ledger };
}

export interface ChainCheck {
  ok: boolean;
  /** One line: what was found, or what is wrong. */
  summary: string;
}

/** Is a node up, the contract there, and the institution account registered? */
export async function checkChain(a: Account): Promise<ChainCheck> {
  const health = await a.ledger.health();
  const up = health.nodes.find((n) => n.up);
  if (!up) {
    const why = health.nodes.map((n) => `${n.node}: ${n.error ?? 'down'}`).join('; ');
    return { ok: false, summary: `no chain node usable (链节点不可用): ${why}` };
  }
  let registered: boolean;
  try {
    registered = await a.ledger.isRegistered(a.address);
  } catch (e) {
    return { ok: false, summary: `cannot ask the contract whether ${a.address} is registered: ${(e as Error).message.slice(0, 160)}` };
  }
  if (!registered) {
    return {
      ok: false,
      summary: `account ${a.address} is not registered in HurenAnchor ${a.ledger.contract} (机构账户未注册): ask the platform operator to register it`,
    };
  }
  return { ok: true, summary: `chain ${up.chainId} at height ${up.height}, contract present, account ${a.address} registered` };
}

/** Anchors one fingerprint (the fingerprint itself is the anchored root) and returns the chain anchor. */
export async function anchorFingerprint(a: Account, fp: string): Promise<{ anchor: ChainAnchor; receipt: AnchorReceipt }> {
  const { anchors, receipt } = await anchorFingerprints(a, [fp]);
  return { anchor: anchors[0]!, receipt };
}

/**
 * Anchors fingerprints (one algorithm) in one transaction: one alone is anchored itself; several as the root of
 * their RFC 9162 tree (built by the server's ledger adapter, server/merkle), each anchor then carrying its
 * inclusion proof — checked here with the platform's own proof check before it is handed out.
 */
export async function anchorFingerprints(a: Account, fps: string[]): Promise<{ anchors: ChainAnchor[]; receipt: AnchorReceipt }> {
  if (!a.named) throw usageError(LEDGER_HELP);
  let receipt: AnchorReceipt;
  try {
    receipt = await a.ledger.anchor({ records: fps });
  } catch (e) {
    if (e instanceof LedgerError) {
      const hint = /NotAuthorized/.test(e.message) ? ` — account ${a.address} is not registered (机构账户未注册)` : '';
      throw new KitError(`anchoring failed (上链失败, ${e.code}): ${e.message.slice(0, 240)}${hint}`);
    }
    throw e;
  }
  const anchors = fps.map((fp, i) => {
    const proof = receipt.proofs[i]!;
    const check = verifyAnchorProof(fp, proof);
    if (!check.ok || check.root !== receipt.root) throw new KitError(`the inclusion proof of record ${i} does not lead to the anchored root: ${check.ok ? check.root : check.reason}`);
    const anchor: ChainAnchor = { alg: receipt.alg, fingerprint: fp, ledger: receipt.ledger, transaction: receipt.txId, height: receipt.height };
    return proof.path.length > 0 ? { ...anchor, proof } : anchor;
  });
  return { anchors, receipt };
}

/**
 * The chain Provenance of an anchor (the platform's profile chain-provenance): `target` is the report's
 * fullUrl inside the Bundle, or `DiagnosticReport/<id>[/_history/<v>]` when sent later; `agent` whoever
 * anchored — the performing institution's reference when known, else the account.
 */
export function chainProvenance(anchor: ChainAnchor, target: string, agent: string | undefined, account: string): Json {
  const prov = buildChainProvenance({ target, anchor, agent: agent ?? '' });
  if (!agent) prov.agent = [{ who: { display: `institution account ${account}` } }];
  return prov;
}

/** The chain read without an account (the platform anchors): a node or the platform's read-only endpoint. */
export interface ReadChain {
  ledger: EvmLedger;
  name: string;
  contract: string;
}

/**
 * Opens the chain for reading only. Without `--contract` the node is asked `huren_ledger` (the embedded
 * chain's read-only endpoint answers its ledger name, contract and chain id, server/ledger/read-rpc.ts).
 */
export async function openReadChain(o: { rpc: string; contract?: string; ledger?: string; timeoutMs?: number }): Promise<ReadChain> {
  let nodes;
  try {
    nodes = parseNodeUrls(o.rpc);
  } catch (e) {
    throw usageError(`--rpc: ${(e as Error).message.replace(/^HUREN_EVM_URLS: /, '')}`);
  }
  if (nodes.length === 0) throw usageError('--rpc: give the chain node URL(s), e.g. --rpc http://127.0.0.1:8546');
  const rpc = nodes.map((n) => new HttpRpcNode(n.name, n.url, o.timeoutMs ?? 10_000));
  let contract = o.contract;
  let name = o.ledger;
  if (!contract || !name) {
    let info: { name?: string; contract?: string } | undefined;
    try {
      info = await rpc[0]!.request<{ name: string; contract: string }>('huren_ledger');
    } catch (e) {
      throw new KitError(`${contract ? LEDGER_HELP : '--contract: the HurenAnchor address is needed'} (the node did not answer huren_ledger: ${(e as Error).message.slice(0, 120)})`);
    }
    contract ??= info?.contract;
    name ??= info?.name;
  }
  if (!contract || !/^0x[0-9a-fA-F]{40}$/.test(contract)) throw usageError('--contract: the HurenAnchor address is 0x + 40 hex digits');
  const ledger = new EvmLedger({ name: name ?? 'unnamed', nodes: rpc, contract, pollIntervalMs: 100 });
  return { ledger, name: name ?? 'unnamed', contract: ledger.contract };
}

/** Is a node up and the contract there? */
export async function checkReadChain(c: ReadChain): Promise<ChainCheck> {
  const health = await c.ledger.health();
  const up = health.nodes.find((n) => n.up);
  if (!up) return { ok: false, summary: `no chain node usable (链节点不可用): ${health.nodes.map((n) => `${n.node}: ${n.error ?? 'down'}`).join('; ')}` };
  return { ok: true, summary: `chain ${up.chainId} at height ${up.height}, contract ${c.contract} present (read only 只读)` };
}
