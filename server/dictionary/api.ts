/**
 * A small JSON API for the monitoring app's dictionary QC pages, over the same functions as the FHIR
 * operations (behind the same bearer token; errors are OperationOutcomes with the HTTP status):
 *
 *   GET  /api/dictionary/organizations/:org/qc?pendingDays=7        the institution's QC report
 *   GET  /api/dictionary/maps/:map/entries?status=pending           entries with their review status
 *   GET  /api/dictionary/maps/:map/entries/:code/history?system=…   one entry and every change of it
 *   POST /api/dictionary/maps/:map/entries/:code/status             { "status": "approved", "comment": "…", "system": "…" }
 *
 * A signed-in person bound to an institution (an institution administrator) reaches only that institution's
 * report and maps (403 otherwise).
 */
import Router from '@koa/router';
import type Koa from 'koa';
import type { Database } from '../db/database.ts';
import { badRequest, fail } from '../fhir/errors.ts';
import { allows } from '../auth/scopes.ts';
import type { Principal } from '../http/auth.ts';
import { readBody, UNSTORABLE_TEXT, type BodyLimits } from '../http/body.ts';
import { dictionaryQc } from './qc.ts';
import { DictionaryError, entryHistory, listEntries, setStatus, STATUSES, syncMap, type EntryStatus } from './store.ts';

const ID = /^[A-Za-z0-9\-.]{1,64}$/;

export function dictionaryApi(db: Database, limits: BodyLimits): Router {
  const router = new Router({ prefix: '/api/dictionary' });
  const code = (value: string) => {
    if (value.length === 0 || value.length > 200 || UNSTORABLE_TEXT.test(value)) throw badRequest('the local code is empty, too long, or holds characters that cannot be stored', 'code');
    return value;
  };
  const id = (value: string, what: string) => {
    if (!ID.test(value)) throw badRequest(`'${value.slice(0, 70)}' is not a valid ${what} id`, what);
    return value;
  };
  const run = async <T>(ctx: Koa.Context, fn: () => Promise<T>) => {
    // reading the dictionaries needs ConceptMap read rights; reviewing an entry, update rights
    const action = ctx.method === 'GET' || ctx.method === 'HEAD' ? 'r' : 'u';
    if (!allows((ctx.state.principal as Principal).scopes, 'ConceptMap', action)) {
      throw fail(403, 'forbidden', action === 'r' ? 'Reading the dictionaries needs system/ConceptMap.r' : 'Reviewing dictionary entries needs the right to write ConceptMap resources');
    }
    try {
      ctx.body = await fn();
      ctx.type = 'application/json; charset=utf-8';
    } catch (err) {
      if (err instanceof DictionaryError) throw fail(err.status, err.code, err.message, err.param);
      throw err;
    }
  };
  /** The institution a signed-in person is bound to (`Organization/<id>` → id), if any. */
  const boundTo = (ctx: Koa.Context): string | undefined => {
    const p = ctx.state.principal as Principal;
    return p.kind === 'user' && p.institution ? p.institution.replace(/^Organization\//, '') : undefined;
  };
  const ownOrganization = (ctx: Koa.Context, org: string) => {
    const own = boundTo(ctx);
    if (own !== undefined && own !== org) throw fail(403, 'forbidden', 'An institution account reaches only its own institution’s dictionary');
    return org;
  };
  const ownMap = async (ctx: Koa.Context, map: string) => {
    if (boundTo(ctx) === undefined) return map;
    const { organization } = await syncMap(db, map);
    if (organization !== boundTo(ctx)) throw fail(403, 'forbidden', 'An institution account reaches only its own institution’s dictionary');
    return map;
  };
  const query = (ctx: Koa.Context, name: string): string | undefined => {
    const v = ctx.query[name];
    if (Array.isArray(v)) throw badRequest(`${name} may be given only once`, name);
    if (v !== undefined && UNSTORABLE_TEXT.test(v)) throw badRequest(`${name} holds characters that cannot be stored`, name);
    return v === undefined || v === '' ? undefined : v;
  };

  router.get('/organizations/:org/qc', (ctx) =>
    run(ctx, () => {
      const days = query(ctx, 'pendingDays');
      if (days !== undefined && (!/^\d{1,4}$/.test(days) || Number(days) > 3650)) throw badRequest('pendingDays must be a whole number of days (0–3650)', 'pendingDays');
      return dictionaryQc(db, ownOrganization(ctx, id(ctx.params.org, 'organization')), { ...(days !== undefined ? { pendingDays: Number(days) } : {}) });
    })
  );

  router.get('/maps/:map/entries', (ctx) =>
    run(ctx, async () => {
      const raw = ctx.query.status;
      const statuses = (Array.isArray(raw) ? raw : raw ? [raw] : []).flatMap((s) => s.split(',')).filter(Boolean);
      for (const s of statuses) if (!STATUSES.includes(s as EntryStatus)) throw badRequest(`status must be one of ${STATUSES.join(', ')}`, 'status');
      const entries = await listEntries(db, await ownMap(ctx, id(ctx.params.map, 'map')), { statuses: statuses as EntryStatus[] });
      return { map: ctx.params.map, total: entries.length, entries };
    })
  );

  router.get('/maps/:map/entries/:code/history', (ctx) => run(ctx, async () => entryHistory(db, await ownMap(ctx, id(ctx.params.map, 'map')), code(ctx.params.code), query(ctx, 'system'))));

  router.post('/maps/:map/entries/:code/status', (ctx) =>
    run(ctx, async () => {
      const principal = ctx.state.principal as Principal;
      const body = (await readBody(ctx, limits)) as { status?: unknown; comment?: unknown; system?: unknown } | undefined;
      if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('Send a JSON object: { "status": "approved", "comment": "…" }');
      if (typeof body.status !== 'string') throw badRequest('status is required', 'status');
      if (body.comment !== undefined && typeof body.comment !== 'string') throw badRequest('comment must be a string', 'comment');
      if (body.system !== undefined && typeof body.system !== 'string') throw badRequest('system must be a string', 'system');
      const [result] = await setStatus(
        db,
        await ownMap(ctx, id(ctx.params.map, 'map')),
        { codes: [code(ctx.params.code)], status: body.status as EntryStatus, ...(body.comment ? { comment: body.comment as string } : {}), ...(body.system ? { system: body.system as string } : {}) },
        principal
      );
      return result;
    })
  );
  return router;
}
