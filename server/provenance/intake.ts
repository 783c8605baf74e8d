/**
 * Intake: the write observer of the resource store (server/fhir/repository.ts). It runs inside the writing
 * transaction, before it commits, so a failed transaction leaves no trace and a stored report always has its
 * records:
 *
 * - a transaction Bundle that writes DiagnosticReport versions: the Bundle exactly as received is kept as
 *   their original (report_original) with its fingerprint (SM3, or the chain Provenance's algorithm), each
 *   version gets a report_version row and the digests of its stored members (the report, its results and
 *   imaging studies); without a chain Provenance it is queued for platform anchoring (when enabled);
 * - a DiagnosticReport written any other way (PUT, PATCH, POST alone, a batch): a report_version row
 *   without an original — its fingerprint is undefined, so it is `unanchored` (docs/chain-provenance.md);
 * - a chain Provenance (in the Bundle or later, POST/PUT): its anchor is read (a malformed one is a 400),
 *   checked at once against the original's fingerprint and its Merkle proof, and left `pending` for the
 *   chain lookup, which runs off the request path (verify.ts);
 * - a recognition record (DetectedIssue) version: queued for platform anchoring by its digest.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { DiagnosticReport, Provenance, Resource } from '@medplum/fhirtypes';
import { prepared, type Sql } from '../db/database.ts';
import { badRequest } from '../fhir/errors.ts';
import type { TxWrites, WriteObserver } from '../fhir/repository.ts';
import type { Companion, NewVersion } from '../fhir/store.ts';
import type { StorageCodec } from '../fhir/engine.ts';
import {
  canonicalize,
  CHAIN_ANCHOR_URL,
  ChainAnchorError,
  DEFAULT_ALG,
  fingerprint,
  FingerprintError,
  isChainEntry,
  isChainProvenance,
  JcsError,
  parseDigest,
  readChainAnchor,
  type ChainAnchor,
  type HashAlg,
} from '../fingerprint/index.ts';
import { verifyAnchorProof } from '../merkle/index.ts';
import { enqueue, ENQUEUE_ROWS_SQL, outboxRow } from './outbox.ts';
import type { RecordKeys } from './record-keys.ts';
import { sealVersion, VERSION_SEAL, versionFields, type VersionSealInput } from './seals.ts';
import { checkOnIntake, checkSignatureForm, recordSignatureCheck, type SignatureCheck } from './signatures.ts';
import type { InstitutionKeys } from './institution-keys.ts';
import { refusePlatformProvenanceWrite } from './platform-provenance.ts';
import { recordRevisions, revisionOf, checkRevision } from './revisions.ts';
import { insertAnchor, NO_BUNDLE, NO_PROVENANCE, refreshChainStatus, reportKey, reportVersion, WAITING_FOR_PLATFORM, type AnchorStatus, type ReportVersionRow } from './records.ts';

export const RECOGNITION_RECORD_KIND = 'recognition-record';
export const REPORT_KIND = 'report';

export interface IntakeOptions {
  platformAnchoring: boolean;
  platformAnchorDelaySeconds: number;
  /** Called after a commit that left anchors waiting for the chain. */
  onPending?: () => void;
  /** The record seals' keys (outside the database). */
  keys: RecordKeys;
  /** The institutions' registered SM2 keys: a submission's signature is checked against them on intake. */
  institutions: InstitutionKeys;
  /** How stored text is kept at rest (the engine's storage codec: an original holds the patient's identity). */
  texts: () => TextCodec;
}

const ANCHOR_EXPR = `extension.where(url='${CHAIN_ANCHOR_URL}')`;

export class Intake implements WriteObserver {
  constructor(private readonly options: IntakeOptions) {}

  /** Recognition record versions queued for platform anchoring in their write's own statement. */
  private readonly queued = new WeakSet<Resource>();

