/**
 * The hash-consistent badge (哈希一致标识, DESIGN.md §1.4; docs/chain-provenance.md): a platform setting kept in
 * the database (platform_setting 'hash-badge': on/off, and which hash-consistency statuses show a badge;
 * default on, for consistent) and the decoration of answers that show reports:
 *
 * - every DiagnosticReport resource in an answer (read, vread, search and history Bundles, $view,
 *   $everything, batch GET entries, asynchronous results) gets a meta.tag
 *   `{ system: HASH_BADGE_SYSTEM, code: <status>, display }` when its version's status shows the badge;
 * - in $reports, $recognition-check and $duplicate-check answers, each part that names a report
 *   (`report` valueReference) gets a sibling part `badge` (valueCoding, the same coding).
 *
 * The tag is added to answers only: it is never stored, and incoming writes are stripped of it
 * (fhir/repository.ts), so that a client sending back what it read changes nothing. Answers to writes
 * (create, update, patch, transaction) are not decorated.
 */
import type { Coding, DiagnosticReport, Meta, ParametersParameter, Resource } from '@medplum/fhirtypes';
import type { Database, Sql } from '../db/database.ts';
import { SharedSetting } from '../db/shared-settings.ts';
import type { FhirContext, FhirRequest, FhirResponse } from '../fhir/router.ts';
import { HASH_BADGE_SYSTEM } from '../profiles/canonical.ts';
import type { HashStatus } from './records.ts';

export const HASH_STATUSES: readonly HashStatus[] = ['consistent', 'inconsistent', 'pending', 'unanchored'];
const DISPLAY: Record<HashStatus, string> = {
  consistent: '哈希一致',
  inconsistent: '哈希不一致',
  pending: '哈希待核验',
  unanchored: '未上链',
};
const KEY = 'hash-badge';

export interface BadgeSettings {
  enabled: boolean;
  /** The statuses that show the badge. */
  statuses: HashStatus[];
  /** When it was last changed (absent: the default). */
  updated?: string;
}

export const DEFAULT_BADGE_SETTINGS: BadgeSettings = { enabled: true, statuses: ['consistent'] };

export class BadgeSettingsError extends Error {
  constructor(
    message: string,
    readonly param: 'enabled' | 'statuses',
    readonly index?: number
  ) {
    super(message);
    this.name = 'BadgeSettingsError';
  }
}

/**
 * The setting as the answers' decoration reads it (every answer that shows a report, every check): cached in
 * the process; `writeBadgeSettings` tells every process of a change (db/shared-settings.ts).
 */
const cached = new SharedSetting<Readonly<BadgeSettings>>(`provenance.${KEY}`, async (db) => Object.freeze(await readBadgeSettings(db)));

export function badgeSettings(db: Database): Promise<Readonly<BadgeSettings>> {
  return cached.get(db);
}

export async function readBadgeSettings(sql: Sql): Promise<BadgeSettings> {
  const rows = await sql.query<{ value: { enabled: boolean; statuses: HashStatus[] }; updated_at: string | Date }>(
    'SELECT value, updated_at FROM platform_setting WHERE key = $1',
    [KEY]
  );
  if (rows.length === 0) return { ...DEFAULT_BADGE_SETTINGS };
  const v = rows[0]!.value;
  return { enabled: v.enabled === true, statuses: (v.statuses ?? []).filter((s) => HASH_STATUSES.includes(s)), updated: new Date(rows[0]!.updated_at).toISOString() };
}

/**
 * Checks a change (unknown or repeated statuses, a non-boolean) and stores the result; the parts not given are
 * kept. Written through `sql` (the database's own connection, or a transaction of it); every process is told.
 */
export async function writeBadgeSettings(db: Database, change: { enabled?: unknown; statuses?: unknown }, principalId: string, sql: Sql = db): Promise<BadgeSettings> {
  if (change.enabled !== undefined && typeof change.enabled !== 'boolean') throw new BadgeSettingsError('enabled must be true or false', 'enabled');
  let statuses: HashStatus[] | undefined;
  if (change.statuses !== undefined) {
    if (!Array.isArray(change.statuses)) throw new BadgeSettingsError(`statuses must be a list of ${HASH_STATUSES.join(', ')}`, 'statuses');
    statuses = [];
    change.statuses.forEach((s, i) => {
      if (typeof s !== 'string' || !HASH_STATUSES.includes(s as HashStatus)) {
        throw new BadgeSettingsError(`'${String(s).slice(0, 40)}' is not a hash-consistency status (${HASH_STATUSES.join(', ')})`, 'statuses', i);
      }
      if (statuses!.includes(s as HashStatus)) throw new BadgeSettingsError(`'${s}' is given twice`, 'statuses', i);
      statuses!.push(s as HashStatus);
    });
  }
  const current = await readBadgeSettings(sql);
  const next = { enabled: (change.enabled as boolean | undefined) ?? current.enabled, statuses: statuses ?? current.statuses };
  const rows = await sql.query<{ updated_at: string | Date }>(
    `INSERT INTO platform_setting (key, value, updated_by) VALUES ($1, $2, $3)
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by, updated_at = now()
     RETURNING updated_at`,
    [KEY, JSON.stringify(next), principalId.slice(0, 100)]
  );
  await cached.changed(db, sql);
  return { ...next, updated: new Date(rows[0]!.updated_at).toISOString() };
}

/** The badge coding of a status. */
export function badgeCoding(status: HashStatus): Coding {
  return { system: HASH_BADGE_SYSTEM, code: status, display: DISPLAY[status] };
}

