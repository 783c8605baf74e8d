/**
 * The write side of the resource store: a list of new versions becomes one multi-row statement per table
 * (resource, resource_history, and each index table), whatever the number of resources.
 */
import type { Resource } from '@medplum/fhirtypes';
import type { Sql } from '../db/database.ts';
import { emptyRows, indexResource, INDEX_TABLES, type IndexRows } from './search/indexer.ts';

export type WriteMethod = 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface NewVersion {
  /** The resource with id and meta (versionId, lastUpdated) already set; for a delete, a stub. */
  resource: Resource;
  method: WriteMethod;
  /** True when no row exists yet for this (type, id). */
  isNew: boolean;
}

const INDEX_COLUMNS: Record<(typeof INDEX_TABLES)[number], string[]> = {
  token: ['system', 'code', 'text'],
  string: ['norm', 'value'],
  date: ['low', 'high'],
  quantity: ['value', 'system', 'code'],
  reference: ['target_type', 'target_id', 'url'],
  uri: ['value'],
};
const COLUMN_TYPES: Record<string, string> = {
  low: 'timestamptz',
  high: 'timestamptz',
  value: 'text',
};

/** Writes the versions and their index rows. Call inside a transaction. */
export async function writeVersions(sql: Sql, versions: NewVersion[]): Promise<void> {
  if (versions.length === 0) return;
  const types: string[] = [];
  const ids: string[] = [];
  const numbers: number[] = [];
  const updated: string[] = [];
  const deleted: boolean[] = [];
  const methods: string[] = [];
  const contents: string[] = [];
  const rows = emptyRows();
  for (const v of versions) {
    const r = v.resource;
    types.push(r.resourceType);
    ids.push(r.id as string);
    numbers.push(Number(r.meta?.versionId));
    updated.push(r.meta?.lastUpdated as string);
    deleted.push(v.method === 'DELETE');
    methods.push(v.method);
    contents.push(JSON.stringify(r));
    if (v.method !== 'DELETE') indexResource(r, rows);
  }
  await sql.query(
    `INSERT INTO resource (type, id, version, created, last_updated, deleted, content)
     SELECT t, i, v, u, u, d, c::jsonb FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::bool[], $6::text[]) AS x(t, i, v, u, d, c)
     ON CONFLICT (type, id) DO UPDATE SET version = EXCLUDED.version, last_updated = EXCLUDED.last_updated,
       deleted = EXCLUDED.deleted, content = EXCLUDED.content`,
    [types, ids, numbers, updated, deleted, contents]
  );
  await sql.query(
    `INSERT INTO resource_history (type, id, version, last_updated, deleted, method, content)
     SELECT t, i, v, u, d, m, c::jsonb FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::bool[], $6::text[], $7::text[]) AS x(t, i, v, u, d, m, c)`,
    [types, ids, numbers, updated, deleted, methods, contents]
  );
  const replaced = versions.filter((v) => !v.isNew);
  if (replaced.length > 0) {
    const rTypes = replaced.map((v) => v.resource.resourceType);
    const rIds = replaced.map((v) => v.resource.id as string);
    for (const table of INDEX_TABLES) {
      await sql.query(
        `DELETE FROM idx_${table} WHERE (id, type) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
        [rIds, rTypes]
      );
    }
  }
  await insertIndexRows(sql, rows);
}

export async function insertIndexRows(sql: Sql, rows: IndexRows): Promise<void> {
  for (const table of INDEX_TABLES) {
    const list = rows[table] as unknown[][];
    if (list.length === 0) continue;
    const columns = ['type', 'id', 'param', ...INDEX_COLUMNS[table]];
    const arrays = columns.map((_, c) => list.map((row) => row[c]));
    const casts = columns.map((col, c) => `$${c + 1}::${col === 'value' && table === 'quantity' ? 'numeric' : COLUMN_TYPES[col] ?? 'text'}[]`);
    await sql.query(`INSERT INTO idx_${table} (${columns.join(', ')}) SELECT * FROM unnest(${casts.join(', ')})`, arrays);
  }
}