  /** A recognition record (DetectedIssue) version is queued for anchoring in the statement that writes it. */
  alongside(versions: readonly NewVersion[]): Companion[] {
    const rows: unknown[] = [];
    for (const v of versions) {
      if (v.method === 'DELETE' || v.resource.resourceType !== 'DetectedIssue') continue;
      rows.push(outboxRow(RECOGNITION_RECORD_KIND, recordKey(v.resource), recordDigest(v.resource)));
      this.queued.add(v.resource);
    }
    return rows.length > 0 ? [{ sql: ENQUEUE_ROWS_SQL, rows }] : [];
  }

  /** Recognition records only (queued beside them): nothing is left for `beforeCommit`. */
  onlyAlongside(versions: readonly NewVersion[]): boolean {
    return versions.every((v) => v.method !== 'DELETE' && v.resource.resourceType === 'DetectedIssue');
  }

  async beforeCommit(sql: Sql, writes: TxWrites): Promise<void> {
    const submission = writes.submission;
    const bundleAnchors = submission ? readBundleAnchors(submission.bundle) : [];
    // the last version written of each resource (a transaction may write one twice)
    const last = new Map<string, { resource: Resource; deleted: boolean }>();
    for (const v of writes.versions) last.set(`${v.resource.resourceType}/${v.resource.id}`, { resource: v.resource, deleted: v.method === 'DELETE' });
    const written = [...last.values()];
    // platform anchors are written by the platform alone, past this observer (platform-provenance.ts)
    for (const v of writes.versions) refusePlatformProvenanceWrite(v.resource);
    const reports = written.filter((w) => w.resource.resourceType === 'DiagnosticReport');
    let pending = false;

    const live = reports.filter((w) => !w.deleted).map((w) => w.resource as DiagnosticReport);
    // versions the platform rewrote itself (a code upgrade): derived from the ones they replace, anchored by the platform
    if (writes.revision) await recordRevisions(sql, writes, written, this.options);
    else if (live.length > 0) await this.reports(sql, live, submission, bundleAnchors.length > 0);
    for (const w of reports.filter((r) => r.deleted)) {
      await sql.query('UPDATE report_version SET current = false WHERE report_id = $1 AND current', [w.resource.id]);
    }
    // a new version (or a deletion) of a Provenance withdraws the anchors of its earlier versions
    for (const w of written.filter((r) => r.resource.resourceType === 'Provenance')) {
      const withdrawn = await sql.query<{ report_id: string; version: number }>(
        `UPDATE report_anchor SET withdrawn = true WHERE provenance_id = $1 AND NOT withdrawn AND provenance_version < $2
         RETURNING report_id, version`,
        [w.resource.id, Number(w.resource.meta?.versionId ?? 0) + (w.deleted ? 1 : 0)]
      );
      for (const r of withdrawn) await refreshChainStatus(sql, r.report_id, r.version);
    }
    // a chain Provenance inside a submitted Bundle anchors the version that Bundle wrote; a retry that wrote
    // none (every entry matched) anchors the version submitted with that fingerprint, not the current one
    const retried = submission ? (id: string) => !live.some((r) => r.id === id) : undefined;
    for (const w of written) {
      if (w.deleted || !isChainProvenance(w.resource)) continue;
      pending = (await this.provenance(sql, w.resource as Provenance, retried)) || pending;
    }
    for (const w of written) {
      if (w.deleted || w.resource.resourceType !== 'DetectedIssue' || this.queued.has(w.resource)) continue;
      await enqueue(sql, RECOGNITION_RECORD_KIND, recordKey(w.resource), recordDigest(w.resource));
    }
    if (pending) this.waiting.add(writes);
    else this.waiting.delete(writes);
  }

  /** Transactions that left anchors waiting for the chain. */
  private readonly waiting = new WeakSet<TxWrites>();

  afterCommit(writes: TxWrites): void {
    if (this.waiting.has(writes)) this.options.onPending?.();
  }

