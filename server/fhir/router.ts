/**
 * The FHIR REST interactions, independent of HTTP: the Koa layer and the batch/transaction processor both
 * turn a request into a `FhirRequest` and send it here, so an entry in a Bundle behaves exactly like the same
 * request sent alone.
 */
import type { Bundle, OperationOutcome, Resource } from '@medplum/fhirtypes';
import type { Repository, WriteGuard } from './repository.ts';
import { badRequest, fail, informational, notFound } from './errors.ts';
import { isSupportedResourceType } from './definitions.ts';
import { decodeCursor, encodeCursor, parseSearch, pageParam, DEFAULT_COUNT } from './search/parse.ts';
import { capabilityStatement } from './capability.ts';
import type { Principal } from './principal.ts';
import { limits } from './limits.ts';
import { ASYNC_PATH, type AsyncJobs, type ProgressReporter } from './async/jobs.ts';
import { decorate, engineOf } from './engine.ts';

export interface FhirRequest {
  method: string;
  /** Path below the FHIR base, without leading slash: `Patient/123/_history/2`. */
  path: string;
  query: [string, string][];
  body?: unknown;
  /** POST of a Bundle to the base: the request body's text exactly as received (kept as the report's original). */
  raw?: string;
  ifMatch?: string;
  ifNoneExist?: string;
  ifNoneMatch?: string;
  prefer: Prefer;
}

export interface Prefer {
  return?: 'minimal' | 'representation' | 'OperationOutcome';
  handling?: 'strict' | 'lenient';
  respondAsync?: boolean;
}

export interface FhirResponse {
  status: number;
  body?: Resource;
  /** Set for a single-resource answer: Location, ETag and Last-Modified are derived from it. */
  resource?: Resource;
  location?: string;
  headers?: Record<string, string>;
  /** `body` already serialised as compact JSON (UTF-8), when the operation keeps it (large cached answers). */
  bytes?: Buffer;
  /** The operation authorised its whole answer itself: the access policy's answer filter leaves it as it is. */
  judged?: boolean;
}

export interface FhirContext {
  repo: Repository;
  baseUrl: string;
  principal: Principal;
  /** Processes a batch/transaction Bundle (injected to avoid a module cycle). */
  processBundle(ctx: FhirContext, bundle: unknown, prefer: Prefer, raw?: string): Promise<Bundle>;
  /** The asynchronous request pattern; absent where requests are already running as a job. */
  jobs?: AsyncJobs;
  /** Set when the request runs as an asynchronous job: long operations report their progress here. */
  progress?: ProgressReporter;
  /** Browser origins are allowed (CORS configured): the CapabilityStatement says so. */
  cors?: boolean;
}

export async function route(ctx: FhirContext, req: FhirRequest): Promise<FhirResponse> {
  const res = await dispatch(ctx, req);
  return decorate(engineOf(ctx.repo.db), ctx, req, res);
}

