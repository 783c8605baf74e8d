/**
 * Batch and transaction Bundles (FHIR R4 http.html#transaction).
 * - batch: each entry on its own, each answered with its own status.
 * - transaction: all or nothing, in the spec's order (DELETE, POST, PUT/PATCH, GET); `urn:uuid:` fullUrls
 *   and conditional references resolved and rewritten; plain creates written with one statement per table.
 *   A failing entry rolls everything back and the error names it (`Bundle.entry[i]`).
 */
import { newResourceId } from './ids.ts';
import { OperationOutcomeError } from '@medplum/core';
import type { Bundle, BundleEntry, OperationOutcome, Resource } from '@medplum/fhirtypes';
import { asFhirError, badRequest, FhirError, statusOf } from './errors.ts';
import { resolveConditionalInTransaction } from './conditional-reference.ts';
import { isSupportedResourceType } from './definitions.ts';
import { authorize, route, writeGuard, type FhirContext, type FhirRequest, type FhirResponse, type Prefer } from './router.ts';
import { assertValid } from './validate.ts';
import { engineOf } from './engine.ts';
import { AnswerBudget, limits, tooCostly } from './limits.ts';

const ORDER: Record<string, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2, GET: 3, HEAD: 3 };

export async function processBundle(ctx: FhirContext, body: unknown, prefer: Prefer, raw?: string): Promise<Bundle> {
  const bundle = body as Bundle;
  if (!bundle || bundle.resourceType !== 'Bundle') throw badRequest('Expected a Bundle', 'Bundle');
  if (bundle.type !== 'batch' && bundle.type !== 'transaction') {
    throw badRequest(`Bundle.type must be batch or transaction, not '${String(bundle.type)}'`, 'Bundle.type');
  }
  const entries = bundle.entry ?? [];
  if (!Array.isArray(entries)) throw badRequest('Bundle.entry must be an array', 'Bundle.entry');
  if (entries.length > limits().maxBundleEntries) {
    throw tooCostly(413, `A ${bundle.type} of ${entries.length} entries exceeds the limit of ${limits().maxBundleEntries}; split it`, 'Bundle.entry');
  }
  entries.forEach((e, i) => checkEntry(e, i));
  checkFullUrls(entries);
  return bundle.type === 'batch' ? batch(ctx, entries, prefer) : transaction(ctx, entries, prefer, { raw, bundle: body });
}

function checkEntry(entry: BundleEntry, i: number): void {
  const where = `Bundle.entry[${i}]`;
  const method = entry?.request?.method;
  if (!method || !(method in ORDER)) throw badRequest(`${where}.request.method is missing or not supported`, `${where}.request.method`);
  if (typeof entry.request?.url !== 'string' || entry.request.url === '') throw badRequest(`${where}.request.url is required`, `${where}.request.url`);
  if ((method === 'POST' || method === 'PUT') && (!entry.resource || typeof entry.resource !== 'object')) {
    throw badRequest(`${where}.resource is required for ${method}`, `${where}.resource`);
  }
}

/** Two entries with the same fullUrl would make references to it ambiguous: refused, naming the second. */
function checkFullUrls(entries: BundleEntry[]): void {
  const seen = new Map<string, number>();
  entries.forEach((entry, i) => {
    const url = entry?.fullUrl;
    if (url === undefined) return;
    if (typeof url !== 'string') throw badRequest(`Bundle.entry[${i}].fullUrl must be a string`, `Bundle.entry[${i}].fullUrl`);
    const first = seen.get(url);
    if (first !== undefined) throw badRequest(`Bundle.entry[${i}].fullUrl repeats the fullUrl of Bundle.entry[${first}]`, `Bundle.entry[${i}].fullUrl`);
    seen.set(url, i);
  });
}

async function batch(ctx: FhirContext, entries: BundleEntry[], prefer: Prefer): Promise<Bundle> {
  const out: BundleEntry[] = [];
  const budget = new AnswerBudget(limits());
  for (const [i, entry] of entries.entries()) {
    try {
      const res = await route(ctx, toRequest(entry, prefer));
      // the whole batch-response is one answer: its resources and bytes count together
      budget.add(answerEntries(res), answerBytes(res), `Bundle.entry[${i}]`);
      out.push(responseEntry(ctx, res));
    } catch (err) {
      const status = statusOf(err);
      if (status >= 500 || isBudgetError(err)) throw err;
      out.push({ response: { status: String(status), outcome: annotate(err, i).outcome } });
    }
  }
  return { resourceType: 'Bundle', type: 'batch-response', entry: out };
}

