/**
 * The EVM adapter of the ledger port: the HurenAnchor contract on one or more nodes of an EVM chain
 * (ganache, geth, FISCO BCOS / ChainMaker EVM…). Transactions go to the first node that answers; lookups,
 * comparisons and health ask every node.
 */
import { Wallet, getAddress, hexlify, randomBytes } from 'ethers';
import { parseDigest } from '../../fingerprint/hash.ts';
import { buildAnchorTree, type AnchorTree } from '../../merkle/anchor.ts';
import {
  LedgerError,
  type AnchorBatch,
  type AnchorReceipt,
  type CompareResult,
  type LedgerHealth,
  type LedgerKind,
  type LedgerPort,
  type LookupResult,
  type NodeComparison,
  type NodeHealth,
  type NodeHolding,
  type TxHolding,
  type TxLookupResult,
} from '../port.ts';
import { ANCHORED_TOPIC, anchorInterface, sendTransaction, toQuantity, type RpcReceipt, type SendOptions } from './contract.ts';
import { RpcTransportError, type RpcNode } from './rpc.ts';

export interface EvmLedgerOptions {
  /** The ledger's name in receipts and chain Provenance. */
  name: string;
  kind?: Extract<LedgerKind, 'evm' | 'embedded'>;
  /** In order of preference for sending transactions. Names must be unique. */
  nodes: RpcNode[];
  /** HurenAnchor address. */
  contract: string;
  /** Signing key (0x + 64 hex) of the platform or an institution account; without it the ledger is read-only. */
  privateKey?: string;
  /** Expected chain id. */
  chainId?: number;
  receiptTimeoutMs?: number;
  pollIntervalMs?: number;
  /** Called by close() (e.g. to stop an in-process chain). */
  onClose?: () => Promise<void>;
}

export interface TxResult {
  txId: string;
  height: number;
  blockHash: string;
}

const HEX32 = /^(0x)?[0-9a-fA-F]{64}$/;

/** `<alg>:<hex>`, `0x<64 hex>` or `<64 hex>` → 0x + lowercase hex (bytes32). */
export function toBytes32(keyOrRoot: string): string {
  if (typeof keyOrRoot !== 'string') throw new LedgerError('invalid-input', 'a key is a string');
  if (keyOrRoot.includes(':')) {
    try {
      return '0x' + parseDigest(keyOrRoot).hex;
    } catch (e) {
      throw new LedgerError('invalid-input', (e as Error).message);
    }
  }
  if (!HEX32.test(keyOrRoot)) throw new LedgerError('invalid-input', `'${keyOrRoot.slice(0, 80)}' is not a 32-byte hex key or <alg>:<hex> digest`);
  return '0x' + keyOrRoot.replace(/^0x/, '').toLowerCase();
}

export class EvmLedger implements LedgerPort {
  readonly name: string;
  readonly kind: Extract<LedgerKind, 'evm' | 'embedded'>;
  readonly contract: string;
  readonly nodes: readonly RpcNode[];
  private readonly wallet?: Wallet;
  private readonly send: SendOptions;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly onClose?: () => Promise<void>;
  private closed = false;

  constructor(opts: EvmLedgerOptions) {
    if (opts.nodes.length === 0) throw new LedgerError('not-configured', `ledger ${opts.name}: no chain node configured`);
    const names = new Set(opts.nodes.map((n) => n.name));
    if (names.size !== opts.nodes.length) throw new LedgerError('not-configured', `ledger ${opts.name}: node names must be unique`);
    this.name = opts.name;
    this.kind = opts.kind ?? 'evm';
    this.nodes = opts.nodes;
    try {
      this.contract = getAddress(opts.contract);
    } catch {
      throw new LedgerError('not-configured', `ledger ${opts.name}: '${opts.contract}' is not a contract address`);
    }
    if (opts.privateKey !== undefined) {
      try {
        this.wallet = new Wallet(opts.privateKey);
      } catch {
        throw new LedgerError('not-configured', `ledger ${opts.name}: the signing key is not a 32-byte hex private key`);
      }
    }
    this.send = { chainId: opts.chainId, receiptTimeoutMs: opts.receiptTimeoutMs, pollIntervalMs: opts.pollIntervalMs };
    this.onClose = opts.onClose;
  }

  /** The signing account, if any. */
  get account(): string | undefined {
    return this.wallet?.address;
  }

  // ------------------------------------------------------------------ anchor

