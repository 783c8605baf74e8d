/**
 * Dictionary QC (字典数据质控): the review state of every entry of an institution's map from its local item
 * dictionary to the platform catalogue, and the full history of each entry.
 *
 * - An institution uploads its dictionary (a CodeSystem) and its map (a ConceptMap whose groups go from its
 *   local system to the catalogue, with `useContext` venue = Reference(Organization)) through the FHIR API.
 * - The map's versions are diffed, in order, into `dictionary_entry` (one row per local code: target, status,
 *   last change and its author) and `dictionary_entry_change` (append-only: who, when, from what to what).
 *   A new entry, or an entry whose target changed, is pending review (待审核); an entry the upload no longer
 *   lists is retired (已停用). Changes that come with an upload are attributed to that version of the map
 *   (`ConceptMap/<id>/_history/<n>`), at its time.
 * - Reviewers change the status (approved 已通过 / rejected 已驳回 / retired 已停用 / pending) through
 *   `$entry-status`; each change records the principal, the time and the comment.
 * The diff runs whenever the entries of a map are read or changed, so it never misses a version.
 */
import type { ConceptMap, Resource } from '@medplum/fhirtypes';
import type { Database, Sql } from '../db/database.ts';
import type { Principal } from '../http/auth.ts';
import { CATALOGUE_SYSTEM, LEGACY_SYSTEM, NATIONAL_SYSTEM } from '../terminology/canonical.ts';
import { terminology } from '../terminology/load.ts';
import { invalidateMappings } from './mappings.ts';

export const STATUSES = ['pending', 'approved', 'rejected', 'retired'] as const;
export type EntryStatus = (typeof STATUSES)[number];
export const STATUS_ZH: Record<EntryStatus, string> = { pending: '待审核', approved: '已通过', rejected: '已驳回', retired: '已停用' };

/** Allowed status changes (a rejected entry goes back to pending, after a correction, before approval). */
export const TRANSITIONS: Record<EntryStatus, readonly EntryStatus[]> = {
  pending: ['approved', 'rejected', 'retired'],
  approved: ['pending', 'retired'],
  rejected: ['pending', 'retired'],
  retired: ['pending'],
};

export const USAGE_CONTEXT_TYPE = 'http://terminology.hl7.org/CodeSystem/usage-context-type';

export interface Entry {
  map: string;
  system: string;
  code: string;
  display?: string;
  /** Platform catalogue code(s), space-separated when the upload gives several; absent: mapped to nothing. */
  target?: string;
  /** False once the upload no longer lists the code. */
  inMap: boolean;
  status: EntryStatus;
  changedAt: string;
  changedBy: string;
}

export interface Change {
  seq: number;
  at: string;
  by: string;
  action: 'created' | 'target-changed' | 'removed' | 'restored' | 'status-changed';
  fromStatus?: EntryStatus;
  toStatus?: EntryStatus;
  fromTarget?: string;
  toTarget?: string;
  mapVersion?: number;
  comment?: string;
}

/** A request the dictionary cannot carry out: the HTTP status, the FHIR issue code, the parameter at fault. */
export class DictionaryError extends Error {
  constructor(
    readonly status: number,
    readonly code: 'not-found' | 'invalid' | 'business-rule' | 'conflict',
    message: string,
    readonly param?: string
  ) {
    super(message);
  }
}

interface EntryRow {
  map_id: string;
  source_system: string;
  code: string;
  display: string | null;
  target_code: string | null;
  in_map: boolean;
  status: EntryStatus;
  changed_at: string;
  changed_by: string;
}

interface ChangeRow {
  seq: number | string;
  at: string;
  by: string;
  action: Change['action'];
  from_status: EntryStatus | null;
  to_status: EntryStatus | null;
  from_target: string | null;
  to_target: string | null;
  map_version: number | null;
  comment: string | null;
}

