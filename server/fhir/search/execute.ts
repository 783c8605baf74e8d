/**
 * Runs a SearchRequest: the page of matches, the total when asked (or when it is free), `_include` /
 * `_revinclude`, `_elements` / `_summary`, and self/next/previous links frozen on a snapshot instant so that
 * resources created while a client pages do not shift the pages.
 */
import type { Bundle, BundleEntry, BundleLink, Resource } from '@medplum/fhirtypes';
import type { Sql } from '../../db/database.ts';
import { isSummaryElement } from '../definitions.ts';
import type { IncludeSpec, SearchRequest } from './parse.ts';
import { encodeCursor } from './parse.ts';
import { orderBySql, paramIs, Params, pickDriver, whereSql } from './sql.ts';
import { limits, tooCostly } from '../limits.ts';

interface Row {
  content: Resource;
}

interface PageRow extends Row {
  created: string;
  id: string;
}

/** The ids matching a request (used by conditional operations), at most `limit`. */
export async function findIds(sql: Sql, req: SearchRequest, limit: number): Promise<string[]> {
  const p = new Params();
  const where = whereSql(req, p);
  const rows = await sql.query<{ id: string }>(`SELECT r.id FROM resource r WHERE ${where} LIMIT ${Math.trunc(limit)}`, p.values);
  return rows.map((r) => r.id);
}

export interface Query {
  text: string;
  values: unknown[];
  /**
   * Run as a prepared statement where the engine can (see QueryOptions in server/db/database.ts): a driven
   * search, whose plan is fixed by its text, so a generic plan of it reads only the driver's rows.
   */
  prepare?: boolean;
}

/**
 * The statements of a search (its WHERE clause built once): the page of matches and the count. What runSearch
 * runs; test/search-plans.test.ts and scripts/explain-search.ts EXPLAIN them. `req.snapshot` should be set.
 */
export function searchQueries(req: SearchRequest): { page: Query; count: Query } {
  const p = new Params();
  const where = whereSql(req, p);
  const prepare = pickDriver(req.clauses) !== undefined;
  const count = { text: `SELECT count(*)::int AS n FROM resource r WHERE ${where}`, values: p.values.slice(), prepare };
  const orderBy = orderBySql(req.sort, p);
  // a deep page continues after its cursor's row, in the default order (created, id)
  const after = req.cursor ? ` AND (r.created, r.id) > (${p.add(req.cursor.created)}::timestamptz, ${p.add(req.cursor.id)})` : '';
  const page = {
    text: `SELECT r.content, r.created::text AS created, r.id FROM resource r WHERE ${where}${after} ORDER BY ${orderBy} LIMIT $${p.values.length + 1} OFFSET $${p.values.length + 2}`,
    values: [...p.values, req.count + 1, req.offset],
    prepare,
  };
  return { page, count };
}

/** `open`: a stored row's content as it was given (the engine's storage codec). */
export async function runSearch(sql: Sql, req: SearchRequest, baseUrl: string, open: (r: Resource) => Resource = (r) => r): Promise<Bundle> {
  const snapshot = req.snapshot ?? new Date().toISOString();
  const frozen = { ...req, snapshot };
  const queries = searchQueries(frozen);

  if (req.summary === 'count') {
    const total = await count(sql, queries.count);
    return { resourceType: 'Bundle', type: 'searchset', total, link: [{ relation: 'self', url: selfUrl(baseUrl, req) }] };
  }

  const rows = req.count === 0 ? [] : await sql.query<PageRow>(queries.page.text, queries.page.values, { prepare: queries.page.prepare });
  const hasNext = rows.length > req.count;
  const matches = rows.slice(0, req.count).map((r) => open(r.content));

  let total: number | undefined;
  if (req.total === 'accurate' || req.total === 'estimate' || (req.count === 0 && req.total !== 'none')) {
    total = await count(sql, queries.count);
  } else if (!hasNext && req.total !== 'none' && (req.offset === 0 || matches.length > 0)) {
    total = req.offset + matches.length; // known without counting
  }

  const included = (await fetchIncludes(sql, req, matches)).map(open);
  const entries: BundleEntry[] = [
    ...matches.map((r) => entry(baseUrl, shape(r, req), 'match')),
    ...included.map((r) => entry(baseUrl, shape(r, req), 'include')),
  ];

  const link: BundleLink[] = [{ relation: 'self', url: pageUrl(baseUrl, req, req.offset, req.snapshot) }];
  if (hasNext) {
    const nextOffset = req.offset + req.count;
    if (!req.cursor && nextOffset <= limits().maxOffset) link.push({ relation: 'next', url: pageUrl(baseUrl, req, nextOffset, snapshot) });
    else if (req.sort.length === 0) {
      // beyond the largest _offset, pages go on by keyset: after the last row of this page
      const last = rows[req.count - 1];
      link.push({ relation: 'next', url: pageUrl(baseUrl, req, 0, snapshot, encodeCursor(last.created, last.id)) });
    }
    // (with _sort, paging stops at the largest _offset: docs/fhir-api.md "Limits")
  }
  if (req.offset > 0) link.push({ relation: 'previous', url: pageUrl(baseUrl, req, Math.max(0, req.offset - req.count), snapshot) });

  return { resourceType: 'Bundle', type: 'searchset', ...(total !== undefined ? { total } : {}), link, entry: entries };
}