  /**
   * New DiagnosticReport versions: their original (if any), rows, members; platform anchoring. Two statements
   * however many reports: the original, the version rows and the members in one (which answers what the
   * seals cover, as the stored rows have it), then the seals and the outbox rows in the other.
   */
  private async reports(sql: Sql, reports: DiagnosticReport[], submission: TxWrites['submission'], anchoredInBundle: boolean): Promise<void> {
    let original: { id: string; alg: HashAlg; fingerprint: string; stored: string; exact: boolean } | undefined;
    if (submission) {
      const raw = submission.raw ?? JSON.stringify(submission.bundle);
      checkSignatureForm((submission.bundle as { signature?: unknown }).signature, 'Bundle.signature');
      const alg = readBundleAnchors(submission.bundle)[0]?.anchor.alg ?? DEFAULT_ALG;
      let fp: string;
      try {
        fp = fingerprint(submission.bundle, alg);
      } catch (e) {
        if (e instanceof JcsError || e instanceof FingerprintError) throw badRequest(`The Bundle has no fingerprint: ${e.message}`, 'Bundle');
        throw e;
      }
      // stored sealed (SM4 when the privacy module is installed); the digest is of the stored text, so the
      // sweep can compare it in SQL, and $original opens it back to the exact bytes
      original = { id: randomUUID(), alg, fingerprint: fp, stored: this.options.texts().sealText(raw), exact: submission.raw !== undefined };
    }
    const platform = original !== undefined && this.options.platformAnchoring && !anchoredInBundle;
    // a new version has no anchor yet: waiting for the platform, for the Bundle's own Provenance (below), or none
    const [status, reason] = platform ? ['pending', WAITING_FOR_PLATFORM] : ['unanchored', original ? NO_PROVENANCE : NO_BUNDLE];
    for (const report of reports) {
      const version = Number(report.meta?.versionId);
      if (version > 1) await sql.query('UPDATE report_version SET current = false WHERE report_id = $1 AND current AND version <> $2', [report.id, version]);
    }
    const digest = original ? rawDigest(original.stored) : null;
    const recorded = await sql.query<VersionSealInput & { inserted: boolean }>(RECORD_REPORTS_SQL, [
      original?.id ?? null,
      original?.stored ?? null,
      original?.exact ?? null,
      digest,
      original?.alg ?? null,
      original?.fingerprint ?? null,
      JSON.stringify(reports.map((r) => [r.id, Number(r.meta?.versionId), performerOf(r), status, [reason], memberRefs(r)])),
    ]);
    const seals: unknown[][] = [];
    for (const row of recorded) {
      // a version row that was there already (not made here) is sealed from what is stored, as before
      if (!row.inserted) await sealVersion(sql, this.options.keys, row.report_id, Number(row.version));
      else seals.push([row.report_id, Number(row.version), this.options.keys.seal(VERSION_SEAL, versionFields({ ...row, raw_digest: row.original_id ? digest : null }))]);
    }
    const queued = platform ? reports.map((r) => outboxRow(REPORT_KIND, reportKey(r.id as string, Number(r.meta?.versionId)), formatFp(original!.fingerprint), { delaySeconds: this.options.platformAnchorDelaySeconds })) : [];
    if (seals.length > 0 || queued.length > 0) await sql.query(SEAL_AND_QUEUE_SQL, [JSON.stringify(seals), JSON.stringify(queued)]);
    // Bundle.signature: checked once per performing institution (the SM2 maths is ~30 ms of CPU)
    const signature = submission && (submission.bundle as { signature?: unknown }).signature;
    if (!original || !signature) return;
    const bundleChecks = new Map<string | null, SignatureCheck>();
    for (const report of reports) {
      const performer = performerOf(report);
      if (!bundleChecks.has(performer)) bundleChecks.set(performer, await checkOnIntake(sql, this.options.institutions, performer, original.fingerprint, signature, 'Bundle.signature'));
      await recordSignatureCheck(sql, this.options.keys, report.id as string, Number(report.meta?.versionId), original.fingerprint, bundleChecks.get(performer)!);
    }
  }

