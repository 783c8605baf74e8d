/**
 * CDS Hooks 2.0 under `/cds-services` (DESIGN.md §6, §6a):
 *
 *   GET  /cds-services                 discovery (public: the auth seam lets it through without a token)
 *   POST /cds-services/{id}            a hook call → { "cards": [ … ] }
 *   POST /cds-services/{id}/feedback   the doctor's decisions → the recognition record
 *
 * Calls and feedback need `Authorization: Bearer …` — the seam in server/http/auth.ts: the platform token,
 * or a registered CDS client's signed JWT (CDS Hooks 2.0 "Trusting CDS Clients", server/cds/trust.ts), which
 * makes the call for the client's institution. A CDS client's JWT opens exactly these calls; any other token
 * needs the scopes of the recognition checks the calls make: Patient, DiagnosticReport read and DetectedIssue
 * create for a hook call, DetectedIssue update for feedback. Errors are 4xx OperationOutcomes whose expression is the JSON path of the input at fault.
 */
import type Koa from 'koa';
import { missing, RECOGNITION_NEEDS, refusalText, type Need } from '../auth/scopes.ts';
import type { Repository } from '../fhir/repository.ts';
import { badRequest, fail } from '../fhir/errors.ts';
import type { Principal } from '../http/auth.ts';
import { readBody, type BodyLimits } from '../http/body.ts';
import { recordFeedback } from './feedback.ts';
import { callService, type CdsEnv } from './hooks.ts';
import { discovery, findService } from './services.ts';

export interface CdsOptions {
  repo: Repository;
  limits: BodyLimits;
  /** The server's public base URL, if behind a proxy (else taken from the request). */
  publicUrl?: string;
}

const PREFIX = '/cds-services';
const CALL_NEEDS: readonly Need[] = [{ type: 'Patient', action: 'r' }, ...RECOGNITION_NEEDS];
const FEEDBACK_NEEDS: readonly Need[] = [{ type: 'DetectedIssue', action: 'u' }];

export function cdsHooks(options: CdsOptions): Koa.Middleware {
  return async (ctx, next) => {
    if (ctx.path !== PREFIX && !ctx.path.startsWith(`${PREFIX}/`)) return next();
    const segments = ctx.path.slice(PREFIX.length).split('/').filter(Boolean);
    const allow = segments.length === 0 ? 'GET, HEAD, OPTIONS' : 'POST, OPTIONS';
    if (segments.length > 2 || (segments.length === 2 && segments[1] !== 'feedback')) throw fail(404, 'not-found', `Nothing at ${ctx.path.slice(0, 100)}`);
    const service = segments.length > 0 ? findService(decodeSegment(segments[0])) : undefined;
    if (segments.length > 0 && !service) throw fail(404, 'not-found', `No CDS service '${decodeSegment(segments[0]).slice(0, 64)}' (GET ${PREFIX} lists them)`);
    if (ctx.method === 'OPTIONS') {
      ctx.set('Allow', allow);
      ctx.status = 204;
      return;
    }
    if (!allow.split(', ').includes(ctx.method)) {
      ctx.set('Allow', allow);
      throw fail(405, 'not-supported', `${ctx.method} is not allowed here; use ${allow.split(', ')[0]}`);
    }
    if (!service) {
      json(ctx, discovery());
      return;
    }
    const principal = ctx.state.principal as Principal | undefined;
    if (!principal?.scopes.includes('cds-hooks')) {
      const need = missing(principal?.scopes ?? [], segments.length === 1 ? CALL_NEEDS : FEEDBACK_NEEDS);
      if (need) throw fail(403, 'forbidden', refusalText(need));
    }
    const body = await readBody(ctx, options.limits);
    if (body === undefined) throw badRequest('The request has no body: send the CDS Hooks JSON (Content-Type: application/json)');
    const env: CdsEnv = {
      repo: options.repo,
      principal,
      publicBase: options.publicUrl ?? `${ctx.protocol}://${ctx.host}`,
    };
    json(ctx, segments.length === 1 ? await callService(env, service, body) : await recordFeedback(env, service, body));
  };
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw badRequest('Malformed URL encoding in the path');
  }
}

function json(ctx: Koa.Context, body: unknown): void {
  ctx.status = 200;
  ctx.type = 'application/json; charset=utf-8';
  ctx.body = JSON.stringify(body);
  ctx.state.answer = body; // for the audit trail: not parsed back
}
