/**
 * The audit chain (docs/security.md 安全审计). Each AuditEvent the platform stores becomes the next entry of one
 * chain: MAC(n) = HMAC-SM3(key, MAC(n-1) ‖ canonical JSON (RFC 8785) of the AuditEvent as stored), MAC(0) = ''.
 *
 * - `chainObserver` (an engine write observer) appends, in the same transaction, every AuditEvent a transaction
 *   writes — the request trail's batches (trail.ts) and the recognition module's access records alike — and
 *   refuses any update or deletion of one (the API's refusal is the access policy's; the database's is a trigger).
 * - `verifyChain` walks the archive and the live entries in sequence order and says which sequence number breaks.
 * - `archiveChain` moves entries older than the retention period into audit_archive (content kept, MACs kept).
 * - `anchorHead` queues the chain head for anchoring on the ledger with the other records (kind `audit-head`).
 */
import { createHmac } from 'node:crypto';
import type { Resource } from '@medplum/fhirtypes';
import canonicalize from 'canonicalize';
import type { Database, Sql } from '../db/database.ts';
import { fail } from '../fhir/errors.ts';
import type { WriteObserver } from '../fhir/repository.ts';
import { INDEX_TABLES } from '../fhir/search/indexer.ts';
import { digestHex } from '../fingerprint/hash.ts';
import { enqueue } from '../provenance/index.ts';
import type { AuditKeys } from './keys.ts';

export const AUDIT_HEAD_KIND = 'audit-head';

export function entryMac(key: Buffer, previous: string, content: unknown): string {
  return createHmac('sm3', key).update(previous).update(canonicalJson(content)).digest('hex');
}

/**
 * The AuditEvent's canonical JSON, the same for the event as written and as the database gives it back (jsonb
 * drops nothing JSON keeps): RFC 8785 skips undefined members and calls toJSON as JSON.stringify does, so the
 * event is not serialised and parsed back first.
 */
function canonicalJson(content: unknown): string {
  return canonicalize(content) as string;
}

/** Appends the AuditEvents of every write transaction to the chain; refuses their update or deletion. */
export function chainObserver(keys: AuditKeys): WriteObserver {
  return {
    onlyAlongside: (versions) => !versions.some((v) => v.resource.resourceType === 'AuditEvent'),
    async beforeCommit(sql, writes) {
      const events = writes.versions.filter((v) => v.resource.resourceType === 'AuditEvent');
      if (events.length === 0) return;
      if (events.some((v) => v.method !== 'POST' || !v.isNew)) throw fail(403, 'forbidden', 'AuditEvents are append-only: none is updated, patched or deleted');
      await appendEntries(sql, keys, events.map((v) => v.resource));
    },
  };
}

async function appendEntries(sql: Sql, keys: AuditKeys, events: Resource[]): Promise<void> {
  const [head] = await sql.query<{ seq: string; mac: string }>('SELECT seq, mac FROM audit_head FOR UPDATE');
  let seq = Number(head.seq);
  let mac = head.mac;
  const rows: [number, string, string, string, string][] = [];
  const key = keys.keys[keys.current];
  for (const event of events) {
    mac = entryMac(key, mac, event);
    seq += 1;
    rows.push([seq, event.id as string, (event as { recorded?: string }).recorded ?? event.meta?.lastUpdated ?? new Date().toISOString(), keys.current, mac]);
  }
  await sql.query(
    `INSERT INTO audit_chain (seq, event_id, recorded, key_id, mac)
       SELECT (e->>0)::bigint, e->>1, (e->>2)::timestamptz, e->>3, e->>4 FROM jsonb_array_elements($1::jsonb) AS e`,
    [JSON.stringify(rows)]
  );
  await sql.query('UPDATE audit_head SET seq = $1, mac = $2', [seq, mac]);
}

/**
 * Chains the AuditEvents stored before the chain existed (the access records of earlier versions), once: only
 * while the chain is empty, in the order they were created.
 */
export async function adoptUnchained(db: Database, keys: AuditKeys): Promise<number> {
  return db.transaction(async (sql) => {
    const [head] = await sql.query<{ seq: string }>('SELECT seq FROM audit_head FOR UPDATE');
    if (Number(head.seq) !== 0) return 0;
    const rows = await sql.query<{ content: Resource }>(`SELECT content FROM resource WHERE type = 'AuditEvent' ORDER BY created, id`);
    if (rows.length > 0) await appendEntries(sql, keys, rows.map((r) => r.content));
    return rows.length;
  });
}

export type ChainProblem = 'edited' | 'missing' | 'unknown-key' | 'head-mismatch' | 'unchained';

export interface ChainBreak {
  /** The first sequence number whose entry does not verify (for `unchained`: none, the AuditEvent's id is given). */
  seq?: number;
  problem: ChainProblem;
  eventId?: string;
}

export interface ChainCheck {
  ok: boolean;
  /** Entries checked (archived and live). */
  entries: number;
  archived: number;
  head: { seq: number; mac: string };
  breaks: ChainBreak[];
}

const PAGE = 1000;
const MAX_BREAKS = 100;

/**
 * Recomputes every MAC from the first entry on. An AuditEvent edited in `resource` (or an archived one edited)
 * breaks at its sequence number (`edited`); a deleted AuditEvent or chain row at its own (`missing`, a gap in the
 * sequence); an entry whose successor was computed over another MAC is found as the successor's break. After a
 * break the check carries on from the stored MAC, so every tampered entry is named. AuditEvents in `resource`
 * that are in no chain entry (inserted behind the server's back) are `unchained`; a head that does not match the
 * last entry is `head-mismatch` (the tail was cut).
 */