  async anchor(batch: AnchorBatch): Promise<AnchorReceipt> {
    let tree: AnchorTree;
    let batchId: string;
    try {
      if (!batch || !Array.isArray(batch.records)) throw new Error('records must be an array of <alg>:<hex> digests');
      if (batch.records.length > 0xffffffff) throw new Error('too many records for one anchor');
      tree = buildAnchorTree(batch.records);
      batchId = batch.batchId === undefined ? hexlify(randomBytes(32)) : toBytes32(batch.batchId);
    } catch (e) {
      throw e instanceof LedgerError ? e : new LedgerError('invalid-input', (e as Error).message);
    }
    if (!this.wallet) throw new LedgerError('not-configured', `ledger ${this.name}: no signing key configured (read-only)`);
    return this.serial(() => this.anchorTree(tree, batchId));
  }

  private async anchorTree(tree: AnchorTree, batchId: string): Promise<AnchorReceipt> {
    const root = toBytes32(tree.root);
    const errors: string[] = [];
    for (const node of this.nodes) {
      try {
        // A retry after a lost answer: the root is already there, report the earlier anchoring.
        const held = await this.holding(node, root);
        if (held.status === 'found') return this.receipt(tree, held, node.name, true);
        if (held.status !== 'absent') throw new RpcTransportError(node.name, held.error ?? held.status);
        const data = anchorInterface.encodeFunctionData('anchor', [root, tree.size, batchId]);
        const receipt = await sendTransaction(node, this.wallet!, { to: this.contract, data }, this.send);
        const log = receipt.logs.find((l) => l.topics[0] === ANCHORED_TOPIC && l.topics[1]?.toLowerCase() === root);
        if (!log) throw new LedgerError('rejected', `transaction ${receipt.transactionHash} emitted no Anchored event`);
        return this.receipt(tree, await this.holdingFromReceipt(node, receipt, batchId, tree.size), node.name, false);
      } catch (e) {
        if (e instanceof RpcTransportError || (e instanceof LedgerError && e.code === 'unavailable')) {
          errors.push((e as Error).message);
          continue; // try the next node
        }
        throw e;
      }
    }
    throw new LedgerError('unavailable', `ledger ${this.name}: no node could take the anchor (${errors.join('; ')})`);
  }

  private async holdingFromReceipt(node: RpcNode, receipt: RpcReceipt, batchId: string, count: number): Promise<NodeHolding> {
    const block = await node.request<{ timestamp: string }>('eth_getBlockByHash', [receipt.blockHash, false]);
    return {
      node: node.name,
      status: 'found',
      height: Number(receipt.blockNumber),
      blockHash: receipt.blockHash,
      txId: receipt.transactionHash,
      timestamp: new Date(Number(block.timestamp) * 1000).toISOString(),
      count,
      batchId,
      submitter: this.wallet!.address,
    };
  }

  private receipt(tree: AnchorTree, held: NodeHolding, node: string, existing: boolean): AnchorReceipt {
    return {
      ledger: this.name,
      alg: tree.alg,
      root: tree.root,
      count: held.count!,
      batchId: held.batchId!,
      txId: held.txId!,
      height: held.height!,
      blockHash: held.blockHash!,
      timestamp: held.timestamp!,
      submitter: held.submitter!,
      node,
      existing,
      proofs: tree.proofs,
    };
  }

  // ------------------------------------------------------------------ lookup

  async lookup(keyOrRoot: string): Promise<LookupResult> {
    const key = toBytes32(keyOrRoot);
    const nodes = await Promise.all(this.nodes.map((n) => this.holding(n, key)));
    const first = nodes[0]!;
    const same = (a: NodeHolding, b: NodeHolding) =>
      a.status === b.status && a.txId === b.txId && a.blockHash === b.blockHash && a.height === b.height;
    return {
      ledger: this.name,
      key,
      found: nodes.some((n) => n.status === 'found'),
      agree: nodes.every((n) => (n.status === 'found' || n.status === 'absent') && same(n, first)),
      nodes,
    };
  }

  private async holding(node: RpcNode, key: string): Promise<NodeHolding> {
    try {
      const ret = await node.request<string>('eth_call', [
        { to: this.contract, data: anchorInterface.encodeFunctionData('anchorOf', [key]) },
        'latest',
      ]);
      if (!ret || ret === '0x') return { node: node.name, status: 'error', error: `no anchor contract at ${this.contract}` };
      const [blockNumber, timestamp, count, submitter, batchId] = anchorInterface.decodeFunctionResult('anchorOf', ret);
      if (blockNumber === 0n) return { node: node.name, status: 'absent' };
      const logs = await node.request<Array<{ blockHash: string; transactionHash: string }>>('eth_getLogs', [
        { address: this.contract, fromBlock: toQuantity(blockNumber), toBlock: toQuantity(blockNumber), topics: [ANCHORED_TOPIC, key] },
      ]);
      const log = logs[0];
      return {
        node: node.name,
        status: 'found',
        height: Number(blockNumber),
        blockHash: log?.blockHash,
        txId: log?.transactionHash,
        timestamp: new Date(Number(timestamp) * 1000).toISOString(),
        count: Number(count),
        batchId: String(batchId),
        submitter: getAddress(String(submitter)),
      };
    } catch (e) {
      if (e instanceof RpcTransportError) return { node: node.name, status: 'down', error: e.message };
      return { node: node.name, status: 'error', error: (e as Error).message };
    }
  }

