/**
 * Throttles for the authentication edges (token buckets, in this server's memory: each server process
 * counts for itself, and a restart starts afresh). A bucket holds `perMinute` attempts and refills at that
 * rate; an empty bucket answers with the seconds until the next attempt is allowed (`Retry-After`).
 *
 *   POST /auth/token       every request, per source address and per (registered) client named by the assertion
 *   failed bearer tokens   per source address: once its budget is spent, every bearer request from it is 429
 *                          until the bucket refills; per client (the `sub`/`iss` a refused token claims): its
 *                          further refused tokens are 429 — its valid tokens keep working
 */
import { decodeJwt } from 'jose';
import type { RateLimits } from '../config.ts';

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly perMinute: number) {}

  /** Takes one attempt for `key`: 0 when allowed, else the seconds to wait (nothing is taken). */
  take(key: string, now = Date.now()): number {
    const wait = this.peek(key, now);
    if (wait === 0) this.buckets.get(key)!.tokens -= 1;
    return wait;
  }

  /** 0 when `key` has an attempt left, else the seconds to wait. */
  peek(key: string, now = Date.now()): number {
    const rate = this.perMinute / 60_000;
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= 10_000) this.prune(now);
      bucket = { tokens: this.perMinute, at: now };
      this.buckets.set(key, bucket);
    }
    bucket.tokens = Math.min(this.perMinute, bucket.tokens + (now - bucket.at) * rate);
    bucket.at = now;
    return bucket.tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - bucket.tokens) / rate / 1000));
  }

  /** Forgets the buckets that are full again. */
  private prune(now: number): void {
    const rate = this.perMinute / 60_000;
    for (const [key, b] of this.buckets) if (b.tokens + (now - b.at) * rate >= this.perMinute) this.buckets.delete(key);
  }
}

export class AuthThrottle {
  private readonly tokenBySource: RateLimiter;
  private readonly tokenByClient: RateLimiter;
  private readonly badBySource: RateLimiter;
  private readonly badByClient: RateLimiter;

  constructor(limits: RateLimits) {
    this.tokenBySource = new RateLimiter(limits.tokenPerSource);
    this.tokenByClient = new RateLimiter(limits.tokenPerClient);
    this.badBySource = new RateLimiter(limits.badTokenPerSource);
    this.badByClient = new RateLimiter(limits.badTokenPerClient);
  }

  /** A token request from `source`: 0, or the seconds to wait. */
  tokenFromSource(source: string): number {
    return this.tokenBySource.take(source);
  }

  /** A token request for a registered client: 0, or the seconds to wait. */
  tokenForClient(client: string): number {
    return this.tokenByClient.take(client);
  }

  /** Before a bearer token is looked at: 0, or the seconds `source` must wait after too many refused tokens. */
  bearerAllowed(source: string): number {
    return this.badBySource.peek(source);
  }

  /** A refused bearer token: 0 to answer 401, or the seconds to wait to answer 429. */
  bearerRefused(source: string, token: string): number {
    const bySource = this.badBySource.take(source);
    const client = claimedClient(token);
    const byClient = client === undefined ? 0 : this.badByClient.take(client);
    return Math.max(bySource, byClient);
  }
}

/** The client a JWT-shaped token claims to come from (unverified: for counting only). */
function claimedClient(token: string): string | undefined {
  try {
    const { sub, iss } = decodeJwt(token);
    const who = sub ?? iss;
    return typeof who === 'string' ? who.slice(0, 200) : undefined;
  } catch {
    return undefined;
  }
}
