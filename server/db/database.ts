/**
 * One SQL dialect (PostgreSQL) over two engines: embedded PGlite (default) and a PostgreSQL server
 * (`DATABASE_URL`). The rest of the code sees only `Database` and `Sql`.
 */
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
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  return options.url ? openPostgres(options.url, options.poolSize ?? 10) : openPglite(options.dataDir);
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

async function openPostgres(url: string, poolSize: number): Promise<Database> {
  // Dates and timestamps come back as ISO strings, as from PGlite after normalisation below.
  pg.types.setTypeParser(1184, (v) => v); // timestamptz
  pg.types.setTypeParser(20, (v) => Number(v)); // int8
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  pool.on('error', () => undefined); // idle client errors surface on the next query
  const run = async (client: pg.Pool | pg.PoolClient, text: string, params?: unknown[]) => {
    const result = await client.query(text, params as any[]);
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
