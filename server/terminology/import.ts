/**
 * Import of an official catalogue file (CSV or .xlsx) as a new edition of the platform's terminology.
 *
 * 1. read the file (catalogue-file.ts) and check every row (catalogue-source.ts, strict: known kind, field
 *    and category, 15-digit national and 9/11-digit legacy codes, no duplicate item, platform or national
 *    code, windows in whole days; an item without a window never expires). Any error refuses the whole file:
 *    nothing is written.
 * 2. plan the edition: the file's items, plus the items of the current edition that the file no longer lists,
 *    carried over as `retired` with `effectiveTo` (old records keep resolving; the value sets leave them out).
 *    Items kept from the current edition keep their `effectiveFrom`.
 * 3. build every resource with the generator's code (build.ts) under the new version, and write them in one
 *    transaction as new versions of the same resources (the history keeps each earlier edition, which the
 *    terminology operations still find by version), retire the value sets of fields and categories that
 *    disappeared, and record a Provenance (activity catalogue-import) with the file's SHA-256.
 * 4. reload the in-memory registry (other servers on the same database notice within seconds).
 */
import type { CodeSystem, CodeSystemConcept, Reference, ValueSet } from '@medplum/fhirtypes';
import type { Database } from '../db/database.ts';
import { Repository } from '../fhir/repository.ts';
import { statusOf } from '../fhir/errors.ts';
import type { Principal } from '../http/auth.ts';
import { buildTerminology, type BuildOptions } from './build.ts';
import { CANONICAL_BASE, LEGACY_MAP_URL } from './canonical.ts';
import { readCatalogueFile, CatalogueFileError } from './catalogue-file.ts';
import { ARTICLE2_FIELDS, checkCatalogueRecords, KINDS, normalise, sha256Hex, type CatalogueRow, type Kind, type RowError } from './catalogue-source.ts';
import { compareVersions, reloadTerminology } from './load.ts';
import { platformProvenance } from './provenance.ts';

export interface ImportOptions {
  /** Version of the new edition; default: the current one with its last number increased. Must be newer. */
  version?: string;
  /** Date of the edition and start of the new items' effective period (YYYY-MM-DD); default today (UTC+8). */
  effectiveFrom?: string;
  /** Recognition scope and HR label of the items; default: those of the current edition. */
  scope?: string;
  hrLabel?: string;
  /** Fields admitted beyond Article 2 and the current edition: `名称` (both kinds) or `检查:名称`. */
  newFields?: string[];
  /** Categories admitted beyond the current edition: `名称` or `检验:名称`. */
  newCategories?: string[];
  /** Name of the file, for the descriptions and the Provenance. */
  fileName?: string;
  /** Check and plan only; write nothing. */
  dryRun?: boolean;
}

export type ImportPhase = 'read' | 'check' | 'plan' | 'write' | 'load';
export type ImportProgress = (phase: ImportPhase, done: number, total: number) => void;

export interface ImportResult {
  version: string;
  previousVersion?: string;
  /** Items in the file. */
  items: number;
  added: number;
  changed: number;
  unchanged: number;
  /** Items of the current edition absent from the file, now retired. */
  retired: number;
  /** Resources written (new versions). */
  written: number;
  dryRun: boolean;
  /** True when the file holds exactly the current edition: nothing written. */
  noChange: boolean;
  /** `CodeSystem/recognition-catalogue/_history/N` of the new edition. */
  codeSystem?: string;
  provenance?: string;
  sha256: string;
}

/** The file has row errors: nothing was imported. */
export class ImportRejected extends Error {
  constructor(readonly errors: RowError[]) {
    super(`${errors.length} error(s) in the catalogue file; nothing was imported`);
  }
}

/** The request cannot be carried out (a version that is not newer, a bad option): 4xx. */
export class ImportRefused extends Error {
  constructor(
    message: string,
    readonly option: string,
    readonly status = 422
  ) {
    super(message);
  }
}

