/**
 * Verification against the chain, off the request path: anchors left `pending` at intake are claimed (with
 * a lease, so several servers share the work and a restart loses nothing) and their root is looked up on
 * every configured node. Found at the claimed transaction and height → consistent; found elsewhere →
 * inconsistent; not found (yet), or no node reachable → still pending, looked at again with backoff; not found
 * after `verifyGiveUpHours` → inconsistent.
 *
 * Also the full check of one report version that `$verify` runs on demand (verifyReport).
 */
import { engineOf } from '../fhir/engine.ts';
import type { Database, Sql } from '../db/database.ts';
import { LedgerError, type LedgerPort, type LookupResult, type TxLookupResult } from '../ledger/port.ts';
import { fingerprint, type HashAlg } from '../fingerprint/index.ts';
import type { Logger } from '../http/observability.ts';
import type { ProvenanceConfig } from './config.ts';
import type { RecordKeys } from './record-keys.ts';
import type { InstitutionKeys } from './institution-keys.ts';
import { checkSignatures, sm2Signatures, type SignatureCheck } from './signatures.ts';
import type { FhirSignature } from '../fingerprint/signature.ts';
import { anchorSealState, versionSealProblem, type AnchorSealState } from './seals.ts';
import { DOTTED_RAW, localCheck, parseOriginal, rawDigest, undot } from './intake.ts';
import { checkRevision, revisionOf, revisionsOf } from './revisions.ts';
import {
  anchorsOf,
  refreshChainStatus,
  reportVersion,
  updateAnchor,
  type AnchorRow,
  type ChainVerdict,
  type HashStatus,
  type ReportVersionRow,
} from './records.ts';

const CLAIM_BATCH = 50;
const LEASE_SECONDS = 120;

/**
 * Checks an anchor against the chain: the transaction it names is read and the root that transaction
 * anchored is compared with `a.root` — the root recomputed from the stored records (the original's
 * fingerprint and the proof); then the root is looked up on every node. Found at the claimed transaction and
 * height → consistent; a transaction that anchored another root, or the root held elsewhere → inconsistent;
 * not found (yet), or no node reachable → pending, unless the chain was seen to hold this anchor before
 * (`wasFound`, a valid found seal): then it is inconsistent at once.
 */
export async function checkOnChain(
  ledger: LedgerPort,
  a: Pick<AnchorRow, 'root' | 'anchor' | 'created_at' | 'attempts'>,
  config: Pick<ProvenanceConfig, 'verifyGiveUpHours' | 'retrySeconds' | 'retryMaxSeconds'>,
  options: { wasFound?: boolean } = {}
): Promise<ChainVerdict> {
  if (a.anchor.ledger !== ledger.name) {
    return {
      status: options.wasFound ? 'inconsistent' : 'pending',
      reasons: [`the anchor is on ledger '${a.anchor.ledger}', which this platform does not read (it reads '${ledger.name}')`],
      retryInSeconds: config.retryMaxSeconds,
    };
  }
  const txReason = await transactionMismatch(ledger, a);
  const verdict = await lookUpRoot(ledger, a, config);
  if (txReason) return { ...verdict, status: 'inconsistent', reasons: [txReason, ...(verdict.status === 'inconsistent' ? verdict.reasons : [])], retryInSeconds: undefined };
  if (options.wasFound && verdict.status === 'pending' && verdict.nodes?.some((n) => n.status === 'absent')) {
    return { ...verdict, status: 'inconsistent', reasons: [`the chain held this anchor when it was checked before (its coordinates are sealed) and no longer holds root ${a.root}`], retryInSeconds: undefined };
  }
  return verdict;
}

/** A verdict on an anchor whose row's seal does not hold: inconsistent, whatever else was found (which is kept). */
export function withSeal(sealed: AnchorSealState, verdict: ChainVerdict): ChainVerdict {
  if (!sealed.problem) return verdict;
  return { ...verdict, status: 'inconsistent', reasons: [sealed.problem, ...(verdict.status === 'inconsistent' ? verdict.reasons : [])], retryInSeconds: undefined };
}