  // ------------------------------------------------------------------ transaction

  async transaction(txId: string): Promise<TxLookupResult> {
    if (typeof txId !== 'string' || !HEX32.test(txId)) throw new LedgerError('invalid-input', `'${String(txId).slice(0, 80)}' is not a transaction id (0x + 64 hex)`);
    const tx = '0x' + txId.replace(/^0x/, '').toLowerCase();
    const nodes = await Promise.all(this.nodes.map((n) => this.txHolding(n, tx)));
    return { ledger: this.name, txId: tx, nodes };
  }

  private async txHolding(node: RpcNode, tx: string): Promise<TxHolding> {
    try {
      const receipt = await node.request<RpcReceipt | null>('eth_getTransactionReceipt', [tx]);
      if (!receipt) return { node: node.name, status: 'absent' };
      const log = receipt.logs.find((l) => l.topics[0] === ANCHORED_TOPIC && l.address.toLowerCase() === this.contract.toLowerCase());
      if (!log || receipt.status !== '0x1') return { node: node.name, status: 'absent', height: Number(receipt.blockNumber), blockHash: receipt.blockHash };
      const ev = anchorInterface.parseLog(log)!;
      return {
        node: node.name,
        status: 'found',
        root: String(ev.args.root).toLowerCase(),
        height: Number(receipt.blockNumber),
        blockHash: receipt.blockHash,
        count: Number(ev.args.count),
        batchId: String(ev.args.batchId),
        submitter: getAddress(String(ev.args.submitter)),
      };
    } catch (e) {
      if (e instanceof RpcTransportError) return { node: node.name, status: 'down', error: e.message };
      return { node: node.name, status: 'error', error: (e as Error).message };
    }
  }

  // ------------------------------------------------------------------ compare

  async compare(names?: string[]): Promise<CompareResult> {
    const selected = names === undefined ? [...this.nodes] : names.map((n) => {
      const node = this.nodes.find((x) => x.name === n);
      if (!node) throw new LedgerError('invalid-input', `ledger ${this.name} has no node '${n}'`);
      return node;
    });
    const heights = await Promise.all(
      selected.map(async (node) => {
        try {
          return { node, height: Number(await node.request<string>('eth_blockNumber')) };
        } catch (e) {
          return { node, error: (e as Error).message };
        }
      }),
    );
    const up = heights.filter((h): h is { node: RpcNode; height: number } => h.height !== undefined);
    const cache = new Map<string, string>();
    const hashAt = async (node: RpcNode, h: number): Promise<string> => {
      const k = `${node.name}@${h}`;
      let v = cache.get(k);
      if (v === undefined) {
        const block = await node.request<{ hash: string } | null>('eth_getBlockByNumber', [toQuantity(h), false]);
        if (!block) throw new Error(`${node.name} has no block ${h}`);
        v = block.hash;
        cache.set(k, v);
      }
      return v;
    };

    const result: CompareResult = { ledger: this.name, agree: false, nodes: [] };
    const byName = new Map<string, NodeComparison>();
    for (const h of heights) {
      const c: NodeComparison = h.height === undefined ? { node: h.node.name, status: 'down', error: h.error } : { node: h.node.name, status: 'agrees', height: h.height };
      byName.set(h.node.name, c);
      result.nodes.push(c);
    }
    if (up.length === 0) return result;

    try {
      // The reference: the chain most nodes hold at the common height (ties: the first configured node).
      const common = Math.min(...up.map((u) => u.height));
      const groups = new Map<string, typeof up>();
      for (const u of up) {
        const hash = await hashAt(u.node, common);
        groups.set(hash, [...(groups.get(hash) ?? []), u]);
      }
      let refGroup = [...groups.values()][0]!;
      for (const g of groups.values()) if (g.length > refGroup.length) refGroup = g;
      const ref = refGroup[0]!;
      result.reference = ref.node.name;
      byName.get(ref.node.name)!.status = 'reference';

      for (const u of up) {
        if (u === ref) continue;
        const c = byName.get(u.node.name)!;
        const top = Math.min(u.height, ref.height);
        if ((await hashAt(u.node, top)) === (await hashAt(ref.node, top))) {
          c.status = u.height === ref.height ? 'agrees' : u.height < ref.height ? 'behind' : 'ahead';
          continue;
        }
        // Blocks chain their parents: once two nodes differ they differ at every later height. Binary search.
        let lo = 0;
        let hi = top; // differs at hi
        if ((await hashAt(u.node, 0)) !== (await hashAt(ref.node, 0))) hi = 0;
        while (hi - lo > 1) {
          const mid = Math.floor((lo + hi) / 2);
          if ((await hashAt(u.node, mid)) === (await hashAt(ref.node, mid))) lo = mid;
          else hi = mid;
        }
        c.status = 'diverges';
        c.firstDivergence = hi;
        c.blockHash = await hashAt(u.node, hi);
        c.referenceBlockHash = await hashAt(ref.node, hi);
        if (!result.firstDivergence || hi < result.firstDivergence.height) {
          result.firstDivergence = { node: u.node.name, height: hi, blockHash: c.blockHash, referenceBlockHash: c.referenceBlockHash };
        }
      }
    } catch (e) {
      throw new LedgerError('unavailable', `ledger ${this.name}: comparing nodes failed: ${(e as Error).message}`, { cause: e });
    }
    result.agree = result.nodes.every((n) => n.status === 'reference' || n.status === 'agrees');
    return result;
  }

