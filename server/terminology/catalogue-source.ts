/**
 * The recognition catalogue as a source table (`recognition-items.csv` and, later, official catalogue
 * files): reading and checking its rows, and the platform codes derived from them. Pure; shared by the
 * terminology generator and the catalogue import.
 */
import { createHash } from 'node:crypto';
import { parseCsv, CsvSyntaxError } from './csv.ts';

/** The two kinds of the 2022 Measures and the ASCII tokens the platform codes use for them. */
export const KINDS = {
  检验: { group: 'LAB', prefix: 'L', valueSet: 'lab', en: 'laboratory test' },
  检查: { group: 'EXAM', prefix: 'E', valueSet: 'exam', en: 'examination' },
} as const;
export type Kind = keyof typeof KINDS;

export interface CatalogueRow {
  /** Line in the source file (1-based), for error messages. */
  line: number;
  kind: Kind;
  field: string;
  category: string;
  item: string;
  abbr?: string;
  nationalCode?: string;
  legacyCode?: string;
  loinc?: string;
  /** Validity window in days; absent when the item is not time-limited or no value is known. */
  windowDays?: number;
  /** S = published by a hospital notice; I = a proposal to be confirmed. */
  windowSource?: 'S' | 'I';
  onLists: string[];
  note?: string;
  /** The platform code: from a `platform_code` column when the file has one, else derived (see platformCode). */
  code: string;
}

export interface RowError {
  line: number;
  column?: string;
  message: string;
}

const REQUIRED_COLUMNS = ['kind', 'field', 'category_zh', 'item_zh'];
export const NATIONAL_CODE_RE = /^\d{15}$/;
export const LEGACY_CODE_RE = /^(?:\d{9}|\d{11})$/;
export const PLATFORM_CODE_RE = /^[LE]-[0-9A-F]{8}$/;
const LOINC_RE = /^\d{1,7}-\d$/;

/**
 * The platform code of an item: kind prefix + the first 8 hex digits (upper case) of
 * SHA-256("kind|item name"), e.g. `L-1F0C…`. It depends only on the kind and the (NFC, trimmed) item name,
 * so it is stable when rows are appended, reordered, or moved to another field or category.
 */
export function platformCode(kind: Kind, item: string): string {
  return `${KINDS[kind].prefix}-${sha256Hex(`${kind}|${normalise(item)}`).slice(0, 8).toUpperCase()}`;
}

/** Code of the field grouping concept (`F-` + 6 hex digits of SHA-256("field|kind|field")). */
export function fieldCode(kind: Kind, field: string): string {
  return `F-${sha256Hex(`field|${kind}|${normalise(field)}`).slice(0, 6)}`;
}

/** Code of the category grouping concept within a field. */
export function categoryCode(kind: Kind, field: string, category: string): string {
  return `C-${sha256Hex(`category|${kind}|${normalise(field)}|${normalise(category)}`).slice(0, 6)}`;
}

/** Short stable token for the ValueSet of a category across fields (`recognition-category-<token>`). */
export function categoryToken(kind: Kind, category: string): string {
  return sha256Hex(`category-set|${kind}|${normalise(category)}`).slice(0, 6);
}

