/**
 * FHIR semantics over the store: versioned create/read/update/patch/delete, conditional forms, history,
 * search. Every write is validated, then written with its index rows in one transaction.
 */
import { newResourceId } from './ids.ts';
import type { Bundle, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import canonicalize from 'canonicalize';
import fastJsonPatch from 'fast-json-patch';
import { prepared, type Database, type Sql } from '../db/database.ts';
import { badRequest, fail, gone, notFound, preconditionFailed } from './errors.ts';
import { isSupportedResourceType } from './definitions.ts';
import { writeVersions, type Companion, type NewVersion } from './store.ts';
import { assertValid } from './validate.ts';
import { parseSearch, type SearchRequest } from './search/parse.ts';
import { findIds, runSearch, searchQueries, type Query } from './search/execute.ts';
import { engineOf, type StorageCodec } from './engine.ts';
import { blindRequest } from './search/blind.ts';
import { resolveWriteReferences } from './write-references.ts';

export interface WriteResult {
  resource: Resource;
  /** 201 for a new resource, 200 otherwise. */
  status: 200 | 201;
  /** True when nothing was written (conditional create matched, or an update changed nothing). */
  unchanged?: boolean;
  warnings?: OperationOutcomeIssue[];
}

export interface HistoryOptions {
  since?: string;
  /** Only versions written at or before this instant (the paging snapshot frozen in the links). */
  snapshot?: string;
  count: number;
  offset: number;
  /** A deep page: the versions after this one in the history's order (the `next` link's `_cursor`). */
  after?: { updated: string; id: string; version: number };
}

/** What one transaction wrote, shown to the database's write observer before it commits. */
export interface TxWrites {
  versions: NewVersion[];
  /** Set by a transaction Bundle: the submission as received (`raw`: the request body's text, when known). */
  submission?: { raw?: string; bundle: unknown };
  /**
   * Set by the server's own rewrite of stored resources (never by a client request): what rewrote them and
   * why, so the observers record the versions as the server's, derived from the previous ones.
   */
  revision?: { activity: string; reason: string };
}

/** Sees every transaction's writes (installed through the engine, engine.ts): a throw rolls the transaction back. */
export interface WriteObserver {
  /**
   * Rows to write in the same statement as these versions (store.ts `Companion`), computed from the versions
   * alone (no database): what `beforeCommit` would otherwise write with a round trip of its own. A throw
   * rolls the transaction back.
   */
  alongside?(versions: readonly NewVersion[]): Companion[];
  /**
   * True when `alongside` keeps everything this observer keeps for these versions, so that `beforeCommit` would
   * do nothing for them. When every observer says so, a write of one statement is made without a transaction
   * around it (no BEGIN and COMMIT: `Repository.create`); absent means no.
   */
  onlyAlongside?(versions: readonly NewVersion[]): boolean;
  beforeCommit(sql: Sql, writes: TxWrites): Promise<void>;
  afterCommit?(writes: TxWrites): void;
}

/** One write a REST interaction asks for, shown to the access policy before it is made (engine.ts). */
export interface WriteChange {
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  type: string;
  /** What would be stored (absent for a delete). */
  next?: Resource;
  /** What is stored now (absent for a create or an update that creates). */
  current?: Resource;
}

/** Asked before a write is made (in its transaction, with that transaction's repository): throws to refuse it. */
export type WriteGuard = (change: WriteChange, repo: Repository) => Promise<void>;

/** Reads by primary key: plans that never depend on the values, so prepared once per connection (database.ts). */
const READ_SQL = prepared('SELECT version, deleted, content FROM resource WHERE type = $1 AND id = $2');
const READ_MANY_SQL = prepared('SELECT version, deleted, content FROM resource WHERE type = $1 AND id = ANY($2::text[]) AND NOT deleted');

interface CurrentRow {
  version: number;
  deleted: boolean;
  content: Resource;
}

export class Repository {
  constructor(
    readonly db: Database,
    private readonly sql: Sql = db,
    private readonly inTransaction = false,
    /** In a transaction: what it wrote so far (for the write observer). */
    readonly writes?: TxWrites
  ) {}

  /** Runs `fn` with a repository bound to one transaction (joins the current one if any). */
  async transaction<T>(fn: (repo: Repository) => Promise<T>): Promise<T> {
    if (this.inTransaction) return fn(this);
    const observers = engineOf(this.db).writeObservers;
    if (observers.length === 0) return this.db.transaction((sql) => fn(new Repository(this.db, sql, true)));
    let writes: TxWrites = { versions: [] };
    const value = await this.db.transaction(async (sql) => {
      writes = { versions: [] }; // a re-run transaction starts afresh
      const result = await fn(new Repository(this.db, sql, true, writes));
      if (writes.versions.length > 0) for (const observer of observers) await observer.beforeCommit(sql, writes);
      return result;
    });
    if (writes.versions.length > 0) for (const observer of observers) observer.afterCommit?.(writes);
    return value;
  }

  /** How the installed engine keeps resources at rest. */
  private get codec(): StorageCodec {
    return engineOf(this.db).codec;
  }

  /** A stored row's content as it was given. */
  private opened(content: Resource): Resource {
    return present(this.codec.open(content));
  }

  /** This repository's SQL connection (its transaction, if any): for modules that keep tables beside the resources. */
  get connection(): Sql {
    return this.sql;
  }

  /** Writes new versions (and tells the observer). */
  private async write(versions: NewVersion[]): Promise<void> {
    const companions = this.writes ? engineOf(this.db).writeObservers.flatMap((o) => o.alongside?.(versions) ?? []) : [];
    await writeVersions(this.sql, versions, this.codec, companions);
    this.writes?.versions.push(...versions);
  }

  async read(type: string, id: string): Promise<Resource> {
    checkType(type);
    const rows = await this.sql.query<CurrentRow>(READ_SQL, [type, id]);
    if (rows.length === 0) throw notFound(`${type}/${id} not found`);
    if (rows[0].deleted) throw gone(`${type}/${id} was deleted`);
    return this.opened(rows[0].content);
  }

  /** The current versions of many resources of one type, in one query; unknown and deleted ids are left out. */
  async readMany(type: string, ids: readonly string[]): Promise<Resource[]> {
    checkType(type);
    const unique = [...new Set(ids)];
    if (unique.length === 0) return [];
    const rows = await this.sql.query<CurrentRow>(READ_MANY_SQL, [type, unique]);
    return rows.map((r) => this.opened(r.content));
  }

  async vread(type: string, id: string, version: string): Promise<Resource> {
    checkType(type);
    if (!/^\d{1,9}$/.test(version)) throw notFound(`${type}/${id}/_history/${version} not found`);
    const rows = await this.sql.query<CurrentRow>(
      'SELECT version, deleted, content FROM resource_history WHERE type = $1 AND id = $2 AND version = $3',
      [type, id, Number(version)]
    );
    if (rows.length === 0) throw notFound(`${type}/${id}/_history/${version} not found`);
    if (rows[0].deleted) throw gone(`${type}/${id}/_history/${version} is a deletion`);
    return this.opened(rows[0].content);
  }

  /**
   * Creates a resource (server-assigned id unless `id` is given by a transaction's pre-assignment). `own`: a
   * record the platform's own code built, validated only where the engine asserts own records (engine.ts).
   */
  async create(resource: Resource, options: { ifNoneExist?: string; id?: string; guard?: WriteGuard; own?: boolean } = {}): Promise<WriteResult> {
    resource = withoutResponseTags(this.db, resource);
    const warnings = options.own && !engineOf(this.db).assertOwnRecords ? [] : assertValid(resource);
    if (hasLocalReferences(resource)) {
      return this.transaction(async (repo) => repo.create(await repo.resolveReferences(resource), options));
    }
    if (options.ifNoneExist) {
      return this.transaction(async (repo) => {
        const match = await repo.conditionalMatch(resource.resourceType, options.ifNoneExist as string, 'If-None-Exist');
        if (match.length === 1) return { resource: await repo.read(resource.resourceType, match[0]), status: 200 as const, unchanged: true };
        if (match.length > 1) throw preconditionFailed(`If-None-Exist matched ${match.length} resources`, 'If-None-Exist');
        return repo.insertNew(resource, options.id, warnings, options.guard);
      });
    }
    if (!options.guard && !this.inTransaction) {
      const written = await this.insertAlone(resource, options.id, warnings);
      if (written) return written;
    }
    return this.transaction((repo) => repo.insertNew(resource, options.id, warnings, options.guard));
  }

  /**
   * A new resource in one statement and no transaction (a single statement is atomic by itself), when every
   * write observer keeps what it keeps for it in that statement (`onlyAlongside`): BEGIN and COMMIT are two
   * round trips of their own. Undefined when an observer needs the transaction.
   */
  private async insertAlone(resource: Resource, id: string | undefined, warnings: OperationOutcomeIssue[]): Promise<WriteResult | undefined> {
    const observers = engineOf(this.db).writeObservers;
    const stored = stamp(resource, id ?? newResourceId(), 1, new Date().toISOString());
    const versions: NewVersion[] = [{ resource: stored, method: 'POST', isNew: true }];
    if (!observers.every((o) => o.onlyAlongside?.(versions) === true)) return undefined;
    await writeVersions(this.sql, versions, this.codec, observers.flatMap((o) => o.alongside?.(versions) ?? []));
    const writes: TxWrites = { versions };
    for (const observer of observers) observer.afterCommit?.(writes);
    return { resource: stored, status: 201, warnings };
  }

  /** Creates many new resources with one statement per table (ids already assigned, already valid). */
  async createMany(resources: Resource[]): Promise<Resource[]> {
    const now = new Date().toISOString();
    const stored = resources.map((r) => withoutResponseTags(this.db, r)).map((r) => stamp(r, r.id ?? newResourceId(), 1, now));
    await this.transaction((repo) => repo.write(stored.map((resource) => ({ resource, method: 'POST', isNew: true }))));
    return stored;
  }

  private async insertNew(resource: Resource, id: string | undefined, warnings: OperationOutcomeIssue[], guard?: WriteGuard): Promise<WriteResult> {
    await guard?.({ method: 'POST', type: resource.resourceType, next: resource }, this);
    const stored = stamp(resource, id ?? newResourceId(), 1, new Date().toISOString());
    await this.write([{ resource: stored, method: 'POST', isNew: true }]);
    return { resource: stored, status: 201, warnings };
  }

  /** Update (or create with a client id); `ifMatch` is a version number to check. */
  async update(resource: Resource, options: { ifMatch?: string; method?: 'PUT' | 'PATCH'; guard?: WriteGuard } = {}): Promise<WriteResult> {
    resource = withoutResponseTags(this.db, resource);
    const warnings = assertValid(resource);
    const type = resource.resourceType;
    const id = resource.id;
    if (!id) throw badRequest('Resource id is required for update', `${type}.id`);
    return this.transaction(async (repo) => {
      if (hasLocalReferences(resource)) resource = await repo.resolveReferences(resource);
      const current = await repo.lockCurrent(type, id);
      if (options.ifMatch !== undefined && (!current || String(current.version) !== options.ifMatch)) {
        throw preconditionFailed(`Version conflict: ${type}/${id} is at version ${current?.version ?? 'none'}, not ${options.ifMatch}`, 'If-Match');
      }
      await options.guard?.({ method: options.method ?? 'PUT', type, next: resource, current: current && !current.deleted ? current.content : undefined }, repo);
      if (current && !current.deleted && sameContent(current.content, resource)) {
        return { resource: present(current.content), status: 200 as const, unchanged: true, warnings };
      }
      const stored = stamp(resource, id, (current?.version ?? 0) + 1, new Date().toISOString());
      await repo.write([{ resource: stored, method: options.method ?? 'PUT', isNew: !current }]);
      return { resource: stored, status: current ? (200 as const) : (201 as const), warnings };
    });
  }

  /** Conditional update: `PUT Type?query`. */
  async conditionalUpdate(resource: Resource, query: string, guard?: WriteGuard): Promise<WriteResult> {
    assertValid(resource);
    return this.transaction(async (repo) => {
      const match = await repo.conditionalMatch(resource.resourceType, query, 'url');
      if (match.length > 1) throw preconditionFailed(`Conditional update matched ${match.length} resources`);
      if (match.length === 0) {
        if (resource.id) return repo.update(resource, { guard });
        return repo.create(resource, { guard });
      }
      if (resource.id && resource.id !== match[0]) {
        throw badRequest(`Resource id ${resource.id} does not match the resource found (${match[0]})`, `${resource.resourceType}.id`);
      }
      return repo.update({ ...resource, id: match[0] }, { guard });
    });
  }

  /** JSON Patch (RFC 6902). */
  async patch(type: string, id: string, operations: unknown, ifMatch?: string, guard?: WriteGuard): Promise<WriteResult> {
    checkType(type);
    if (!Array.isArray(operations)) throw badRequest('A JSON Patch body must be an array of operations');
    checkPatch(operations);
    return this.transaction(async (repo) => {
      const current = await repo.lockCurrent(type, id);
      if (!current) throw notFound(`${type}/${id} not found`);
      if (current.deleted) throw gone(`${type}/${id} was deleted`);
      const opError = fastJsonPatch.validate(operations as fastJsonPatch.Operation[], current.content);
      if (opError?.name === 'TEST_OPERATION_FAILED') throw preconditionFailed('JSON Patch test operation failed', `Patch[${opError.index}]`);
      if (opError) throw badRequest(`Invalid JSON Patch: ${opError.message.split('\n')[0]}`, `Patch[${opError.index}]`);
      let patched: Resource;
      try {
        patched = fastJsonPatch.applyPatch(structuredClone(current.content), operations as fastJsonPatch.Operation[], false, false).newDocument;
      } catch (err) {
        const e = err as { name?: string; message: string; index?: number };
        if (e.name === 'TEST_OPERATION_FAILED' || /Test operation failed/.test(e.message)) {
          throw preconditionFailed('JSON Patch test operation failed', `Patch[${e.index ?? 0}]`);
        }
        throw fail(422, 'processing', `JSON Patch failed: ${e.message.split('\n')[0].slice(0, 200)}`, `Patch[${e.index ?? 0}]`);
      }
      if (!patched || typeof patched !== 'object' || Array.isArray(patched) || patched.resourceType !== type || patched.id !== id) {
        throw fail(422, 'processing', 'A patch cannot change resourceType or id');
      }
      return repo.update(patched, { ifMatch, method: 'PATCH', guard });
    });
  }

  async delete(type: string, id: string, guard?: WriteGuard): Promise<void> {
    checkType(type);
    await this.transaction(async (repo) => {
      const current = await repo.lockCurrent(type, id);
      if (!current || current.deleted) return; // deleting twice is not an error
      await guard?.({ method: 'DELETE', type, current: current.content }, repo);
      const stub = stamp({ resourceType: type } as Resource, id, current.version + 1, new Date().toISOString());
      await repo.write([{ resource: stub, method: 'DELETE', isNew: false }]);
    });
  }

  async conditionalDelete(type: string, query: string, guard?: WriteGuard): Promise<number> {
    return this.transaction(async (repo) => {
      const match = await repo.conditionalMatch(type, query, 'url');
      if (match.length > 1) throw preconditionFailed(`Conditional delete matched ${match.length} resources`);
      for (const id of match) await repo.delete(type, id, guard);
      return match.length;
    });
  }

  async search(request: SearchRequest, baseUrl: string): Promise<Bundle> {
    const codec = this.codec;
    return runSearch(this.reader, blindRequest(codec, request), baseUrl, (r) => codec.open(r));
  }

  /**
   * The statements search() runs for `request` (its page and its count, with the values rewritten by the
   * storage codec as search() does): for EXPLAIN (test/search-plans.test.ts, scripts/explain-search.ts).
   */
  searchStatements(request: SearchRequest): { page: Query; count: Query } {
    return searchQueries({ ...blindRequest(this.codec, request), snapshot: request.snapshot ?? new Date().toISOString() });
  }

  /** Where reads that may be slightly stale go: the read replica outside a transaction, this transaction inside one. */
  private get reader(): Sql {
    return this.inTransaction ? this.sql : this.db.replica;
  }

  /** Versions newest first; one more than `count` when there is a next page. */
  async history(type: string | undefined, id: string | undefined, options: HistoryOptions): Promise<HistoryRow[]> {
    if (type) checkType(type);
    const where: string[] = [];
    const params: unknown[] = [];
    if (type) where.push(`type = $${params.push(type)}`);
    if (id) where.push(`id = $${params.push(id)}`);
    if (options.since) where.push(`last_updated >= $${params.push(options.since)}::timestamptz`);
    if (options.snapshot) where.push(`last_updated <= $${params.push(options.snapshot)}::timestamptz`);
    if (options.after) {
      const [u, i, v] = [params.push(options.after.updated), params.push(options.after.id), params.push(options.after.version)];
      where.push(`(last_updated < $${u}::timestamptz OR (last_updated = $${u}::timestamptz AND (id > $${i} OR (id = $${i} AND version < $${v}))))`);
    }
    const whereSql = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const rows = await this.sql.query<HistoryRow>(
      `SELECT type, id, version, deleted, method, content, last_updated::text AS updated FROM resource_history ${whereSql}
       ORDER BY last_updated DESC, id, version DESC LIMIT $${params.length + 1} OFFSET $${params.length + 2}`,
      [...params, options.count + 1, options.offset]
    );
    for (const row of rows) if (!row.deleted) row.content = this.codec.open(row.content);
    if (id && type && rows.length === 0 && options.offset === 0 && !options.since && !options.after) {
      throw notFound(`${type}/${id} not found`);
    }
    return rows;
  }

  /** Ids matching a conditional URL's query, serialised per (type, query) so concurrent twins agree. */
  async conditionalMatch(type: string, query: string, where: string): Promise<string[]> {
    checkType(type);
    // some clients write the whole conditional URL (`Patient?identifier=…`) where only the query belongs
    const pairs = [...new URLSearchParams(query.startsWith(`${type}?`) ? query.slice(type.length + 1) : query)] as [string, string][];
    if (pairs.length === 0) throw badRequest('A conditional request needs search parameters', where);
    const request = parseSearch(type, pairs);
    if (request.unknown.length > 0) throw badRequest(`Unknown search parameter '${request.unknown[0]}' in conditional request`, where);
    const key = `${type}?${pairs.map(([k, v]) => `${k}=${v}`).sort().join('&')}`;
    await this.sql.query('SELECT pg_advisory_xact_lock(hashtext($1))', [key]);
    return findIds(this.sql, blindRequest(this.codec, request), 2);
  }

  private async lockCurrent(type: string, id: string): Promise<CurrentRow | undefined> {
    const rows = await this.sql.query<CurrentRow>('SELECT version, deleted, content FROM resource WHERE type = $1 AND id = $2 FOR UPDATE', [type, id]);
    if (rows[0] && !rows[0].deleted) rows[0].content = this.codec.open(rows[0].content);
    return rows[0];
  }

  /** The resource with its conditional references resolved and local ones refused (write-references.ts). */
  private resolveReferences(resource: Resource): Promise<Resource> {
    return resolveWriteReferences(resource, (reference, where) => this.resolveConditionalReference(reference, where));
  }

  /** Resolves a conditional reference (`Patient?identifier=…`) to `Type/id`; exactly one match required. */
  async resolveConditionalReference(reference: string, where: string): Promise<string> {
    const [type, query] = reference.split('?', 2);
    const ids = await this.conditionalMatch(type, query ?? '', where);
    if (ids.length !== 1) throw fail(ids.length === 0 ? 404 : 412, ids.length === 0 ? 'not-found' : 'multiple-matches', `Conditional reference ${type}?… matched ${ids.length} resources`, where);
    return `${type}/${ids[0]}`;
  }
}

export interface HistoryRow {
  type: string;
  id: string;
  version: number;
  deleted: boolean;
  method: string;
  content: Resource;
  /** last_updated as the store writes it (for a cursor). */
  updated: string;
}

const PATCH_OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);
/** JSON Pointer segments that would reach JavaScript's object machinery instead of the resource's content. */
const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * A JSON Patch document checked before it is applied (400 naming the operation): known operations, paths that
 * are JSON Pointers into the resource (not the whole document, not through `__proto__`), a value where one
 * is needed.
 */
