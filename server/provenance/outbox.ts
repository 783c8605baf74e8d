/**
 * Platform-side anchoring through a durable outbox (DESIGN.md §5):
 *
 *   enqueue(sql, kind, key, digest)   in the writer's transaction: the record waits in anchor_outbox
 *   Anchorer.run()                    every period: queued records → batches (one RFC 9162 tree per batch and
 *                                     algorithm, proofs stored per record) → one anchor transaction per batch
 *
 * A batch's tree is fixed when it is formed, and its chain batch id with it, so retrying a batch anchors the
 * same root: a retry after a lost answer finds the root already on the chain and takes that receipt
 * (EvmLedger.anchor). Batches are claimed with a short lease (HUREN_ANCHOR_LEASE_SECONDS) that a heartbeat
 * renews while the worker lives — however long the chain takes to answer — so a server that dies while
 * anchoring leaves its batch to another (or to itself after a restart) as soon as the lease runs out. The
 * claim's attempt number fences the heartbeat: a worker whose batch was taken over cannot renew it. A chain outage only delays: a failed batch is retried with
 * exponential backoff, never dropped, and nothing on the write path waits for the chain.
 *
 * What goes to the chain per batch: the root (a digest), the record count and the batch id — a keyed hash
 * (HMAC, platform secret) of the platform's batch id. Record keys (internal references such as
 * `DetectedIssue/<id>/_history/<v>`) stay in the database.
 */
import { randomUUID } from 'node:crypto';
import { prepared, type Database, type Sql } from '../db/database.ts';
import { isDigest, parseDigest, type MerkleProof } from '../fingerprint/index.ts';
import { LedgerError, type AnchorReceipt, type LedgerPort } from '../ledger/port.ts';
import { buildAnchorTree } from '../merkle/index.ts';
import type { Logger } from '../http/observability.ts';
import type { ProvenanceConfig } from './config.ts';
import { insertAnchor, parseReportKey, refreshChainStatus } from './records.ts';
import type { PlatformSecret } from './secret.ts';
import type { RecordKeys } from './record-keys.ts';
import { PLATFORM_PROVENANCE_PREFIX, writePlatformProvenances } from './platform-provenance.ts';

const KIND = /^[a-z][a-z0-9-]{0,39}$/;

export class OutboxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OutboxError';
  }
}

/**
 * Queues a record for platform anchoring, in the caller's transaction (pass its Sql). Idempotent per
 * (kind, key, digest).
 *
 * @param kind   what it is: `report`, `recognition-record`, … (lowercase, digits, dashes)
 * @param key    an internal reference to find its proof again (e.g. `DetectedIssue/<id>/_history/<v>`);
 *               stays in the database, never goes to the chain; must not be personal data
 * @param digest the record's digest `<alg>:<hex>` — the only thing about it that reaches the chain (as a
 *               leaf of the batch's Merkle tree)
 */
const ENQUEUE_SQL = prepared(
  `INSERT INTO anchor_outbox (kind, key, digest, available_at) VALUES ($1, $2, $3, now() + make_interval(secs => $4))
     ON CONFLICT (kind, key, digest) DO NOTHING`
);

export async function enqueue(sql: Sql, kind: string, key: string, digest: string, options: { delaySeconds?: number } = {}): Promise<void> {
  await sql.query(ENQUEUE_SQL, outboxRow(kind, key, digest, options));
}

/**
 * An outbox row checked as `enqueue` checks it — [kind, key, digest, delay in seconds] — for a caller that
 * queues it within a statement of its own (`ENQUEUE_ROWS_SQL`).
 */
export function outboxRow(kind: string, key: string, digest: string, options: { delaySeconds?: number } = {}): [string, string, string, number] {
  if (!KIND.test(kind)) throw new OutboxError(`outbox kind '${String(kind).slice(0, 40)}' is not lowercase letters, digits and dashes`);
  if (typeof key !== 'string' || key.length === 0 || key.length > 300) throw new OutboxError('an outbox key is a string of 1 to 300 characters');
  if (!isDigest(digest)) throw new OutboxError('an outbox digest is <alg>:<64 hex>');
  const d = parseDigest(digest);
  return [kind, key, `${d.alg}:${d.hex}`, options.delaySeconds ?? 0];
}

/** Queues the rows of `outboxRow` given as the JSON array `rows` (a SQL expression), as `enqueue` does one. */
export const ENQUEUE_ROWS_SQL = (rows: string) =>
  `INSERT INTO anchor_outbox (kind, key, digest, available_at)
   SELECT q->>0, q->>1, q->>2, now() + make_interval(secs => (q->>3)::double precision) FROM jsonb_array_elements(${rows}) AS q
   ON CONFLICT (kind, key, digest) DO NOTHING`;