  // ------------------------------------------------------------------ health

  async health(): Promise<LedgerHealth> {
    const nodes = await Promise.all(this.nodes.map((n) => this.nodeHealth(n)));
    return {
      ledger: this.name,
      kind: this.kind,
      up: nodes.some((n) => n.up),
      canAnchor: this.wallet !== undefined,
      nodes,
    };
  }

  private async nodeHealth(node: RpcNode): Promise<NodeHealth> {
    const t0 = performance.now();
    try {
      const [chainId, height, code] = await Promise.all([
        node.request<string>('eth_chainId'),
        node.request<string>('eth_blockNumber'),
        node.request<string>('eth_getCode', [this.contract, 'latest']),
      ]);
      const h: NodeHealth = {
        node: node.name,
        up: true,
        chainId: Number(chainId),
        height: Number(height),
        contract: !!code && code !== '0x',
        latencyMs: Math.round(performance.now() - t0),
      };
      if (this.send.chainId !== undefined && h.chainId !== this.send.chainId) {
        h.up = false;
        h.error = `chain id ${h.chainId}, configured ${this.send.chainId}`;
      } else if (!h.contract) {
        h.up = false;
        h.error = `no anchor contract at ${this.contract}`;
      }
      return h;
    } catch (e) {
      return { node: node.name, up: false, error: (e as Error).message, latencyMs: Math.round(performance.now() - t0) };
    }
  }

  // ------------------------------------------------------------------ administration (not part of the port)

  /** Registers an institution account (owner only). `institution` is a 32-byte code, e.g. a hash of its identifier. */
  async registerInstitution(account: string, institution: string): Promise<TxResult> {
    return this.adminTx('register', [getAddress(account), toBytes32(institution)]);
  }

  async deregisterInstitution(account: string): Promise<TxResult> {
    return this.adminTx('deregister', [getAddress(account)]);
  }

  async isRegistered(account: string): Promise<boolean> {
    const ret = await this.nodes[0]!.request<string>('eth_call', [
      { to: this.contract, data: anchorInterface.encodeFunctionData('isRegistered', [getAddress(account)]) },
      'latest',
    ]);
    return anchorInterface.decodeFunctionResult('isRegistered', ret)[0] as boolean;
  }

  private adminTx(fn: 'register' | 'deregister', args: unknown[]): Promise<TxResult> {
    if (!this.wallet) throw new LedgerError('not-configured', `ledger ${this.name}: no signing key configured (read-only)`);
    return this.serial(async () => {
      const data = anchorInterface.encodeFunctionData(fn, args);
      const errors: string[] = [];
      for (const node of this.nodes) {
        try {
          const r = await sendTransaction(node, this.wallet!, { to: this.contract, data }, this.send);
          return { txId: r.transactionHash, height: Number(r.blockNumber), blockHash: r.blockHash };
        } catch (e) {
          if (e instanceof LedgerError && e.code === 'unavailable') {
            errors.push(e.message);
            continue;
          }
          throw e;
        }
      }
      throw new LedgerError('unavailable', `ledger ${this.name}: no node could take the transaction (${errors.join('; ')})`);
    });
  }

  /** One transaction at a time per signing account (nonces). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.catch(() => undefined);
    await this.onClose?.();
  }
}