/** The organization a map or dictionary belongs to: `useContext` venue = Reference(Organization/<id>). */
export function organizationOf(resource: { useContext?: ConceptMap['useContext'] }): string | undefined {
  for (const u of resource.useContext ?? []) {
    const ref = u.valueReference?.reference;
    const m = ref ? /^(?:.*\/)?Organization\/([A-Za-z0-9\-.]{1,64})$/.exec(ref) : null;
    if (m) return m[1];
  }
  return undefined;
}

/** The entries of one version of a map: `system|code` → display and target (groups into the catalogue only). */
export function entriesOf(map: Resource | undefined): Map<string, { system: string; code: string; display?: string; target?: string }> {
  const out = new Map<string, { system: string; code: string; display?: string; target?: string }>();
  if (!map || map.resourceType !== 'ConceptMap') return out;
  for (const group of map.group ?? []) {
    if (group.target !== CATALOGUE_SYSTEM || !group.source || PLATFORM_SYSTEMS.has(group.source)) continue;
    for (const element of group.element ?? []) {
      if (!element.code) continue;
      const targets = [...new Set((element.target ?? []).filter((t) => t.code && t.equivalence !== 'unmatched' && t.equivalence !== 'disjoint').map((t) => t.code as string))].sort();
      out.set(`${group.source}|${element.code}`, {
        system: group.source,
        code: element.code,
        ...(element.display ? { display: element.display } : {}),
        ...(targets.length ? { target: targets.join(' ') } : {}),
      });
    }
  }
  return out;
}

/** The platform's own code systems: a map from one of them is the platform's, not an institution's dictionary. */
const PLATFORM_SYSTEMS = new Set([CATALOGUE_SYSTEM, NATIONAL_SYSTEM, LEGACY_SYSTEM]);

/** A map from an institution's local system into the catalogue. */
export function isDictionaryMap(map: Resource): boolean {
  return map.resourceType === 'ConceptMap' && (map.group ?? []).some((g) => g.target === CATALOGUE_SYSTEM && !!g.source && !PLATFORM_SYSTEMS.has(g.source));
}

/**
 * Brings the entries of a map up to its current version (diffing every version not yet diffed, in order).
 * Returns the map's current version. 404 when there is no such map, 422 when it does not map to the catalogue.
 */
export async function syncMap(db: Database, mapId: string): Promise<{ version: number; organization?: string }> {
  const current = await db.query<{ version: number; deleted: boolean; content: ConceptMap }>("SELECT version, deleted, content FROM resource WHERE type = 'ConceptMap' AND id = $1", [mapId]);
  if (!current[0] || current[0].deleted) throw new DictionaryError(404, 'not-found', `ConceptMap/${mapId.slice(0, 64)} not found`);
  if (!isDictionaryMap(current[0].content)) {
    throw new DictionaryError(422, 'business-rule', `ConceptMap/${mapId} is not a dictionary map: none of its groups maps into ${CATALOGUE_SYSTEM}`);
  }
  const known = await db.query<{ synced_version: number }>('SELECT synced_version FROM dictionary_map WHERE map_id = $1', [mapId]);
  if (known[0] && Number(known[0].synced_version) === Number(current[0].version)) return { version: Number(current[0].version), organization: organizationOf(current[0].content) };
  return db.transaction((sql) => diffVersions(sql, mapId));
}

