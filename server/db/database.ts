/**
 * One SQL dialect (PostgreSQL) over two engines: embedded PGlite (default) and a PostgreSQL server
 * (`DATABASE_URL`). The rest of the code sees only `Database` and `Sql`.
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import pg from 'pg';

export interface Sql {
  query<T = Record<string, any>>(text: string, params?: unknown[]): Promise<T[]>;
}

export interface Database extends Sql {
  readonly engine: 'pglite' | 'postgres';
  /**
   * Runs `fn` in one transaction; a throw rolls everything back. On PostgreSQL a transaction that lost a
   * race (deadlock, serialization failure, duplicate key) is re-run, so `fn` must not mutate its inputs.
   */
  transaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** A PostgreSQL connection string; when absent PGlite is used. */
  url?: string;
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
  return options.url ? openPostgres(options.url, options.poolSize ?? 10, options.statementTimeoutMs ?? 0) : openPglite(options.dataDir);
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

async function openPglite(dataDir: string | undefined): Promise<Database> {
  const { PGlite } = await import('@electric-sql/pglite');
  if (dataDir) {
    mkdirSync(dataDir, { recursive: true });
  }
  const lite = await PGlite.create(dataDir ? { dataDir } : {});
  return {
    engine: 'pglite',
    async query(text, params) {
      const result = await lite.query<any>(text, params as any[]);
      return result.rows;
    },
    async transaction(fn) {
      return lite.transaction(async (tx) =>
        fn({
          async query(text, params) {
            const result = await tx.query<any>(text, params as any[]);
            return result.rows;
          },
        })
      );
    },
    async close() {
      await lite.close();
    },
  };
}

/**
 * Concurrent writers can collide: a deadlock (40P01), a serialization failure (40001), or two creates of the
 * same new id racing to insert version 1 (23505). The whole transaction is simply run again.
 */
const RETRYABLE = new Set(['40001', '40P01', '23505']);
const MAX_ATTEMPTS = 4;

async function openPostgres(url: string, poolSize: number, statementTimeoutMs: number): Promise<Database> {
  // Dates and timestamps come back as ISO strings, as from PGlite after normalisation below.
  pg.types.setTypeParser(1184, (v) => v); // timestamptz
  pg.types.setTypeParser(20, (v) => Number(v)); // int8
  const pool = new pg.Pool({ connectionString: url, max: poolSize, ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}) });
  pool.on('error', () => undefined); // idle client errors surface on the next query
  const run = async (client: pg.Pool | pg.PoolClient, text: string, params?: unknown[]) => {
    const name = preparedName(text);
    const result = name ? await client.query({ name, text, values: params as any[] }) : await client.query(text, params as any[]);
    return result.rows;
  };
  return {
    engine: 'postgres',
    query: (text, params) => run(pool, text, params),
    async transaction(fn) {
      for (let attempt = 1; ; attempt++) {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          const value = await fn({ query: (text, params) => run(client, text, params) });
          await client.query('COMMIT');
          return value;
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          if (attempt < MAX_ATTEMPTS && RETRYABLE.has((err as { code?: string }).code ?? '')) continue;
          throw err;
        } finally {
          client.release();
        }
      }
    },
    async close() {
      await pool.end();
    },
  };
}

/**
 * Statements registered with `prepared()` run as named prepared statements on PostgreSQL: each pooled
 * connection parses and plans them once instead of on every call. Only statements whose best plan does not
 * depend on the parameter values belong here (the store's write, lookups by primary key): after five runs
 * PostgreSQL may switch a prepared statement to a generic plan, and for a search that plan can be orders of
 * magnitude slower than one made for the actual values (measured: 0.5 s instead of 3 ms at a million
 * Observations), which is why searches are never prepared.
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