async function transaction(ctx: FhirContext, submitted: BundleEntry[], prefer: Prefer, submission: { raw?: string; bundle: unknown }): Promise<Bundle> {
  // the caller's scopes must allow every entry before anything is done (creates below bypass route())
  for (const [i, entry] of submitted.entries()) {
    await at(i, async () => authorize(ctx, entry.request!.method!, entry.request!.url!.split('?')[0].split('/').filter(Boolean)));
  }
  const order = submitted.map((_, i) => i).sort((a, b) => ORDER[submitted[a].request!.method!] - ORDER[submitted[b].request!.method!] || a - b);
  let results: FhirResponse[] = [];
  await ctx.repo.transaction(async (repo) => {
    // entries are rewritten below; work on copies so that a re-run transaction starts from the submission: each
    // entry and its request (rewritten in place) are copied here, each resource by rewrite() (step 2)
    const entries: BundleEntry[] = submitted.map((e) => ({ ...e, ...(e.request ? { request: { ...e.request } } : {}) }));
    results = new Array(entries.length);
    const tctx: FhirContext = { ...ctx, repo };
    // the submission as received, for the write observers (e.g. to keep it as the original)
    if (repo.writes) repo.writes.submission = submission;
    // 1. resolve the identity of every created or conditionally updated entry
    const refMap = new Map<string, string>();
    const plainCreates: number[] = [];
    const matched = new Map<number, string>();
    for (const i of order) {
      const entry = entries[i];
      const method = entry.request!.method!;
      const url = entry.request!.url!;
      await at(i, async () => {
        if (method === 'POST') {
          const type = entry.resource!.resourceType;
          if (!isSupportedResourceType(type) || url.split('?')[0] !== type) {
            throw badRequest(`request.url '${url.slice(0, 80)}' does not match resourceType '${String(type)}'`, 'request.url');
          }
          let id: string;
          if (entry.request!.ifNoneExist) {
            const ids = await repo.conditionalMatch(type, entry.request!.ifNoneExist, 'request.ifNoneExist');
            if (ids.length > 1) throw new FhirError(412, conflictOutcome(`ifNoneExist matched ${ids.length} resources`, 'request.ifNoneExist'));
            if (ids.length === 1) matched.set(i, ids[0]);
            id = ids[0] ?? newResourceId();
          } else {
            id = newResourceId();
          }
          if (!matched.has(i)) plainCreates.push(i);
          entry.resource = { ...entry.resource!, id };
          if (entry.fullUrl) refMap.set(entry.fullUrl, `${type}/${id}`);
        } else if (method === 'PUT' && entry.fullUrl && url.includes('?')) {
          const [type, query] = url.split('?', 2);
          const ids = await repo.conditionalMatch(type, query, 'request.url');
          if (ids.length > 1) throw new FhirError(412, conflictOutcome(`Conditional update matched ${ids.length} resources`, 'request.url'));
          const id = ids[0] ?? entry.resource!.id ?? newResourceId();
          entry.resource = { ...entry.resource!, id };
          entry.request = { ...entry.request!, url: `${type}/${id}` };
          refMap.set(entry.fullUrl, `${type}/${id}`);
        } else if (method === 'PUT' && entry.fullUrl && entry.resource) {
          const id = url.split('/')[1];
          if (id) refMap.set(entry.fullUrl, `${entry.resource.resourceType}/${id}`);
        }
      });
    }
    // 2. rewrite references to other entries and conditional references
    for (const i of order) {
      const entry = entries[i];
      if (!entry.resource) continue;
      await at(i, async () => {
        entry.resource = (await rewrite(entry.resource, refMap, async (ref, path) =>
          resolveConditionalInTransaction(repo, entries, ref, `resource.${path}`)
        )) as Resource;
        if (entry.request!.url!.startsWith('urn:')) entry.request!.url = refMap.get(entry.request!.url!) ?? entry.request!.url;
      });
    }
    // 2b. an exact retry stores nothing new: a create that repeats what a matched entry already has (the
    // entry that is not itself conditional) is matched to the stored resource by the engine's repeat finders
    const finders = engineOf(repo.db).repeatFinders;
    if (finders.length > 0 && matched.size > 0) {
      const retried = new Set([...matched].map(([i, id]) => `${entries[i].resource!.resourceType}/${id}`));
      for (const i of [...plainCreates]) {
        const id = await at(i, async () => {
          for (const find of finders) {
            const found = await find(repo, entries[i].resource!, retried);
            if (found) return found;
          }
          return undefined;
        });
        if (!id) continue;
        matched.set(i, id);
        plainCreates.splice(plainCreates.indexOf(i), 1);
      }
    }
    // 3. validate the plain creates up front, then write them in one go
    for (const i of plainCreates) await at(i, async () => assertValid(entries[i].resource, `Bundle.entry[${i}].resource`));
    const guard = writeGuard(tctx);
    if (guard) for (const i of plainCreates) await at(i, () => guard({ method: 'POST', type: entries[i].resource!.resourceType, next: entries[i].resource }, repo));
    const created = plainCreates.length > 0 ? await repo.createMany(plainCreates.map((i) => entries[i].resource!)) : [];
    plainCreates.forEach((i, k) => {
      results[i] = { status: 201, resource: created[k], body: created[k], location: `${ctx.baseUrl}/${created[k].resourceType}/${created[k].id}/_history/1` };
    });
    for (const [i, id] of matched) {
      const resource = await repo.read(entries[i].resource!.resourceType, id);
      results[i] = { status: 200, resource, body: resource };
    }
    // 4. everything else in order
    for (const i of order) {
      if (results[i]) continue;
      results[i] = await at(i, () => route(tctx, toRequest(entries[i], prefer)));
    }
  });
  return {
    resourceType: 'Bundle',
    type: 'transaction-response',
    entry: results.map((r) => responseEntry(ctx, r, prefer)),
  };
}