async function diffVersions(sql: Sql, mapId: string): Promise<{ version: number; organization?: string }> {
  await sql.query('INSERT INTO dictionary_map (map_id) VALUES ($1) ON CONFLICT (map_id) DO NOTHING', [mapId]);
  const [state] = await sql.query<{ synced_version: number }>('SELECT synced_version FROM dictionary_map WHERE map_id = $1 FOR UPDATE', [mapId]);
  const synced = Number(state.synced_version);
  const versions = await sql.query<{ version: number; deleted: boolean; last_updated: string; content: Resource }>(
    `SELECT version, deleted, last_updated, content FROM resource_history WHERE type = 'ConceptMap' AND id = $1 AND version >= $2 ORDER BY version`,
    [mapId, synced]
  );
  let previous = entriesOf(synced > 0 ? versions.find((v) => Number(v.version) === synced)?.content : undefined);
  const rows = new Map((await sql.query<EntryRow>('SELECT * FROM dictionary_entry WHERE map_id = $1', [mapId])).map((r) => [`${r.source_system}|${r.code}`, r]));
  const touched = new Set<string>();
  const changes: (Omit<ChangeRow, 'seq'> & { source_system: string; code: string })[] = [];
  let latest: Resource | undefined;
  let latestVersion = synced;
  for (const v of versions) {
    const version = Number(v.version);
    if (version <= synced) continue;
    const at = new Date(v.last_updated).toISOString();
    const by = `ConceptMap/${mapId}/_history/${version}`;
    const now = entriesOf(v.deleted ? undefined : v.content);
    const log = (key: string, row: EntryRow, action: Change['action'], fromStatus: EntryStatus | null, fromTarget: string | null) => {
      changes.push({ source_system: row.source_system, code: row.code, at, by, action, from_status: fromStatus, to_status: row.status, from_target: fromTarget, to_target: row.target_code, map_version: version, comment: null });
      touched.add(key);
    };
    for (const [key, e] of now) {
      const before = previous.get(key);
      const row = rows.get(key);
      if (!row) {
        const created: EntryRow = { map_id: mapId, source_system: e.system, code: e.code, display: e.display ?? null, target_code: e.target ?? null, in_map: true, status: 'pending', changed_at: at, changed_by: by };
        rows.set(key, created);
        log(key, created, 'created', null, null);
        continue;
      }
      if (!row.in_map || !before) {
        const fromStatus = row.status;
        const fromTarget = row.target_code;
        Object.assign(row, { in_map: true, status: 'pending', target_code: e.target ?? null, display: e.display ?? row.display, changed_at: at, changed_by: by });
        log(key, row, 'restored', fromStatus, fromTarget);
        continue;
      }
      if ((before.target ?? null) !== (e.target ?? null)) {
        const fromStatus = row.status;
        const fromTarget = row.target_code;
        Object.assign(row, { status: 'pending', target_code: e.target ?? null, display: e.display ?? row.display, changed_at: at, changed_by: by });
        log(key, row, 'target-changed', fromStatus, fromTarget);
      } else if ((e.display ?? null) !== row.display && e.display) {
        row.display = e.display;
        touched.add(key);
      }
    }
    for (const [key] of previous) {
      if (now.has(key)) continue;
      const row = rows.get(key);
      if (!row || !row.in_map) continue;
      const fromStatus = row.status;
      Object.assign(row, { in_map: false, status: 'retired', changed_at: at, changed_by: by });
      log(key, row, 'removed', fromStatus, row.target_code);
    }
    previous = now;
    latest = v.deleted ? undefined : v.content;
    latestVersion = version;
  }
  if (touched.size > 0) {
    const list = [...touched].map((k) => rows.get(k) as EntryRow);
    await sql.query(
      `INSERT INTO dictionary_entry (map_id, source_system, code, display, target_code, in_map, status, changed_at, changed_by)
       SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[], $7::text[], $8::timestamptz[], $9::text[])
       ON CONFLICT (map_id, source_system, code) DO UPDATE SET display = EXCLUDED.display, target_code = EXCLUDED.target_code,
         in_map = EXCLUDED.in_map, status = EXCLUDED.status, changed_at = EXCLUDED.changed_at, changed_by = EXCLUDED.changed_by`,
      [
        mapId,
        list.map((r) => r.source_system),
        list.map((r) => r.code),
        list.map((r) => r.display),
        list.map((r) => r.target_code),
        list.map((r) => r.in_map),
        list.map((r) => r.status),
        list.map((r) => new Date(r.changed_at).toISOString()),
        list.map((r) => r.changed_by),
      ]
    );
  }
  if (changes.length > 0) {
    await sql.query(
      `INSERT INTO dictionary_entry_change (map_id, source_system, code, at, by, action, from_status, to_status, from_target, to_target, map_version)
       SELECT $1, * FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int[])`,
      [
        mapId,
        changes.map((c) => c.source_system),
        changes.map((c) => c.code),
        changes.map((c) => c.at),
        changes.map((c) => c.by),
        changes.map((c) => c.action),
        changes.map((c) => c.from_status),
        changes.map((c) => c.to_status),
        changes.map((c) => c.from_target),
        changes.map((c) => c.to_target),
        changes.map((c) => c.map_version),
      ]
    );
  }
  const organization = latest ? organizationOf(latest as ConceptMap) : undefined;
  await sql.query('UPDATE dictionary_map SET synced_version = $2, organization_id = $3, updated_at = now() WHERE map_id = $1', [mapId, latestVersion, organization ?? null]);
  return { version: latestVersion, ...(organization ? { organization } : {}) };
}