/** The anchor's transaction read from the chain: why it contradicts the anchor, or undefined (also when it cannot be read). */
async function transactionMismatch(ledger: LedgerPort, a: Pick<AnchorRow, 'root' | 'anchor'>): Promise<string | undefined> {
  if (!/^0x[0-9a-fA-F]{64}$/.test(a.anchor.transaction ?? '')) return undefined;
  let t: TxLookupResult;
  try {
    t = await ledger.transaction(a.anchor.transaction);
  } catch (e) {
    if (e instanceof LedgerError) return undefined;
    throw e;
  }
  const [alg, hex] = a.root.split(':');
  for (const n of t.nodes) {
    if (n.status !== 'found') continue;
    if (n.root !== `0x${hex}`) {
      return `transaction ${t.txId} on the chain (block ${n.height}, node ${n.node}) anchors root ${alg}:${n.root!.slice(2)}, not the root ${a.root} recomputed from the records the platform stores`;
    }
    if (n.height !== a.anchor.height) return `transaction ${t.txId} is in block ${n.height} on the chain (node ${n.node}), not in block ${a.anchor.height} as the anchor says`;
  }
  return undefined;
}

/** Looks the root up on every node and says what that means for the anchor. */
async function lookUpRoot(
  ledger: LedgerPort,
  a: Pick<AnchorRow, 'root' | 'anchor' | 'created_at' | 'attempts'>,
  config: Pick<ProvenanceConfig, 'verifyGiveUpHours' | 'retrySeconds' | 'retryMaxSeconds'>
): Promise<ChainVerdict> {
  const retry = Math.min(config.retrySeconds * 2 ** Math.min(Math.max(a.attempts - 1, 0), 20), config.retryMaxSeconds);
  let held: LookupResult;
  try {
    held = await ledger.lookup(a.root);
  } catch (e) {
    if (e instanceof LedgerError) return { status: 'pending', reasons: [`the chain is not reachable (${e.code})`], retryInSeconds: retry };
    throw e;
  }
  const nodes = held.nodes;
  const found = nodes.filter((n) => n.status === 'found');
  if (found.length === 0) {
    const answered = nodes.filter((n) => n.status === 'absent');
    if (answered.length === 0) return { status: 'pending', reasons: ['no chain node is reachable'], nodes, retryInSeconds: retry };
    const ageHours = (Date.now() - new Date(a.created_at).getTime()) / 3_600_000;
    if (ageHours >= config.verifyGiveUpHours) {
      return { status: 'inconsistent', reasons: [`the chain does not hold root ${a.root} (asked ${answered.map((n) => n.node).join(', ')}) after ${config.verifyGiveUpHours} h`], nodes };
    }
    return { status: 'pending', reasons: [`the chain does not hold root ${a.root} yet (asked ${answered.map((n) => n.node).join(', ')})`], nodes, retryInSeconds: retry };
  }
  const tx = a.anchor.transaction.toLowerCase();
  const match = found.find((n) => n.txId?.toLowerCase() === tx && n.height === a.anchor.height);
  if (!match) {
    const f = found[0]!;
    return {
      status: 'inconsistent',
      reasons: [`the chain holds root ${a.root} in transaction ${f.txId} at height ${f.height} (node ${f.node}), not in ${a.anchor.transaction} at height ${a.anchor.height} as the anchor says`],
      nodes,
      txId: f.txId,
      height: f.height,
      blockHash: f.blockHash,
    };
  }
  return { status: 'consistent', reasons: [], nodes, txId: match.txId, height: match.height, blockHash: match.blockHash };
}

/** Checks pending anchors that are due. */
export class Verifier {
  private stopped = false;

  constructor(
    private readonly db: Database,
    private readonly ledger: LedgerPort,
    private readonly config: ProvenanceConfig,
    private readonly logger: Logger,
    private readonly keys: RecordKeys
  ) {}

  stop(): void {
    this.stopped = true;
  }

