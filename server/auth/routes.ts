/**
 * The OAuth endpoints of SMART Backend Services: `POST /auth/token` (public: the client authenticates with its
 * signed assertion; throttled per source address and per client; with grant_type=authorization_code a
 * registered SMART app exchanges its code, server/auth/app-auth.ts) and `/.well-known/smart-configuration`
 * (public, also under the FHIR base); and two administration calls that need the platform token:
 *
 *   POST /auth/revoke       client_id=…   every access token issued to that client so far stops working
 *   POST /auth/rotate-key                 a new token signing key (new kid); tokens signed before still verify until they expire
 *
 * `base()` is the server's own base URL — HUREN_PUBLIC_URL, else the listen address — never the request's Host:
 * the audience a client assertion must name.
 */
import type Koa from 'koa';
import { decodeJwt } from 'jose';
import { readBody } from '../http/body.ts';
import { OAuthError, smartConfiguration, type BackendAuth } from './backend.ts';
import type { AppAuth } from './app-auth.ts';
import type { TokenKeys } from './signing.ts';
import type { AuthThrottle } from './throttle.ts';

export const TOKEN_PATH = '/auth/token';
export const REVOKE_PATH = '/auth/revoke';
export const ROTATE_PATH = '/auth/rotate-key';
const FORM_LIMITS = { maxBytes: 64 * 1024, maxDepth: 8 };

export interface AuthRouteOptions {
  backend: BackendAuth;
  keys: TokenKeys;
  throttle: AuthThrottle;
  base: () => string;
  /** The registered SMART apps' code exchange (grant_type=authorization_code, server/auth/app-auth.ts). */
  apps?: AppAuth;
}

export function authRoutes(options: AuthRouteOptions): Koa.Middleware {
  const { backend, throttle } = options;
  return async (ctx, next) => {
    if ((ctx.path === '/.well-known/smart-configuration' || ctx.path === '/fhir/.well-known/smart-configuration') && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
      ctx.type = 'application/json; charset=utf-8';
      ctx.body = JSON.stringify(smartConfiguration(options.base()));
      return;
    }
    if (ctx.path !== TOKEN_PATH && ctx.path !== REVOKE_PATH && ctx.path !== ROTATE_PATH) return next();
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');
    ctx.type = 'application/json; charset=utf-8';
    try {
      if (ctx.method !== 'POST') {
        ctx.set('Allow', 'POST');
        ctx.status = 405;
        ctx.body = JSON.stringify({ error: 'invalid_request', error_description: 'use POST' });
        return;
      }
      if (ctx.path !== TOKEN_PATH) return await administration(ctx, options);
      const fromSource = throttle.tokenFromSource(ctx.ip);
      if (fromSource > 0) throw tooMany(ctx, fromSource, 'from this address');
      const form = await formOf(ctx);
      if (form.get('grant_type') === 'authorization_code' && options.apps) {
        ctx.status = 200;
        ctx.body = JSON.stringify(await options.apps.exchange(form));
        return;
      }
      const client = registeredIssuer(backend, form.get('client_assertion'));
      const forClient = client === undefined ? 0 : throttle.tokenForClient(client);
      if (forClient > 0) throw tooMany(ctx, forClient, 'for this client');
      ctx.status = 200;
      ctx.body = JSON.stringify(await backend.token(form, `${options.base()}${TOKEN_PATH}`));
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      ctx.status = err.status;
      if (err.status === 401) ctx.set('WWW-Authenticate', 'Bearer error="invalid_client"');
      ctx.body = JSON.stringify({ error: err.error, error_description: err.message });
    }
  };
}

/** The platform token's calls: revoke a client's tokens, rotate the signing key. */
async function administration(ctx: Koa.Context, options: AuthRouteOptions): Promise<void> {
  const principal = ctx.state.principal as { kind: string; id: string } | undefined;
  if (principal?.kind !== 'bootstrap') {
    ctx.status = 403;
    ctx.body = JSON.stringify({ error: 'access_denied', error_description: `${ctx.path} needs the platform token` });
    return;
  }
  if (ctx.path === ROTATE_PATH) {
    const kid = options.keys.rotate();
    ctx.status = 200;
    ctx.body = JSON.stringify({ kid, kids: options.keys.kids() });
    return;
  }
  const form = await formOf(ctx);
  const clientId = form.get('client_id');
  if (!clientId) throw new OAuthError(400, 'invalid_request', 'client_id is required');
  const { revokedBefore } = await options.backend.revoke(clientId, principal.id);
  ctx.status = 200;
  ctx.body = JSON.stringify({ client_id: clientId, revoked_before: revokedBefore });
}

function tooMany(ctx: Koa.Context, seconds: number, what: string): OAuthError {
  ctx.set('Retry-After', String(seconds));
  return new OAuthError(429, 'invalid_request', `too many token requests ${what}: retry after ${seconds} s`);
}

async function formOf(ctx: Koa.Context): Promise<URLSearchParams> {
  if ((ctx.get('content-type').split(';')[0] ?? '').trim().toLowerCase() !== 'application/x-www-form-urlencoded') {
    throw new OAuthError(400, 'invalid_request', 'send the request as application/x-www-form-urlencoded');
  }
  const form = (await readBody(ctx, FORM_LIMITS)) as URLSearchParams | undefined;
  if (!form) throw new OAuthError(400, 'invalid_request', 'the request has no body');
  return form;
}

/** The registered client an assertion names (unverified, for throttling only). */
function registeredIssuer(backend: BackendAuth, assertion: string | null): string | undefined {
  if (!assertion) return undefined;
  try {
    const { iss } = decodeJwt(assertion);
    return typeof iss === 'string' && backend.has(iss) ? iss : undefined;
  } catch {
    return undefined;
  }
}