function toEntry(r: EntryRow): Entry {
  return {
    map: r.map_id,
    system: r.source_system,
    code: r.code,
    ...(r.display ? { display: r.display } : {}),
    ...(r.target_code ? { target: r.target_code } : {}),
    inMap: r.in_map,
    status: r.status,
    changedAt: new Date(r.changed_at).toISOString(),
    changedBy: r.changed_by,
  };
}

function toChange(r: ChangeRow): Change {
  return {
    seq: Number(r.seq),
    at: new Date(r.at).toISOString(),
    by: r.by,
    action: r.action,
    ...(r.from_status ? { fromStatus: r.from_status } : {}),
    ...(r.to_status ? { toStatus: r.to_status } : {}),
    ...(r.from_target ? { fromTarget: r.from_target } : {}),
    ...(r.to_target ? { toTarget: r.to_target } : {}),
    ...(r.map_version !== null ? { mapVersion: Number(r.map_version) } : {}),
    ...(r.comment ? { comment: r.comment } : {}),
  };
}

/** The entries of a map (synced first), optionally of some statuses only, by system and code. */
export async function listEntries(db: Database, mapId: string, options: { statuses?: EntryStatus[] } = {}): Promise<Entry[]> {
  await syncMap(db, mapId);
  const statuses = options.statuses?.length ? options.statuses : [...STATUSES];
  const rows = await db.query<EntryRow>('SELECT * FROM dictionary_entry WHERE map_id = $1 AND status = ANY($2::text[]) ORDER BY source_system, code', [mapId, statuses]);
  return rows.map(toEntry);
}

/** One entry (the only system of the map when `system` is not given) and every change of it, oldest first. */
export async function entryHistory(db: Database, mapId: string, code: string, system?: string): Promise<{ entry: Entry; changes: Change[] }> {
  await syncMap(db, mapId);
  const row = await findEntry(db, mapId, code, system);
  const changes = await db.query<ChangeRow>(
    'SELECT * FROM dictionary_entry_change WHERE map_id = $1 AND source_system = $2 AND code = $3 ORDER BY seq',
    [mapId, row.source_system, row.code]
  );
  return { entry: toEntry(row), changes: changes.map(toChange) };
}

async function findEntry(sql: Sql, mapId: string, code: string, system: string | undefined, lock = false): Promise<EntryRow> {
  const rows = await sql.query<EntryRow>(
    `SELECT * FROM dictionary_entry WHERE map_id = $1 AND code = $2 ${system ? 'AND source_system = $3' : ''} ORDER BY source_system ${lock ? 'FOR UPDATE' : ''}`,
    system ? [mapId, code, system] : [mapId, code]
  );
  if (rows.length === 0) throw new DictionaryError(404, 'not-found', `ConceptMap/${mapId} has no entry for the local code '${code.slice(0, 64)}'${system ? ` of ${system.slice(0, 200)}` : ''}`, 'code');
  if (rows.length > 1) throw new DictionaryError(400, 'invalid', `The local code '${code.slice(0, 64)}' is in several systems of ConceptMap/${mapId}: give the system`, 'system');
  return rows[0];
}

