/**
 * Record seals (record-keys.ts): what the platform recorded about a report version and its anchors, sealed
 * with HMAC-SM3 under a key outside the database, so that a forger who rewrites the report, its history row,
 * the original, its digest, the fingerprint, the member digests and the anchor rows consistently is still
 * found: the seals no longer hold, and he cannot make new ones.
 *
 * - report_version.seal: (report, version, original id, the original's digest, algorithm, fingerprint, and
 *   every member's type, id, version and digest) — written at intake, checked by $verify and every sweep;
 * - report_anchor.seal: (anchor id, report, version, source, root, the anchor as claimed — ledger,
 *   transaction, height, fingerprint, proof) — written when the anchor is recorded;
 * - report_anchor.found_seal: (anchor id, root, transaction, height, block) — written the first time the
 *   chain is seen to hold the anchor. With it, an anchor the chain no longer holds (or holds differently) is
 *   inconsistent at once rather than pending.
 */
import type { Sql } from '../db/database.ts';
import { canonicalize } from '../fingerprint/index.ts';
import { sealProblem, type RecordKeys, type SealCheck } from './record-keys.ts';
import type { AnchorRow } from './records.ts';

/** The purpose under which a report version's record is sealed. */
export const VERSION_SEAL = 'report-version';
const ANCHOR = 'report-anchor';
const FOUND = 'anchor-found';

/** The members of a version as one JSON array, in a fixed order (the same SQL for intake and the checks). */
export const MEMBERS_SQL = (rv: string) =>
  `coalesce((SELECT jsonb_agg(jsonb_build_array(m.type, m.id, m.res_version, m.digest) ORDER BY m.type, m.id)
               FROM report_member m WHERE m.report_id = ${rv}.report_id AND m.version = ${rv}.version), '[]'::jsonb)`;

export interface VersionSealInput {
  report_id: string;
  version: number;
  original_id: string | null;
  raw_digest: string | null;
  alg: string | null;
  fingerprint: string | null;
  members: unknown[];
  seal: string | null;
  /** A platform revision (code upgrade): the version it was derived from, and why. */
  derived_from?: number | null;
  revision_reason?: string | null;
}

const INPUT_SQL = `SELECT rv.report_id, rv.version, rv.original_id, o.raw_digest, rv.alg, rv.fingerprint, rv.seal, rv.derived_from, rv.revision_reason, ${MEMBERS_SQL('rv')} AS members
  FROM report_version rv LEFT JOIN report_original o ON o.id = rv.original_id WHERE rv.report_id = $1 AND rv.version = $2`;

/** What a version's seal covers, in order. */
export function versionFields(r: VersionSealInput): unknown[] {
  const fields: unknown[] = [r.report_id, Number(r.version), r.original_id, r.raw_digest, r.alg, r.fingerprint, r.members];
  // a platform revision seals what it was derived from too (versions without one keep their earlier seals)
  if (r.derived_from !== null && r.derived_from !== undefined) fields.push(Number(r.derived_from), r.revision_reason ?? null);
  return fields;
}

/** Seals a report version as it is recorded now (after its members are recorded). */
export async function sealVersion(sql: Sql, keys: RecordKeys, reportId: string, version: number): Promise<void> {
  const rows = await sql.query<VersionSealInput>(INPUT_SQL, [reportId, version]);
  if (rows.length === 0) return;
  await sql.query('UPDATE report_version SET seal = $3 WHERE report_id = $1 AND version = $2', [reportId, version, keys.seal(VERSION_SEAL, versionFields(rows[0]!))]);
}

/** Seals many report versions at once, two statements (a bulk load: bench/recognition.ts). */
export async function sealVersions(sql: Sql, keys: RecordKeys, versions: ReadonlyArray<{ report_id: string; version: number }>): Promise<void> {
  if (versions.length === 0) return;
  const rows = await sql.query<VersionSealInput>(
    `SELECT rv.report_id, rv.version, rv.original_id, o.raw_digest, rv.alg, rv.fingerprint, rv.seal, ${MEMBERS_SQL('rv')} AS members
       FROM jsonb_to_recordset($1::jsonb) AS w(report_id text, version int)
       JOIN report_version rv ON rv.report_id = w.report_id AND rv.version = w.version
       LEFT JOIN report_original o ON o.id = rv.original_id`,
    [JSON.stringify(versions)]
  );
  const seals = rows.map((r) => ({ report_id: r.report_id, version: Number(r.version), seal: keys.seal(VERSION_SEAL, versionFields(r)) }));
  await sql.query(
    `UPDATE report_version rv SET seal = s.seal FROM jsonb_to_recordset($1::jsonb) AS s(report_id text, version int, seal text)
      WHERE rv.report_id = s.report_id AND rv.version = s.version`,
    [JSON.stringify(seals)]
  );
}

