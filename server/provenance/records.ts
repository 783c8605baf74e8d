/**
 * The chain-provenance records beside the resources (migration 020): report versions with their status,
 * their member digests, and the anchors claimed or made for them. The status of a report version:
 *
 *   inconsistent  the stored report no longer matches what was submitted (integrity), or an anchor does not
 *                 match it (fingerprint, proof, or what the chain holds);
 *   consistent    otherwise, when an anchor of it was found on the chain;
 *   pending       an anchor waits for the chain (not reachable, not yet found) or for platform anchoring;
 *   unanchored    nothing anchors it (no chain Provenance and no platform anchoring, or no original Bundle).
 *
 * An institution's anchor (its chain Provenance, the latest one) decides over the platform's own anchor.
 */
import type { RecordedSignature } from './signatures.ts';
import { randomUUID } from 'node:crypto';
import { prepared, type Sql } from '../db/database.ts';
import type { ChainAnchor } from '../fingerprint/index.ts';
import type { NodeHolding } from '../ledger/port.ts';
import type { RecordKeys } from './record-keys.ts';
import { anchorSeal, foundSeal } from './seals.ts';

export type HashStatus = 'consistent' | 'inconsistent' | 'pending' | 'unanchored';
/** An anchor that cannot be checked at all (no original) is `unverifiable`. */
export type AnchorStatus = 'consistent' | 'inconsistent' | 'pending' | 'unverifiable';
export type AnchorSource = 'institution' | 'platform';

export interface ReportVersionRow {
  report_id: string;
  version: number;
  current: boolean;
  created_at: string | Date;
  original_id: string | null;
  original_xmin: string | null;
  alg: string | null;
  fingerprint: string | null;
  performer: string | null;
  integrity_ok: boolean;
  integrity_reasons: string[];
  chain_status: HashStatus;
  chain_reasons: string[];
  anchor_source: AnchorSource | null;
  ledger: string | null;
  tx_id: string | null;
  height: number | string | null;
  block_hash: string | null;
  root: string | null;
  checked_at: string | Date | null;
  swept_at: string | Date | null;
  status: HashStatus;
  seal: string | null;
  /** A version the platform wrote itself (platform_revision): the version it was derived from, and why. */
  derived_from: number | null;
  revision_reason: string | null;
  /** The valid signature check made at intake (signatures.ts), or null. */
  signature_check: RecordedSignature | null;
}

export interface AnchorRow {
  id: string;
  report_id: string;
  version: number;
  source: AnchorSource;
  provenance_id: string | null;
  provenance_version: number | null;
  created_at: string | Date;
  withdrawn: boolean;
  alg: string;
  fingerprint: string;
  anchor: ChainAnchor;
  root: string;
  status: AnchorStatus;
  reasons: string[];
  ledger: string | null;
  tx_id: string | null;
  height: number | string | null;
  block_hash: string | null;
  nodes: NodeHolding[] | null;
  checked_at: string | Date | null;
  next_check_at: string | Date | null;
  attempts: number;
  /** Record seals (seals.ts). */
  seal: string | null;
  found_seal: string | null;
  /** The institution's signature carried by the chain Provenance (signatures.ts), as received. */
  signature: unknown | null;
}

/** Why a version without an anchor has the status it has. */
export const WAITING_FOR_PLATFORM = 'waiting for platform anchoring (no chain Provenance from the institution)';
export const NO_PROVENANCE = 'no chain Provenance received for this version';
export const NO_BUNDLE = 'this version was not submitted in a transaction Bundle: it has no fingerprint';

export const reportKey = (id: string, version: number) => `DiagnosticReport/${id}/_history/${version}`;

export function parseReportKey(key: string): { id: string; version: number } | undefined {
  const m = /^DiagnosticReport\/([^/]+)\/_history\/(\d+)$/.exec(key);
  return m ? { id: m[1]!, version: Number(m[2]) } : undefined;
}

export const iso = (v: string | Date | null | undefined): string | undefined =>
  v === null || v === undefined ? undefined : new Date(v).toISOString();

export const num = (v: number | string | null | undefined): number | undefined => (v === null || v === undefined ? undefined : Number(v));