async function count(sql: Sql, query: Query): Promise<number> {
  const rows = await sql.query<{ n: number }>(query.text, query.values, { prepare: query.prepare });
  return Number(rows[0].n);
}

async function fetchIncludes(sql: Sql, req: SearchRequest, matches: Resource[]): Promise<Resource[]> {
  if (req.includes.length === 0 || matches.length === 0) return [];
  const seen = new Set(matches.map(key));
  const out: Resource[] = [];
  let frontier = matches;
  // one pass for plain includes, then further passes only for :iterate ones (bounded)
  for (let depth = 0; depth < 3 && frontier.length > 0; depth++) {
    const specs = req.includes.filter((s) => depth === 0 || s.iterate);
    const found: Resource[] = [];
    for (const spec of specs) {
      for (const r of await includeOne(sql, spec, frontier)) {
        if (seen.has(key(r))) continue;
        seen.add(key(r));
        found.push(r);
      }
    }
    for (const r of found) out.push(r);
    if (matches.length + out.length > limits().maxAnswerEntries) {
      throw tooCostly(422, `The page with its included resources would hold more than ${limits().maxAnswerEntries} resources; ask for fewer (smaller _count, fewer _include)`, '_include');
    }
    frontier = found;
    if (!req.includes.some((s) => s.iterate)) break;
  }
  return out;
}

async function includeOne(sql: Sql, spec: IncludeSpec, from: Resource[]): Promise<Resource[]> {
  const sources = from.filter((r) => (spec.reverse ? true : r.resourceType === spec.sourceType));
  if (sources.length === 0) return [];
  const query = includeQuery(spec, sources.map((r) => ({ type: r.resourceType, id: r.id as string })));
  const rows = await sql.query<Row>(query.text, query.values);
  return rows.map((r) => r.content);
}

/**
 * The statement of one `_include` (the targets of the sources' references: idx_reference_owner, then each
 * target by primary key) or `_revinclude` (the resources referring to the sources: idx_reference_target).
 */
export function includeQuery(spec: IncludeSpec, sources: readonly { type: string; id: string }[]): Query {
  const types = sources.map((r) => r.type);
  const ids = sources.map((r) => r.id);
  const p = new Params();
  p.add(ids);
  p.add(types);
  if (!spec.reverse) {
    return {
      text: `SELECT DISTINCT ON (t.type, t.id) t.content FROM idx_reference i
       JOIN resource t ON t.type = i.target_type AND t.id = i.target_id AND NOT t.deleted
       WHERE (i.id, i.type) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND ${paramIs('i', spec.param, p)}
       ${spec.targetType ? `AND i.target_type = ${p.add(spec.targetType)}` : ''} LIMIT 1000`,
      values: p.values,
    };
  }
  return {
    text: `SELECT DISTINCT ON (s.type, s.id) s.content FROM idx_reference i
     JOIN resource s ON s.type = i.type AND s.id = i.id AND NOT s.deleted
     WHERE (i.target_id, i.target_type) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND ${paramIs('i', spec.param, p)} AND i.type = ${p.add(spec.sourceType)}
     ${spec.targetType ? `AND i.target_type = ${p.add(spec.targetType)}` : ''} LIMIT 1000`,
    values: p.values,
  };
}

function key(r: Resource): string {
  return `${r.resourceType}/${r.id}`;
}

function entry(baseUrl: string, resource: Resource, mode: 'match' | 'include'): BundleEntry {
  return { fullUrl: `${baseUrl}/${resource.resourceType}/${resource.id}`, resource, search: { mode } };
}

const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' };

/** Applies `_elements` or `_summary=true|data|text` to a resource. */
export function shape(resource: Resource, req: Pick<SearchRequest, 'elements' | 'summary'>): Resource {
  const { resourceType, id, meta, ...rest } = resource as Resource & Record<string, unknown>;
  let keep: ((element: string) => boolean) | undefined;
  if (req.elements) {
    const wanted = new Set(req.elements);
    keep = (k) => wanted.has(k);
  } else if (req.summary === 'true') keep = (k) => isSummaryElement(resourceType, k);
  else if (req.summary === 'text') keep = (k) => k === 'text';
  else if (req.summary === 'data') keep = (k) => k !== 'text';
  if (!keep) return { resourceType, id, meta, ...rest } as Resource;
  const out: Record<string, unknown> = { resourceType, id };
  out.meta = { ...meta, tag: [...(meta?.tag ?? []), SUBSETTED] };
  for (const [k, v] of Object.entries(rest)) {
    if (keep(k)) out[k] = v;
  }
  return out as unknown as Resource;
}

function selfUrl(baseUrl: string, req: SearchRequest): string {
  return pageUrl(baseUrl, req, req.offset, req.snapshot);
}

function pageUrl(baseUrl: string, req: SearchRequest, offset: number, snapshot: string | undefined, cursor?: string): string {
  const params = new URLSearchParams();
  for (const [k, v] of req.original ?? []) {
    if (k !== '_offset' && k !== '_snapshot' && k !== '_cursor') params.append(k, v);
  }
  if (offset > 0) params.set('_offset', String(offset));
  if (cursor) params.set('_cursor', cursor);
  else if (req.cursor && offset === req.offset) params.set('_cursor', encodeCursor(req.cursor.created, req.cursor.id));
  if (snapshot) params.set('_snapshot', snapshot);
  const qs = params.toString();
  return `${baseUrl}/${req.resourceType}${qs ? `?${qs}` : ''}`;
}
