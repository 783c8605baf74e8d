/**
 * The embedded store: PGlite (PostgreSQL compiled to WebAssembly, in the server's own thread), guarded against
 * its one way of taking the whole server down.
 *
 * PGlite (0.5.16 here; 0.5.17 and 0.6.1 have the same loop) runs each protocol message in
 * `execProtocolRawSync`, which catches every exception thrown inside Postgres and carries on. Only one of them
 * is expected: Postgres' own error longjmp, which PGlite turns into `exit(100)` and recovers from. Anything
 * else — above all V8's "Maximum call stack size exceeded" when a statement recurses deeply while it is bound
 * or run (a search nesting about 110 `_has`, a deeply nested jsonb value) — leaves the backend half-way
 * through that statement: the statement seems to succeed with no rows, and the next SQL error of any kind
 * (`bigint out of range` from a huge `_offset`, a division by zero, a missing table) loops for ever inside
 * Postgres' error handling, at 100 % CPU on the server's only thread, so nothing answers any more, not even
 * /healthz (issue 12; reproduced on memory and disk stores).
 *
 * So the backend is watched: once anything but the error longjmp escapes from Postgres, that PGlite is never
 * called again (the statement fails: 422 `too-costly` for a stack overflow, else 503), and the next statement
 * runs on a new PGlite opened on the same data directory, which recovers from the write-ahead log as after a
 * crash (what the abandoned backend had not committed is lost, as the failed request was told); an in-memory
 * store starts the new PGlite from a copy of the old one's files.
 */
import { mkdirSync } from 'node:fs';
import type { PGlite } from '@electric-sql/pglite';
import type { Database, Sql } from './database.ts';

/** PGlite's code for Postgres' error longjmp into its main loop (pglitec.c POSTGRES_MAIN_LONGJMP). */
const POSTGRES_MAIN_LONGJMP = 100;

/** A statement refused because the embedded backend failed (or failed on this statement). */
export class EmbeddedStoreError extends Error {
  /** 54001 (stack depth limit exceeded: 422 too-costly) for a stack overflow, else 08006 (503 transient). */
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.name = 'EmbeddedStoreError';
    this.code = code;
  }
}

interface Guarded {
  lite: PGlite;
  /** What escaped from Postgres, once something did: this backend is no longer called. */
  failure?: unknown;
  /** The error every later call of this backend throws (one object, so the failed statement reports it, whatever PGlite sends after). */
  error?: EmbeddedStoreError;
}

function refusal(g: Guarded): EmbeddedStoreError {
  const overflow = g.failure instanceof RangeError && /call stack/i.test(g.failure.message);
  g.error ??= overflow
    ? new EmbeddedStoreError('The statement recursed too deeply for the embedded store', '54001')
    : new EmbeddedStoreError('The embedded store failed; it is reopened for the next statement', '08006');
  return g.error;
}

/** Watches one PGlite's backend (see the module comment). */
export function guardBackend(lite: PGlite): Guarded {
  const g: Guarded = { lite };
  const mod = (lite as unknown as { mod?: Record<string, unknown> }).mod;
  const loopOnce = mod?._PostgresMainLoopOnce;
  const rawSync = lite.execProtocolRawSync;
  // an upgrade that renames these must not drop the guard silently
  if (typeof loopOnce !== 'function' || typeof rawSync !== 'function') throw new Error('PGlite internals changed: cannot guard the embedded backend (server/db/pglite.ts)');
  mod!._PostgresMainLoopOnce = () => {
    try {
      (loopOnce as () => void)();
    } catch (e) {
      if ((e as { status?: unknown } | null)?.status !== POSTGRES_MAIN_LONGJMP) g.failure ??= e;
      throw e; // to PGlite's loop, which swallows it
    }
  };
  lite.execProtocolRawSync = (message: Uint8Array) => {
    if (g.failure !== undefined) throw refusal(g);
    let out: Uint8Array;
    try {
      out = rawSync.call(lite, message);
    } catch (e) {
      g.failure ??= e;
      throw refusal(g);
    }
    if (g.failure !== undefined) throw refusal(g);
    return out;
  };
  return g;
}

export async function openPglite(dataDir: string | undefined): Promise<Database> {
  const { PGlite } = await import('@electric-sql/pglite');
  if (dataDir) {
    mkdirSync(dataDir, { recursive: true });
  }
  // after a failure in memory, the new PGlite starts from the files of the old one (their tar: no backend call)
  const open = async (from?: PGlite) =>
    guardBackend(await PGlite.create(dataDir ? { dataDir } : from ? { loadDataDir: await from.dumpDataDir('none') } : {}));
  let current = await open();
  let replacing: Promise<Guarded> | undefined;
  let closed = false;
  const listeners = new Set<{ channel: string; onMessage: (payload: string) => void; stop?: () => Promise<void> }>();

  /** The PGlite to use: the current one, or a new one on the same directory once the current one failed. */
  const live = async (): Promise<PGlite> => {
    if (current.failure === undefined) return current.lite;
    if (closed) throw new Error('The database is closed');
    replacing ??= (async () => {
      const next = await open(dataDir ? undefined : current.lite);
      for (const l of listeners) l.stop = await next.lite.listen(l.channel, l.onMessage);
      current = next;
      return next;
    })().finally(() => (replacing = undefined));
    return (await replacing).lite;
  };

  const query: Sql['query'] = async (text, params) => (await (await live()).query<any>(text, params as any[])).rows;
  return {
    engine: 'pglite',
    query,
    replica: { query },
    async listen(channel, onMessage, onListening) {
      const entry: { channel: string; onMessage: (payload: string) => void; stop?: () => Promise<void> } = { channel, onMessage };
      entry.stop = await (await live()).listen(channel, onMessage);
      listeners.add(entry);
      // in this process, on the one backend (a replacement backend listens again before it serves a query)
      onListening?.(true);
      // stopping after the database closed (a shutdown in another order) has nothing left to stop
      return async () => {
        listeners.delete(entry);
        await entry.stop?.().catch(() => undefined);
      };
    },
    async transaction(fn) {
      return (await live()).transaction(async (tx) =>
        fn({
          async query(text, params) {
            const result = await tx.query<any>(text, params as any[]);
            return result.rows;
          },
        })
      );
    },
    async close() {
      closed = true;
      await replacing?.catch(() => undefined);
      // a failed backend is not called again, not even to shut down (its directory recovers on the next open)
      if (current.failure === undefined) await current.lite.close();
    },
  };
}