  /** Whether any anchor is due for a check (cheap; does not open the ledger). */
  async anyDue(): Promise<boolean> {
    const rows = await this.db.query(
      `SELECT 1 FROM report_anchor WHERE status = 'pending' AND NOT withdrawn AND next_check_at <= now() AND (lease_until IS NULL OR lease_until < now()) LIMIT 1`
    );
    return rows.length > 0;
  }

  /** Checks every due pending anchor (all pending ones when forced); returns how many were checked. */
  async run(force = false): Promise<{ checked: number; consistent: number; inconsistent: number; pending: number }> {
    const out = { checked: 0, consistent: 0, inconsistent: 0, pending: 0 };
    const seen = new Set<string>();
    while (!this.stopped) {
      const claimed = await this.db.query<AnchorRow>(
        `UPDATE report_anchor SET lease_until = now() + make_interval(secs => $2), attempts = attempts + 1
          WHERE id IN (SELECT id FROM report_anchor
                        WHERE status = 'pending' AND NOT withdrawn AND (next_check_at <= now() OR $1::boolean)
                          AND (lease_until IS NULL OR lease_until < now()) AND NOT (id = ANY($3::text[]))
                        ORDER BY next_check_at LIMIT ${CLAIM_BATCH} FOR UPDATE SKIP LOCKED)
          RETURNING *`,
        [force, LEASE_SECONDS, [...seen]]
      );
      if (claimed.length === 0) break;
      for (const a of claimed) {
        seen.add(a.id);
        let verdict: ChainVerdict;
        try {
          const sealed = anchorSealState(this.keys, a);
          verdict = withSeal(sealed, await checkOnChain(this.ledger, a, this.config, { wasFound: sealed.wasFound }));
        } catch (e) {
          this.logger.warn({ anchor: a.id, error: (e as Error).name }, 'anchor check failed');
          verdict = { status: 'pending', reasons: ['the check failed; it will be tried again'], retryInSeconds: this.config.retryMaxSeconds };
        }
        await this.db.transaction(async (sql) => {
          await updateAnchor(sql, a, verdict, this.keys);
          await refreshChainStatus(sql, a.report_id, a.version);
        });
        out.checked++;
        out[verdict.status === 'unverifiable' ? 'pending' : verdict.status]++;
      }
    }
    return out;
  }
}

export interface MemberCheck {
  type: string;
  id: string;
  version: number;
  ok: boolean;
  reason?: string;
}

export interface AnchorReport {
  anchor: AnchorRow;
  verdict: ChainVerdict;
}

export interface VerifyResult {
  reportId: string;
  version: number;
  status: HashStatus;
  alg?: string;
  fingerprint?: string;
  /** The fingerprint recomputed from the original just now. */
  recomputed?: string;
  originalExact?: boolean;
  members: MemberCheck[];
  integrityReasons: string[];
  anchors: AnchorReport[];
  /** The anchor that decides the status (the latest institution anchor, else the platform's). */
  decisive?: AnchorReport;
  reasons: string[];
  /** Whether the performing institution signed this version's fingerprint. */
  signature: SignatureCheck;
  /** What of this version the platform wrote itself (a code upgrade of the report or of a result). */
  revisions: string[];
  /** A version the platform wrote itself: the check of the version it was derived from. */
  derivedFrom?: { version: number; reason: string; result: VerifyResult };
}

/**
 * The full check of one report version, now: the original's digest and fingerprint recomputed, every member
 * compared with its stored digest (current row and history), every anchor checked (fingerprint, proof,
 * chain). Stores what it found (integrity and anchors) and returns it.
 */
