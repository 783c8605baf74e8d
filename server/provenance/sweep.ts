/**
 * The hash-consistency sweep: rechecks every report's current version against what was submitted, and
 * notices a report changed in the database behind the server's back.
 *
 * Per report version, intake recorded the original's SHA-256 and, for each stored member (the report, its
 * results, its imaging studies), its version, the row version (`xmin`) of its row, and a SHA-256 of its
 * stored JSON. Any UPDATE of a row — through the server or not — gives it a new xmin, so the sweep
 * compares row versions first and rehashes only rows whose xmin moved: a row rewritten with the same content
 * (a dump restored, VACUUM FULL) is healed by its digest; one whose content differs, or that moved to
 * another version, or vanished, makes the report `inconsistent`, with the reason. It runs as SQL over
 * chunks of reports, so it costs a few index probes per report (goal: ≥ 20,000 reports/s). The chunks are
 * ranges of report_version's pages, read in physical order (see sweepSql); a version row another transaction
 * moves (an UPDATE) from a page not yet read to one already read while the sweep runs is checked by the
 * next sweep, as one inserted there is.
 *
 * The deep sweep (`deep: true`, scheduled daily by default) ignores row versions: it rehashes every member
 * and every original, and recomputes every fingerprint (JCS + SM3/SHA-256) from the original.
 *
 * Also: report versions the server never recorded (written before chain provenance was enabled, or inserted
 * behind its back) get a row (`unanchored`; a new version of a known report is `inconsistent`).
 */
import { engineOf } from '../fhir/engine.ts';
import type { Database } from '../db/database.ts';
import { fingerprint, type HashAlg } from '../fingerprint/index.ts';
import { ensureReportVersion, parseOriginal } from './intake.ts';
import type { RecordKeys } from './record-keys.ts';
import { checkVersionText, MEMBERS_TEXT_AGG_SQL, versionProblem } from './seals.ts';

export interface SweepOptions {
  deep?: boolean;
  /** Reports per SQL round trip (about: a range of report_version's pages holding that many rows). */
  chunk?: number;
  /** Partitions swept at once (connections; PostgreSQL runs them on separate cores). Default 2. */
  workers?: number;
  /** The record seals' keys: each version's seal is checked (seals.ts). The server always passes them. */
  keys?: RecordKeys;
}

export interface SweepResult {
  deep: boolean;
  /** Current report versions checked. */
  checked: number;
  /** Newly flagged inconsistent. */
  flagged: number;
  /** Previously flagged, now matching again. */
  cleared: number;
  /** Rows rewritten with identical content (new xmin), healed. */
  healed: number;
  /** Report versions found without an intake record. */
  unrecorded: number;
  ms: number;
}

interface Row {
  report_id: string;
  version: number;
  integrity_ok: boolean;
  integrity_reasons: string[];
  dr_version: number | null;
  dr_deleted: boolean | null;
  original_id: string | null;
  original_ok: boolean | null;
  original_missing: boolean;
  original_fingerprint: string | null;
  original_xmin_now: string | null;
  original_xmin: string | null;
  fingerprint: string | null;
  alg: string | null;
  raw: string | null;
  raw_digest?: string | null;
  seal?: string | null;
  /** The members' JSON text (MEMBERS_TEXT_AGG_SQL without its brackets); NULL for none. */
  members_json?: string | null;
  derived_from?: number | null;
  revision_reason?: string | null;
  odd: Array<[string, string, number, number | null, boolean | null, string | null, boolean | null, string]> | null;
}

/**
 * One chunk: the current versions in the pages [$1, $2) of report_version (bounded) or from $1 on. Read in
 * the table's physical order, not by report id: intake writes a version, its original and its members (and
 * the resources) together, so neighbouring versions' rows are neighbours in those tables too, and a chunk
 * touches few pages of each (by report id — random UUIDs — every row was on another page). Each version's
 * members are read once (one pass over report_member joined to resource), for both the seal's member list
 * (as its JSON text) and the odd ones.
 */