/** Operations whose Parameters name reports in `report` parts. */
const REPORT_LIST_OPERATIONS = new Set(['reports', 'recognition-check', 'duplicate-check']);

interface Found {
  resources: DiagnosticReport[];
  /** Parameter groups (a parameter with parts, or the Parameters itself) holding a `report` reference. */
  groups: Array<{ parts: ParametersParameter[]; id: string; version?: number; status?: HashStatus }>;
}

/** Adds the badge to an answer (the router's response decorator). */
export async function decorateWithBadges(ctx: FhirContext, req: FhirRequest, res: FhirResponse): Promise<FhirResponse> {
  // an answer sent as it was serialised (`bytes`: $original's exact Bundle, large cached answers) is not changed
  if (!res.body || res.bytes || res.status >= 300) return res;
  const method = req.method.toUpperCase();
  const operation = /(?:^|\/)\$([a-z-]+)$/.exec(req.path)?.[1];
  if (method !== 'GET' && !operation && !req.path.endsWith('_search')) return res; // answers to writes
  const found: Found = { resources: [], groups: [] };
  collect(res.body, operation !== undefined && REPORT_LIST_OPERATIONS.has(operation), found, 0);
  if (found.resources.length === 0 && found.groups.length === 0) return res;
  const sql = ctx.repo.connection;
  const settings = await badgeSettings(ctx.repo.db);
  // the statuses are looked up only when a badge can show, and not for parts that already state theirs
  // (the hashStatus part of $recognition-check and $duplicate-check results)
  const unknown = settings.enabled ? found.groups.filter((g) => g.status === undefined) : [];
  const wanted = settings.enabled ? found.resources.map((r) => ({ id: r.id as string, version: Number(r.meta?.versionId) || undefined })) : [];
  const statuses = wanted.length + unknown.length > 0 ? await statusesOfVersions(sql, [...wanted, ...unknown]) : new Map<string, HashStatus>();
  const shown = (id: string, version?: number, known?: HashStatus): HashStatus | undefined => {
    if (!settings.enabled) return undefined;
    const s = known ?? statuses.get(key(id, version)) ?? 'unanchored';
    return settings.statuses.includes(s) ? s : undefined;
  };
  for (const r of found.resources) {
    const had = r.meta?.tag ?? [];
    const tags = had.filter((t) => t.system !== HASH_BADGE_SYSTEM);
    const s = shown(r.id as string, Number(r.meta?.versionId) || undefined);
    if (s) tags.push(badgeCoding(s));
    else if (tags.length === had.length) continue; // nothing to add or remove: left exactly as it is
    const meta: Meta = { ...r.meta };
    if (tags.length > 0) meta.tag = tags;
    else delete meta.tag;
    r.meta = meta;
  }
  for (const g of found.groups) {
    for (let i = g.parts.length - 1; i >= 0; i--) if (g.parts[i]!.name === 'badge') g.parts.splice(i, 1);
    const s = shown(g.id, g.version, g.status);
    if (s) g.parts.push({ name: 'badge', valueCoding: badgeCoding(s) });
  }
  return res;
}

const REPORT_REF = /(?:^|\/)DiagnosticReport\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/(\d{1,9}))?$/;

function collect(value: unknown, reportParts: boolean, found: Found, depth: number): void {
  if (!value || typeof value !== 'object' || depth > 8) return;
  const r = value as Resource & { entry?: Array<{ resource?: unknown }>; parameter?: ParametersParameter[] };
  if (r.resourceType === 'DiagnosticReport' && r.id) {
    found.resources.push(r as DiagnosticReport);
    return;
  }
  // a stored Bundle or Parameters (it has a version) is content, shown as it was stored: not looked into
  if (r.meta?.versionId !== undefined) return;
  if (r.resourceType === 'Bundle') {
    for (const e of r.entry ?? []) collect(e?.resource, reportParts, found, depth + 1);
    return;
  }
  if (r.resourceType === 'Parameters') collectParts(r.parameter ?? [], reportParts, found, depth + 1);
}

function collectParts(parts: ParametersParameter[], reportParts: boolean, found: Found, depth: number): void {
  if (reportParts) {
    const ref = parts.find((p) => p.name === 'report' && p.valueReference?.reference)?.valueReference?.reference;
    const m = ref ? REPORT_REF.exec(ref) : null;
    const stated = parts.find((p) => p.name === 'hashStatus')?.valueCode as HashStatus | undefined;
    const status = stated && HASH_STATUSES.includes(stated) ? stated : undefined;
    if (m) found.groups.push({ parts, id: m[1]!, ...(m[2] ? { version: Number(m[2]) } : {}), ...(status ? { status } : {}) });
  }
  for (const p of parts) {
    if (p.resource) collect(p.resource, reportParts, found, depth + 1);
    if (p.part) collectParts(p.part, reportParts, found, depth + 1);
  }
}

const key = (id: string, version?: number) => (version === undefined ? `${id}@current` : `${id}@${version}`);

/** Stored statuses of report versions (no version: the current one); what has no row is left out (unanchored). */
async function statusesOfVersions(sql: Sql, wanted: Array<{ id: string; version?: number }>): Promise<Map<string, HashStatus>> {
  const rows = await sql.query<{ report_id: string; version: number; current: boolean; status: HashStatus }>(
    'SELECT report_id, version, current, status FROM report_version WHERE report_id = ANY($1::text[])',
    [[...new Set(wanted.map((w) => w.id))]]
  );
  const out = new Map<string, HashStatus>();
  for (const r of rows) {
    out.set(key(r.report_id, Number(r.version)), r.status);
    if (r.current) out.set(key(r.report_id), r.status);
  }
  return out;
}
