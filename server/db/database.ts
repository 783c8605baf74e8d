/**
 * One SQL dialect (PostgreSQL) over two engines: embedded PGlite (default) and a PostgreSQL server
 * (`DATABASE_URL`). The rest of the code sees only `Database` and `Sql`.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { openPglite } from './pglite.ts';

export interface Sql {
  query<T = Record<string, any>>(text: string, params?: unknown[], options?: QueryOptions): Promise<T[]>;
}

export interface QueryOptions {
  /**
   * `text` recurs with other values (a search of one shape): on PostgreSQL, outside a transaction, it runs as a
   * named prepared statement, so that each connection parses it once and PostgreSQL may keep a generic plan of
   * it (after five runs, when that plan is estimated no dearer than the custom ones). At most
   * PREPARED_PER_CONNECTION such statements are kept per connection; the least recently used is deallocated.
   * Only for statements whose plan does not depend on the values (see `prepared()`). Elsewhere: ignored.
   */
  prepare?: boolean;
}

export interface Database extends Sql {
  readonly engine: 'pglite' | 'postgres';
  /**
   * Where reads that may be slightly stale go (search, history, statistics, monitoring): the read replica of
   * `DATABASE_READ_URL` when one is configured, else the database itself. Writes, reads by id and everything
   * inside a transaction stay on the primary, so a client reads its own writes.
   */
  readonly replica: Sql;
  /**
   * Runs `fn` in one transaction; a throw rolls everything back. On PostgreSQL a transaction that lost a
   * race (deadlock, serialization failure, duplicate key) is re-run, so `fn` must not mutate its inputs.
   */
  transaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  /**
   * Calls `onMessage` with the payload of every NOTIFY on `channel` (from any server process on this database;
   * send with `SELECT pg_notify(channel, payload)`). On PostgreSQL a dedicated connection listens, and connects
   * again (to the primary) after it is lost. `onListening` is told when the LISTEN is in place (true) and when
   * its connection is lost (false: notifications sent until it is in place again are missed). Resolves to the
   * function that stops listening.
   */
  listen(channel: string, onMessage: (payload: string) => void, onListening?: (listening: boolean) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /**
   * A PostgreSQL connection string; when absent PGlite is used. It may name several hosts
   * (`postgres://u@h1:5432,h2:5432/db`): the pool connects to the one that is a writable primary and, when
   * that one goes away (failover), finds the new primary by itself.
   */
  url?: string;
  /** A PostgreSQL connection string (one or several hosts) for reads that may be slightly stale. */
  readUrl?: string;
  /** PGlite data directory; `undefined` means in memory. */
  dataDir?: string;
  poolSize?: number;
  /**
   * PostgreSQL server: a statement running longer is cancelled (SQLSTATE 57014, answered 503 by the FHIR
   * layer); 0 or absent: no limit. Embedded PGlite runs statements in the server's own thread and cannot
   * interrupt them: there the bounds on each request's work (server/fhir/limits.ts) are the defence.
   */
  statementTimeoutMs?: number;
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (!options.url) {
    if (options.readUrl) throw new Error('DATABASE_READ_URL needs DATABASE_URL: the embedded store has no replicas');
    return openPglite(options.dataDir);
  }
  return openPostgres(options.url, options.readUrl, options.poolSize ?? 10, options.statementTimeoutMs ?? 0);
}

/**
 * Keeps planner statistics fresh when nothing else does: PGlite has no autovacuum daemon, and a PostgreSQL
 * server may run with `autovacuum = off`. Without statistics the planner guesses, and the index-table joins
 * of a search can go from a millisecond to many seconds (seen at a million Observations). Each table that has
 * grown by more than a fifth (by pages, compared with what the last ANALYZE recorded in pg_class — this works
 * on both engines, unlike the statistics collector's counters) is analysed again. On a PostgreSQL server with
 * autovacuum on, this does nothing. The app runs it as a scheduled job (every 30 s, once across processes).
 */
export async function analyzeGrownTables(db: Database): Promise<string[]> {
  if (db.engine === 'postgres') {
    const [{ on }] = await db.query<{ on: boolean }>(`SELECT current_setting('autovacuum') = 'on' AS on`);
    if (on) return [];
  }
  const stale = await db.query<{ name: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname = current_schema()
        AND pg_relation_size(c.oid) / 8192 > 1.2 * GREATEST(c.relpages, 0) + 128`
  );
  for (const { name } of stale) await db.query(`ANALYZE ${name}`);
  return stale.map((s) => s.name);
}

/**
 * Concurrent writers can collide: a deadlock (40P01), a serialization failure (40001), or two creates of the
 * same new id racing to insert version 1 (23505). The whole transaction is simply run again.
 */
const RETRYABLE = new Set(['40001', '40P01', '23505']);
const MAX_ATTEMPTS = 4;

/**
 * The errors that mean "this server is not (or no longer) the writable primary": the connection failed or was
 * cut (class 08 and Node's socket errors), the server is shutting down or starting (57P01–57P03), or it is a
 * standby that refuses writes (25006). They are thrown on as `DatabaseUnavailableError` (SQLSTATE 08006, which
 * the FHIR layer answers 503 with Retry-After), and the pool looks for the primary again.
 */
function lostPrimary(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  if (code.startsWith('08') || ['57P01', '57P02', '57P03', '25006'].includes(code)) return true;
  if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND'].includes(code)) return true;
  return typeof e?.message === 'string' && /Connection terminated|connection timeout|Client has encountered a connection error/i.test(e.message);
}

export class DatabaseUnavailableError extends Error {
  readonly code = '08006';
  constructor(message: string) {
    super(message);
    this.name = 'DatabaseUnavailableError';
  }
}

/** `postgres://u@h1:1,h2:2/db?x=y` → one connection string per host (the same user, database and options). */
export function splitHosts(url: string): string[] {
  const m = /^(postgres(?:ql)?:\/\/)([^@/?#]*@)?([^/?#]*)(.*)$/.exec(url);
  if (!m || !m[3].includes(',')) return [stripSessionAttrs(url)];
  return m[3].split(',').filter(Boolean).map((host) => stripSessionAttrs(`${m[1]}${m[2] ?? ''}${host}${m[4]}`));
}

/** libpq's `target_session_attrs` is what this pool does itself; node-postgres does not know it. */
function stripSessionAttrs(url: string): string {
  return url.replace(/([?&])target_session_attrs=[^&]*&?/, '$1').replace(/[?&]$/, '');
}

/**
 * A pool over the first of several hosts that answers as wanted: the writable primary (`pg_is_in_recovery()`
 * false) for the primary pool; any host for a replica pool. With one host there is nothing to choose and the
 * pool is made directly. After `lost()`, the next `pool()` looks again (at most every 500 ms, so a request
 * storm during a failover does not become a connection storm).
 */
class HostPool {
  private current: pg.Pool | undefined;
  private looking: Promise<pg.Pool> | undefined;
  private lastFailure = 0;
  private closed = false;

  constructor(
    private readonly urls: string[],
    private readonly wantPrimary: boolean,
    private readonly config: pg.PoolConfig
  ) {}

  pool(): Promise<pg.Pool> {
    if (this.closed) return Promise.reject(new Error('The database is closed'));
    if (this.current) return Promise.resolve(this.current);
    if (this.urls.length === 1) return Promise.resolve((this.current = this.make(this.urls[0])));
    if (Date.now() - this.lastFailure < 500) return Promise.reject(this.unavailable());
    this.looking ??= this.find().finally(() => (this.looking = undefined));
    return this.looking;
  }

  /** The current pool failed in a way that says its host is gone or demoted: drop it. */
  lost(pool: pg.Pool): void {
    if (this.current !== pool) return;
    this.current = undefined;
    pool.end().catch(() => undefined);
  }

  /**
   * Rejects once the pool is closed: what waits for a pooled connection then would wait for ever (pg-pool serves
   * no queued request once it is ending), so waiters race this.
   */
  private rejectClosing: (err: Error) => void = () => undefined;
  readonly closing: Promise<never> = new Promise<never>((_, reject) => (this.rejectClosing = reject));

  async end(): Promise<void> {
    this.closed = true;
    this.closing.catch(() => undefined);
    this.rejectClosing(new Error('The database is closed'));
    const pool = this.current;
    this.current = undefined;
    await pool?.end();
  }

  private async find(): Promise<pg.Pool> {
    for (const url of this.urls) {
      const probe = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        const [{ standby }] = (await probe.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby')).rows;
        if (this.wantPrimary && standby) continue;
        return (this.current = this.make(url));
      } catch {
        // not reachable: the next host
      } finally {
        await probe.end().catch(() => undefined);
      }
    }
    this.lastFailure = Date.now();
    throw this.unavailable();
  }

  /** A connection of its own to the host this pool uses (or would use), for LISTEN. */
  async client(): Promise<pg.Client> {
    const pool = await this.pool();
    const url = this.urls.find((u) => this.urlOf.get(pool) === u) ?? this.urls[0];
    const client = new pg.Client({ connectionString: url });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  }

  private readonly urlOf = new WeakMap<pg.Pool, string>();

  private make(url: string): pg.Pool {
    const pool = new pg.Pool({ ...this.config, connectionString: url });
    pool.on('error', () => undefined); // idle client errors surface on the next query
    this.urlOf.set(pool, url);
    return pool;
  }

  private unavailable(): DatabaseUnavailableError {
    return new DatabaseUnavailableError(this.wantPrimary ? 'No writable PostgreSQL primary is reachable' : 'No PostgreSQL server is reachable');
  }
}

async function openPostgres(url: string, readUrl: string | undefined, poolSize: number, statementTimeoutMs: number): Promise<Database> {
  // Dates and timestamps come back as ISO strings, as from PGlite after normalisation below.
  pg.types.setTypeParser(1184, (v) => v); // timestamptz
  pg.types.setTypeParser(20, (v) => Number(v)); // int8
  // no connection timeout: under load a request waits its turn for a pooled connection rather than failing
  const config: pg.PoolConfig = { max: poolSize, ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}) };
  const primary = new HostPool(splitHosts(url), true, config);
  const readers = readUrl ? new HostPool(splitHosts(readUrl), false, config) : undefined;
  const run = async (client: pg.Pool | pg.PoolClient, text: string, params?: unknown[]) => {
    const name = preparedName(text);
    const result = name ? await client.query({ name, text, values: params as any[] }) : await client.query(text, params as any[]);
    return result.rows;
  };
  /** `run` on a pooled connection; with `prepare`, as one of the connection's recent prepared statements. */
  const runPooled = async (pool: pg.Pool, text: string, params: unknown[] | undefined, options: QueryOptions | undefined) => {
    if (!options?.prepare || preparedName(text)) return run(pool, text, params);
    const client = await pool.connect();
    const ignore = () => undefined; // a connection cut while checked out: the query reports it
    client.on('error', ignore);
    let failed: unknown;
    try {
      const name = await recentStatement(client, text);
      const result = name ? await client.query({ name, text, values: params as any[] }) : await client.query(text, params as any[]);
      return result.rows;
    } catch (err) {
      failed = err;
      throw err;
    } finally {
      client.off('error', ignore);
      client.release(failed !== undefined && lostPrimary(failed));
    }
  };
  /** Runs `fn` on a pool of `hosts`; an error that says the host is gone drops the pool and becomes a 503. */
  const onPool = async <T>(hosts: HostPool, fn: (pool: pg.Pool) => Promise<T>): Promise<T> => {
    const pool = await hosts.pool();
    try {
      return await Promise.race([fn(pool), hosts.closing]);
    } catch (err) {
      if (!lostPrimary(err)) throw err;
      hosts.lost(pool);
      throw err instanceof DatabaseUnavailableError ? err : new DatabaseUnavailableError('The PostgreSQL connection was lost; try again');
    }
  };
  const query: Sql['query'] = (text, params, options) => onPool(primary, (pool) => runPooled(pool, text, params, options));
  return {
    engine: 'postgres',
    query,
    // a replica that is down is not an outage: its reads go to the primary
    replica: readers
      ? {
          query: (text, params, options) =>
            onPool(readers, (pool) => runPooled(pool, text, params, options)).catch((err) => {
              if (err instanceof DatabaseUnavailableError) return query(text, params, options);
              throw err;
            }),
        }
      : { query },
    async transaction(fn) {
      for (let attempt = 1; ; attempt++) {
        const retry = await onPool(primary, async (pool) => {
          const client = await pool.connect();
          // a connection cut while checked out emits 'error' on the client: the failing query reports it
          const ignore = () => undefined;
          client.on('error', ignore);
          let failed: unknown;
          try {
            await client.query('BEGIN');
            const value = await fn({ query: (text, params) => run(client, text, params) });
            await client.query('COMMIT');
            return { value };
          } catch (err) {
            failed = err;
            await client.query('ROLLBACK').catch(() => undefined);
            if (attempt < MAX_ATTEMPTS && RETRYABLE.has((err as { code?: string }).code ?? '')) return undefined;
            throw err;
          } finally {
            client.off('error', ignore);
            client.release(failed !== undefined && lostPrimary(failed)); // a broken connection is not pooled again
          }
        });
        if (retry) return retry.value;
      }
    },
    async listen(channel, onMessage, onListening) {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(channel)) throw new Error(`listen: '${channel.slice(0, 70)}' is not a plain channel name`);
      let client: pg.Client | undefined;
      let stopped = false;
      let retry: NodeJS.Timeout | undefined;
      const connect = async (): Promise<void> => {
        try {
          const c = await primary.client();
          c.on('notification', (m) => m.channel === channel && m.payload !== undefined && onMessage(m.payload));
          // a lost connection (failover, restart) listens again from a new one
          c.once('end', () => {
            if (client === c) onListening?.(false);
            if (!stopped) retry = setTimeout(() => void connect(), 1000);
          });
          await c.query(`LISTEN ${channel}`);
          if (stopped) await c.end().catch(() => undefined);
          else {
            client = c;
            onListening?.(true);
          }
        } catch {
          if (!stopped) retry = setTimeout(() => void connect(), 1000);
        }
      };
      await connect();
      return async () => {
        stopped = true;
        clearTimeout(retry);
        await client?.end().catch(() => undefined);
      };
    },
    async close() {
      await Promise.all([primary.end(), readers?.end()]);
    },
  };
}

/**
 * Statements registered with `prepared()` run as named prepared statements on PostgreSQL: each pooled
 * connection parses and plans them once instead of on every call. Only statements whose best plan does not
 * depend on the parameter values belong here (the store's write, lookups by primary key): after five runs
 * PostgreSQL may switch a prepared statement to a generic plan, and for a search that plan can be orders of
 * magnitude slower than one made for the actual values (measured: 0.5 s instead of 3 ms at a million
 * Observations, before searches were driven), which is why only driven searches are prepared, and those
 * through QueryOptions.prepare (a bounded number per connection), not here.
 */
const preparedNames = new Map<string, string>();

/** Marks `text` as a statement to prepare once per connection; returns it unchanged. */
export function prepared(text: string): string {
  if (!preparedNames.has(text)) preparedNames.set(text, `huren_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`);
  return text;
}

function preparedName(text: string): string | undefined {
  return preparedNames.get(text);
}

/** How many statements marked QueryOptions.prepare each PostgreSQL connection keeps prepared. */
export const PREPARED_PER_CONNECTION = 64;

/** The names of each connection's statements marked `prepare`, least recently used first. */
const recent = new WeakMap<pg.PoolClient, Set<string>>();

/**
 * The name under which `client` (checked out, used by nothing else meanwhile) runs `text` as a prepared
 * statement: a short hash of the text. When the connection already keeps PREPARED_PER_CONNECTION of them, the
 * least recently used is deallocated first, and forgotten by node-postgres too (its record of the statements a
 * connection has parsed, `connection.parsedStatements`, has no public API; without it: no name, the statement
 * runs unnamed).
 */
async function recentStatement(client: pg.PoolClient, text: string): Promise<string | undefined> {
  const parsed = (client as unknown as { connection?: { parsedStatements?: Record<string, string> } }).connection?.parsedStatements;
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const name = `huren_q_${createHash('sha256').update(text).digest('hex').slice(0, 20)}`;
  let names = recent.get(client);
  if (!names) recent.set(client, (names = new Set()));
  if (names.delete(name)) {
    names.add(name); // now the most recently used
    return name;
  }
  for (const oldest of names) {
    if (names.size < PREPARED_PER_CONNECTION) break;
    names.delete(oldest);
    // a statement whose Parse failed was never made: nothing to deallocate
    if (parsed[oldest] !== undefined) {
      await client.query(`DEALLOCATE ${oldest}`);
      delete parsed[oldest];
    }
  }
  names.add(name);
  return name;
}
