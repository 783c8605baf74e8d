/**
 * The code upgrade (编码升级): stored DiagnosticReport, Observation and ServiceRequest resources whose `code`
 * carries a legacy price code get the national (15-digit) and platform codings the legacy → national →
 * platform ConceptMap gives, next to the original coding (kept). Each changed resource becomes a new version,
 * with a Provenance (target = the new version, entity = the previous one, activity = code-upgrade, agent =
 * the platform, policy = the ConceptMap edition used).
 *
 * - Idempotent: a coding already present is not added again, so a resource already upgraded is left alone.
 * - Resumable: the walk goes by (type, id) in batches, one transaction each, which also moves the checkpoint
 *   in `code_upgrade_job`; a run stopped early (a limit, a crash) continues from the checkpoint.
 * - What cannot be mapped is reported per legacy code: `unmapped` (no mapping), `ambiguous` (several
 *   catalogue items; left for a person to choose), `no-national` (platform code added, no national code known).
 */
import { randomUUID } from 'node:crypto';
import type { CodeableConcept, Coding, Provenance, Resource } from '@medplum/fhirtypes';
import type { Database, Sql } from '../db/database.ts';
import { openStored } from '../fhir/engine.ts';
import { Repository } from '../fhir/repository.ts';
import { FhirError } from '../fhir/errors.ts';
import type { Principal } from '../http/auth.ts';
import { CATALOGUE_SYSTEM, LEGACY_MAP_URL, LEGACY_SYSTEM, NATIONAL_SYSTEM } from './canonical.ts';
import type { ConceptMapIndex } from './conceptmap.ts';
import { terminology } from './load.ts';
import { platformProvenance } from './provenance.ts';

export const UPGRADE_TYPES = ['DiagnosticReport', 'Observation', 'ServiceRequest'] as const;
export type UpgradeType = (typeof UPGRADE_TYPES)[number];

export interface UpgradeOptions {
  /** Types to walk, in this order (default all three). Only for a new walk. */
  types?: UpgradeType[];
  /** Resources per batch (one transaction each); default 100. */
  batchSize?: number;
  /** Stop after this many resources in this run (the walk can be resumed); default: to the end. */
  limit?: number;
  /** Continue this walk (default: the latest unfinished one, else a new walk). */
  jobId?: string;
  /** Abandon any unfinished walk and start from the beginning. */
  restart?: boolean;
}

export type UnmappedReason = 'unmapped' | 'ambiguous' | 'no-national';

export interface UnmappedCode {
  code: string;
  reason: UnmappedReason;
  /** Resources carrying it. */
  count: number;
  /** Up to five of them. */
  examples: string[];
}

export interface UpgradeReport {
  job: string;
  /** True when the walk reached the end. */
  complete: boolean;
  total: number;
  scanned: number;
  upgraded: number;
  unchanged: number;
  /** What this run did (the rest are totals of the walk). */
  run: { scanned: number; upgraded: number };
  unmapped: UnmappedCode[];
  failed: { reference: string; message: string }[];
  mapVersion?: string;
}

export class UpgradeRefused extends Error {
  constructor(
    message: string,
    readonly option: string,
    readonly status = 404
  ) {
    super(message);
  }
}

interface JobRow {
  id: string;
  status: 'open' | 'done' | 'abandoned';
  types: UpgradeType[];
  cursor_type: string | null;
  cursor_id: string;
  total: number;
  scanned: number;
  upgraded: number;
  unchanged: number;
  unmapped: Record<string, { reason: UnmappedReason; count: number; examples: string[] }>;
  failed: { reference: string; message: string }[];
  map_version: string | null;
}

/** What the write observers are told about the versions a code upgrade writes. */
export const CODE_UPGRADE_REVISION = { activity: 'code-upgrade', reason: 'code upgrade' } as const;

const MAX_FAILED = 100;
const MAX_EXAMPLES = 5;

/** The JSONB containment that finds a resource whose code has a legacy coding. */
const LEGACY_FILTER = JSON.stringify([{ system: LEGACY_SYSTEM }]);

export async function codeUpgrade(db: Database, options: UpgradeOptions, principal: Principal, progress: (done: number, total: number) => void = () => undefined): Promise<UpgradeReport> {
  const map = terminology.conceptMap(LEGACY_MAP_URL);
  const batchSize = Math.max(1, Math.min(options.batchSize ?? 100, 1000));
  let job = await resolveJob(db, options, principal);
  let remaining = options.limit ?? Number.POSITIVE_INFINITY;
  const run = { scanned: 0, upgraded: 0 };
  progress(job.scanned, job.total);
  while (job.status === 'open' && remaining > 0) {
    const n = Math.min(batchSize, remaining);
    // one transaction per batch, seen by the write observers as the platform's own revision (chain provenance
    // anchors the new versions in the platform's name, derived from the ones they replace)
    const { row, scanned, upgraded } = await new Repository(db).transaction((repo) => {
      if (repo.writes) repo.writes.revision = CODE_UPGRADE_REVISION;
      return upgradeBatch(repo, job.id, n, map, principal);
    });
    job = row;
    run.scanned += scanned;
    run.upgraded += upgraded;
    remaining -= scanned;
    progress(job.scanned, Math.max(job.total, job.scanned));
    // let other requests in between batches (the embedded store runs every query on this thread)
    await new Promise((resolve) => setImmediate(resolve));
  }
  return reportOf(job, run);
}