export async function verifyReport(
  db: Database,
  ledger: LedgerPort,
  config: ProvenanceConfig,
  keys: RecordKeys,
  institutions: InstitutionKeys,
  rv: ReportVersionRow,
  options: { reverify?: boolean } = {}
): Promise<VerifyResult> {
  const reasons: string[] = [];
  const integrity: string[] = [];
  let recomputed: string | undefined;
  let exact: boolean | undefined;
  let bundleSignatures: FhirSignature[] = [];
  if (rv.original_id) {
    const rows = await db.query<{ dotted: string; raw_digest: string; raw_exact: boolean; fingerprint: string; alg: string }>(
      `SELECT ${DOTTED_RAW}, raw_digest, raw_exact, fingerprint, alg FROM report_original WHERE id = $1`,
      [rv.original_id]
    );
    const o = rows[0] && { ...rows[0], raw: undot(rows[0].dotted) };
    if (!o) integrity.push('the original Bundle of this version is missing from the database');
    else {
      exact = o.raw_exact;
      if (rawDigest(o.raw) !== o.raw_digest) integrity.push('the original Bundle was changed in the database (its digest no longer matches the one taken at intake)');
      try {
        const bundle = parseOriginal(engineOf(db).codec.openText(o.raw)) as { signature?: unknown };
        bundleSignatures = sm2Signatures(bundle?.signature);
        recomputed = fingerprint(bundle, (rv.alg ?? o.alg) as HashAlg);
        if (recomputed !== rv.fingerprint) integrity.push(`the fingerprint recomputed from the original (${recomputed}) is not the one recorded at intake (${rv.fingerprint})`);
      } catch (e) {
        integrity.push(`the original Bundle can no longer be read: ${(e as Error).message.slice(0, 120)}`);
      }
    }
  }
  const derived = rv.derived_from !== null && rv.derived_from !== undefined && !rv.original_id;
  if (derived) {
    // a version the platform wrote itself (a code upgrade): its record and digest, recomputed from the stored version
    const rev = await revisionOf(db, 'DiagnosticReport', rv.report_id, rv.version);
    if (!rev) integrity.push(`the platform's record of version ${rv.version} (${rv.revision_reason}) is missing from the database`);
    else {
      const checked = await checkRevision(db, keys, rev);
      recomputed = checked.digest;
      integrity.push(...checked.problems);
    }
  }
  const members = await checkMembers(db, rv);
  for (const m of members) if (!m.ok) integrity.push(m.reason!);
  // members the platform rewrote (a code upgrade of a result): said, and each checked like the report's own revision
  const revisions: string[] = [];
  for (const r of (await revisionsOf(db, members.map((m) => `${m.type}/${m.id}/_history/${m.version}`))).values()) {
    integrity.push(...(await checkRevision(db, keys, r)).problems);
    revisions.push(`${r.type}/${r.id} version ${r.version} is a platform ${r.reason} of version ${r.base_version}`);
  }
  const sealProblem = await versionSealProblem(db, keys, rv.report_id, rv.version);
  if (sealProblem) integrity.push(sealProblem);

  const anchors: AnchorReport[] = [];
  for (const a of (await anchorsOf(db, rv.report_id, rv.version)).filter((x) => !x.withdrawn)) {
    const sealed = anchorSealState(keys, a);
    const local = await localCheck(db, rv, a.anchor, engineOf(db).codec);
    const verdict: ChainVerdict =
      local.status !== 'pending' ? { status: local.status, reasons: local.reasons } : await checkOnChain(ledger, { ...a, root: local.root, attempts: 1 }, config, { wasFound: sealed.wasFound });
    anchors.push({ anchor: a, verdict: withSeal(sealed, verdict) });
  }
  await db.transaction(async (sql) => {
    await sql.query('UPDATE report_version SET integrity_ok = $3, integrity_reasons = $4, swept_at = now() WHERE report_id = $1 AND version = $2', [
      rv.report_id,
      rv.version,
      integrity.length === 0,
      JSON.stringify(integrity),
    ]);
    for (const { anchor, verdict } of anchors) await updateAnchor(sql, anchor, verdict.status === 'pending' ? { ...verdict, retryInSeconds: 0 } : verdict, keys);
    await refreshChainStatus(sql, rv.report_id, rv.version);
  });
  const after = (await reportVersion(db, rv.report_id, rv.version))!;
  const latest = (source: string) => anchors.filter((x) => x.anchor.source === source).at(-1);
  const decisive = latest('institution') ?? latest('platform');
  // signed by the performing institution? over the fingerprint recomputed from the original
  const signatures = [...sm2Signatures(decisive?.anchor.signature), ...bundleSignatures];
  // the check recorded at intake is reused when it still applies (signatures.ts), unless asked to re-verify
  const recorded = options.reverify ? undefined : { reportId: rv.report_id, version: rv.version, check: rv.signature_check, recordKeys: keys };
  const signature = await checkSignatures(db, institutions, rv.performer, recomputed ?? rv.fingerprint ?? undefined, signatures, recorded);
  reasons.push(...integrity, ...(decisive ? decisive.verdict.reasons : after.chain_reasons));
  let status = after.status;
  // and the version it was derived from, down to the institution's own submission
  let derivedFrom: VerifyResult['derivedFrom'];
  if (derived) {
    const base = await reportVersion(db, rv.report_id, Number(rv.derived_from));
    if (!base) {
      status = 'inconsistent';
      reasons.push(`version ${rv.derived_from}, which version ${rv.version} was derived from, has no provenance record`);
    } else {
      const result = await verifyReport(db, ledger, config, keys, institutions, base);
      derivedFrom = { version: base.version, reason: rv.revision_reason ?? 'revision', result };
      revisions.unshift(`version ${rv.version} is a platform ${rv.revision_reason} of version ${base.version}, which is ${result.status}${result.derivedFrom ? '' : base.original_id ? ' (the institution\'s submission)' : ''}`);
      if (result.status === 'inconsistent') {
        status = 'inconsistent';
        reasons.push(`version ${base.version}, which version ${rv.version} was derived from, is inconsistent: ${result.reasons.slice(0, 2).join('; ')}`);
      }
    }
  }
  return {
    reportId: rv.report_id,
    version: rv.version,
    status,
    revisions,
    ...(derivedFrom ? { derivedFrom } : {}),
    alg: rv.alg ?? undefined,
    fingerprint: rv.fingerprint ?? undefined,
    recomputed,
    originalExact: exact,
    members,
    integrityReasons: integrity,
    anchors,
    decisive,
    reasons,
    signature,
  };
}