  /**
   * A chain Provenance: record its anchor for each DiagnosticReport it targets. Returns whether one waits for
   * the chain. `retried(id)`: the Provenance came in a submitted Bundle that wrote no version of report `id`.
   */
  private async provenance(sql: Sql, prov: Provenance, retried?: (id: string) => boolean): Promise<boolean> {
    let anchor: ChainAnchor;
    try {
      anchor = readChainAnchor(prov);
    } catch (e) {
      if (e instanceof ChainAnchorError) throw badRequest(`Invalid chain anchor: ${e.message}`, `Provenance.${ANCHOR_EXPR}`);
      throw e;
    }
    checkSignatureForm(prov.signature, 'Provenance.signature');
    anchor = { ...anchor, fingerprint: formatFp(anchor.fingerprint), ...(anchor.proof ? { proof: { ...anchor.proof, root: formatFp(anchor.proof.root) } } : {}) };
    const targets = (prov.target ?? []).map((t, i) => ({ i, ref: parseReportRef(t.reference) })).filter((t) => t.ref);
    if (targets.length === 0) {
      throw badRequest('A chain Provenance targets the DiagnosticReport it anchors (DiagnosticReport/<id>, optionally /_history/<version>)', 'Provenance.target');
    }
    let pending = false;
    for (const { i, ref } of targets) {
      const { id, version: asked } = ref!;
      const cur = await sql.query<{ version: number; deleted: boolean }>("SELECT version, deleted FROM resource WHERE type = 'DiagnosticReport' AND id = $1", [id]);
      if (cur.length === 0 || cur[0]!.deleted) throw badRequest(`Provenance.target[${i}]: DiagnosticReport/${id.slice(0, 64)} does not exist`, `Provenance.target[${i}]`);
      const version = asked ?? (retried?.(id) ? await versionWithFingerprint(sql, id, anchor) : undefined) ?? Number(cur[0]!.version);
      if (asked !== undefined) {
        const hist = await sql.query("SELECT 1 FROM resource_history WHERE type = 'DiagnosticReport' AND id = $1 AND version = $2 AND NOT deleted", [id, asked]);
        if (hist.length === 0) throw badRequest(`Provenance.target[${i}]: DiagnosticReport/${id.slice(0, 64)} has no version ${asked}`, `Provenance.target[${i}]`);
      }
      const rv = await ensureReportVersion(sql, id, version, this.options.keys);
      const local = await localCheck(sql, rv, anchor, this.options.texts());
      // the institution's signature over the fingerprint of what it submitted (when there is an original)
      const signed = rv.fingerprint; // what $verify checks it over (verify.ts)
      if (prov.signature?.length && signed) {
        const check = await checkOnIntake(sql, this.options.institutions, rv.performer, signed, prov.signature, 'Provenance.signature');
        await recordSignatureCheck(sql, this.options.keys, id, version, signed, check);
      }
      await insertAnchor(sql, {
        reportId: id,
        version,
        source: 'institution',
        provenance: { id: prov.id as string, version: Number(prov.meta?.versionId ?? 1) },
        anchor,
        root: local.root,
        status: local.status,
        reasons: local.reasons,
        ...(prov.signature?.length ? { signature: prov.signature } : {}),
      }, this.options.keys);
      // the institution anchors this version itself: the platform need not
      await sql.query(`UPDATE anchor_outbox SET state = 'superseded' WHERE kind = $1 AND key = $2 AND state = 'queued'`, [REPORT_KIND, reportKey(id, version)]);
      await refreshChainStatus(sql, id, version);
      pending ||= local.status === 'pending';
    }
    return pending;
  }
}

/**
 * The latest version of a report submitted with the anchor's fingerprint (a retried Bundle is the one of that
 * version: a stale retry of version 1 after a correction must not anchor version 2 with version 1's hash).
 */
async function versionWithFingerprint(sql: Sql, reportId: string, anchor: ChainAnchor): Promise<number | undefined> {
  const rows = await sql.query<{ version: number }>(
    'SELECT version FROM report_version WHERE report_id = $1 AND alg = $2 AND fingerprint = $3 ORDER BY version DESC LIMIT 1',
    [reportId, anchor.alg, anchor.fingerprint]
  );
  return rows.length > 0 ? Number(rows[0]!.version) : undefined;
}

