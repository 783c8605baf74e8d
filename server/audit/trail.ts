/**
 * The request trail: one AuditEvent per request (event.ts), queued in memory and written in batches — every
 * ~100 ms one transaction stores the queued AuditEvents with one multi-row statement (Repository.createMany) and
 * the chain observer appends them to the audit chain in that transaction. The request path only builds the
 * event and pushes it on the queue. A crash loses at most the last interval's events (the queue is in memory);
 * `stop` flushes it. A request that reads the audit trail (AuditEvent reads and searches, $verify-chain, $trace,
 * $everything) flushes the queue first, so it sees every request answered before it.
 */
import { createHmac } from 'node:crypto';
import type Koa from 'koa';
import type { AuditEvent } from '@medplum/fhirtypes';
import type { Database } from '../db/database.ts';
import { Repository } from '../fhir/repository.ts';
import type { Principal } from '../fhir/principal.ts';
import type { Logger } from '../http/observability.ts';
import { requestEvent, type AccountAudit, type Masker, type RequestFacts } from './event.ts';
import type { AuditKeys } from './keys.ts';

const MAX_BATCH = 2000;
/** Beyond this many unwritten events (the database is unreachable) the oldest are dropped, and counted in the log. */
const MAX_QUEUE = 200_000;
/** Liveness probes carry no data and would flood the trail. */
const UNAUDITED = new Set(['/healthz', '/livez', '/readyz']);
const READS_TRAIL = /AuditEvent|\$trace|\$everything/;

export class AuditTrail {
  private queue: AuditEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private dropped = 0;
  readonly mask: Masker;

  constructor(
    private readonly db: Database,
    keys: AuditKeys,
    private readonly logger: Logger,
    private readonly intervalMs = 100
  ) {
    const key = keys.keys[keys.current];
    // a keyed hash: the same value gives the same mark (searches can be correlated), the value cannot be guessed back
    this.mask = (value) => `hmac-sm3:${keys.current}:${createHmac('sm3', key).update(value).digest('hex').slice(0, 24)}`;
  }

  record(event: AuditEvent): void {
    if (this.queue.length >= MAX_QUEUE) {
      this.queue.shift();
      this.dropped += 1;
    }
    this.queue.push(event);
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush().catch(() => undefined);
      }, this.intervalMs);
      this.timer.unref();
    }
  }

  /** Writes every queued event (batches one after another; concurrent calls wait for each other). */
  flush(): Promise<void> {
    const run = this.running.then(() => this.drain());
    this.running = run.catch(() => undefined);
    return run;
  }

  get pending(): number {
    return this.queue.length;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH);
      try {
        await new Repository(this.db).createMany(batch);
      } catch (err) {
        this.queue.unshift(...batch);
        const e = err as Error & { code?: string };
        this.logger.error({ err: { name: e.name, code: e.code }, pending: this.queue.length, dropped: this.dropped }, 'audit events not written yet');
        throw err;
      }
    }
    if (this.dropped > 0) {
      this.logger.error({ dropped: this.dropped }, 'audit events dropped while the database was unreachable');
      this.dropped = 0;
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush().catch(() => undefined);
  }

  /**
   * The middleware: mounted before authentication and the error mapping (app.ts, the modules' `edge`), so it sees
   * every request — refused ones included — with its final status, principal and account event.
   */
  middleware(): Koa.Middleware {
    return async (ctx, next) => {
      if (UNAUDITED.has(ctx.path)) return next();
      if (READS_TRAIL.test(ctx.path)) await this.flush().catch(() => undefined);
      let failed = false;
      try {
        await next();
      } catch (err) {
        failed = true;
        throw err;
      } finally {
        try {
          this.record(requestEvent(factsOf(ctx, failed), this.mask));
        } catch (err) {
          this.logger.error({ requestId: ctx.state.requestId, err: { name: (err as Error).name } }, 'audit event not built');
        }
      }
    };
  }
}

/** The largest answer parsed to find the patient it is about. */
const MAX_PARSED = 256 * 1024;

function factsOf(ctx: Koa.Context, failed: boolean): RequestFacts {
  let answer: RequestFacts['answer'];
  const body = ctx.body;
  // the answer as it was before it was serialised (app.ts, the CDS router), else parsed back from its text
  const given = ctx.state.answer as RequestFacts['answer'] | undefined;
  if (given && typeof given === 'object' && typeof body === 'string' && body.length <= MAX_PARSED) {
    answer = given.resourceType === 'Bundle' ? undefined : given;
  } else if (typeof body === 'string' && body.length <= MAX_PARSED && body.startsWith('{') && !body.startsWith('{"resourceType":"Bundle"')) {
    try {
      answer = JSON.parse(body);
    } catch {
      answer = undefined;
    }
  } else if (body && typeof body === 'object' && !Buffer.isBuffer(body) && typeof (body as { pipe?: unknown }).pipe !== 'function') {
    answer = body as RequestFacts['answer'];
  }
  return {
    method: ctx.method,
    path: ctx.path,
    query: [...new URLSearchParams(ctx.querystring)] as [string, string][],
    status: failed ? 500 : ctx.status,
    principal: ctx.state.principal as Principal | undefined,
    account: ctx.state.audit as AccountAudit | undefined,
    ip: ctx.ip,
    requestId: ctx.state.requestId as string | undefined,
    // an app launched for a patient reads for the purpose of its launch (TREAT), not a header's
    purpose: (ctx.state.principal as Principal | undefined)?.patient !== undefined ? (ctx.state.principal as Principal).purposeOfUse : ctx.get('x-purpose-of-use') || undefined,
    answer,
    location: ctx.response.get('location') || undefined,
    now: new Date(),
  };
}