export async function verifyChain(sql: Sql, keys: AuditKeys): Promise<ChainCheck> {
  const breaks: ChainBreak[] = [];
  const report = (b: ChainBreak) => {
    if (breaks.length < MAX_BREAKS) breaks.push(b);
  };
  // the head first: entries appended while the check runs are after it and left for the next check
  const [head] = await sql.query<{ seq: string; mac: string }>('SELECT seq, mac FROM audit_head');
  const headSeq = Number(head.seq);
  let expected = 1;
  let previous = '';
  let entries = 0;
  let after = 0;
  for (;;) {
    const page = await sql.query<{ seq: string; event_id: string; key_id: string; mac: string; content: Resource | null }>(
      `SELECT * FROM (
         SELECT seq, event_id, key_id, mac, content FROM audit_archive WHERE seq > $1 AND seq <= $2
         UNION ALL
         SELECT c.seq, c.event_id, c.key_id, c.mac, r.content FROM audit_chain c
           LEFT JOIN resource r ON r.type = 'AuditEvent' AND r.id = c.event_id AND NOT r.deleted WHERE c.seq > $1 AND c.seq <= $2
       ) e ORDER BY seq LIMIT ${PAGE}`,
      [after, headSeq]
    );
    for (const row of page) {
      const seq = Number(row.seq);
      for (; expected < seq; expected++) report({ seq: expected, problem: 'missing' });
      const key = keys.keys[row.key_id];
      if (!key) report({ seq, problem: 'unknown-key', eventId: row.event_id });
      else if (!row.content) report({ seq, problem: 'missing', eventId: row.event_id });
      else if (entryMac(key, previous, row.content) !== row.mac) report({ seq, problem: 'edited', eventId: row.event_id });
      previous = row.mac;
      expected = seq + 1;
      entries += 1;
      after = seq;
    }
    if (page.length < PAGE) break;
  }
  for (; expected <= headSeq; expected++) report({ seq: expected, problem: 'missing' });
  if (headSeq !== after || head.mac !== previous) report({ seq: headSeq, problem: 'head-mismatch' });
  const unchained = await sql.query<{ id: string }>(
    `SELECT r.id FROM resource r WHERE r.type = 'AuditEvent'
        AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = r.id) LIMIT ${MAX_BREAKS}`
  );
  for (const u of unchained) report({ problem: 'unchained', eventId: u.id });
  const [{ n }] = await sql.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_archive');
  return { ok: breaks.length === 0, entries, archived: n, head: { seq: headSeq, mac: head.mac }, breaks };
}

/**
 * Moves the entries recorded before `cutoff` out of the live tables: each goes to audit_archive with its
 * AuditEvent's content and its MAC (so `verifyChain` still checks it), then its AuditEvent leaves `resource`,
 * `resource_history` and the index tables (the triggers allow that only for archived entries). Only an unbroken
 * prefix of the chain moves: an entry whose AuditEvent is missing stays, for the check to report. Returns how many moved.
 */
export async function archiveChain(db: Database, cutoff: Date, batch = 5000): Promise<number> {
  let moved = 0;
  for (;;) {
    const n = await db.transaction(async (sql) => {
      const rows = await sql.query<{ seq: string; event_id: string }>(
        `WITH first_missing AS (
           SELECT min(c.seq) AS seq FROM audit_chain c
            WHERE NOT EXISTS (SELECT 1 FROM resource r WHERE r.type = 'AuditEvent' AND r.id = c.event_id))
         INSERT INTO audit_archive (seq, event_id, recorded, key_id, mac, content)
         SELECT c.seq, c.event_id, c.recorded, c.key_id, c.mac, r.content
           FROM audit_chain c JOIN resource r ON r.type = 'AuditEvent' AND r.id = c.event_id
          WHERE c.recorded < $1 AND c.seq < COALESCE((SELECT seq FROM first_missing), 9223372036854775807)
          ORDER BY c.seq LIMIT ${batch}
         RETURNING seq, event_id`,
        [cutoff.toISOString()]
      );
      if (rows.length === 0) return 0;
      const ids = rows.map((r) => r.event_id);
      for (const table of INDEX_TABLES) await sql.query(`DELETE FROM idx_${table} WHERE type = 'AuditEvent' AND id = ANY($1::text[])`, [ids]);
      await sql.query(`DELETE FROM resource_history WHERE type = 'AuditEvent' AND id = ANY($1::text[])`, [ids]);
      await sql.query(`DELETE FROM resource WHERE type = 'AuditEvent' AND id = ANY($1::text[])`, [ids]);
      await sql.query('DELETE FROM audit_chain WHERE seq = ANY($1::bigint[])', [rows.map((r) => r.seq)]);
      return rows.length;
    });
    moved += n;
    if (n < batch) return moved;
  }
}

/** Queues the chain head for anchoring (nothing when it has not moved since it was last queued). */
export async function anchorHead(db: Database): Promise<{ seq: number; digest: string } | undefined> {
  const [head] = await db.query<{ seq: string; mac: string }>('SELECT seq, mac FROM audit_head');
  const seq = Number(head.seq);
  if (seq === 0) return undefined;
  const digest = headDigest(seq, head.mac);
  await enqueue(db, AUDIT_HEAD_KIND, `audit-head/${seq}`, digest);
  return { seq, digest };
}

/** What reaches the chain for a head: SM3 over "<seq>:<MAC>" (the MAC itself stays in the database). */
export function headDigest(seq: number, mac: string): string {
  return `sm3:${digestHex('sm3', `${seq}:${mac}`)}`;
}
