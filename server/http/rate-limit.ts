/**
 * Rate limits at the edge (docs/security.md 入侵防范), answered 429 with `Retry-After` and an OperationOutcome:
 *
 *   every request      per source address (HUREN_RATE_API_PER_SOURCE a minute) and per authenticated caller —
 *                      client, person or CDS client — (HUREN_RATE_API_PER_CLIENT); the platform token only per
 *                      source. Token buckets in this process's memory: with N server processes behind the load
 *                      balancer a source gets up to N × the limit. That is the point of these limits — keeping one
 *                      caller from exhausting a process — and a balancer spreading requests evenly keeps each
 *                      process's share; what must hold across processes is below.
 *   sign-in            POST /api/session/login and /api/session/second-factor per source address
 *                      (HUREN_RATE_LOGIN_PER_SOURCE a minute), counted in the database (`rate_window`, a sliding
 *                      window over fixed one-minute windows), so guessing passwords from many processes or after a
 *                      restart gains nothing; the accounts' own lockout (5 failures) comes on top.
 *   /auth/token        per source and per client (server/auth/throttle.ts, per process): an assertion is signed
 *                      by the client's private key and single-use (jti kept in the database), so there is nothing
 *                      to guess; the limit only bounds the work.
 */
import type Koa from 'koa';
import type { Database } from '../db/database.ts';
import { fail } from '../fhir/errors.ts';
import type { Principal } from '../fhir/principal.ts';
import { RateLimiter } from '../auth/throttle.ts';
import type { RateLimits } from '../config.ts';

const LOGIN_PATHS = new Set(['/api/session/login', '/api/session/second-factor']);

/** Hits per key in one-minute windows shared by every process of the database. */
export class SharedWindow {
  private lastPrune = 0;

  constructor(
    private readonly db: Database,
    private readonly windowSeconds = 60
  ) {}

  /** Counts a hit for `key`: 0 when within `limit` per window, else the seconds until it is. */
  async take(key: string, limit: number, now = Date.now()): Promise<number> {
    const w = this.windowSeconds;
    const seconds = now / 1000;
    const start = Math.floor(seconds / w) * w;
    const rows = await this.db.query<{ hits: number; previous: number | null }>(
      `INSERT INTO rate_window (key, window_start, hits) VALUES ($1, $2, 1)
       ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_window.hits + 1
       RETURNING hits, (SELECT p.hits FROM rate_window p WHERE p.key = $1 AND p.window_start = $3) AS previous`,
      [key, start, start - w]
    );
    if (now - this.lastPrune > w * 1000) {
      this.lastPrune = now;
      void this.db.query('DELETE FROM rate_window WHERE window_start < $1', [start - 2 * w]).catch(() => undefined);
    }
    const elapsed = (seconds - start) / w;
    const estimate = Number(rows[0]!.hits) + Number(rows[0]!.previous ?? 0) * (1 - elapsed);
    return estimate <= limit ? 0 : Math.max(1, Math.ceil((1 - elapsed) * w));
  }
}

function throttled(ctx: Koa.Context, seconds: number, text: string): never {
  ctx.set('Retry-After', String(seconds));
  throw fail(429, 'throttled', `${text}: retry after ${seconds} s`);
}

/** Sign-in attempts per source address, across processes. Mount before authentication. */
export function loginLimit(db: Database, limits: RateLimits): Koa.Middleware {
  const window = new SharedWindow(db);
  return async (ctx, next) => {
    if (ctx.method === 'POST' && LOGIN_PATHS.has(ctx.path)) {
      const wait = await window.take(`login:${ctx.ip}`, limits.loginPerSource);
      if (wait > 0) throttled(ctx, wait, 'Too many sign-in attempts from this address');
    }
    await next();
  };
}

/** Every request per source address and per caller (this process). Mount after authentication. */
export function apiLimit(limits: RateLimits): Koa.Middleware {
  const bySource = new RateLimiter(limits.apiPerSource);
  const byCaller = new RateLimiter(limits.apiPerClient);
  return async (ctx, next) => {
    const fromSource = bySource.take(ctx.ip);
    if (fromSource > 0) throttled(ctx, fromSource, 'Too many requests from this address');
    const principal = ctx.state.principal as Principal | undefined;
    if (principal && principal.kind !== 'anonymous' && principal.kind !== 'bootstrap') {
      const fromCaller = byCaller.take(principal.id);
      if (fromCaller > 0) throttled(ctx, fromCaller, 'Too many requests from this client');
    }
    await next();
  };
}