/** The chain anchors in a submitted Bundle, read and checked (a malformed one is a 400 naming its entry). */
export function readBundleAnchors(bundle: unknown): Array<{ index: number; anchor: ChainAnchor }> {
  const entries = (bundle as { entry?: unknown })?.entry;
  if (!Array.isArray(entries)) return [];
  const out: Array<{ index: number; anchor: ChainAnchor }> = [];
  entries.forEach((entry, index) => {
    if (!isChainEntry(entry)) return;
    try {
      out.push({ index, anchor: readChainAnchor((entry as { resource: unknown }).resource) });
    } catch (e) {
      if (e instanceof ChainAnchorError) throw badRequest(`Bundle.entry[${index}]: invalid chain anchor: ${e.message}`, `Bundle.entry[${index}].resource.${ANCHOR_EXPR}`);
      throw e;
    }
  });
  return out;
}

/**
 * Checks an anchor against what the platform holds, without the chain: the original's fingerprint (in the
 * anchor's algorithm) must be the anchored one and the Merkle proof must lead to the root. `pending` means
 * it now needs the chain.
 */
export async function localCheck(sql: Sql, rv: ReportVersionRow, anchor: ChainAnchor, texts: TextCodec): Promise<{ status: AnchorStatus; reasons: string[]; root: string; fingerprint?: string }> {
  const claimed = formatFp(anchor.fingerprint);
  const root = anchor.proof?.root ? formatFp(anchor.proof.root) : claimed;
  if (!rv.original_id && rv.derived_from !== null && rv.derived_from !== undefined) {
    // a version the platform wrote itself: its fingerprint is the revision's digest, recomputed from the stored version
    const rev = await revisionOf(sql, 'DiagnosticReport', rv.report_id, rv.version);
    const fp = rev ? (await checkRevision(sql, undefined, rev)).digest : undefined;
    if (!fp) return { status: 'inconsistent', root, reasons: [`the platform's record of version ${rv.version} (${rv.revision_reason}) or the version itself is missing`] };
    return compareAnchor(fp, claimed, root, anchor);
  }
  if (!rv.original_id) {
    return {
      status: 'unverifiable',
      root,
      reasons: [`version ${rv.version} was not submitted in a transaction Bundle: there is no original to recompute its fingerprint from, so the anchor cannot be checked`],
    };
  }
  let fp = rv.fingerprint ?? undefined;
  if (anchor.alg !== rv.alg || !fp) fp = await originalFingerprint(sql, rv.original_id, anchor.alg, texts);
  return compareAnchor(fp, claimed, root, anchor, 'the fingerprint of the submitted Bundle');
}

function compareAnchor(fp: string, claimed: string, root: string, anchor: ChainAnchor, what = "the digest of the platform's revision"): { status: AnchorStatus; reasons: string[]; root: string; fingerprint?: string } {
  if (fp !== claimed) {
    return { status: 'inconsistent', root, fingerprint: fp, reasons: [`${what} (${fp}) is not the anchored fingerprint (${claimed})`] };
  }
  const proof = verifyAnchorProof(claimed, anchor.proof);
  if (!proof.ok) return { status: 'inconsistent', root, fingerprint: fp, reasons: [`the Merkle proof does not hold: ${proof.reason}`] };
  return { status: 'pending', root: proof.root, fingerprint: fp, reasons: ['waiting for the chain lookup'] };
}

/** The fingerprint of a stored original, recomputed in the given algorithm. */
export async function originalFingerprint(sql: Sql, originalId: string, alg: HashAlg, texts: TextCodec): Promise<string> {
  const rows = await sql.query<{ raw: string }>('SELECT raw FROM report_original WHERE id = $1', [originalId]);
  if (rows.length === 0) throw new Error(`original ${originalId} is missing`);
  return fingerprint(parseOriginal(texts.openText(rows[0]!.raw)), alg);
}

/** The part of the engine's storage codec that keeps stored text (report_original.raw). */
export type TextCodec = Pick<StorageCodec, 'sealText' | 'openText'>;