function checkPatch(operations: unknown[]): void {
  operations.forEach((op, i) => {
    const where = `Patch[${i}]`;
    if (!op || typeof op !== 'object' || Array.isArray(op)) throw badRequest('Each JSON Patch operation must be an object', where);
    const { op: name, path, from } = op as Record<string, unknown>;
    if (typeof name !== 'string' || !PATCH_OPS.has(name)) throw badRequest(`Unknown JSON Patch operation '${String(name).slice(0, 20)}'`, `${where}.op`);
    checkPointer(path, `${where}.path`);
    if (name === 'move' || name === 'copy') checkPointer(from, `${where}.from`);
    if ((name === 'add' || name === 'replace' || name === 'test') && !('value' in (op as object))) {
      throw badRequest(`JSON Patch '${name}' needs a value`, `${where}.value`);
    }
  });
}

function checkPointer(pointer: unknown, where: string): void {
  if (typeof pointer !== 'string') throw badRequest('A JSON Patch path must be a string', where);
  if (pointer === '' || pointer === '/') throw badRequest('A JSON Patch cannot replace or remove the whole resource', where);
  if (!pointer.startsWith('/')) throw badRequest(`'${pointer.slice(0, 80)}' is not a JSON Pointer (it must start with /)`, where);
  for (const segment of pointer.slice(1).split('/')) {
    const s = segment.replace(/~1/g, '/').replace(/~0/g, '~');
    if (FORBIDDEN_SEGMENTS.has(s)) throw badRequest(`A JSON Patch path must not go through '${s}'`, where);
  }
}