async function dispatch(ctx: FhirContext, req: FhirRequest): Promise<FhirResponse> {
  const segments = req.path.split('/').filter((s) => s.length > 0);
  const [type, second, third, fourth] = segments;
  const method = req.method.toUpperCase();
  authorize(ctx, method, segments);

  if (segments.length === 0) {
    if (method === 'POST') {
      if (req.prefer.respondAsync && ctx.jobs) return accepted(await ctx.jobs.submit(req, ctx.principal, ctx.baseUrl));
      return { status: 200, body: await ctx.processBundle(ctx, req.body, req.prefer, req.raw) };
    }
    throw fail(405, 'not-supported', `${method} on the FHIR base is not supported`);
  }
  if (type === 'metadata' && segments.length === 1 && method === 'GET') {
    return { status: 200, body: capabilityStatement(ctx.baseUrl, engineOf(ctx.repo.db), { cors: ctx.cors === true }) };
  }
  if (type === '_history' && segments.length === 1 && method === 'GET') return history(ctx, req, undefined, undefined);
  if (type === ASYNC_PATH && segments.length === 2 && ctx.jobs) {
    if (method === 'GET') return ctx.jobs.poll(second, ctx.principal);
    if (method === 'DELETE') return ctx.jobs.cancel(second, ctx.principal);
    throw fail(405, 'not-supported', `${method} is not supported on an asynchronous request`);
  }
  if (type.startsWith('$')) return operation(ctx, req, type.slice(1), undefined, undefined);
  if (!isSupportedResourceType(type)) throw notFound(`Unknown resource type '${type}'`);

  if (segments.length === 1) {
    switch (method) {
      case 'GET':
        return search(ctx, type, req.query, req.prefer);
      case 'POST':
        return create(ctx, type, req);
      case 'PUT':
        return writeAnswer(ctx, req, await ctx.repo.conditionalUpdate(ensureBody(req, type), conditionalQuery(req), writeGuard(ctx)));
      case 'DELETE': {
        const n = await ctx.repo.conditionalDelete(type, conditionalQuery(req), writeGuard(ctx));
        return { status: 200, body: informational(n === 0 ? 'No resource matched; nothing deleted' : 'Deleted') };
      }
    }
    throw fail(405, 'not-supported', `${method} is not supported on ${type}`);
  }
  if (second === '_search' && segments.length === 2 && method === 'POST') {
    return search(ctx, type, [...req.query, ...formPairs(req.body)], req.prefer);
  }
  if (second === '_history' && segments.length === 2 && method === 'GET') return history(ctx, req, type, undefined);
  if (second.startsWith('$') && segments.length === 2) return operation(ctx, req, second.slice(1), type, undefined);

  const id = second;
  if (segments.length === 2) {
    switch (method) {
      case 'GET': {
        const resource = await ctx.repo.read(type, id);
        if (req.ifNoneMatch && req.ifNoneMatch.replace(/^W\//, '') === `"${resource.meta?.versionId}"`) return { status: 304 };
        return { status: 200, resource, body: resource };
      }
      case 'PUT': {
        const body = ensureBody(req, type);
        if (body.id !== id) throw badRequest(`The resource id (${body.id ?? 'missing'}) must match the URL id (${id})`, `${type}.id`);
        return writeAnswer(ctx, req, await ctx.repo.update(body, { ifMatch: etagVersion(req.ifMatch), guard: writeGuard(ctx) }));
      }
      case 'PATCH':
        return writeAnswer(ctx, req, await ctx.repo.patch(type, id, req.body, etagVersion(req.ifMatch), writeGuard(ctx)));
      case 'DELETE':
        await ctx.repo.delete(type, id, writeGuard(ctx));
        return { status: 200, body: informational(`Deleted ${type}/${id}`) };
    }
    throw fail(405, 'not-supported', `${method} is not supported on ${type}/${id}`);
  }
  if (third === '_history' && method === 'GET') {
    if (segments.length === 3) return history(ctx, req, type, id);
    if (segments.length === 4) {
      const resource = await ctx.repo.vread(type, id, fourth);
      return { status: 200, resource, body: resource };
    }
  }
  if (third?.startsWith('$') && segments.length === 3) return operation(ctx, req, third.slice(1), type, id);
  throw notFound(`No FHIR interaction at ${type}/${second}/${segments.slice(2).join('/')}`.slice(0, 200));
}

/** The installed access policy must allow the interaction (engine.ts); throws a 403 when it does not. */
export function authorize(ctx: FhirContext, method: string, segments: readonly string[]): void {
  engineOf(ctx.repo.db).access.authorize(ctx.principal, method, segments);
}

/** The access policy's check of each write the caller's REST interaction makes (engine.ts `authorizeWrite`). */
export function writeGuard(ctx: FhirContext): WriteGuard | undefined {
  const policy = engineOf(ctx.repo.db).access;
  if (!policy.authorizeWrite) return undefined;
  return (change, repo) => policy.authorizeWrite!(ctx.principal, change, repo);
}

async function create(ctx: FhirContext, type: string, req: FhirRequest): Promise<FhirResponse> {
  const body = ensureBody(req, type);
  const result = await ctx.repo.create(body, { ifNoneExist: req.ifNoneExist, guard: writeGuard(ctx) });
  return writeAnswer(ctx, req, result);
}

async function search(ctx: FhirContext, type: string, pairs: [string, string][], prefer: Prefer): Promise<FhirResponse> {
  const request = parseSearch(type, pairs);
  if (request.unknown.length > 0 && prefer.handling === 'strict') {
    throw badRequest(`Unknown search parameter '${request.unknown[0]}' for ${type}`, request.unknown[0]);
  }
  if (request.ambiguousChains.length > 0 && prefer.handling === 'strict') {
    const { key, types } = request.ambiguousChains[0];
    const [head, ...rest] = key.split('.');
    throw badRequest(`Ambiguous chain '${key}': '${head}' may refer to ${types.join(', ')}; name the type, e.g. ${head}:${types.includes('Patient') ? 'Patient' : types[0]}.${rest.join('.')}`, key);
  }
  const bundle = await ctx.repo.search(request, ctx.baseUrl);
  if (request.unknown.length > 0) {
    const warning: OperationOutcome = {
      resourceType: 'OperationOutcome',
      issue: request.unknown.map((u) => ({
        severity: 'warning' as const,
        code: 'not-supported' as const,
        details: { text: `Unknown search parameter '${u}' for ${type}: ignored` },
        expression: [u],
      })),
    };
    bundle.entry = [...(bundle.entry ?? []), { resource: warning, search: { mode: 'outcome' } }];
  }
  return { status: 200, body: bundle };
}

async function history(ctx: FhirContext, req: FhirRequest, type: string | undefined, id: string | undefined): Promise<FhirResponse> {
  const q = new Map(req.query);
  const countText = q.get('_count');
  const offsetText = q.get('_offset');
  const count = countText === undefined ? DEFAULT_COUNT : pageParam('_count', countText);
  const offset = offsetText === undefined ? 0 : pageParam('_offset', offsetText);
  const sinceText = q.get('_since');
  if (sinceText !== undefined && Number.isNaN(Date.parse(sinceText))) throw badRequest(`'${sinceText}' is not a valid instant`, '_since');
  const since = sinceText ? new Date(sinceText).toISOString() : undefined;
  // paging on a snapshot (as search does): versions written after the first page do not shift the later ones
  const snapshotText = q.get('_snapshot');
  if (snapshotText !== undefined && Number.isNaN(Date.parse(snapshotText))) throw badRequest(`'${snapshotText}' is not a valid instant`, '_snapshot');
  const snapshot = snapshotText ? new Date(snapshotText).toISOString() : new Date().toISOString();
  const cursorText = q.get('_cursor');
  const cursor = cursorText === undefined ? undefined : decodeCursor(cursorText, true);
  if (cursor && offset > 0) throw badRequest('_cursor and _offset cannot be combined', '_cursor');
  const after = cursor && { updated: cursor[0], id: cursor[1], version: cursor[2] };
  const rows = await ctx.repo.history(type, id, { count, offset, since, snapshot, after });
  const hasNext = rows.length > count;
  const base = `${ctx.baseUrl}/${[type, id, '_history'].filter(Boolean).join('/')}`;
  const link = (off: number, frozen: string | undefined, cursorParam?: string) => {
    const p = new URLSearchParams();
    if (sinceText) p.set('_since', sinceText);
    p.set('_count', String(count));
    if (off) p.set('_offset', String(off));
    if (frozen) p.set('_snapshot', frozen);
    if (cursorParam) p.set('_cursor', cursorParam);
    return `${base}?${p}`;
  };
  // beyond the largest _offset (or once on a cursor) the next page starts after this page's last version
  const last = rows[count - 1];
  const next = !hasNext ? undefined : !cursor && offset + count <= limits().maxOffset ? link(offset + count, snapshot) : link(0, snapshot, encodeCursor(last.updated, last.id, last.version));
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'history',
    link: [
      { relation: 'self', url: link(offset, snapshotText && snapshot, cursorText) },
      ...(next ? [{ relation: 'next', url: next }] : []),
      ...(offset > 0 ? [{ relation: 'previous', url: link(Math.max(0, offset - count), snapshot) }] : []),
    ],
    entry: rows.slice(0, count).map((r) => ({
      fullUrl: `${ctx.baseUrl}/${r.type}/${r.id}`,
      ...(r.deleted ? {} : { resource: r.content }),
      request: {
        method: r.method as 'POST' | 'PUT' | 'PATCH' | 'DELETE',
        url: r.method === 'POST' ? r.type : `${r.type}/${r.id}`,
      },
      response: {
        status: r.deleted ? '204' : r.version === 1 ? '201' : '200',
        etag: `W/"${r.version}"`,
        ...(r.content.meta?.lastUpdated ? { lastModified: r.content.meta.lastUpdated } : {}),
      },
    })),
  };
  return { status: 200, body: bundle };
}

async function operation(ctx: FhirContext, req: FhirRequest, name: string, type: string | undefined, id: string | undefined): Promise<FhirResponse> {
  const op = engineOf(ctx.repo.db).operations.find(name, type, id !== undefined);
  if (!op) throw notFound(`Unknown operation $${name}${type ? ` on ${type}${id ? '/[id]' : ''}` : ''}`);
  if (!op.methods.includes(req.method.toUpperCase())) throw fail(405, 'not-supported', `$${name} does not accept ${req.method}`);
  if (req.prefer.respondAsync && op.async && ctx.jobs) return accepted(await ctx.jobs.submit(req, ctx.principal, ctx.baseUrl));
  return op.handle(ctx, req, { type, id });
}

function accepted(pollUrl: string): FhirResponse {
  return {
    status: 202,
    headers: { 'Content-Location': pollUrl },
    body: informational(`Accepted; poll ${pollUrl}`),
  };
}

function writeAnswer(ctx: FhirContext, req: FhirRequest, result: { resource: Resource; status: number; warnings?: OperationOutcome['issue'] }): FhirResponse {
  const r = result.resource;
  const location = `${ctx.baseUrl}/${r.resourceType}/${r.id}/_history/${r.meta?.versionId}`;
  let body: Resource | undefined = r;
  if (req.prefer.return === 'minimal') body = undefined;
  else if (req.prefer.return === 'OperationOutcome') {
    body = result.warnings?.length
      ? ({ resourceType: 'OperationOutcome', issue: result.warnings } as OperationOutcome)
      : informational(result.status === 201 ? 'Created' : 'OK');
  }
  return { status: result.status, resource: r, body, location };
}

function ensureBody(req: FhirRequest, type: string): Resource {
  const body = req.body as Resource | undefined;
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('A resource body is required');
  if (body.resourceType !== type) {
    throw badRequest(`The body's resourceType (${String(body.resourceType)}) does not match the URL (${type})`, 'resourceType');
  }
  return body;
}

function conditionalQuery(req: FhirRequest): string {
  if (req.query.length === 0) throw badRequest('A conditional request needs search parameters');
  return new URLSearchParams(req.query).toString();
}

function formPairs(body: unknown): [string, string][] {
  if (body instanceof URLSearchParams) return [...body];
  if (body === undefined || body === null || body === '') return [];
  throw fail(415, 'not-supported', 'POST _search takes application/x-www-form-urlencoded');
}

/** `W/"3"` → `3`. */
export function etagVersion(etag: string | undefined): string | undefined {
  if (etag === undefined) return undefined;
  const m = /^(?:W\/)?"?([^"]*)"?$/.exec(etag.trim());
  return m ? m[1] : etag;
}