function answerEntries(res: FhirResponse): number {
  const body = res.body as Bundle | undefined;
  return body?.resourceType === 'Bundle' ? (body.entry?.length ?? 0) : body ? 1 : 0;
}

function answerBytes(res: FhirResponse): number {
  if (res.bytes) return res.bytes.length;
  return res.body ? Buffer.byteLength(JSON.stringify(res.body)) : 0;
}

function isBudgetError(err: unknown): boolean {
  return err instanceof FhirError && err.status === 422 && err.outcome.issue?.[0]?.code === 'too-costly' && !!err.outcome.issue[0].expression?.[0]?.startsWith('Bundle.entry[');
}

/** Runs `fn` for entry `i`, re-throwing any error with the entry named. */
async function at<T>(i: number, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw annotate(err, i);
  }
}

function annotate(thrown: unknown, i: number): FhirError {
  const err = asFhirError(thrown);
  if (!(err instanceof OperationOutcomeError)) throw err;
  const where = `Bundle.entry[${i}]`;
  const issues = (err.outcome.issue ?? []).map((issue) => ({
    ...issue,
    diagnostics: `${where}: ${issue.details?.text ?? issue.diagnostics ?? 'failed'}`,
    expression: (issue.expression?.length ? issue.expression : ['']).map((e) => {
      if (e.startsWith('Bundle.entry[')) return e;
      if (/^[A-Z][A-Za-z]+(\.|$)/.test(e)) return `${where}.resource${e.replace(/^[A-Za-z]+/, '')}`;
      return e ? `${where}.${e}` : where;
    }),
  }));
  return new FhirError(statusOf(err), { resourceType: 'OperationOutcome', issue: issues });
}

function conflictOutcome(text: string, expression: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'multiple-matches', details: { text }, expression: [expression] }] };
}

/** Walks a resource and rewrites `reference` strings found in `refMap` or written as conditional references. */
/**
 * A copy of `value` with its references to other entries (`urn:uuid:…`, fullUrls) and its conditional references
 * (`Type?search`, resolved by `resolve`) replaced. One synchronous pass finds what needs the database, in
 * document order (a reference naming no entry stops it there, as it would have in order); the conditional ones
 * are resolved; then one synchronous copy. Paths are only spelled out for an error or a resolution.
 */
