/**
 * Versions the platform writes itself (a code upgrade, 编码升级; the write observer is told so by
 * `TxWrites.revision`): they keep a chain status instead of falling to `unanchored`.
 *
 * - Each rewritten version gets a platform_revision row (migration 030): the version it was derived from,
 *   the reason, and a digest over (the new version as stored, the base version's reference, the base's
 *   digest — for a report, the base version's fingerprint — and the reason), sealed with the record keys.
 * - A DiagnosticReport revision is a report_version of its own (derived_from, revision_reason; its
 *   fingerprint is the revision digest) queued for platform anchoring like a report without a chain
 *   Provenance: the anchor job writes a platform anchor with reason "code upgrade". `$verify` checks it and
 *   then the version it was derived from, down to the institution's submission (verify.ts).
 * - Any other rewritten resource (an Observation of a report, an order) is anchored by its digest; where it
 *   is a member of a current report version, that version's member record moves to the new version (and is
 *   sealed again), so the stored report still matches what the platform recorded.
 *
 * Nothing personal: references, digests and the reason only.
 */
import { createHash } from 'node:crypto';
import type { DiagnosticReport, Resource } from '@medplum/fhirtypes';
import type { Sql } from '../db/database.ts';
import { canonicalize, DEFAULT_ALG } from '../fingerprint/index.ts';
import type { TxWrites } from '../fhir/repository.ts';
import { recordMembers } from './intake.ts';
import { enqueue } from './outbox.ts';
import type { RecordKeys } from './record-keys.ts';
import { sealProblem } from './record-keys.ts';
import { reportKey, reportVersion } from './records.ts';
import { sealVersion } from './seals.ts';

export const REVISION_KIND = 'revision';
const SEAL = 'platform-revision';

export interface RevisionRow {
  type: string;
  id: string;
  version: number;
  base_version: number;
  activity: string;
  reason: string;
  base_digest: string | null;
  digest: string;
  seal: string | null;
}

/** The digest of a platform revision: SM3 over the JCS of what it is and what it was derived from. */
export function revisionDigest(resource: unknown, type: string, id: string, baseVersion: number, baseDigest: string | null, reason: string): string {
  const text = canonicalize({ base: `${type}/${id}/_history/${baseVersion}`, baseDigest, reason, resource });
  return `${DEFAULT_ALG}:${createHash(DEFAULT_ALG).update(text, 'utf8').digest('hex')}`;
}

const contentDigest = (content: unknown) => `${DEFAULT_ALG}:${createHash(DEFAULT_ALG).update(canonicalize(content), 'utf8').digest('hex')}`;

const sealFields = (r: Pick<RevisionRow, 'type' | 'id' | 'version' | 'base_version' | 'activity' | 'reason' | 'base_digest' | 'digest'>) => [
  r.type,
  r.id,
  Number(r.version),
  Number(r.base_version),
  r.activity,
  r.reason,
  r.base_digest,
  r.digest,
];

export interface RevisionOptions {
  platformAnchoring: boolean;
  platformAnchorDelaySeconds: number;
  keys: RecordKeys;
}

/**
 * Records the versions of a platform revision transaction (in it, before it commits): reports first, then the
 * other resources (whose report memberships are moved to their new versions).
 */
