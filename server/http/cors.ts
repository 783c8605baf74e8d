/**
 * CORS for browser apps (a SMART app on another origin): only the origins listed in `HUREN_CORS_ORIGINS`
 * (comma-separated, e.g. `https://app.example.org,http://localhost:3000`) get CORS headers; with none listed
 * the server sends none and browsers keep their same-origin rule (deny by default).
 *
 * The allowed origin is echoed back (`Access-Control-Allow-Origin: <origin>`, `Vary: Origin`); `*` in the list
 * allows any origin and is answered `*`. Credentials (cookies) are never allowed: the API is called with a
 * bearer token in `Authorization`, which CORS needs no credentials mode for, so `Access-Control-Allow-Credentials`
 * is never sent — in particular never together with `*`.
 *
 * A preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered here, before authorisation (browsers
 * send it without the token): 204 for a listed origin, 403 for any other.
 */
import type Koa from 'koa';
import { fail } from '../fhir/errors.ts';

const METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE';
const REQUEST_HEADERS = ['authorization', 'content-type', 'accept', 'prefer', 'if-match', 'if-none-match', 'if-none-exist', 'if-modified-since', 'x-request-id'];
const EXPOSED_HEADERS = 'Location, Content-Location, ETag, Last-Modified, X-Request-Id, X-Progress, Retry-After, WWW-Authenticate';
const MAX_AGE_SECONDS = '600';

/** Parses `HUREN_CORS_ORIGINS`: origins (`scheme://host[:port]`) or `*`; anything else is a configuration error. */
export function parseCorsOrigins(value: string | undefined): string[] {
  const origins: string[] = [];
  for (const raw of (value ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    if (raw === '*') {
      origins.push(raw);
      continue;
    }
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new Error(`HUREN_CORS_ORIGINS: '${raw}' is not an origin (scheme://host[:port])`);
    }
    if (!/^https?:$/.test(url.protocol) || url.origin !== raw.replace(/\/$/, '').toLowerCase() || url.pathname !== '/' || url.search || url.hash) {
      throw new Error(`HUREN_CORS_ORIGINS: '${raw}' is not an origin (scheme://host[:port], no path)`);
    }
    origins.push(url.origin);
  }
  return [...new Set(origins)];
}

export function cors(origins: readonly string[]): Koa.Middleware {
  const any = origins.includes('*');
  const listed = new Set(origins);
  return async (ctx, next) => {
    if (origins.length === 0) return next();
    ctx.vary('Origin');
    const origin = ctx.get('origin');
    const allowed = origin !== '' && (any || listed.has(origin));
    const preflight = ctx.method === 'OPTIONS' && ctx.get('access-control-request-method') !== '';
    if (preflight) {
      if (!allowed) throw fail(403, 'forbidden', `Origin '${origin.slice(0, 100)}' is not allowed (HUREN_CORS_ORIGINS)`);
      ctx.set('Access-Control-Allow-Origin', any ? '*' : origin);
      ctx.set('Access-Control-Allow-Methods', METHODS);
      ctx.set('Access-Control-Allow-Headers', REQUEST_HEADERS.join(', '));
      ctx.set('Access-Control-Max-Age', MAX_AGE_SECONDS);
      ctx.status = 204;
      return;
    }
    if (allowed) {
      ctx.set('Access-Control-Allow-Origin', any ? '*' : origin);
      ctx.set('Access-Control-Expose-Headers', EXPOSED_HEADERS);
    }
    await next();
  };
}
