/**
 * The monitoring app's small JSON API for chain provenance (behind the same bearer token as everything else;
 * errors are OperationOutcomes with the HTTP status), over the same functions as the FHIR operations:
 *
 *   GET /api/statistics/chain?from=2024-06-14&to=2024-06-15&institution=Organization/gy1
 *        per-day rows { day, institution, received, anchored-institution, anchored-platform, consistent,
 *        inconsistent, pending, unanchored } and their totals; days in Asia/Shanghai; counted live from the
 *        provenance tables (the MeasureReports are the same counts, as of their generation)
 *   GET /api/settings/hash-badge            { enabled, statuses, updated }
 *   PUT /api/settings/hash-badge            { "enabled": true, "statuses": ["consistent", "pending"] } (full rights or a system administrator)
 *   POST /api/provenance/anchor             anchors the platform's outbox now, the records still waiting for an
 *                                           institution's late Provenance included (full rights): { formed,
 *                                           anchored, records, failed } — what the anchoring job does at its next run
 */
import Router from '@koa/router';
import type Koa from 'koa';
import type { Database } from '../db/database.ts';
import { badRequest, fail } from '../fhir/errors.ts';
import { allows } from '../auth/scopes.ts';
import { ADMIN_SCOPES, mayChangeBadge } from './operations/badge-settings.ts';
import type { Principal } from '../http/auth.ts';
import { readBody, UNSTORABLE_TEXT, type BodyLimits } from '../http/body.ts';
import { BadgeSettingsError, readBadgeSettings, writeBadgeSettings } from './badge.ts';
import { chainStatistics, statisticsRange, StatisticsError, totals } from './statistics.ts';
import { ProvenanceService } from './service.ts';

export function provenanceApi(db: Database, limits: BodyLimits): Router {
  const router = new Router({ prefix: '/api' });
  const query = (ctx: Koa.Context, name: string): string | undefined => {
    const v = ctx.query[name];
    if (Array.isArray(v)) throw badRequest(`${name} may be given only once`, name);
    if (v !== undefined && UNSTORABLE_TEXT.test(v)) throw badRequest(`${name} holds characters that cannot be stored`, name);
    return v === undefined || v === '' ? undefined : v;
  };
  const json = (ctx: Koa.Context, body: unknown) => {
    ctx.body = body;
    ctx.type = 'application/json; charset=utf-8';
  };

  router.get('/statistics/chain', async (ctx) => {
    if (!allows((ctx.state.principal as Principal).scopes, 'MeasureReport', 'r')) throw fail(403, 'forbidden', 'The chain statistics need system/MeasureReport.r');
    for (const name of Object.keys(ctx.query)) {
      if (!['from', 'to', 'institution'].includes(name)) throw badRequest(`unknown parameter '${name.slice(0, 40)}' (known: from, to, institution)`, name.slice(0, 40));
    }
    let range;
    try {
      range = statisticsRange({ from: query(ctx, 'from'), to: query(ctx, 'to'), institution: query(ctx, 'institution') });
    } catch (e) {
      if (e instanceof StatisticsError) throw badRequest(e.message, e.param);
      throw e;
    }
    const rows = await chainStatistics(db, range);
    json(ctx, { ...range, timeZone: 'Asia/Shanghai', rows, totals: totals(rows) });
  });

  router.get('/settings/hash-badge', async (ctx) => json(ctx, await readBadgeSettings(db)));

  router.put('/settings/hash-badge', async (ctx) => {
    const principal = ctx.state.principal as Principal;
    if (!mayChangeBadge(principal)) throw fail(403, 'forbidden', 'Changing the badge setting needs full rights or the system administrator role');
    const body = (await readBody(ctx, limits)) as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('Send a JSON object: { "enabled": true, "statuses": ["consistent"] }');
    const unknown = Object.keys(body).find((k) => k !== 'enabled' && k !== 'statuses');
    if (unknown) throw badRequest(`unknown member '${unknown.slice(0, 40)}' (known: enabled, statuses)`, unknown.slice(0, 40));
    try {
      json(ctx, await writeBadgeSettings(db, { enabled: body.enabled, statuses: body.statuses }, principal.id));
    } catch (e) {
      if (e instanceof BadgeSettingsError) throw badRequest(e.message, e.index !== undefined ? `${e.param}[${e.index}]` : e.param);
      throw e;
    }
  });
  router.post('/provenance/anchor', async (ctx) => {
    const principal = ctx.state.principal as Principal;
    if (!principal.scopes.some((s) => ADMIN_SCOPES.includes(s))) throw fail(403, 'forbidden', 'Anchoring now needs full rights');
    if (Object.keys(ctx.query).length > 0) throw badRequest(`unknown parameter '${Object.keys(ctx.query)[0]!.slice(0, 40)}' (it takes none)`, Object.keys(ctx.query)[0]!.slice(0, 40));
    const service = ProvenanceService.of(db);
    if (!service) throw fail(503, 'transient', 'Chain provenance is not running on this server');
    json(ctx, await service.anchorNow({ force: true, includeWaiting: true }));
  });
  return router;
}