async function rewrite(value: unknown, refMap: Map<string, string>, resolve: (ref: string, path: string) => Promise<string>): Promise<unknown> {
  const resolved = new Map<string, string>();
  const path: (string | number)[] = [];
  const spell = () => path.reduce<string>((p, k) => (typeof k === 'number' ? `${p}[${k}]` : p ? `${p}.${k}` : k), '');
  const todo: { ref: string; path: string }[] = [];
  const scan = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        path.push(i);
        scan(v[i]);
        path.pop();
      }
    } else if (v && typeof v === 'object') {
      for (const k of Object.keys(v)) {
        const x = (v as Record<string, unknown>)[k];
        path.push(k);
        if (k === 'reference' && typeof x === 'string') {
          if (refMap.has(x)) {
            // an entry's new identity
          } else if (CONDITIONAL_REF.test(x)) {
            todo.push({ ref: x, path: spell() });
          } else if (URN_REF.test(x)) {
            // checked here only after the conditional references before it resolved (below): keep the order
            todo.push({ ref: x, path: spell() });
          }
        } else {
          scan(x);
        }
        path.pop();
      }
    }
  };
  scan(value);
  for (const { ref, path: at } of todo) {
    if (URN_REF.test(ref)) throw badRequest(`Reference '${ref.slice(0, 80)}' names no entry of the transaction (no entry has this fullUrl)`, `resource.${at}`);
    if (!resolved.has(ref)) resolved.set(ref, await resolve(ref, at));
  }
  const copy = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(copy);
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v)) {
        const x = (v as Record<string, unknown>)[k];
        out[k] = k === 'reference' && typeof x === 'string' ? (refMap.get(x) ?? resolved.get(x) ?? x) : copy(x);
      }
      return out;
    }
    return v;
  };
  return copy(value);
}

const CONDITIONAL_REF = /^[A-Z][A-Za-z]+\?/;
const URN_REF = /^urn:(uuid|oid):/;

function toRequest(entry: BundleEntry, prefer: Prefer): FhirRequest {
  const url = entry.request!.url!;
  const [path, qs] = url.split('?', 2);
  return {
    method: entry.request!.method!,
    path,
    query: qs ? ([...new URLSearchParams(qs)] as [string, string][]) : [],
    body: entry.request!.method === 'PATCH' ? patchBody(entry.resource) : entry.resource,
    ifMatch: entry.request!.ifMatch,
    ifNoneExist: entry.request!.ifNoneExist,
    ifNoneMatch: entry.request!.ifNoneMatch,
    prefer,
  };
}

/** A PATCH entry's body: a JSON Patch document carried as a Binary (FHIR R4 http.html#patch), or the operations themselves. */
function patchBody(resource: unknown): unknown {
  const binary = resource as { resourceType?: string; contentType?: string; data?: string } | undefined;
  if (binary?.resourceType !== 'Binary' || !/json-patch/.test(binary.contentType ?? '') || typeof binary.data !== 'string') return resource;
  try {
    return JSON.parse(Buffer.from(binary.data, 'base64').toString('utf8'));
  } catch {
    throw badRequest('The Binary of a PATCH entry must hold a JSON Patch document (base64 of JSON)', 'resource.data');
  }
}

function responseEntry(ctx: FhirContext, res: FhirResponse, prefer?: Prefer): BundleEntry {
  const r = res.resource;
  const includeBody = prefer?.return !== 'minimal' && res.body;
  return {
    ...(r?.id ? { fullUrl: `${ctx.baseUrl}/${r.resourceType}/${r.id}` } : {}),
    ...(includeBody ? { resource: res.body } : {}),
    response: {
      status: String(res.status),
      ...(res.location ? { location: res.location } : {}),
      ...(r?.meta?.versionId ? { etag: `W/"${r.meta.versionId}"` } : {}),
      ...(r?.meta?.lastUpdated ? { lastModified: r.meta.lastUpdated } : {}),
    },
  };
}
