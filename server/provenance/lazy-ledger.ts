/**
 * The configured ledger, opened on first use: the embedded chain costs seconds and ~100 MB to open, and a
 * server that never anchors nor looks anything up (most tests, a read replica) should not pay for it.
 * A failed opening is a retryable LedgerError and is tried again on the next call.
 */
import { createLedger, LedgerError, type LedgerConfig, type LedgerKind, type LedgerPort } from '../ledger/index.ts';
import type { AnchorBatch, AnchorReceipt, CompareResult, LedgerHealth, LookupResult, TxLookupResult } from '../ledger/port.ts';

export class LazyLedger implements LedgerPort {
  readonly name: string;
  readonly kind: LedgerKind;
  private opening?: Promise<LedgerPort>;
  private closed = false;

  constructor(
    private readonly config: LedgerConfig,
    private readonly open: (config: LedgerConfig) => Promise<LedgerPort> = createLedger
  ) {
    this.name = config.name;
    this.kind = config.kind;
  }

  /** Whether the ledger has been opened (or is being opened). */
  get opened(): boolean {
    return this.opening !== undefined;
  }

  /** The opened ledger (opening it now if need be). */
  resolve(): Promise<LedgerPort> {
    return this.port();
  }

  private port(): Promise<LedgerPort> {
    if (this.closed) return Promise.reject(new LedgerError('unavailable', `ledger ${this.name} is closed`));
    this.opening ??= this.open(this.config).catch((e: unknown) => {
      this.opening = undefined;
      if (e instanceof LedgerError) throw e;
      throw new LedgerError('unavailable', `ledger ${this.name} could not be opened: ${(e as Error).message}`.slice(0, 300), { cause: e });
    });
    return this.opening;
  }

  async anchor(batch: AnchorBatch): Promise<AnchorReceipt> {
    return (await this.port()).anchor(batch);
  }

  async lookup(keyOrRoot: string): Promise<LookupResult> {
    return (await this.port()).lookup(keyOrRoot);
  }

  async transaction(txId: string): Promise<TxLookupResult> {
    return (await this.port()).transaction(txId);
  }

  async compare(nodes?: string[]): Promise<CompareResult> {
    return (await this.port()).compare(nodes);
  }

  async health(): Promise<LedgerHealth> {
    return (await this.port()).health();
  }

  async close(): Promise<void> {
    this.closed = true;
    const opening = this.opening;
    this.opening = undefined;
    if (!opening) return;
    const port = await opening.catch(() => undefined);
    await port?.close();
  }
}
