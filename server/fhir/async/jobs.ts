/**
 * The FHIR asynchronous request pattern (R5 async-bundle, usable on R4): a request sent with
 * `Prefer: respond-async` is stored as a job and answered `202 Accepted` with a `Content-Location` to poll.
 * Polling gives `202` (with `X-Progress` and `Retry-After`) until the job is done, then `200` with a
 * `batch-response` Bundle holding the original response; `DELETE` cancels. Jobs live in the database, so a
 * restart loses nothing: a job whose worker died is taken over when its lease runs out.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import type { Database } from '../../db/database.ts';
import type { Principal } from '../principal.ts';
import { asFhirError, notFound, outcome, statusOf } from '../errors.ts';
import { OperationOutcomeError } from '@medplum/core';
import type { FhirRequest, FhirResponse } from '../router.ts';
import { engineOf } from '../engine.ts';

export interface AsyncOptions {
  /** How long a finished job's result is kept, in seconds. */
  retentionSeconds: number;
  /** How long a worker may hold a job before another may take it over, in seconds. */
  leaseSeconds: number;
  /** How often idle workers look for work, in milliseconds. */
  pollMs: number;
  /** Number of jobs run at once by this server (0 disables the worker). */
  concurrency: number;
}

interface JobRow {
  id: string;
  status: 'pending' | 'running' | 'done' | 'cancelled';
  request: FhirRequest;
  principal: Principal;
  base_url: string;
  result: { status: number; body?: Resource; location?: string } | null;
  progress?: string | null;
}

/** Reports how far a job has got (shown as X-Progress when polled; also renews the job's lease). */
export type ProgressReporter = (message: string) => void;

export type Executor = (request: FhirRequest, principal: Principal, baseUrl: string, progress: ProgressReporter) => Promise<FhirResponse>;

export const ASYNC_PATH = '_async';

