/**
 * The HTTP face of the EHR launch (docs/his-integration.md):
 *
 *   POST /auth/launch     a HIS client's access token with system/launch; JSON { patient, practitioner?, user?,
 *                         encounter? } → 201 { launch, expires_in, patient, encounter?, launch_url } (launch.ts)
 *   GET  /auth/authorize  public: the SMART app's authorization request → 302 to its redirect URI with a code
 *                         (or with error=…), or a Chinese page when the client or redirect URI is not registered
 *                         (app-auth.ts)
 */
import type Koa from 'koa';
import { readBody, type BodyLimits } from '../http/body.ts';
import { Repository } from '../fhir/repository.ts';
import type { Principal } from '../fhir/principal.ts';
import type { Database } from '../db/database.ts';
import { VIEWER_LAUNCH_PATH, type AppAuth } from './app-auth.ts';
import type { LaunchContexts } from './launch.ts';

export const LAUNCH_PATH = '/auth/launch';
export const AUTHORIZE_PATH = '/auth/authorize';

export interface LaunchRouteOptions {
  db: Database;
  apps: AppAuth;
  launches: LaunchContexts;
  limits: BodyLimits;
}

export function launchRoutes(options: LaunchRouteOptions): Koa.Middleware {
  const repo = new Repository(options.db);
  return async (ctx, next) => {
    if (ctx.path === AUTHORIZE_PATH) {
      // GET only: a HEAD would spend the launch without the browser ever seeing the code
      if (ctx.method !== 'GET') {
        ctx.set('Allow', 'GET');
        ctx.status = 405;
        return;
      }
      ctx.set('Cache-Control', 'no-store');
      const answer = await options.apps.authorize(new URLSearchParams(ctx.querystring));
      if ('redirect' in answer) {
        ctx.status = 302;
        ctx.set('Location', answer.redirect);
        return;
      }
      ctx.status = answer.status;
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = errorPage(answer.page);
      return;
    }
    if (ctx.path !== LAUNCH_PATH) return next();
    if (ctx.method !== 'POST') {
      ctx.set('Allow', 'POST');
      ctx.status = 405;
      return;
    }
    const principal = ctx.state.principal as Principal;
    // the principal is checked before the body is read: a caller without the scope learns nothing about patients
    const body = principal.kind === 'client' ? await readBody(ctx, options.limits) : undefined;
    const { launch, expiresIn, context } = await options.launches.create(principal, repo, body);
    const iss = options.apps.fhirBase();
    ctx.status = 201;
    ctx.set('Cache-Control', 'no-store');
    ctx.type = 'application/json; charset=utf-8';
    ctx.body = JSON.stringify({
      launch,
      expires_in: expiresIn,
      patient: context.patient,
      ...(context.encounter ? { encounter: context.encounter } : {}),
      launch_url: `${iss.replace(/\/fhir$/, '')}${VIEWER_LAUNCH_PATH}?${new URLSearchParams({ iss, launch })}`,
    });
  };
}

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function errorPage(message: string): string {
  return `<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>无法打开报告调阅 · 互认平台</title></head><body><h1>无法打开报告调阅</h1><p>${escape(message)}</p><p>请从 HIS 重新打开；如仍有问题，请联系本院信息科。</p></body></html>`;
}