/** Each member against its stored digest: the history row of its version, and the current row when it is the current version. */
async function checkMembers(sql: Sql, rv: ReportVersionRow): Promise<MemberCheck[]> {
  const rows = await sql.query<{
    type: string;
    id: string;
    res_version: number;
    digest: string;
    cur_version: number | null;
    cur_deleted: boolean | null;
    cur_digest: string | null;
    hist_digest: string | null;
  }>(
    `SELECT m.type, m.id, m.res_version, m.digest, r.version AS cur_version, r.deleted AS cur_deleted,
            encode(sha256(convert_to(r.content::text, 'UTF8')), 'hex') AS cur_digest,
            encode(sha256(convert_to(h.content::text, 'UTF8')), 'hex') AS hist_digest
       FROM report_member m
       LEFT JOIN resource r ON r.type = m.type AND r.id = m.id
       LEFT JOIN resource_history h ON h.type = m.type AND h.id = m.id AND h.version = m.res_version
      WHERE m.report_id = $1 AND m.version = $2
      ORDER BY m.type <> 'DiagnosticReport', m.type, m.id`,
    [rv.report_id, rv.version]
  );
  return rows.map((m) => {
    const name = `${m.type}/${m.id}`;
    const base = { type: m.type, id: m.id, version: Number(m.res_version) };
    if (m.hist_digest === null) return { ...base, ok: false, reason: `${name} version ${m.res_version} is missing from the history` };
    if (m.hist_digest !== m.digest) return { ...base, ok: false, reason: `${name} version ${m.res_version} was changed in the history table behind the server's back` };
    if (rv.current) {
      if (m.cur_version === null) return { ...base, ok: false, reason: `${name} is missing from the store` };
      if (m.cur_deleted) return { ...base, ok: false, reason: `${name} was deleted after the report was submitted` };
      if (Number(m.cur_version) !== Number(m.res_version)) {
        return { ...base, ok: false, reason: `${name} is now version ${m.cur_version}; the report was submitted with version ${m.res_version}` };
      }
      if (m.cur_digest !== m.digest) return { ...base, ok: false, reason: `${name} was changed in the database behind the server's back (same version, different content)` };
    }
    return { ...base, ok: true };
  });
}

