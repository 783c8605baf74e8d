/**
 * Rarely-changing settings that every recognition check reads — the exchange partner list
 * (server/exchange/registry.ts), the hash-badge setting (server/provenance/badge.ts) — cached in the process,
 * and dropped in every server process on the database when one of them changes.
 *
 * How a change is seen: the writer calls `changed()` once its write is committed. That drops the value in its
 * own process at once (so the next check there reads it again) and sends `NOTIFY huren_settings, '<key>'`; every
 * process on the database LISTENs on that channel (db.listen: the same mechanism as the monitoring stream) and
 * drops the value when it hears it. PostgreSQL delivers the notification when the writing transaction commits,
 * before the writer answers its caller, so another process has it (in practice well under a millisecond later)
 * before a client can act on the answer. A value read while a change was on its way is not kept (a generation
 * per key). While this process is not listening (before the LISTEN is in place, or after its connection was
 * lost, until it is listening again) nothing is cached: every read goes to the database, as it did before.
 */
import type { Database, Sql } from './database.ts';

const CHANNEL = 'huren_settings';

interface Hub {
  /** Listening: cached values can be trusted. */
  live: boolean;
  generation: Map<string, number>;
  values: Map<string, { generation: number; value: Promise<unknown> }>;
  stop?: () => Promise<void>;
}

const hubs = new WeakMap<Database, Hub>();

function drop(hub: Hub, key: string): void {
  hub.generation.set(key, (hub.generation.get(key) ?? 0) + 1);
  hub.values.delete(key);
}

function dropAll(hub: Hub): void {
  for (const key of [...hub.values.keys()]) drop(hub, key);
  hub.values.clear();
}

/** Starts listening for changes made by any process on this database (the app, at start-up). */
export async function startSharedSettings(db: Database): Promise<void> {
  if (hubs.has(db)) return;
  const hub: Hub = { live: false, generation: new Map(), values: new Map() };
  hubs.set(db, hub);
  hub.stop = await db.listen(
    CHANNEL,
    (key) => drop(hub, key),
    (listening) => {
      // a notification may have been missed while not listening: nothing cached before is trusted
      dropAll(hub);
      hub.live = listening;
    }
  );
}

/** Stops listening and forgets the cached values (the app, at shutdown). */
export async function stopSharedSettings(db: Database): Promise<void> {
  const hub = hubs.get(db);
  if (!hub) return;
  hubs.delete(db);
  hub.live = false;
  dropAll(hub);
  await hub.stop?.();
}

/** One cached setting of a database: `key` names it on the channel. */
export class SharedSetting<T> {
  constructor(
    readonly key: string,
    private readonly load: (db: Database) => Promise<T>
  ) {
    if (!/^[a-z][a-z0-9.-]{0,60}$/.test(key)) throw new Error(`SharedSetting: '${key.slice(0, 70)}' is not a plain key`);
  }

  /** The setting: the cached value while this process listens for changes, else read from the database. */
  get(db: Database): Promise<T> {
    const hub = hubs.get(db);
    if (!hub?.live) return this.load(db);
    const cached = hub.values.get(this.key);
    const generation = hub.generation.get(this.key) ?? 0;
    if (cached && cached.generation === generation) return cached.value as Promise<T>;
    const value = this.load(db);
    hub.values.set(this.key, { generation, value });
    // a failed read is not kept; nor is one a change overtook (drop() removed it and bumped the generation)
    value.catch(() => {
      if (hub.values.get(this.key)?.value === value) hub.values.delete(this.key);
    });
    return value;
  }

  /**
   * After a committed change: drops the value here and tells every other process. `sql` is where the
   * notification is sent (a transaction sends it when it commits); default the database itself.
   */
  async changed(db: Database, sql: Sql = db): Promise<void> {
    const hub = hubs.get(db);
    if (hub) drop(hub, this.key);
    await sql.query('SELECT pg_notify($1, $2)', [CHANNEL, this.key]);
  }
}