/** A cheap first look: could the resource hold a conditional or local reference at all? */
function hasLocalReferences(resource: Resource): boolean {
  if (resource.resourceType === 'Bundle') return false;
  const text = JSON.stringify(resource);
  return /"reference":"(urn:(uuid|oid):|[A-Z][A-Za-z]+\?)/.test(text);
}

function checkType(type: string): void {
  if (!isSupportedResourceType(type)) throw notFound(`Unknown resource type '${type}'`);
}

/** Without the tags that only answers carry (engine.ts `responseOnlyTags`, e.g. a badge): they are never stored. */
function withoutResponseTags(db: Database, resource: Resource): Resource {
  const systems = engineOf(db).responseOnlyTags;
  const tags = resource.meta?.tag;
  if (systems.size === 0 || !Array.isArray(tags) || !tags.some((t) => systems.has(t?.system as string))) return resource;
  const { tag: _tag, ...meta } = resource.meta as NonNullable<Resource['meta']>;
  const kept = tags.filter((t) => !systems.has(t?.system as string));
  return { ...resource, meta: kept.length > 0 ? { ...meta, tag: kept } : meta } as Resource;
}

/** Sets id and server-owned meta fields (keeps profile, tag, security, source). */
function stamp(resource: Resource, id: string, version: number, lastUpdated: string): Resource {
  const { resourceType, id: _old, meta, ...rest } = resource as Resource & Record<string, unknown>;
  return { resourceType, id, meta: { ...meta, versionId: String(version), lastUpdated }, ...rest } as Resource;
}

/** Orders the top-level keys as FHIR JSON usually reads (the store's JSONB does not keep key order). */
export function present(content: Resource): Resource {
  const { resourceType, id, meta, ...rest } = content as Resource & Record<string, unknown>;
  return { resourceType, ...(id !== undefined ? { id } : {}), ...(meta ? { meta } : {}), ...rest } as Resource;
}

function sameContent(current: Resource, next: Resource): boolean {
  const strip = (r: Resource) => {
    const { meta, ...rest } = r as Resource & Record<string, unknown>;
    const { versionId, lastUpdated, ...keptMeta } = (meta ?? {}) as Record<string, unknown>;
    return canonicalize({ ...rest, meta: keptMeta });
  };
  return strip(current) === strip(next);
}