export interface AnchorRunResult {
  /** Batches formed in this run. */
  formed: number;
  /** Batches anchored (records in them). */
  anchored: number;
  records: number;
  /** Batches that failed and wait for a retry. */
  failed: number;
}

interface BatchRow {
  id: string;
  alg: string;
  root: string;
  size: number;
  chain_batch_id: string;
  attempts: number;
}

interface RecordRow {
  seq: number;
  kind: string;
  key: string;
  digest: string;
  leaf_index: number;
  proof: MerkleProof;
}


export class Anchorer {
  private retryTimer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly db: Database,
    private readonly ledger: LedgerPort,
    private readonly secret: PlatformSecret,
    private readonly keys: RecordKeys,
    private readonly config: ProvenanceConfig,
    private readonly logger: Logger,
    /** Runs a retry (the owner serialises runs). */
    private readonly scheduleRetry: () => void
  ) {}

  /** Forms batches of the queued records that are due, then anchors every due batch (all of them when forced). */
  async run(force = false, options: { includeWaiting?: boolean } = {}): Promise<AnchorRunResult> {
    const result: AnchorRunResult = { formed: 0, anchored: 0, records: 0, failed: 0 };
    result.formed = await this.formBatches(options.includeWaiting === true);
    for (;;) {
      if (this.stopped) break;
      const batch = await this.claim(force);
      if (!batch) break;
      const stopHeartbeat = this.heartbeat(batch);
      let ok: boolean;
      try {
        ok = await this.anchorBatch(batch);
      } finally {
        stopHeartbeat();
      }
      if (ok) {
        result.anchored++;
        result.records += batch.size;
      } else {
        result.failed++;
        break; // the chain is failing: the other batches wait for the retry
      }
    }
    return result;
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }

  /**
   * Queued records → batches of at most maxBatch records, one per algorithm. `includeWaiting`: also the records
   * still within their delay (waiting for an institution's own late Provenance).
   */
  private async formBatches(includeWaiting: boolean): Promise<number> {
    let formed = 0;
    for (;;) {
      const n = await this.db.transaction(async (sql) => {
        const rows = await sql.query<{ seq: number; digest: string }>(
          `SELECT seq, digest FROM anchor_outbox WHERE state = 'queued' AND (available_at <= now() OR $2::boolean)
           ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED`,
          [this.config.maxBatch, includeWaiting]
        );
        if (rows.length === 0) return { rows: 0, batches: 0 };
        const byAlg = new Map<string, typeof rows>();
        for (const r of rows) {
          const alg = r.digest.slice(0, r.digest.indexOf(':'));
          byAlg.set(alg, [...(byAlg.get(alg) ?? []), r]);
        }
        for (const [alg, records] of byAlg) {
          const tree = buildAnchorTree(records.map((r) => r.digest));
          const id = randomUUID();
          await sql.query(
            `INSERT INTO anchor_batch (id, alg, root, size, chain_batch_id, state) VALUES ($1, $2, $3, $4, $5, 'pending')`,
            [id, alg, tree.root, tree.size, this.secret.keyedHash('huren-anchor-batch', id)]
          );
          await sql.query(
            `UPDATE anchor_outbox o SET state = 'batched', batch_id = $1, leaf_index = (x.e->>0)::int, proof = x.e->1
               FROM jsonb_array_elements($2::jsonb) AS x(e) WHERE o.seq = (x.e->>2)::bigint`,
            [id, JSON.stringify(records.map((r, i) => [i, tree.proofs[i], r.seq]))]
          );
        }
        return { rows: rows.length, batches: byAlg.size };
      });
      formed += n.batches;
      if (n.rows < this.config.maxBatch) return formed;
    }
  }

  private async claim(force: boolean): Promise<BatchRow | undefined> {
    const rows = await this.db.query<BatchRow>(
      `UPDATE anchor_batch SET lease_until = now() + make_interval(secs => $2), attempts = attempts + 1
        WHERE id = (SELECT id FROM anchor_batch
                     WHERE state = 'pending' AND (next_attempt_at <= now() OR $1::boolean) AND (lease_until IS NULL OR lease_until < now())
                     ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING id, alg, root, size, chain_batch_id, attempts`,
      [force, this.config.leaseSeconds]
    );
    return rows[0];
  }

  /** Renews the lease on a claimed batch every third of it until stopped (fenced by the claim's attempt). */
  private heartbeat(batch: BatchRow): () => void {
    const renew = () =>
      this.db
        .query(`UPDATE anchor_batch SET lease_until = now() + make_interval(secs => $3) WHERE id = $1 AND attempts = $2 AND state = 'pending'`, [
          batch.id,
          batch.attempts,
          this.config.leaseSeconds,
        ])
        .catch(() => undefined); // a missed beat only shortens the lease; the next one tries again
    const timer = setInterval(renew, Math.max(200, (this.config.leaseSeconds * 1000) / 3));
    timer.unref();
    return () => clearInterval(timer);
  }

  /** One anchor transaction for a batch; false when it failed (and was rescheduled). */
  private async anchorBatch(batch: BatchRow): Promise<boolean> {
    const records = await this.db.query<RecordRow>(
      'SELECT seq, kind, key, digest, leaf_index, proof FROM anchor_outbox WHERE batch_id = $1 ORDER BY leaf_index',
      [batch.id]
    );
    let receipt: AnchorReceipt;
    try {
      if (records.length !== batch.size) throw new Error(`batch ${batch.id} holds ${records.length} records, not ${batch.size}`);
      receipt = await this.ledger.anchor({ records: records.map((r) => r.digest), batchId: batch.chain_batch_id });
      if (receipt.root !== batch.root) throw new LedgerError('rejected', `the ledger anchored root ${receipt.root}, the batch's root is ${batch.root}`);
    } catch (e) {
      const retryable = e instanceof LedgerError && e.retryable;
      const delay = Math.min(this.config.retrySeconds * 2 ** Math.min(batch.attempts - 1, 20), this.config.retryMaxSeconds);
      const message = (e as Error).message?.slice(0, 300) ?? 'unknown error';
      await this.db.query(
        `UPDATE anchor_batch SET lease_until = NULL, last_error = $2, next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1`,
        [batch.id, message, retryable ? delay : this.config.retryMaxSeconds]
      );
      const log = { batch: batch.id, size: batch.size, attempts: batch.attempts, retryInSeconds: retryable ? delay : this.config.retryMaxSeconds, code: (e as LedgerError).code };
      if (retryable) this.logger.warn(log, 'anchoring delayed: chain not reachable');
      else this.logger.error({ ...log, error: message }, 'anchoring failed; will retry');
      this.armRetry(retryable ? delay : this.config.retryMaxSeconds);
      return false;
    }
    await this.db.transaction(async (sql) => {
      await sql.query(
        `UPDATE anchor_batch SET state = 'anchored', lease_until = NULL, last_error = NULL, ledger = $2, tx_id = $3, height = $4, block_hash = $5, anchored_at = now()
         WHERE id = $1`,
        [batch.id, receipt.ledger, receipt.txId, receipt.height, receipt.blockHash]
      );
      await sql.query(`UPDATE anchor_outbox SET state = 'anchored' WHERE batch_id = $1`, [batch.id]);
      // reports anchored by the platform: their anchor, found on the chain just now
      for (const r of records) {
        if (r.kind !== 'report') continue;
        const key = parseReportKey(r.key);
        if (!key) continue;
        await insertAnchor(sql, {
          reportId: key.id,
          version: key.version,
          source: 'platform',
          provenance: { id: `${PLATFORM_PROVENANCE_PREFIX}${r.seq}`, version: 1 },
          anchor: { alg: receipt.alg, fingerprint: r.digest, ledger: receipt.ledger, transaction: receipt.txId, height: receipt.height, proof: r.proof },
          root: receipt.root,
          status: 'consistent',
          reasons: [],
          chain: { txId: receipt.txId, height: receipt.height, blockHash: receipt.blockHash },
          checked: true,
        }, this.keys);
        await refreshChainStatus(sql, key.id, key.version);
      }
      // and every record's anchor readable through FHIR, as a Provenance (platform-provenance.ts)
      await writePlatformProvenances(this.db, sql, records, receipt);
    });
    this.logger.info({ batch: batch.id, size: batch.size, ledger: receipt.ledger, txId: receipt.txId, height: receipt.height, existing: receipt.existing }, 'batch anchored');
    return true;
  }

  private armRetry(seconds: number): void {
    if (this.stopped) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.scheduleRetry();
    }, seconds * 1000 + 50);
    this.retryTimer.unref();
  }
}

export interface OutboxCounts {
  queued: number;
  batched: number;
  anchored: number;
  superseded: number;
}

export async function outboxCounts(sql: Sql): Promise<OutboxCounts> {
  const rows = await sql.query<{ state: keyof OutboxCounts; n: number }>('SELECT state, count(*)::int AS n FROM anchor_outbox GROUP BY state');
  const out: OutboxCounts = { queued: 0, batched: 0, anchored: 0, superseded: 0 };
  for (const r of rows) out[r.state] = Number(r.n);
  return out;
}