const DEFAULT_SCOPE = '广州市';
const DEFAULT_HR_LABEL = '粤HR';
export const VERSION_RE = /^[0-9A-Za-z][0-9A-Za-z.\-]{0,31}$/;

/** Today in China (UTC+8), YYYY-MM-DD. */
export function todayInChina(now = Date.now()): string {
  return new Date(now + 8 * 3600_000).toISOString().slice(0, 10);
}

/** The next version: the last number of the current one increased (2024.1.0 → 2024.1.1). */
export function nextVersion(current: string | undefined): string {
  if (!current) return '1.0.0';
  const m = /^(.*?)(\d+)([^\d]*)$/.exec(current);
  return m ? `${m[1]}${Number(m[2]) + 1}${m[3]}` : `${current}.1`;
}

export async function importCatalogue(db: Database, file: Buffer, options: ImportOptions = {}, progress: ImportProgress = () => undefined, principal?: Principal): Promise<ImportResult> {
  const sha256 = sha256Hex(file);
  const fileName = (options.fileName ?? 'catalogue').split(/[\\/]/).pop() as string;
  const effectiveFrom = options.effectiveFrom ?? todayInChina();
  if (!/^\d{4}-\d{2}-\d{2}$/.test(effectiveFrom) || Number.isNaN(Date.parse(effectiveFrom))) {
    throw new ImportRefused(`effectiveFrom must be a date YYYY-MM-DD, not '${effectiveFrom.slice(0, 20)}'`, 'effectiveFrom', 400);
  }
  if (options.version !== undefined && !VERSION_RE.test(options.version)) {
    throw new ImportRefused(`version '${options.version.slice(0, 40)}' is malformed (letters, digits, dots and dashes)`, 'version', 400);
  }

  progress('read', 0, 1);
  let records;
  try {
    records = await readCatalogueFile(file, fileName);
  } catch (err) {
    if (err instanceof CatalogueFileError) throw new ImportRejected([{ line: err.line ?? 1, message: err.message }]);
    throw err;
  }
  progress('read', 1, 1);

  const repo = new Repository(db);
  const current = await currentCatalogue(repo);
  const old = current ? itemsOf(current) : new Map<string, OldItem>();
  const strict = knownNames(old, options);
  const { rows, errors } = checkCatalogueRecords(records, { strict, onProgress: (done, total) => progress('check', done, total) });
  if (errors.length > 0) throw new ImportRejected(errors);
  if (rows.length === 0) throw new ImportRejected([{ line: 1, message: 'the file has no catalogue rows' }]);

  const previousVersion = current?.version;
  const version = options.version ?? nextVersion(previousVersion);
  if (previousVersion && compareVersions(version, previousVersion) <= 0) {
    throw new ImportRefused(`version ${version} is not newer than the current edition ${previousVersion}`, 'version');
  }

  // plan: the file's items, then the current edition's items that the file no longer lists
  progress('plan', 0, 1);
  const plan: CatalogueRow[] = [];
  let added = 0;
  let changed = 0;
  let unchanged = 0;
  const inFile = new Set<string>();
  for (const row of rows) {
    inFile.add(row.code);
    const before = old.get(row.code);
    if (!before) {
      added++;
      plan.push(row);
      continue;
    }
    if (before.row.status === 'retired') {
      changed++; // back in the catalogue
      plan.push(row);
      continue;
    }
    if (facts(before.row) === facts(row)) unchanged++;
    else changed++;
    plan.push({ ...row, ...(before.row.effectiveFrom ? { effectiveFrom: before.row.effectiveFrom } : {}) });
  }
  let retired = 0;
  for (const [code, item] of old) {
    if (inFile.has(code)) continue;
    if (item.row.status !== 'retired') retired++;
    plan.push({ ...item.row, status: 'retired', effectiveTo: item.row.effectiveTo ?? effectiveFrom });
  }
  const noChange = !!current && added === 0 && changed === 0 && retired === 0;
  const firstItem = [...old.values()][0];
  const build: BuildOptions = {
    version,
    effectiveFrom,
    scope: options.scope ?? firstItem?.scope ?? DEFAULT_SCOPE,
    hrLabel: options.hrLabel ?? firstItem?.hrLabel ?? DEFAULT_HR_LABEL,
    source: `Imported from ${fileName} (sha256 ${sha256}) with the catalogue import; do not edit by hand.`,
  };
  const resources = buildTerminology(plan, build).map((f) => f.resource);
  progress('plan', 1, 1);
  const result: ImportResult = { version, ...(previousVersion ? { previousVersion } : {}), items: rows.length, added, changed, unchanged, retired, written: 0, dryRun: options.dryRun === true, noChange, sha256 };
  if (options.dryRun || noChange) return result;

  const written = await db.transaction(async (sql) => {
    const tx = new Repository(db, sql, true);
    // a concurrent import of another file must not interleave: one at a time
    await sql.query('SELECT pg_advisory_xact_lock(hashtext($1))', ['huren:catalogue-import']);
    const now = await currentCatalogue(tx);
    if (now?.version !== previousVersion) throw new ImportRefused(`the catalogue changed during the import (now ${now?.version ?? 'none'}); run it again`, 'version', 409);
    const stale = await sql.query<{ id: string }>(
      `SELECT id FROM resource WHERE type = 'ValueSet' AND NOT deleted AND (id LIKE 'recognition-field-%' OR id LIKE 'recognition-category-%')
       AND content->>'url' = $1 || id AND content->>'status' <> 'retired'`,
      [`${CANONICAL_BASE}/ValueSet/`]
    );
    const produced = new Set(resources.map((r) => `${r.resourceType}/${r.id}`));
    const retiring = stale.filter((r) => !produced.has(`ValueSet/${r.id}`));
    const total = resources.length + retiring.length + 1;
    let done = 0;
    const targets: Reference[] = [];
    let count = 0;
    for (const resource of resources) {
      const res = await tx.update(resource);
      if (!res.unchanged) count++;
      if (resource.id === 'recognition-catalogue' || resource.url === LEGACY_MAP_URL) {
        targets.push({ reference: `${resource.resourceType}/${resource.id}/_history/${res.resource.meta?.versionId}` });
      }
      progress('write', ++done, total);
    }
    for (const { id } of retiring) {
      const vs = (await tx.read('ValueSet', id)) as ValueSet;
      const { meta: _meta, ...rest } = vs;
      await tx.update({ ...rest, status: 'retired', date: effectiveFrom, description: `${vs.description ?? ''} Retired with edition ${version}: no item of the catalogue is in it any more.`.trim() });
      count++;
      progress('write', ++done, total);
    }
    const provenance = await tx.create(
      platformProvenance({
        activity: 'catalogue-import',
        targets,
        principal,
        dataOperation: 'UPDATE',
        reason: `Catalogue edition ${version}${previousVersion ? ` replaces ${previousVersion}` : ''}: ${added} added, ${changed} changed, ${retired} retired`,
        entity: [{ role: 'source', what: { identifier: { system: 'urn:ietf:rfc:3986', value: `urn:sha256:${sha256}` }, display: fileName } }],
      })
    );
    progress('write', ++done, total);
    return { count, codeSystem: targets.find((r) => r.reference?.startsWith('CodeSystem/'))?.reference, provenance: `Provenance/${provenance.resource.id}` };
  });
  progress('load', 0, 1);
  await reloadTerminology(db);
  progress('load', 1, 1);
  return { ...result, written: written.count, ...(written.codeSystem ? { codeSystem: written.codeSystem } : {}), provenance: written.provenance };
}

