/**
 * The OAuth endpoints of SMART Backend Services: `POST /auth/token` (public: the client authenticates with its
 * signed assertion) and `/.well-known/smart-configuration` (public, also under the FHIR base).
 */
import type Koa from 'koa';
import { readBody } from '../http/body.ts';
import { OAuthError, smartConfiguration, type BackendAuth } from './backend.ts';

export const TOKEN_PATH = '/auth/token';
const FORM_LIMITS = { maxBytes: 64 * 1024, maxDepth: 8 };

export function authRoutes(backend: BackendAuth, publicUrl: string | undefined): Koa.Middleware {
  return async (ctx, next) => {
    const base = publicUrl ?? `${ctx.protocol}://${ctx.host}`;
    if ((ctx.path === '/.well-known/smart-configuration' || ctx.path === '/fhir/.well-known/smart-configuration') && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
      ctx.type = 'application/json; charset=utf-8';
      ctx.body = JSON.stringify(smartConfiguration(`${base}${TOKEN_PATH}`));
      return;
    }
    if (ctx.path !== TOKEN_PATH) return next();
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
      if ((ctx.get('content-type').split(';')[0] ?? '').trim().toLowerCase() !== 'application/x-www-form-urlencoded') {
        throw new OAuthError(400, 'invalid_request', 'send the token request as application/x-www-form-urlencoded');
      }
      const form = (await readBody(ctx, FORM_LIMITS)) as URLSearchParams | undefined;
      if (!form) throw new OAuthError(400, 'invalid_request', 'the token request has no body');
      ctx.status = 200;
      ctx.body = JSON.stringify(await backend.token(form, `${base}${TOKEN_PATH}`));
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      ctx.status = err.status;
      if (err.status === 401) ctx.set('WWW-Authenticate', 'Bearer error="invalid_client"');
      ctx.body = JSON.stringify({ error: err.error, error_description: err.message });
    }
  };
}