/** The original's text → the Bundle (a byte-order mark is ignored, as on intake). */
export function parseOriginal(raw: string): unknown {
  return JSON.parse(raw.replace(/^\uFEFF/, ''));
}

/**
 * The SQL that selects an original's text as `dotted`: '.' ‖ raw. PGlite decodes text columns with a
 * TextDecoder, which drops a leading byte-order mark; the dot keeps the text exact. Use `undot(row.dotted)`.
 */
export const DOTTED_RAW = "'.' || raw AS dotted";
export const undot = (dotted: string): string => dotted.slice(1);

/** SHA-256 of the original's UTF-8 bytes, hex: its integrity digest. */
export function rawDigest(raw: string): string {
  return createHash('sha256').update(raw, 'utf8').digest('hex');
}

/** A report version row for a version that has none (written before chain provenance, or unknown). */
export async function ensureReportVersion(sql: Sql, id: string, version: number, keys: RecordKeys): Promise<ReportVersionRow> {
  const existing = await reportVersion(sql, id, version);
  if (existing) return existing;
  const cur = await sql.query<{ version: number; content: DiagnosticReport }>("SELECT version, content FROM resource WHERE type = 'DiagnosticReport' AND id = $1", [id]);
  const isCurrent = cur.length > 0 && Number(cur[0]!.version) === version;
  if (isCurrent) await sql.query('UPDATE report_version SET current = false WHERE report_id = $1 AND current', [id]);
  await sql.query(
    `INSERT INTO report_version (report_id, version, current, performer, chain_status, chain_reasons)
     VALUES ($1, $2, $3, $4, 'unanchored', $5) ON CONFLICT DO NOTHING`,
    [id, version, isCurrent, isCurrent ? performerOf(cur[0]!.content) : null, JSON.stringify(['no intake record: stored before chain provenance was enabled'])]
  );
  if (isCurrent) await recordMembers(sql, cur[0]!.content);
  await sealVersion(sql, keys, id, version);
  return (await reportVersion(sql, id, version))!;
}

/**
 * The stored members of a report version — the DiagnosticReport, the resources of `result` and
 * `imagingStudy` — with their version, row version (xmin) and a digest of their stored JSON, taken now.
 */
export async function recordMembers(sql: Sql, report: DiagnosticReport): Promise<void> {
  await sql.query(
    `INSERT INTO report_member (report_id, version, type, id, res_version, row_xmin, digest)
     SELECT $1, $2, r.type, r.id, r.version, r.xmin::text, ${MEMBER_DIGEST_SQL}
       FROM resource r JOIN jsonb_to_recordset($3::jsonb) AS m(type text, id text) ON r.type = m.type AND r.id = m.id
      WHERE NOT r.deleted
     ON CONFLICT DO NOTHING`,
    [report.id, Number(report.meta?.versionId), JSON.stringify(memberRefs(report))]
  );
}

/** The digest of a member: SHA-256 of its stored JSON as PostgreSQL writes it (the sweep recomputes it so). */
const MEMBER_DIGEST_SQL = `encode(sha256(convert_to(r.content::text, 'UTF8')), 'hex')`;

/** The members of a report version: the DiagnosticReport, the resources of `result` and `imagingStudy`. */
function memberRefs(report: DiagnosticReport): { type: string; id: string }[] {
  const refs = [{ type: 'DiagnosticReport', id: report.id as string }];
  for (const r of [...(report.result ?? []), ...(report.imagingStudy ?? [])]) {
    const m = /(?:^|\/)(Observation|ImagingStudy)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/\d+)?$/.exec(r.reference ?? '');
    if (m && !refs.some((x) => x.type === m[1] && x.id === m[2])) refs.push({ type: m[1]!, id: m[2]! });
  }
  return refs;
}

/**
 * Records new report versions, in one statement: the original ($1–$6: id, stored text, exact, digest, alg,
 * fingerprint; none when $1 is null), each version's row and its members ($7: [report id, version, performer,
 * chain status, reasons, member refs] per version), as the statements one at a time did. Answers per version
 * what its seal covers (the members as stored, in MEMBERS_SQL's order) and whether its row was made here.
 */