async function currentCatalogue(repo: Repository): Promise<CodeSystem | undefined> {
  try {
    return (await repo.read('CodeSystem', 'recognition-catalogue')) as CodeSystem;
  } catch (err) {
    if (statusOf(err) === 404 || statusOf(err) === 410) return undefined;
    throw err;
  }
}

interface OldItem {
  row: CatalogueRow;
  scope?: string;
  hrLabel?: string;
}

/** The items of a catalogue CodeSystem, as rows (to carry them over into the next edition). */
export function itemsOf(cs: CodeSystem): Map<string, OldItem> {
  const out = new Map<string, OldItem>();
  const walk = (concepts: CodeSystemConcept[] | undefined) => {
    for (const c of concepts ?? []) {
      const props = c.property ?? [];
      const one = (code: string) => props.find((p) => p.code === code);
      const str = (code: string) => {
        const p = one(code);
        return p?.valueString ?? p?.valueCode ?? p?.valueDateTime;
      };
      if (str('level') === 'item' && c.code) {
        const kind = str('kind') as Kind;
        if (kind in KINDS) {
          const abbr = c.designation?.find((d) => d.use?.code === 'abbreviation')?.value;
          const windowDays = one('windowDays')?.valueInteger;
          const price = one('price')?.valueDecimal;
          const status = str('status');
          out.set(c.code, {
            row: {
              line: 0,
              kind,
              field: str('field') ?? '',
              category: str('category') ?? '',
              item: c.display ?? c.code,
              ...(abbr ? { abbr } : {}),
              ...(str('nationalCode') ? { nationalCode: str('nationalCode') } : {}),
              ...(str('legacyCode') ? { legacyCode: str('legacyCode') } : {}),
              ...(str('loinc') ? { loinc: str('loinc') } : {}),
              ...(windowDays !== undefined ? { windowDays } : {}),
              ...(str('windowSource') ? { windowSource: str('windowSource') as 'S' | 'I' } : {}),
              onLists: props.filter((p) => p.code === 'onList').map((p) => p.valueString as string),
              ...(str('note') ? { note: str('note') } : {}),
              ...(price !== undefined ? { price } : {}),
              code: c.code,
              ...(status === 'retired' ? { status: 'retired' as const } : {}),
              ...(str('effectiveFrom') ? { effectiveFrom: str('effectiveFrom') } : {}),
              ...(str('effectiveTo') ? { effectiveTo: str('effectiveTo') } : {}),
            },
            scope: str('scope'),
            hrLabel: str('hrLabel'),
          });
        }
      }
      walk(c.concept);
    }
  };
  walk(cs.concept);
  return out;
}