export function sha256Hex(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

function normalise(s: string): string {
  return s.normalize('NFC').trim();
}

/**
 * Reads catalogue rows from CSV text with the columns of `recognition-items.csv`
 * (kind, field, category_zh, item_zh, abbr, nhsa_code, legacy_code, loinc_hint, window_days,
 * window_source, on_lists, note; optionally platform_code). Returns every row that passed its checks and
 * every error found, with line numbers; a file with errors should not be published.
 */
export function readCatalogueCsv(text: string): { rows: CatalogueRow[]; errors: RowError[] } {
  const errors: RowError[] = [];
  let records;
  try {
    records = parseCsv(text);
  } catch (err) {
    if (err instanceof CsvSyntaxError) return { rows: [], errors: [{ line: err.line, message: err.message }] };
    throw err;
  }
  if (records.length === 0) return { rows: [], errors: [{ line: 1, message: 'empty file' }] };
  const header = records[0].fields.map((h) => h.trim());
  const col = new Map(header.map((h, i) => [h, i]));
  const missing = REQUIRED_COLUMNS.filter((c) => !col.has(c));
  if (missing.length > 0) return { rows: [], errors: [{ line: records[0].line, message: `missing column(s): ${missing.join(', ')}` }] };

  const rows: CatalogueRow[] = [];
  const byIdentity = new Map<string, number>();
  const byCode = new Map<string, number>();
  for (const rec of records.slice(1)) {
    const get = (name: string) => {
      const i = col.get(name);
      return i === undefined ? '' : (rec.fields[i] ?? '').trim();
    };
    const err = (column: string | undefined, message: string) => errors.push({ line: rec.line, ...(column ? { column } : {}), message });
    const before = errors.length;
    if (rec.fields.length !== header.length) err(undefined, `expected ${header.length} fields, found ${rec.fields.length}`);
    const kind = get('kind');
    if (!(kind in KINDS)) err('kind', `kind must be 检验 or 检查, not '${kind}'`);
    const field = get('field');
    const category = get('category_zh');
    const item = get('item_zh');
    if (!field) err('field', 'field is empty');
    if (!category) err('category_zh', 'category is empty');
    if (!item) err('item_zh', 'item name is empty');
    const nationalCode = get('nhsa_code');
    if (nationalCode && !NATIONAL_CODE_RE.test(nationalCode)) err('nhsa_code', `national code '${nationalCode}' is not 15 digits`);
    const legacyCode = get('legacy_code');
    if (legacyCode && !LEGACY_CODE_RE.test(legacyCode)) err('legacy_code', `legacy code '${legacyCode}' is not 9 or 11 digits`);
    const loinc = get('loinc_hint');
    if (loinc && !LOINC_RE.test(loinc)) err('loinc_hint', `'${loinc}' does not look like a LOINC code`);
    const windowText = get('window_days');
    if (windowText && !/^\d{1,5}$/.test(windowText)) err('window_days', `window '${windowText}' is not a whole number of days`);
    const windowSource = get('window_source');
    if (windowSource && windowSource !== 'S' && windowSource !== 'I') err('window_source', `window source must be S or I, not '${windowSource}'`);
    const explicitCode = get('platform_code');
    if (explicitCode && !PLATFORM_CODE_RE.test(explicitCode)) err('platform_code', `platform code '${explicitCode}' is malformed`);
    // duplicates are found even when a row has other errors
    if (kind in KINDS && item) {
      const identity = `${kind}|${normalise(item)}`;
      const twin = byIdentity.get(identity);
      if (twin !== undefined) err('item_zh', `duplicate item: '${item}' (${kind}) already on line ${twin}`);
      else byIdentity.set(identity, rec.line);
      if (!explicitCode || PLATFORM_CODE_RE.test(explicitCode)) {
        const code = explicitCode || platformCode(kind as Kind, item);
        const codeTwin = byCode.get(code);
        if (codeTwin !== undefined && twin === undefined) err(explicitCode ? 'platform_code' : 'item_zh', `platform code ${code} already used on line ${codeTwin}`);
        else if (codeTwin === undefined) byCode.set(code, rec.line);
      }
    }
    if (errors.length > before) continue;

    const k = kind as Kind;
    const code = explicitCode || platformCode(k, item);
    rows.push({
      line: rec.line,
      kind: k,
      field,
      category,
      item,
      ...(get('abbr') ? { abbr: get('abbr') } : {}),
      ...(nationalCode ? { nationalCode } : {}),
      ...(legacyCode ? { legacyCode } : {}),
      ...(loinc ? { loinc } : {}),
      ...(windowText ? { windowDays: Number(windowText) } : {}),
      ...(windowSource ? { windowSource: windowSource as 'S' | 'I' } : {}),
      onLists: get('on_lists').split(/\s+/).filter(Boolean),
      ...(get('note') ? { note: get('note') } : {}),
      code,
    });
  }
  return { rows, errors };
}