function sweepSql(deep: boolean, sealed: boolean, bounded: boolean): string {
  const xminSame = (col: string, stored: string) => (deep ? 'false' : `${col}::text = ${stored}`);
  return `
  SELECT rv.report_id, rv.version, rv.integrity_ok, rv.integrity_reasons, rv.fingerprint, rv.alg, rv.original_id, rv.original_xmin,
         ${sealed ? `o.raw_digest, rv.seal, rv.derived_from, rv.revision_reason, mm.members_json,` : ''}
         d.version AS dr_version, d.deleted AS dr_deleted,
         (rv.original_id IS NOT NULL AND o.id IS NULL) AS original_missing,
         CASE WHEN o.id IS NULL THEN NULL
              WHEN ${xminSame('o.xmin', 'rv.original_xmin')} THEN true
              ELSE encode(sha256(convert_to(o.raw, 'UTF8')), 'hex') = o.raw_digest END AS original_ok,
         o.fingerprint AS original_fingerprint, o.xmin::text AS original_xmin_now,
         ${deep ? 'o.raw' : 'NULL::text AS raw'},
         mm.odd
    FROM report_version rv
    LEFT JOIN resource d ON d.type = 'DiagnosticReport' AND d.id = rv.report_id
    LEFT JOIN report_original o ON o.id = rv.original_id
    CROSS JOIN LATERAL (
      SELECT ${sealed ? `${MEMBERS_TEXT_AGG_SQL} AS members_json,` : ''}
             jsonb_agg(jsonb_build_array(m.type, m.id, m.res_version, r.version, r.deleted, r.xmin::text,
                 CASE WHEN r.id IS NULL OR r.version <> m.res_version THEN NULL
                      ELSE encode(sha256(convert_to(r.content::text, 'UTF8')), 'hex') = m.digest END, m.row_xmin))
               FILTER (WHERE r.id IS NULL OR r.deleted OR r.version <> m.res_version OR NOT (${xminSame('r.xmin', 'm.row_xmin')})) AS odd
        FROM report_member m LEFT JOIN resource r ON r.type = m.type AND r.id = m.id
       WHERE m.report_id = rv.report_id AND m.version = rv.version) mm
   WHERE rv.current AND rv.ctid >= $1::tid${bounded ? ' AND rv.ctid < $2::tid' : ''}`;
}

export async function sweep(db: Database, options: SweepOptions = {}): Promise<SweepResult> {
  const t0 = performance.now();
  const deep = options.deep === true;
  const chunk = options.chunk ?? 4000;
  const workers = db.engine === 'postgres' ? Math.max(1, options.workers ?? 2) : 1;
  const result: SweepResult = { deep, checked: 0, flagged: 0, cleared: 0, healed: 0, unrecorded: 0, ms: 0 };
  result.unrecorded = await recordUnknownVersions(db, options.keys);
  const sealed = options.keys !== undefined;
  const texts = { bounded: sweepSql(deep, sealed, true), open: sweepSql(deep, sealed, false) };
  // PostgreSQL would JIT-compile each chunk's query (tens of ms for a query that runs a few hundred), and
  // plan it parallel (a Gather over a seq scan of all report_version, not the TID range scan of the chunk's
  // pages; the connections already keep the cores busy)
  const read = (range: Range) => {
    const [text, params] = range.before === null ? [texts.open, [range.from]] : [texts.bounded, [range.from, range.before]];
    return db.engine === 'postgres'
      ? db.transaction(async (sql) => {
          await sql.query(`SELECT set_config('jit', 'off', true), set_config('max_parallel_workers_per_gather', '0', true)`);
          return sql.query<Row>(text, params);
        })
      : db.query<Row>(text, params);
  };
  const next = await pageRanges(db, chunk);
  const rewritten = new Set<string>();
  await Promise.all(Array.from({ length: workers }, () => sweepPartition(db, read, next, rewritten, deep, result, options.keys)));
  result.ms = Math.round(performance.now() - t0);
  return result;
}

/** A range of report_version's pages, as tids: [from, before) (before null: to the end of the table). */
interface Range {
  from: string;
  before: string | null;
}

/**
 * The page ranges of report_version, about `chunk` rows each (from the table's statistics), claimed in turn
 * by the connections; the last is open-ended (pages added while the sweep runs).
 */
async function pageRanges(db: Database, chunk: number): Promise<() => Range | undefined> {
  const [stats] = await db.query<{ pages: string; rows_per_page: number | null }>(
    `SELECT pg_relation_size('report_version') / current_setting('block_size')::int AS pages,
            CASE WHEN c.relpages > 0 AND c.reltuples > 0 THEN c.reltuples / c.relpages END AS rows_per_page
       FROM pg_class c WHERE c.oid = 'report_version'::regclass`
  );
  const pages = Number(stats?.pages ?? 0);
  const step = Math.max(1, Math.round(chunk / Math.max(1, Number(stats?.rows_per_page ?? 10))));
  let page = 0;
  let done = false;
  return () => {
    if (done) return undefined;
    const from = `(${page},0)`;
    page += step;
    if (page < pages) return { from, before: `(${page},0)` };
    done = true;
    return { from, before: null };
  };
}

