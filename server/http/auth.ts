/**
 * The authorisation seam: one middleware resolves the principal of every request; nothing behind it runs
 * without one. Today a static bootstrap token with full rights; users, clients and scopes slot in here.
 */
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Koa from 'koa';
import { fail } from '../fhir/errors.ts';

export interface Principal {
  kind: 'anonymous' | 'bootstrap';
  /** A stable, non-personal identifier for logs and audit. */
  id: string;
  scopes: string[];
}

export const ANONYMOUS: Principal = { kind: 'anonymous', id: 'anonymous', scopes: [] };

/** Paths anyone may call (DESIGN.md §6a). */
export function isPublic(method: string, path: string): boolean {
  if (method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS') return false;
  return (
    path === '/fhir/metadata' ||
    path === '/healthz' ||
    path === '/readyz' ||
    path === '/.well-known/smart-configuration' ||
    path === '/fhir/.well-known/smart-configuration' ||
    path === '/cds-services' ||
    method === 'OPTIONS'
  );
}

export function authMiddleware(bootstrapToken: string): Koa.Middleware {
  const expected = digest(bootstrapToken);
  return async (ctx, next) => {
    const header = ctx.get('authorization');
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    let principal: Principal = ANONYMOUS;
    if (m && timingSafeEqual(digest(m[1]), expected)) {
      principal = { kind: 'bootstrap', id: 'bootstrap', scopes: ['system/*.*'] };
    } else if (header && !isPublic(ctx.method, ctx.path)) {
      ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      throw fail(401, 'login', 'Invalid or expired bearer token');
    }
    if (principal.kind === 'anonymous' && !isPublic(ctx.method, ctx.path)) {
      ctx.set('WWW-Authenticate', 'Bearer');
      throw fail(401, 'login', 'A bearer token is required (Authorization: Bearer …)');
    }
    ctx.state.principal = principal;
    await next();
  };
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/**
 * The bootstrap token: `HUREN_BOOTSTRAP_TOKEN`, else the one kept in the data directory, else a new one
 * (written there with mode 0600). `generated` tells the caller to print it once.
 */
export function resolveBootstrapToken(configured: string | undefined, dataDir: string): { token: string; generated: boolean } {
  if (configured) return { token: configured, generated: false };
  const file = join(dataDir, 'bootstrap-token');
  if (existsSync(file)) return { token: readFileSync(file, 'utf8').trim(), generated: false };
  mkdirSync(dataDir, { recursive: true });
  const token = randomBytes(32).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return { token, generated: true };
}