export async function reportVersion(sql: Sql, id: string, version: number): Promise<ReportVersionRow | undefined> {
  const rows = await sql.query<ReportVersionRow>('SELECT * FROM report_version WHERE report_id = $1 AND version = $2', [id, version]);
  return rows[0];
}

export async function reportVersions(sql: Sql, id: string): Promise<ReportVersionRow[]> {
  return sql.query<ReportVersionRow>('SELECT * FROM report_version WHERE report_id = $1 ORDER BY version', [id]);
}

export async function anchorsOf(sql: Sql, id: string, version?: number): Promise<AnchorRow[]> {
  return version === undefined
    ? sql.query<AnchorRow>('SELECT * FROM report_anchor WHERE report_id = $1 ORDER BY version, created_at, id', [id])
    : sql.query<AnchorRow>('SELECT * FROM report_anchor WHERE report_id = $1 AND version = $2 ORDER BY created_at, id', [id, version]);
}

export interface NewAnchor {
  reportId: string;
  version: number;
  source: AnchorSource;
  provenance?: { id: string; version: number };
  anchor: ChainAnchor;
  root: string;
  status: AnchorStatus;
  reasons: string[];
  chain?: { txId?: string; height?: number; blockHash?: string; nodes?: NodeHolding[] };
  checked?: boolean;
  /** The signature element of the chain Provenance, if it had one. */
  signature?: unknown;
}

export async function insertAnchor(sql: Sql, a: NewAnchor, keys: RecordKeys): Promise<string> {
  const id = randomUUID();
  const seal = anchorSeal(keys, { id, report_id: a.reportId, version: a.version, source: a.source, root: a.root, anchor: a.anchor });
  const txId = a.chain?.txId ?? a.anchor.transaction;
  const height = a.chain?.height ?? a.anchor.height;
  const found = a.status === 'consistent' && a.chain?.txId ? foundSeal(keys, id, a.root, txId, height, a.chain.blockHash) : null;
  await sql.query(
    `INSERT INTO report_anchor (id, report_id, version, source, provenance_id, provenance_version, alg, fingerprint, anchor, root, status, reasons,
       ledger, tx_id, height, block_hash, nodes, checked_at, next_check_at, seal, found_seal, signature)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
       CASE WHEN $18::boolean THEN now() END, CASE WHEN $11 = 'pending' THEN now() END, $19, $20, $21)`,
    [
      id,
      a.reportId,
      a.version,
      a.source,
      a.provenance?.id ?? null,
      a.provenance?.version ?? null,
      a.anchor.alg,
      a.anchor.fingerprint,
      JSON.stringify(a.anchor),
      a.root,
      a.status,
      JSON.stringify(a.reasons),
      a.anchor.ledger,
      txId,
      height,
      a.chain?.blockHash ?? null,
      a.chain?.nodes ? JSON.stringify(a.chain.nodes) : null,
      a.checked === true,
      seal,
      found,
      a.signature === undefined ? null : JSON.stringify(a.signature),
    ]
  );
  return id;
}

export interface ChainVerdict {
  status: AnchorStatus;
  reasons: string[];
  txId?: string;
  height?: number;
  blockHash?: string;
  nodes?: NodeHolding[];
  /** pending: when to look again. */
  retryInSeconds?: number;
}

/**
 * Stores what a check of an anchor found. The first time the chain is seen to hold it (consistent), the
 * coordinates are sealed (found_seal): from then on its absence is inconsistent at once.
 */
export async function updateAnchor(sql: Sql, a: Pick<AnchorRow, 'id' | 'root'>, v: ChainVerdict, keys: RecordKeys): Promise<void> {
  const found = v.status === 'consistent' && v.txId && v.height !== undefined ? foundSeal(keys, a.id, a.root, v.txId, v.height, v.blockHash) : null;
  await sql.query(
    `UPDATE report_anchor SET status = $2, reasons = $3, tx_id = coalesce($4, tx_id), height = coalesce($5, height),
       block_hash = coalesce($6, block_hash), nodes = coalesce($7, nodes), checked_at = now(), lease_until = NULL,
       next_check_at = CASE WHEN $2 = 'pending' THEN now() + make_interval(secs => $8) END,
       found_seal = coalesce(found_seal, $9)
     WHERE id = $1`,
    [a.id, v.status, JSON.stringify(v.reasons), v.txId ?? null, v.height ?? null, v.blockHash ?? null, v.nodes ? JSON.stringify(v.nodes) : null, v.retryInSeconds ?? 0, found]
  );
}

