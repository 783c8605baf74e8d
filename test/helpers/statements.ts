/**
 * The SQL statements a piece of server code sends to the database (its round trips), for tests that prove how
 * many a request costs: `statementsOf(db, fn)` runs `fn` and lists, in order, each statement `fn` sent through the
 * database, its replica and its transactions (BEGIN and COMMIT are statements of their own). Only `fn`'s own
 * work counts: what other code runs meanwhile (scheduled jobs, timers started before) is not in the list, nor
 * what `fn` left to timers that fire after it returned.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Database, Sql } from '../../server/db/database.ts';

const mine = new AsyncLocalStorage<{ open: boolean; statements: string[] }>();
const wrapped = new WeakSet<Database>();

/** A statement's text on one line, for messages. */
const line = (text: string) => text.replace(/\s+/g, ' ').trim();

function note(text: string): void {
  const run = mine.getStore();
  if (run?.open) run.statements.push(line(text));
}

/** Wraps the database's entry points once (the wrappers record only inside `statementsOf`). */
function wrap(db: Database): void {
  if (wrapped.has(db)) return;
  wrapped.add(db);
  const target = db as { -readonly [K in keyof Database]: Database[K] };
  const query = db.query.bind(db);
  const transaction = db.transaction.bind(db);
  const replica = db.replica;
  const replicaQuery = replica.query.bind(replica);
  target.query = ((text, params, options) => (note(text), query(text, params, options))) as Database['query'];
  (replica as { query: Sql['query'] }).query = ((text, params, options) => (note(text), replicaQuery(text, params, options))) as Sql['query'];
  target.transaction = ((fn) =>
    transaction(async (sql) => {
      note('BEGIN');
      const value = await fn({ query: ((text, params, options) => (note(text), sql.query(text, params, options))) as Sql['query'] });
      note('COMMIT');
      return value;
    })) as Database['transaction'];
}

export async function statementsOf<T>(db: Database, fn: () => Promise<T>): Promise<{ value: T; statements: string[] }> {
  wrap(db);
  const run = { open: true, statements: [] as string[] };
  try {
    const value = await mine.run(run, fn);
    return { value, statements: run.statements };
  } finally {
    run.open = false;
  }
}