/** The walk a run works on: the one named, the latest unfinished one, or a new one. */
async function resolveJob(db: Database, options: UpgradeOptions, principal: Principal): Promise<JobRow> {
  return db.transaction(async (sql) => {
    await sql.query('SELECT pg_advisory_xact_lock(hashtext($1))', ['huren:code-upgrade']);
    if (options.jobId) {
      const rows = await sql.query<JobRow>('SELECT * FROM code_upgrade_job WHERE id = $1', [options.jobId]);
      if (!rows[0] || rows[0].status === 'abandoned') throw new UpgradeRefused(`No code upgrade ${options.jobId.slice(0, 64)} to continue`, 'job');
      return rows[0];
    }
    if (options.restart) {
      await sql.query("UPDATE code_upgrade_job SET status = 'abandoned', updated_at = now() WHERE status = 'open'");
    } else {
      const open = await sql.query<JobRow>("SELECT * FROM code_upgrade_job WHERE status = 'open' ORDER BY created_at DESC LIMIT 1");
      if (open[0]) return open[0];
    }
    const types = options.types?.length ? [...new Set(options.types)] : [...UPGRADE_TYPES];
    const counted = await sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM resource WHERE type = ANY($1::text[]) AND NOT deleted AND content->'code'->'coding' @> $2::jsonb`,
      [types, LEGACY_FILTER]
    );
    const map = terminology.conceptMap(LEGACY_MAP_URL);
    const rows = await sql.query<JobRow>(
      `INSERT INTO code_upgrade_job (id, status, types, cursor_type, total, map_version, started_by)
       VALUES ($1, 'open', $2, $3, $4, $5, $6) RETURNING *`,
      [randomUUID(), JSON.stringify(types), types[0], Number(counted[0]?.n ?? 0), map?.version ?? null, principal.id]
    );
    return rows[0];
  });
}

/** One batch: the next resources of the walk, upgraded, and the checkpoint moved, in one transaction. */
async function upgradeBatch(repo: Repository, jobId: string, n: number, map: ConceptMapIndex | undefined, principal: Principal): Promise<{ row: JobRow; scanned: number; upgraded: number }> {
  const sql = repo.connection;
  // the job row lock serialises runs of the same walk (two servers, or a retried async request)
  const [job] = await sql.query<JobRow>('SELECT * FROM code_upgrade_job WHERE id = $1 FOR UPDATE', [jobId]);
  if (!job || job.status !== 'open') return { row: job, scanned: 0, upgraded: 0 };
  const type = job.cursor_type ?? job.types[0];
  const rows = await sql.query<{ id: string; version: number; content: Resource }>(
    `SELECT id, version, content FROM resource WHERE type = $1 AND NOT deleted AND id > $2
     AND content->'code'->'coding' @> $3::jsonb ORDER BY id LIMIT ${n} FOR UPDATE`,
    [type, job.cursor_id, LEGACY_FILTER]
  );
  if (rows.length === 0) {
    const next = job.types[job.types.indexOf(type as UpgradeType) + 1];
    const [row] = next
      ? await sql.query<JobRow>("UPDATE code_upgrade_job SET cursor_type = $2, cursor_id = '', updated_at = now() WHERE id = $1 RETURNING *", [jobId, next])
      : await sql.query<JobRow>("UPDATE code_upgrade_job SET status = 'done', finished_at = now(), updated_at = now() WHERE id = $1 RETURNING *", [jobId]);
    return { row, scanned: 0, upgraded: 0 };
  }
  const unmapped = job.unmapped;
  const failed = job.failed;
  const provenances: Provenance[] = [];
  let upgraded = 0;
  const now = new Date().toISOString();
  for (const r of rows) {
    const reference = `${type}/${r.id}`;
    const { concept, notes } = upgradeConcept((r.content as Resource & { code?: CodeableConcept }).code, map);
    for (const note of notes) {
      const entry = (unmapped[note.code] ??= { reason: note.reason, count: 0, examples: [] });
      entry.count++;
      if (entry.examples.length < MAX_EXAMPLES && !entry.examples.includes(reference)) entry.examples.push(reference);
    }
    if (!concept) continue;
    try {
      const { meta: _meta, ...rest } = openStored(repo.db, r.content) as Resource & { code?: CodeableConcept };
      const written = await repo.update({ ...rest, code: concept } as Resource, { ifMatch: String(r.version) });
      upgraded++;
      provenances.push(
        platformProvenance({
          activity: 'code-upgrade',
          targets: [{ reference: `${reference}/_history/${written.resource.meta?.versionId}` }],
          entity: [{ role: 'revision', what: { reference: `${reference}/_history/${r.version}` } }],
          principal,
          recorded: now,
          ...(map?.url ? { policy: [`${map.url}${map.version ? `|${map.version}` : ''}`] } : {}),
          reason: 'Legacy price code completed with the national and platform codes (编码升级)',
        })
      );
    } catch (err) {
      if (!(err instanceof FhirError)) throw err;
      // a stored resource the current validation refuses: reported, skipped, the walk goes on
      if (failed.length < MAX_FAILED) failed.push({ reference, message: err.outcome.issue?.[0]?.details?.text?.slice(0, 300) ?? 'refused' });
    }
  }
  if (provenances.length > 0) await repo.createMany(provenances);
  const [row] = await sql.query<JobRow>(
    `UPDATE code_upgrade_job SET cursor_type = $2, cursor_id = $3, scanned = scanned + $4, upgraded = upgraded + $5,
     unchanged = unchanged + $6, unmapped = $7, failed = $8, updated_at = now() WHERE id = $1 RETURNING *`,
    [jobId, type, rows[rows.length - 1].id, rows.length, upgraded, rows.length - upgraded, JSON.stringify(unmapped), JSON.stringify(failed)]
  );
  return { row, scanned: rows.length, upgraded };
}

/**
 * The upgraded code of a resource: each legacy coding followed by the national and platform codings it maps
 * to, unless present already. `concept` is undefined when nothing is to be added.
 */
export function upgradeConcept(code: CodeableConcept | undefined, map: ConceptMapIndex | undefined): { concept?: CodeableConcept; notes: { code: string; reason: UnmappedReason }[] } {
  const codings = code?.coding ?? [];
  const notes: { code: string; reason: UnmappedReason }[] = [];
  const has = (list: Coding[], system: string, c: string) => list.some((x) => x.system === system && x.code === c);
  const out: Coding[] = [];
  let added = 0;
  for (const coding of codings) {
    out.push(coding);
    if (coding.system !== LEGACY_SYSTEM || !coding.code) continue;
    const matches = (map?.translate(LEGACY_SYSTEM, coding.code) ?? []).filter((m) => m.concept.code && m.equivalence !== 'unmatched' && m.equivalence !== 'disjoint');
    const targets = (system: string) => [...new Map(matches.filter((m) => m.concept.system === system).map((m) => [m.concept.code as string, m.concept])).values()];
    const national = targets(NATIONAL_SYSTEM);
    const platform = targets(CATALOGUE_SYSTEM);
    if (national.length === 0 && platform.length === 0) {
      notes.push({ code: coding.code, reason: 'unmapped' });
      continue;
    }
    if (national.length > 1 || platform.length > 1) notes.push({ code: coding.code, reason: 'ambiguous' });
    else if (national.length === 0) notes.push({ code: coding.code, reason: 'no-national' });
    for (const list of [national, platform]) {
      if (list.length !== 1) continue; // several items: a person must choose
      const t = list[0];
      if (has(codings, t.system as string, t.code as string) || has(out, t.system as string, t.code as string)) continue;
      out.push({ system: t.system, code: t.code, ...(t.display ? { display: t.display } : {}) });
      added++;
    }
  }
  return { ...(added > 0 ? { concept: { ...code, coding: out } } : {}), notes };
}

function reportOf(job: JobRow, run: UpgradeReport['run']): UpgradeReport {
  return {
    job: job.id,
    complete: job.status === 'done',
    total: Number(job.total),
    scanned: Number(job.scanned),
    upgraded: Number(job.upgraded),
    unchanged: Number(job.unchanged),
    run,
    unmapped: Object.entries(job.unmapped)
      .map(([code, u]) => ({ code, ...u }))
      .sort((a, b) => b.count - a.count || (a.code < b.code ? -1 : 1)),
    failed: job.failed,
    ...(job.map_version ? { mapVersion: job.map_version } : {}),
  };
}

/** A walk's report without running it (e.g. to show a finished walk). */
export async function upgradeJob(db: Database, id: string): Promise<UpgradeReport | undefined> {
  const rows = await db.query<JobRow>('SELECT * FROM code_upgrade_job WHERE id = $1', [id]);
  return rows[0] ? reportOf(rows[0], { scanned: 0, upgraded: 0 }) : undefined;
}