export interface StatusChange {
  codes: string[];
  system?: string;
  status: EntryStatus;
  comment?: string;
}

/**
 * Changes the review status of entries (all or nothing). Approving needs a target that is an active item of
 * the catalogue (or no target: "confirmed not in the catalogue"); rejecting needs a comment. An entry already
 * in the status is left alone (`changed: false`).
 */
export async function setStatus(db: Database, mapId: string, change: StatusChange, principal: Principal, at = new Date()): Promise<{ entry: Entry; changed: boolean }[]> {
  if (!STATUSES.includes(change.status)) throw new DictionaryError(400, 'invalid', `status must be one of ${STATUSES.join(', ')}, not '${String(change.status).slice(0, 40)}'`, 'status');
  if (change.codes.length === 0) throw new DictionaryError(400, 'invalid', 'give the local code(s) of the entries to change', 'code');
  if (change.status === 'rejected' && !change.comment?.trim()) throw new DictionaryError(400, 'invalid', 'a rejection (已驳回) needs a comment saying what to correct', 'comment');
  if (change.comment && change.comment.length > 1000) throw new DictionaryError(400, 'invalid', 'the comment is longer than 1000 characters', 'comment');
  const { version } = await syncMap(db, mapId);
  const result = await db.transaction(async (sql) => {
    const out: { entry: Entry; changed: boolean }[] = [];
    for (const code of [...new Set(change.codes)]) {
      const row = await findEntry(sql, mapId, code, change.system, true);
      if (row.status === change.status) {
        out.push({ entry: toEntry(row), changed: false });
        continue;
      }
      if (!TRANSITIONS[row.status].includes(change.status)) {
        throw new DictionaryError(422, 'business-rule', `The entry '${code}' is ${row.status} (${STATUS_ZH[row.status]}); it can go to ${TRANSITIONS[row.status].join(' or ')}, not ${change.status}`, 'status');
      }
      if (!row.in_map && change.status !== 'retired') {
        throw new DictionaryError(422, 'business-rule', `The entry '${code}' is no longer in the uploaded map: it can only stay retired`, 'status');
      }
      if (change.status === 'approved') checkTargets(row);
      const [updated] = await sql.query<EntryRow>(
        'UPDATE dictionary_entry SET status = $4, changed_at = $5, changed_by = $6 WHERE map_id = $1 AND source_system = $2 AND code = $3 RETURNING *',
        [mapId, row.source_system, row.code, change.status, at.toISOString(), principal.id]
      );
      await sql.query(
        `INSERT INTO dictionary_entry_change (map_id, source_system, code, at, by, action, from_status, to_status, from_target, to_target, map_version, comment)
         VALUES ($1, $2, $3, $4, $5, 'status-changed', $6, $7, $8, $8, $9, $10)`,
        [mapId, row.source_system, row.code, at.toISOString(), principal.id, row.status, change.status, row.target_code, version, change.comment?.trim() || null]
      );
      out.push({ entry: toEntry(updated), changed: true });
    }
    return out;
  });
  if (result.some((r) => r.changed)) invalidateMappings(db); // what recognition resolves may have changed
  return result;
}

/** An approved entry must point at active catalogue items. */
function checkTargets(row: EntryRow): void {
  if (!row.target_code) return;
  const cs = terminology.codeSystem(CATALOGUE_SYSTEM);
  for (const code of row.target_code.split(' ')) {
    const concept = cs?.get(code);
    if (!concept || concept.abstract) throw new DictionaryError(422, 'business-rule', `The entry '${row.code}' maps to '${code}', which is not an item of the recognition catalogue: it cannot be approved`, 'status');
    if (concept.inactive) throw new DictionaryError(422, 'business-rule', `The entry '${row.code}' maps to '${code}' (${concept.display ?? ''}), which is retired from the catalogue: it cannot be approved`, 'status');
  }
}
