/**
 * The ledger (chain) port, DESIGN.md §5. The rest of the server knows only this interface; adapters:
 * EVM (ethers v6 + the HurenAnchor contract, over one or more nodes), the embedded default (the same EVM
 * adapter over an in-process ganache chain persisted under the data directory) and the government gateway
 * (boundary only: its spec is not public).
 *
 * Privacy by construction: `anchor` takes record digests (`sm3:<hex>` / `sha256:<hex>`: fingerprints or keys
 * derived by keyed hash) and a 32-byte batch id, nothing else; only their Merkle root, the record count and
 * the batch id are sent to the chain.
 */
import type { MerkleProof } from '../fingerprint/chain-provenance.ts';
import type { HashAlg } from '../fingerprint/hash.ts';

export type LedgerKind = 'embedded' | 'evm' | 'gov-gateway';

export interface AnchorBatch {
  /** Record digests `<alg>:<hex>`, all with one algorithm; at least one. */
  records: string[];
  /** 32 bytes of hex (0x optional), e.g. derived from the outbox batch; random when absent. */
  batchId?: string;
}

export interface AnchorReceipt {
  ledger: string;
  alg: HashAlg;
  /** `<alg>:<hex>` — a single record itself, or the RFC 9162 root of the batch. */
  root: string;
  count: number;
  /** 0x + 64 hex. */
  batchId: string;
  /** Transaction id (0x + 64 hex on an EVM chain). */
  txId: string;
  /** Block number holding the transaction. */
  height: number;
  blockHash: string;
  /** Block time, ISO 8601. */
  timestamp: string;
  /** The account that anchored. */
  submitter: string;
  /** The node that took the transaction. */
  node: string;
  /** True when the root had already been anchored (a retry after a lost answer): the receipt is the earlier one. */
  existing: boolean;
  /** One per record, in the order given: what goes into the record's chain Provenance. */
  proofs: MerkleProof[];
}

/** What one node holds for a key or root. */
export interface NodeHolding {
  node: string;
  /** found / absent: the node answered; down: unreachable; error: it answered but could not be read (no contract…). */
  status: 'found' | 'absent' | 'down' | 'error';
  error?: string;
  height?: number;
  blockHash?: string;
  txId?: string;
  timestamp?: string;
  count?: number;
  batchId?: string;
  submitter?: string;
}

export interface LookupResult {
  ledger: string;
  /** The root looked up, 0x + 64 hex. */
  key: string;
  /** At least one node holds it. */
  found: boolean;
  /** Every node answered and all answers are the same (found at the same transaction and block, or absent everywhere). */
  agree: boolean;
  nodes: NodeHolding[];
}

/** What one node holds for a transaction id: the anchor it made (from its Anchored event), if any. */
export interface TxHolding {
  node: string;
  /** found: the node has the transaction and it anchored `root`; absent: no such transaction, or one that anchored nothing. */
  status: 'found' | 'absent' | 'down' | 'error';
  error?: string;
  /** `<alg>:<hex>` is not known to the chain: the anchored bytes32, 0x + 64 hex. */
  root?: string;
  height?: number;
  blockHash?: string;
  count?: number;
  batchId?: string;
  submitter?: string;
}

export interface TxLookupResult {
  ledger: string;
  txId: string;
  nodes: TxHolding[];
}

export interface NodeComparison {
  node: string;
  /**
   * reference: the chain the others are compared with (held by most nodes);
   * agrees: same blocks up to the common height and same height;
   * behind / ahead: same blocks as far as both go, fewer / more blocks;
   * diverges: a different block at `firstDivergence`; down: unreachable.
   */
  status: 'reference' | 'agrees' | 'behind' | 'ahead' | 'diverges' | 'down';
  height?: number;
  /** First block number where this node's block differs from the reference's. */
  firstDivergence?: number;
  blockHash?: string;
  referenceBlockHash?: string;
  error?: string;
}

export interface CompareResult {
  ledger: string;
  /** Every node is up and holds the same blocks up to the same height. */
  agree: boolean;
  reference?: string;
  nodes: NodeComparison[];
  /** The earliest divergence among the nodes, if any. */
  firstDivergence?: { node: string; height: number; blockHash: string; referenceBlockHash: string };
}

export interface NodeHealth {
  node: string;
  up: boolean;
  height?: number;
  chainId?: number;
  /** The anchor contract is deployed at the configured address. */
  contract?: boolean;
  latencyMs?: number;
  error?: string;
}

export interface LedgerHealth {
  ledger: string;
  kind: LedgerKind;
  /** Anchoring can proceed: at least one node is up (and has the contract). */
  up: boolean;
  /** Anchoring is possible at all (a signing key is configured). */
  canAnchor: boolean;
  nodes: NodeHealth[];
}

export interface LedgerPort {
  readonly name: string;
  readonly kind: LedgerKind;
  /** Anchors a batch of record digests in one transaction. Throws LedgerError (see `retryable`). */
  anchor(batch: AnchorBatch): Promise<AnchorReceipt>;
  /** What every configured node holds for a root (or a record anchored by itself): `<alg>:<hex>` or 0x + 64 hex. */
  lookup(keyOrRoot: string): Promise<LookupResult>;
  /** What every configured node holds for an anchor transaction: the root it anchored, its block. */
  transaction(txId: string): Promise<TxLookupResult>;
  /** Compares the given nodes' chains (default: all configured nodes) block by block: the first divergence. */
  compare(nodes?: string[]): Promise<CompareResult>;
  health(): Promise<LedgerHealth>;
  close(): Promise<void>;
}

export type LedgerErrorCode = 'unavailable' | 'rejected' | 'invalid-input' | 'not-configured' | 'timeout';

export class LedgerError extends Error {
  constructor(
    readonly code: LedgerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'LedgerError';
  }

  /** Worth trying again later (the outbox retries with backoff): the chain was unreachable or slow. */
  get retryable(): boolean {
    return this.code === 'unavailable' || this.code === 'timeout';
  }
}