/** Whether a version's records still hold their seal (a row from INPUT_SQL, or the sweep's equivalent). */
export function checkVersion(keys: RecordKeys, r: VersionSealInput): SealCheck {
  return keys.check(r.seal, VERSION_SEAL, versionFields(r));
}

/**
 * One member of a version as the JSON text `JSON.stringify` gives of MEMBERS_SQL's element (to_json escapes a
 * string as JSON.stringify does), for MEMBERS_TEXT_SQL's aggregate over report_member `m`.
 */
export const MEMBER_TEXT_SQL = `'[' || to_json(m.type)::text || ',' || to_json(m.id)::text || ',' || m.res_version || ',' || to_json(m.digest)::text || ']'`;

/** `string_agg` of MEMBER_TEXT_SQL in MEMBERS_SQL's order; with '[' … ']' around it (NULL for no members), the text of `members`. */
export const MEMBERS_TEXT_AGG_SQL = `string_agg(${MEMBER_TEXT_SQL}, ',' ORDER BY m.type, m.id)`;

/**
 * `checkVersion` of a row whose members come as their JSON text (`JSON.stringify(members)`, from
 * MEMBERS_TEXT_AGG_SQL): the same bytes are sealed, without parsing the members and writing them again.
 */
export function checkVersionText(keys: RecordKeys, r: Omit<VersionSealInput, 'members'>, membersJson: string): SealCheck {
  // versionFields with a stand-in for the members, then their text in its place: the first occurrence is the
  // members' (the fields before them are ids and digests, which cannot hold the control characters)
  const text = JSON.stringify(versionFields({ ...r, members: MEMBERS_STAND_IN as unknown as unknown[] })).replace(JSON.stringify(MEMBERS_STAND_IN), () => membersJson);
  return keys.checkText(r.seal, VERSION_SEAL, text);
}
const MEMBERS_STAND_IN = '\u0001members\u0001';

/** The reason for a version whose seal does not hold, or undefined. */
export async function versionSealProblem(sql: Sql, keys: RecordKeys, reportId: string, version: number): Promise<string | undefined> {
  const rows = await sql.query<VersionSealInput>(INPUT_SQL, [reportId, version]);
  if (rows.length === 0) return undefined;
  return versionProblem(checkVersion(keys, rows[0]!));
}

export function versionProblem(check: SealCheck): string | undefined {
  return sealProblem(check, 'the provenance record of this version (original digest, fingerprint, member digests)');
}

type AnchorSealed = Pick<AnchorRow, 'id' | 'report_id' | 'version' | 'source' | 'root' | 'anchor'>;

function anchorFields(a: AnchorSealed): unknown[] {
  return [a.id, a.report_id, Number(a.version), a.source, a.root, canonicalize(a.anchor)];
}

export function anchorSeal(keys: RecordKeys, a: AnchorSealed): string {
  return keys.seal(ANCHOR, anchorFields(a));
}

export function foundSeal(keys: RecordKeys, id: string, root: string, txId: string, height: number, blockHash: string | undefined): string {
  return keys.seal(FOUND, [id, root, txId.toLowerCase(), Number(height), blockHash ?? null]);
}

export interface AnchorSealState {
  /** Why the anchor row cannot be trusted, if so. */
  problem?: string;
  /** The chain was seen to hold this anchor (a valid found seal). */
  wasFound: boolean;
}

/** An anchor row's seals: its own, and whether it was found on the chain before. */
export function anchorSealState(keys: RecordKeys, a: AnchorRow & { seal?: string | null; found_seal?: string | null }): AnchorSealState {
  const problem = sealProblem(keys.check(a.seal, ANCHOR, anchorFields(a)), `the anchor record ${a.id}`);
  const found =
    !!a.found_seal &&
    !!a.tx_id &&
    a.height !== null &&
    keys.check(a.found_seal, FOUND, [a.id, a.root, a.tx_id.toLowerCase(), Number(a.height), a.block_hash ?? null]) === 'ok';
  const forgedFound = !!a.found_seal && !found;
  return {
    problem: problem ?? (forgedFound ? `the anchor record ${a.id} was changed in the database behind the server's back: the chain coordinates it was found at no longer match their keyed digest` : undefined),
    wasFound: found || forgedFound,
  };
}
