/**
 * The Guangzhou government-affairs blockchain gateway (DESIGN.md §5): a REST gateway with ledger definition
 * templates, a hash-generation call, a data-upload call and a data-decryption key. Its exact spec is not
 * public yet, so this is only the boundary: a port implementation that refuses every operation with a clear
 * error. No fake. When the spec arrives, implement anchor/lookup/compare/health here against it.
 */
import {
  LedgerError,
  type AnchorBatch,
  type AnchorReceipt,
  type CompareResult,
  type LedgerHealth,
  type LedgerPort,
  type LookupResult,
  type TxLookupResult,
} from './port.ts';

export const GOV_GATEWAY_NOT_CONFIGURED = 'not configured: spec not public';

export interface GovGatewayOptions {
  name?: string;
  /** The gateway's base URL, when known. */
  url?: string;
}

export class GovGatewayLedger implements LedgerPort {
  readonly kind = 'gov-gateway' as const;
  readonly name: string;
  readonly url?: string;

  constructor(opts: GovGatewayOptions = {}) {
    this.name = opts.name ?? 'gz-gov-gateway';
    this.url = opts.url;
  }

  private refuse(op: string): never {
    throw new LedgerError('not-configured', `government gateway ledger '${this.name}': ${op}: ${GOV_GATEWAY_NOT_CONFIGURED}`);
  }

  async anchor(_batch: AnchorBatch): Promise<AnchorReceipt> {
    this.refuse('anchor');
  }

  async lookup(_keyOrRoot: string): Promise<LookupResult> {
    this.refuse('lookup');
  }

  async transaction(_txId: string): Promise<TxLookupResult> {
    this.refuse('transaction');
  }

  async compare(_nodes?: string[]): Promise<CompareResult> {
    this.refuse('compare');
  }

  /** Reports the ledger as down (with the reason) rather than throwing, so health pages keep working. */
  async health(): Promise<LedgerHealth> {
    return {
      ledger: this.name,
      kind: this.kind,
      up: false,
      canAnchor: false,
      nodes: [{ node: this.url ?? this.name, up: false, error: GOV_GATEWAY_NOT_CONFIGURED }],
    };
  }

  async close(): Promise<void> {}
}