export class AsyncJobs {
  private timer: NodeJS.Timeout | undefined;
  private running = 0;
  private stopped = false;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly db: Database,
    private readonly execute: Executor,
    private readonly options: AsyncOptions
  ) {}

  /** Stores a request as a pending job; returns the URL to poll. */
  async submit(request: FhirRequest, principal: Principal, baseUrl: string): Promise<string> {
    const id = randomUUID();
    const stored: FhirRequest = { ...request, prefer: { ...request.prefer, respondAsync: false } };
    await this.db.query('INSERT INTO async_job (id, status, request, principal, base_url) VALUES ($1, $2, $3, $4, $5)', [
      id,
      'pending',
      this.pack(stored),
      JSON.stringify(principal),
      baseUrl,
    ]);
    this.kick();
    return `${baseUrl}/${ASYNC_PATH}/${id}`;
  }

  /** The poll answer for a job. */
  async poll(id: string, principal: Principal): Promise<FhirResponse> {
    const rows = await this.db.query<JobRow>(
      "SELECT id, status, result, progress FROM async_job WHERE id = $1 AND principal->>'id' = $2 AND (expires_at IS NULL OR expires_at > now())",
      [id, principal.id]
    );
    const job = rows[0];
    if (!job || job.status === 'cancelled') throw notFound(`No asynchronous request ${id.slice(0, 64)}`);
    if (job.status !== 'done' || !job.result) {
      return {
        status: 202,
        headers: { 'X-Progress': job.status === 'pending' ? 'queued' : (job.progress ?? 'in progress'), 'Retry-After': '1' },
      };
    }
    const r = this.unpack(job.result) as NonNullable<JobRow['result']>;
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'batch-response',
      entry: [
        {
          ...(r.body ? { resource: r.body } : {}),
          response: { status: String(r.status), ...(r.location ? { location: r.location } : {}) },
        },
      ],
    };
    return { status: 200, body: bundle };
  }

  /** Cancels a job (and forgets its result). */
  async cancel(id: string, principal: Principal): Promise<FhirResponse> {
    const rows = await this.db.query<{ id: string }>(
      `UPDATE async_job SET status = 'cancelled', result = NULL, updated_at = now(), expires_at = now() + interval '1 hour'
       WHERE id = $1 AND principal->>'id' = $2 AND status <> 'cancelled' RETURNING id`,
      [id, principal.id]
    );
    if (rows.length === 0) throw notFound(`No asynchronous request ${id.slice(0, 64)}`);
    return { status: 202 };
  }

  /** Starts the worker loop. */
  start(): void {
    if (this.options.concurrency <= 0) return;
    this.stopped = false;
    this.timer = setInterval(() => this.kick(), this.options.pollMs);
    this.timer.unref();
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.allSettled([...this.inFlight]);
  }

  /** Starts runners up to the concurrency; each runs jobs until none is left. */
  private kick(): void {
    if (this.stopped || this.options.concurrency <= 0) return;
    while (this.running < this.options.concurrency) {
      this.running++;
      const p: Promise<void> = this.drain().finally(() => {
        this.running--;
        this.inFlight.delete(p);
      });
      this.inFlight.add(p);
    }
  }

  private async drain(): Promise<void> {
    while (!this.stopped && (await this.runOne().catch(() => false))) {
      // keep going while there is work
    }
  }

  private async runOne(): Promise<boolean> {
    const claimed = await this.db.transaction(async (sql) => {
      const rows = await sql.query<JobRow>(
        `SELECT id, status, request, principal, base_url FROM async_job
         WHERE status = 'pending' OR (status = 'running' AND lease_until < now())
         ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED`
      );
      if (rows.length === 0) return undefined;
      await sql.query(
        `UPDATE async_job SET status = 'running', attempts = attempts + 1, updated_at = now(),
         lease_until = now() + make_interval(secs => $2) WHERE id = $1`,
        [rows[0].id, this.options.leaseSeconds]
      );
      return rows[0];
    });
    if (!claimed) {
      await this.expire();
      return false;
    }
    let result: JobRow['result'];
    try {
      const res = await this.execute(this.unpack(claimed.request) as FhirRequest, claimed.principal, claimed.base_url, this.reporter(claimed.id));
      result = { status: res.status, ...(res.body ? { body: res.body } : {}), ...(res.location ? { location: res.location } : {}) };
    } catch (thrown) {
      // a failing request is a finished job too; its answer is the error
      const err = asFhirError(thrown);
      result = { status: statusOf(err), body: err instanceof OperationOutcomeError ? err.outcome : outcome('fatal', 'exception', 'Internal error') };
    }
    // a job cancelled while it ran stays cancelled
    await this.db.query(
      `UPDATE async_job SET status = 'done', result = $2, updated_at = now(), lease_until = NULL,
       expires_at = now() + make_interval(secs => $3) WHERE id = $1 AND status = 'running'`,
      [claimed.id, this.pack(result), this.options.retentionSeconds]
    );
    return true;
  }

  /**
   * A request or an answer as stored: sealed as a whole by the engine's storage codec (it may hold what the
   * resources hold — a search by national ID, a Patient), a JSON string in the jsonb column.
   */
  private pack(value: unknown): string {
    return JSON.stringify(engineOf(this.db).codec.sealText(JSON.stringify(value)));
  }

  private unpack(stored: unknown): unknown {
    return typeof stored === 'string' ? JSON.parse(engineOf(this.db).codec.openText(stored)) : stored;
  }

  /** A throttled progress reporter for one running job (at most one write a second). */
  private reporter(id: string): ProgressReporter {
    let last = 0;
    return (message) => {
      const now = Date.now();
      if (now - last < 1000) return;
      last = now;
      this.db
        .query(
          `UPDATE async_job SET progress = $2, updated_at = now(), lease_until = now() + make_interval(secs => $3)
           WHERE id = $1 AND status = 'running'`,
          [id, message.slice(0, 200), this.options.leaseSeconds]
        )
        .catch(() => undefined);
    };
  }

  /** Forgets jobs whose results are past their retention. */
  private async expire(): Promise<void> {
    await this.db.query('DELETE FROM async_job WHERE expires_at IS NOT NULL AND expires_at < now()');
  }
}