export async function recordRevisions(sql: Sql, writes: TxWrites, written: Array<{ resource: Resource; deleted: boolean }>, options: RevisionOptions): Promise<void> {
  const revision = writes.revision!;
  const live = written.filter((w) => !w.deleted && Number(w.resource.meta?.versionId) > 1 && w.resource.resourceType !== 'Provenance');
  const ordered = [...live.filter((w) => w.resource.resourceType === 'DiagnosticReport'), ...live.filter((w) => w.resource.resourceType !== 'DiagnosticReport')];
  for (const { resource } of ordered) {
    const type = resource.resourceType;
    const id = resource.id as string;
    const version = Number(resource.meta?.versionId);
    const base = version - 1;
    let baseDigest: string | null;
    if (type === 'DiagnosticReport') baseDigest = (await reportVersion(sql, id, base))?.fingerprint ?? null;
    else {
      const rows = await sql.query<{ content: unknown }>('SELECT content FROM resource_history WHERE type = $1 AND id = $2 AND version = $3', [type, id, base]);
      baseDigest = rows[0] ? contentDigest(rows[0].content) : null;
    }
    // the digest is of the version as stored (sealed at rest when the privacy module is on), as checkRevision reads it
    const [stored] = await sql.query<{ content: unknown }>('SELECT content FROM resource_history WHERE type = $1 AND id = $2 AND version = $3', [type, id, version]);
    const row = { type, id, version, base_version: base, activity: revision.activity, reason: revision.reason, base_digest: baseDigest, digest: revisionDigest(stored?.content ?? resource, type, id, base, baseDigest, revision.reason) };
    await sql.query(
      `INSERT INTO platform_revision (type, id, version, base_version, activity, reason, base_digest, digest, seal)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
      [type, id, version, base, row.activity, row.reason, baseDigest, row.digest, options.keys.seal(SEAL, sealFields(row))]
    );
    if (type === 'DiagnosticReport') await reportRevision(sql, resource as DiagnosticReport, row, options);
    else await memberRevision(sql, type, id, version, base, row.digest, options);
  }
}

/** A report version written by the platform: its own report_version, derived from the one it replaces. */
async function reportRevision(sql: Sql, report: DiagnosticReport, row: { id: string; version: number; base_version: number; reason: string; digest: string }, options: RevisionOptions): Promise<void> {
  const baseRow = await reportVersion(sql, row.id, row.base_version);
  await sql.query('UPDATE report_version SET current = false WHERE report_id = $1 AND current AND version <> $2', [row.id, row.version]);
  const status = options.platformAnchoring ? 'pending' : 'unanchored';
  const reason = options.platformAnchoring ? waitingReason(row.reason, row.base_version) : `a platform ${row.reason} of version ${row.base_version}; platform anchoring is off`;
  const performer = report.performer?.find((p) => /^Organization\//.test(p.reference ?? ''))?.reference?.slice(0, 200) ?? baseRow?.performer ?? null;
  await sql.query(
    `INSERT INTO report_version (report_id, version, alg, fingerprint, performer, chain_status, chain_reasons, derived_from, revision_reason)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (report_id, version) DO UPDATE SET current = true`,
    [row.id, row.version, DEFAULT_ALG, row.digest, performer, status, JSON.stringify([reason]), row.base_version, row.reason]
  );
  await recordMembers(sql, report);
  await sealVersion(sql, options.keys, row.id, row.version);
  if (options.platformAnchoring) {
    await enqueue(sql, 'report', reportKey(row.id, row.version), row.digest, { delaySeconds: options.platformAnchorDelaySeconds });
  }
}

export const waitingReason = (reason: string, base: number) => `a platform ${reason} of version ${base}: waiting for platform anchoring`;

/** Another resource written by the platform: anchored by its digest; current report versions follow it. */
async function memberRevision(sql: Sql, type: string, id: string, version: number, base: number, digest: string, options: RevisionOptions): Promise<void> {
  if (options.platformAnchoring) await enqueue(sql, REVISION_KIND, `${type}/${id}/_history/${version}`, digest, { delaySeconds: options.platformAnchorDelaySeconds });
  const moved = await sql.query<{ report_id: string; version: number }>(
    `UPDATE report_member m SET res_version = r.version, row_xmin = r.xmin::text, digest = encode(sha256(convert_to(r.content::text, 'UTF8')), 'hex')
       FROM resource r, report_version rv
      WHERE m.type = $1 AND m.id = $2 AND m.res_version = $3 AND r.type = m.type AND r.id = m.id AND r.version = $4
        AND rv.report_id = m.report_id AND rv.version = m.version AND rv.current
      RETURNING m.report_id, m.version`,
    [type, id, base, version]
  );
  for (const m of moved) await sealVersion(sql, options.keys, m.report_id, Number(m.version));
}

/** The revision record of a version, if the platform wrote it. */
export async function revisionOf(sql: Sql, type: string, id: string, version: number): Promise<RevisionRow | undefined> {
  const rows = await sql.query<RevisionRow>('SELECT * FROM platform_revision WHERE type = $1 AND id = $2 AND version = $3', [type, id, version]);
  return rows[0];
}

/** The revision records of several `Type/id/_history/v` keys. */
export async function revisionsOf(sql: Sql, keys: string[]): Promise<Map<string, RevisionRow>> {
  const out = new Map<string, RevisionRow>();
  if (keys.length === 0) return out;
  const rows = await sql.query<RevisionRow>(
    `SELECT p.* FROM platform_revision p JOIN jsonb_array_elements_text($1::jsonb) AS k(key) ON k.key = p.type || '/' || p.id || '/_history/' || p.version`,
    [JSON.stringify(keys)]
  );
  for (const r of rows) out.set(`${r.type}/${r.id}/_history/${r.version}`, r);
  return out;
}

/**
 * Checks a revision now: its seal, and its digest recomputed from the stored version (history). Returns the
 * recomputed digest and what is wrong, if anything.
 */
export async function checkRevision(sql: Sql, keys: RecordKeys | undefined, r: RevisionRow): Promise<{ digest?: string; problems: string[] }> {
  const problems: string[] = [];
  const sealed = keys && sealProblem(keys.check(r.seal, SEAL, sealFields(r)), `the platform's record of ${r.type}/${r.id} version ${r.version} (${r.reason})`);
  if (sealed) problems.push(sealed);
  const rows = await sql.query<{ content: unknown }>('SELECT content FROM resource_history WHERE type = $1 AND id = $2 AND version = $3', [r.type, r.id, r.version]);
  if (!rows[0]) return { problems: [...problems, `${r.type}/${r.id} version ${r.version} is missing from the history`] };
  const digest = revisionDigest(rows[0].content, r.type, r.id, Number(r.base_version), r.base_digest, r.reason);
  if (digest !== r.digest) problems.push(`${r.type}/${r.id} version ${r.version} is not what the platform wrote in its ${r.reason} (digest ${digest}, recorded ${r.digest})`);
  return { digest, problems };
}