const RECORD_REPORTS_SQL = prepared(`WITH x AS MATERIALIZED (
    SELECT e->>0 AS report_id, (e->>1)::int AS version, e->>2 AS performer, e->>3 AS status, e->4 AS reasons, e->5 AS refs
      FROM jsonb_array_elements($7::jsonb) AS e),
  o AS (INSERT INTO report_original (id, raw, raw_exact, raw_digest, alg, fingerprint)
        SELECT $1, $2, $3, $4, $5, $6 WHERE $1::text IS NOT NULL RETURNING id, xmin::text AS xmin),
  v AS (INSERT INTO report_version (report_id, version, original_id, original_xmin, alg, fingerprint, performer, chain_status, chain_reasons)
        SELECT x.report_id, x.version, o.id, o.xmin, $5, $6, x.performer, x.status, x.reasons FROM x LEFT JOIN o ON true
        ON CONFLICT (report_id, version) DO UPDATE SET current = true
        RETURNING report_id, version, original_id, alg, fingerprint, seal, derived_from, revision_reason, xmax = 0 AS inserted),
  m AS (INSERT INTO report_member (report_id, version, type, id, res_version, row_xmin, digest)
        SELECT x.report_id, x.version, r.type, r.id, r.version, r.xmin::text, ${MEMBER_DIGEST_SQL}
          FROM x CROSS JOIN LATERAL jsonb_to_recordset(x.refs) AS mm(type text, id text)
          JOIN resource r ON r.type = mm.type AND r.id = mm.id
         WHERE NOT r.deleted
        ON CONFLICT DO NOTHING
        RETURNING report_id, version, type, id, res_version, digest)
SELECT v.*, coalesce((SELECT jsonb_agg(jsonb_build_array(a.type, a.id, a.res_version, a.digest) ORDER BY a.type, a.id)
    FROM (SELECT type, id, res_version, digest FROM m WHERE m.report_id = v.report_id AND m.version = v.version
          UNION ALL
          SELECT type, id, res_version, digest FROM report_member e WHERE e.report_id = v.report_id AND e.version = v.version) a), '[]'::jsonb) AS members
  FROM v`);

/** The seals of new versions ($1: [report id, version, seal]) and their outbox rows ($2: `outboxRow`s). */
const SEAL_AND_QUEUE_SQL = prepared(`WITH s AS (
    UPDATE report_version rv SET seal = s.e->>2 FROM jsonb_array_elements($1::jsonb) AS s(e)
     WHERE rv.report_id = s.e->>0 AND rv.version = (s.e->>1)::int)
  ${ENQUEUE_ROWS_SQL('$2::jsonb')}`);

/** `DiagnosticReport/<id>[/_history/<v>]`, relative or absolute. */
export function parseReportRef(reference: string | undefined): { id: string; version?: number } | undefined {
  const m = /(?:^|\/)DiagnosticReport\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/(\d{1,9}))?$/.exec(reference ?? '');
  return m ? { id: m[1]!, ...(m[2] ? { version: Number(m[2]) } : {}) } : undefined;
}

function performerOf(report: DiagnosticReport): string | null {
  const ref = report.performer?.find((p) => /^Organization\//.test(p.reference ?? ''))?.reference;
  return ref ? ref.slice(0, 200) : null;
}

/** `<alg>:<hex>` in lowercase. */
function formatFp(digest: string): string {
  const d = parseDigest(digest);
  return `${d.alg}:${d.hex}`;
}

/** The outbox key of a recognition record version. */
function recordKey(resource: Resource): string {
  return `DetectedIssue/${resource.id}/_history/${resource.meta?.versionId}`;
}

/** The digest of a recognition record: SM3 of the JCS of the DetectedIssue version as stored. */
export function recordDigest(resource: Resource): string {
  return `${DEFAULT_ALG}:${createHash(DEFAULT_ALG).update(canonicalize(resource), 'utf8').digest('hex')}`;
}