async function sweepPartition(
  db: Database,
  read: (range: Range) => Promise<Row[]>,
  next: () => Range | undefined,
  rewritten: Set<string>,
  deep: boolean,
  result: SweepResult,
  keys?: RecordKeys
): Promise<void> {
  for (;;) {
    const range = next();
    if (!range) break;
    // a row this sweep updated (its new row version may be on a later page) is not checked twice
    const rows = (await read(range)).filter((r) => !rewritten.has(r.report_id));
    result.checked += rows.length;
    const updates: Array<[string, number, boolean, string[]]> = [];
    const heals: Array<[string, number, string, string, string]> = [];
    const originalHeals: Array<[string, number, string]> = [];
    for (const r of rows) {
      const reasons: string[] = [];
      if (r.dr_version === null) reasons.push(`DiagnosticReport/${r.report_id} is missing from the store`);
      else if (r.dr_deleted) {
        // deleted through the server: no longer current (the observer marks it; a deletion behind its back too)
        reasons.push(`DiagnosticReport/${r.report_id} was deleted without the server`);
      } else if (Number(r.dr_version) !== Number(r.version)) {
        reasons.push(`DiagnosticReport/${r.report_id} is at version ${r.dr_version} in the store, but version ${r.version} is the last one written through the server`);
      }
      if (r.original_missing) reasons.push('the original Bundle is missing from the database');
      if (r.original_ok === false) reasons.push('the original Bundle was changed in the database (its digest no longer matches the one taken at intake)');
      else if (r.original_ok === true && r.original_xmin_now !== r.original_xmin && r.original_xmin_now) originalHeals.push([r.report_id, r.version, r.original_xmin_now]);
      if (r.original_fingerprint !== null && r.original_fingerprint !== r.fingerprint) {
        reasons.push(`the fingerprint recorded for this version (${r.fingerprint}) is not the original's (${r.original_fingerprint})`);
      }
      if (deep && r.raw !== null && r.original_ok !== false) {
        try {
          const fp = fingerprint(parseOriginal(engineOf(db).codec.openText(r.raw)), (r.alg ?? 'sm3') as HashAlg);
          if (fp !== r.fingerprint) reasons.push(`the fingerprint recomputed from the original (${fp}) is not the one recorded at intake (${r.fingerprint})`);
        } catch (e) {
          reasons.push(`the original Bundle can no longer be read: ${(e as Error).message.slice(0, 120)}`);
        }
      }
      if (keys) {
        const problem = versionProblem(checkVersionText(keys, { ...r, raw_digest: r.raw_digest ?? null, seal: r.seal ?? null }, r.members_json ? `[${r.members_json}]` : '[]'));
        if (problem) reasons.push(problem);
      }
      for (const [type, id, resVersion, version, deleted, xmin, digestOk, storedXmin] of r.odd ?? []) {
        const name = `${type}/${id}`;
        if (version === null) reasons.push(`${name} is missing from the store`);
        else if (deleted) reasons.push(`${name} was deleted after the report was submitted`);
        else if (Number(version) !== Number(resVersion)) reasons.push(`${name} is now version ${version}; the report was submitted with version ${resVersion}`);
        else if (digestOk === false) reasons.push(`${name} was changed in the database behind the server's back (same version, different content)`);
        else if (digestOk === true && xmin && xmin !== storedXmin) heals.push([r.report_id, r.version, type, id, xmin]);
      }
      const ok = reasons.length === 0;
      const before = Array.isArray(r.integrity_reasons) ? r.integrity_reasons : [];
      if (ok !== r.integrity_ok || JSON.stringify(before) !== JSON.stringify(reasons)) {
        updates.push([r.report_id, r.version, ok, reasons]);
        if (!ok && r.integrity_ok) result.flagged++;
        if (ok && !r.integrity_ok) result.cleared++;
      }
    }
    for (const [id] of [...updates, ...originalHeals]) rewritten.add(id);
    if (updates.length > 0) {
      await db.query(
        `UPDATE report_version rv SET integrity_ok = (x.e->>2)::boolean, integrity_reasons = x.e->3, swept_at = now()
           FROM jsonb_array_elements($1::jsonb) AS x(e) WHERE rv.report_id = x.e->>0 AND rv.version = (x.e->>1)::int`,
        [JSON.stringify(updates)]
      );
    }
    if (heals.length > 0) {
      result.healed += heals.length;
      await db.query(
        `UPDATE report_member m SET row_xmin = x.e->>4 FROM jsonb_array_elements($1::jsonb) AS x(e)
          WHERE m.report_id = x.e->>0 AND m.version = (x.e->>1)::int AND m.type = x.e->>2 AND m.id = x.e->>3`,
        [JSON.stringify(heals)]
      );
    }
    if (originalHeals.length > 0) {
      result.healed += originalHeals.length;
      await db.query(
        `UPDATE report_version rv SET original_xmin = x.e->>2 FROM jsonb_array_elements($1::jsonb) AS x(e)
          WHERE rv.report_id = x.e->>0 AND rv.version = (x.e->>1)::int`,
        [JSON.stringify(originalHeals)]
      );
    }
  }
}

/** Current DiagnosticReport versions without a report_version row: recorded now (at most `limit` per sweep). */
async function recordUnknownVersions(db: Database, keys: RecordKeys | undefined, limit = 10_000): Promise<number> {
  const rows = await db.query<{ id: string; version: number; known: boolean }>(
    `SELECT r.id, r.version, EXISTS (SELECT 1 FROM report_version k WHERE k.report_id = r.id) AS known
       FROM resource r
      WHERE r.type = 'DiagnosticReport' AND NOT r.deleted
        AND NOT EXISTS (SELECT 1 FROM report_version rv WHERE rv.report_id = r.id AND rv.version = r.version)
      LIMIT $1`,
    [limit]
  );
  for (const r of rows) {
    // a new version of a known report that the server never wrote: the current row is flagged by the sweep
    if (r.known || !keys) continue;
    await db.transaction((sql) => ensureReportVersion(sql, r.id, Number(r.version), keys));
  }
  return rows.filter((r) => !r.known).length;
}