/** A report version that was consistent and is now pending: never silent (service.ts logs it, counts it, alerts). */
export type StatusRegressionListener = (event: { reportId: string; version: number; from: HashStatus; to: HashStatus; reasons: string[] }) => void;
const regressionListeners = new Set<StatusRegressionListener>();

export function onStatusRegression(listener: StatusRegressionListener): () => void {
  regressionListeners.add(listener);
  return () => regressionListeners.delete(listener);
}

/** Recomputes a report version's chain status from its anchors (and the outbox) and stores it. */
export async function refreshChainStatus(sql: Sql, reportId: string, version: number): Promise<void> {
  const rv = await reportVersion(sql, reportId, version);
  if (!rv) return;
  const anchors = (await anchorsOf(sql, reportId, version)).filter((a) => !a.withdrawn);
  const latest = (source: AnchorSource) => anchors.filter((a) => a.source === source).at(-1);
  const decisive = latest('institution') ?? latest('platform');
  let status: HashStatus;
  let reasons: string[];
  if (decisive) {
    status = decisive.status === 'unverifiable' ? 'unanchored' : decisive.status;
    reasons = decisive.reasons;
  } else {
    const queued = await sql.query(
      `SELECT 1 FROM anchor_outbox WHERE kind = 'report' AND key = $1 AND state IN ('queued', 'batched') LIMIT 1`,
      [reportKey(reportId, version)]
    );
    if (queued.length > 0) {
      status = 'pending';
      reasons = [rv.derived_from !== null ? `a platform ${rv.revision_reason} of version ${rv.derived_from}: waiting for platform anchoring` : WAITING_FOR_PLATFORM];
    } else {
      status = 'unanchored';
      reasons = rv.original_id ? [NO_PROVENANCE] : rv.derived_from !== null ? [`a platform ${rv.revision_reason} of version ${rv.derived_from}, not anchored`] : [NO_BUNDLE];
    }
  }
  if (rv.chain_status === 'consistent' && status === 'pending') {
    for (const l of regressionListeners) l({ reportId, version, from: rv.chain_status, to: status, reasons });
  }
  await sql.query(
    `UPDATE report_version SET chain_status = $3, chain_reasons = $4, anchor_source = $5, ledger = $6, tx_id = $7, height = $8,
       block_hash = $9, root = $10, checked_at = $11
     WHERE report_id = $1 AND version = $2`,
    [
      reportId,
      version,
      status,
      JSON.stringify(reasons),
      decisive?.source ?? null,
      decisive?.ledger ?? null,
      decisive?.tx_id ?? null,
      decisive?.height ?? null,
      decisive?.block_hash ?? null,
      decisive?.root ?? null,
      decisive?.checked_at ?? null,
    ]
  );
}

/**
 * The stored status of the report version in resource row `r` (NULL: no row, `unanchored`), as a scalar SQL
 * expression: what `statusesOf` reads, for a statement that reads the reports themselves (the recognition
 * checks' facts statement, recognition/model.ts `setHashStatusColumn`).
 */
export const STATUS_COLUMN = '(SELECT rv.status FROM report_version rv WHERE rv.report_id = r.id AND rv.version = r.version)';

/** The stored status of report versions, for `(id, version)` pairs (a missing row is `unanchored`). */
const STATUSES_SQL = prepared('SELECT report_id, version, status FROM report_version WHERE report_id = ANY($1::text[])');

export async function statusesOf(sql: Sql, reports: Array<{ id: string; version: number }>): Promise<Map<string, HashStatus>> {
  const out = new Map<string, HashStatus>();
  if (reports.length === 0) return out;
  const rows = await sql.query<{ report_id: string; version: number; status: HashStatus }>(
    STATUSES_SQL,
    [[...new Set(reports.map((r) => r.id))]]
  );
  const byKey = new Map(rows.map((r) => [`${r.report_id}/${r.version}`, r.status]));
  for (const r of reports) out.set(r.id, byKey.get(`${r.id}/${r.version}`) ?? 'unanchored');
  return out;
}
