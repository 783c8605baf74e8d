/**
 * The write side of the resource store. A list of new versions — one resource or a whole transaction
 * Bundle — is written with ONE SQL statement and one round trip: a single JSON parameter carries the versions
 * and their index rows, and data-modifying CTEs insert into resource, resource_history and each index table
 * (after deleting the index rows of replaced versions). Each resource's JSON is sent once, not once per table.
 *
 * Why one statement: on loopback the cost of a write is dominated by per-statement work (a socket write and
 * wake-up on each side, parse/bind/execute, a plan) rather than by rows; multi-row `unnest` statements per
 * table already made it independent of the number of resources, this makes it independent of the number of
 * tables too. The statement text never changes, so it is a prepared statement on PostgreSQL (database.ts).
 *
 * Rows that other modules keep beside a version and that need nothing back (a queue row, a fact for a
 * report) ride along in the same statement as companions (`Companion`, from `WriteObserver.alongside`): one
 * more data-modifying CTE each, with its rows in a parameter of its own, instead of a round trip each.
 */
import type { Resource } from '@medplum/fhirtypes';
import { prepared, type Sql } from '../db/database.ts';
import { indexResource, INDEX_TABLES, type IndexRows, type IndexTable } from './search/indexer.ts';
import { CLEAR_CODEC, type StorageCodec } from './engine.ts';

export type WriteMethod = 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface NewVersion {
  /** The resource with id and meta (versionId, lastUpdated) already set; for a delete, a stub. */
  resource: Resource;
  method: WriteMethod;
  /** True when no row exists yet for this (type, id). */
  isNew: boolean;
}

/** Value columns of each index table (after the owner's type, id and the parameter code), with their SQL types. */
const INDEX_COLUMNS: Record<IndexTable, [string, string][]> = {
  token: [['system', 'text'], ['code', 'text'], ['text', 'text']],
  string: [['norm', 'text'], ['value', 'text']],
  date: [['low', 'timestamptz'], ['high', 'timestamptz']],
  quantity: [['value', 'numeric'], ['system', 'text'], ['code', 'text']],
  reference: [['target_type', 'text'], ['target_id', 'text'], ['url', 'text']],
  uri: [['value', 'text']],
};

/**
 * A data-modifying statement that rides along with a write: `sql(rows)` is an INSERT (or another
 * data-modifying statement) that takes its rows from the JSON array expression `rows`. It runs on the snapshot
 * before the write (it cannot see the versions written beside it), so it must not need to.
 */
export interface Companion {
  sql: (rows: string) => string;
  rows: unknown[];
}

/**
 * The payload: `v` = [type, id, version, lastUpdated, deleted, method, replaced, content] per version; per index
 * table, rows of [k, param, ...values] where k is the position of the owning version in `v`.
 */
export const WRITE_SQL = prepared(buildWriteSql());

/** The write statement with companions' CTEs (their rows in $2, $3, …), prepared once per text. */
function writeSqlWith(companions: Companion[]): string {
  if (companions.length === 0) return WRITE_SQL;
  const extra = companions.map((c, i) => `,\nc_${i} AS (${c.sql(`$${i + 2}::jsonb`)})`).join('');
  return prepared(WRITE_SQL.replace('\nSELECT count(*)::int AS n FROM v', `${extra}\nSELECT count(*)::int AS n FROM v`));
}

function buildWriteSql(): string {
  const ctes: string[] = [
    `p AS MATERIALIZED (SELECT $1::jsonb AS j)`,
    `v AS MATERIALIZED (
    SELECT (x.ord - 1)::int AS k, x.e->>0 AS type, x.e->>1 AS id, (x.e->>2)::int AS version, (x.e->>3)::timestamptz AS updated,
           (x.e->>4)::boolean AS deleted, x.e->>5 AS method, (x.e->>6)::boolean AS replaced, x.e->7 AS content
      FROM p CROSS JOIN LATERAL jsonb_array_elements(p.j->'v') WITH ORDINALITY AS x(e, ord))`,
    `w_resource AS (
    INSERT INTO resource (type, id, version, created, last_updated, deleted, content)
    SELECT type, id, version, updated, updated, deleted, content FROM v
    ON CONFLICT (type, id) DO UPDATE SET version = EXCLUDED.version, last_updated = EXCLUDED.last_updated,
      deleted = EXCLUDED.deleted, content = EXCLUDED.content)`,
    `w_history AS (
    INSERT INTO resource_history (type, id, version, last_updated, deleted, method, content)
    SELECT type, id, version, updated, deleted, method, content FROM v)`,
  ];
  for (const table of INDEX_TABLES) {
    // the DELETE sees the snapshot before the statement, so it never removes the rows inserted beside it
    ctes.push(`d_${table} AS (DELETE FROM idx_${table} o USING v WHERE v.replaced AND o.id = v.id AND o.type = v.type)`);
    const cols = INDEX_COLUMNS[table];
    const values = cols.map(([, type], c) => (type === 'text' ? `e->>${c + 2}` : `(e->>${c + 2})::${type}`));
    ctes.push(`w_${table} AS (
    INSERT INTO idx_${table} (type, id, param, ${cols.map(([name]) => name).join(', ')})
    SELECT v.type, v.id, e->>1, ${values.join(', ')}
      FROM p CROSS JOIN LATERAL jsonb_array_elements(p.j->'${table}') AS e JOIN v ON v.k = (e->>0)::int)`);
  }
  return `WITH ${ctes.join(',\n')}\nSELECT count(*)::int AS n FROM v`;
}

/**
 * Writes the versions and their index rows, in one statement. Call inside a transaction. Each version is
 * sealed once by the codec (the same stored form goes to `resource` and `resource_history`), its index rows
 * computed from the clear resource and then rewritten by the codec (a blind index).
 */
export async function writeVersions(sql: Sql, versions: NewVersion[], codec: StorageCodec = CLEAR_CODEC, companions: Companion[] = []): Promise<void> {
  if (versions.length === 0) return;
  const payload: Record<string, unknown[][]> = { v: [] };
  for (const table of INDEX_TABLES) payload[table] = [];
  versions.forEach((version, k) => {
    const r = version.resource;
    const meta = r.meta;
    const deleted = version.method === 'DELETE';
    payload.v.push([r.resourceType, r.id, Number(meta?.versionId), meta?.lastUpdated, deleted, version.method, !version.isNew, deleted ? r : codec.seal(r)]);
    if (!deleted) {
      const rows = indexResource(r);
      codec.index(r, rows);
      addRows(payload, k, rows);
    }
  });
  const riding = companions.filter((c) => c.rows.length > 0);
  await sql.query(writeSqlWith(riding), [JSON.stringify(payload), ...riding.map((c) => JSON.stringify(c.rows))]);
}

/** Appends index rows to the payload, replacing the owner's (type, id) by its position k. */
function addRows(payload: Record<string, unknown[][]>, k: number, rows: IndexRows): void {
  for (const table of INDEX_TABLES) {
    const out = payload[table];
    for (const row of rows[table] as unknown[][]) {
      row[0] = k;
      row.splice(1, 1);
      out.push(row);
    }
  }
}