/** The facts of an item that a new edition may change (not its code or effective period). */
function facts(r: CatalogueRow): string {
  return JSON.stringify([r.kind, r.field, r.category, r.item, r.abbr ?? '', r.nationalCode ?? '', r.legacyCode ?? '', r.loinc ?? '', r.windowDays ?? null, r.windowSource ?? '', [...r.onLists].sort(), r.note ?? '', r.price ?? null]);
}

/** Known field and category names per kind: Article 2, the current edition, and those admitted. */
function knownNames(old: Map<string, OldItem>, options: ImportOptions) {
  const fields = { 检验: new Set<string>(ARTICLE2_FIELDS.检验), 检查: new Set<string>(ARTICLE2_FIELDS.检查) };
  const categories = { 检验: new Set<string>(), 检查: new Set<string>() };
  for (const { row } of old.values()) {
    fields[row.kind].add(normalise(row.field));
    categories[row.kind].add(normalise(row.category));
  }
  const admit = (list: string[] | undefined, into: Record<Kind, Set<string>>, option: string) => {
    for (const entry of list ?? []) {
      const m = /^(?:(检验|检查)[:：])?(.+)$/.exec(entry.trim());
      if (!m || !m[2].trim()) throw new ImportRefused(`${option} '${entry.slice(0, 40)}' is empty`, option, 400);
      for (const kind of m[1] ? [m[1] as Kind] : (Object.keys(KINDS) as Kind[])) into[kind].add(normalise(m[2]));
    }
  };
  admit(options.newFields, fields, 'newField');
  admit(options.newCategories, categories, 'newCategory');
  return { fields, categories };
}
