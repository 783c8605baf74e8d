/**
 * The recognition catalogue as a source table (`recognition-items.csv` and, later, official catalogue
 * files): reading and checking its rows, and the platform codes derived from them. Pure; shared by the
 * terminology generator and the catalogue import.
 */
import { createHash } from 'node:crypto';
import { parseCsv, CsvSyntaxError, type CsvRecord } from './csv.ts';

/** The two kinds of the 2022 Measures and the ASCII tokens the platform codes use for them. */
export const KINDS = {
  检验: { group: 'LAB', prefix: 'L', valueSet: 'lab', en: 'laboratory test' },
  检查: { group: 'EXAM', prefix: 'E', valueSet: 'exam', en: 'examination' },
} as const;
export type Kind = keyof typeof KINDS;

/**
 * The fields Article 2 of 《医疗机构检查检验结果互认管理办法》(国卫医发〔2022〕6号) names: lab results from
 * 生物学、微生物学、免疫学、化学、血液免疫学、血液学、生物物理学、细胞学 tests; exam results from 超声、X线、
 * 核磁共振成像、电生理、核医学 (both lists end in 等). The import knows these, plus the fields of the current
 * edition (e.g. CT, MR), plus any the administrator admits.
 */
export const ARTICLE2_FIELDS: Record<Kind, readonly string[]> = {
  检验: ['生物学', '微生物学', '免疫学', '化学', '血液免疫学', '血液学', '生物物理学', '细胞学'],
  检查: ['超声', 'X线', '核磁共振成像', '电生理', '核医学'],
};

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
  /** Price per item in 元 (CNY), from the optional `price_cny` column; absent when the file gives none. */
  price?: number;
  /** The platform code: from a `platform_code` column when the file has one, else derived (see platformCode). */
  code: string;
  /** Set for an item carried over from an earlier edition but absent from the new file (default active). */
  status?: 'active' | 'retired';
  /** The item's own effective period, when it differs from the edition's (kept across editions). */
  effectiveFrom?: string;
  effectiveTo?: string;
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
/** A price in 元: a non-negative decimal with at most two fraction digits (分), below 10 million. */
export const PRICE_RE = /^\d{1,7}(?:\.\d{1,2})?$/;

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

export function normalise(s: string): string {
  return s.normalize('NFC').trim();
}

/**
 * Not time-limited: the word an official file may write in `window_days` for an item without a window. An
 * empty cell means the same (the platform's own source leaves it empty for ABO and Rh(D) typing): such an
 * item's results never expire.
 */
export const NO_WINDOW = '不限';

/**
 * Stricter checks for an official catalogue file (the import), on top of those of the generator: every
 * field and category must be known (so a typo does not open a new one), a window is a whole number of days
 * (empty or `不限`: not time-limited), and a national code may name only one item (else the code upgrade could
 * not choose).
 */
export interface StrictChecks {
  /** Known fields per kind (Article 2 of the Measures, those of the current edition, and any admitted). */
  fields: Record<Kind, ReadonlySet<string>>;
  /** Known category names per kind. */
  categories: Record<Kind, ReadonlySet<string>>;
}

export interface CheckOptions {
  strict?: StrictChecks;
  /** Called every few hundred rows while checking. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Reads catalogue rows from CSV text with the columns of `recognition-items.csv`
 * (kind, field, category_zh, item_zh, abbr, nhsa_code, legacy_code, loinc_hint, window_days,
 * window_source, on_lists, note; optionally platform_code and price_cny). Returns every row that passed its checks and
 * every error found, with line numbers; a file with errors should not be published.
 */
export function readCatalogueCsv(text: string, options: CheckOptions = {}): { rows: CatalogueRow[]; errors: RowError[] } {
  let records: CsvRecord[];
  try {
    records = parseCsv(text);
  } catch (err) {
    if (err instanceof CsvSyntaxError) return { rows: [], errors: [{ line: err.line, message: err.message }] };
    throw err;
  }
  return checkCatalogueRecords(records, options);
}

/** A table record: its line (row) in the file and its cells as text. */
export interface SourceRecord extends CsvRecord {
  /** Indexes of cells that were numbers in a spreadsheet (a code typed as a number loses its leading zeros). */
  numeric?: number[];
}

/** Checks the records of a catalogue table (the first is the header); see readCatalogueCsv. */
export function checkCatalogueRecords(records: SourceRecord[], options: CheckOptions = {}): { rows: CatalogueRow[]; errors: RowError[] } {
  const errors: RowError[] = [];
  const strict = options.strict;
  if (records.length === 0) return { rows: [], errors: [{ line: 1, message: 'empty file' }] };
  const header = records[0].fields.map((h) => h.trim());
  const col = new Map(header.map((h, i) => [h, i]));
  const missing = REQUIRED_COLUMNS.filter((c) => !col.has(c));
  if (missing.length > 0) return { rows: [], errors: [{ line: records[0].line, message: `missing column(s): ${missing.join(', ')}` }] };
  if (strict && !col.has('window_days')) return { rows: [], errors: [{ line: records[0].line, message: 'missing column(s): window_days' }] };

  const rows: CatalogueRow[] = [];
  const byIdentity = new Map<string, number>();
  const byCode = new Map<string, number>();
  const byNational = new Map<string, number>();
  const total = records.length - 1;
  for (let r = 1; r < records.length; r++) {
    const rec = records[r];
    if (options.onProgress && r % 250 === 0) options.onProgress(r, total);
    const get = (name: string) => {
      const i = col.get(name);
      return i === undefined ? '' : (rec.fields[i] ?? '').trim();
    };
    const numericHint = (name: string) => {
      const i = col.get(name);
      return i !== undefined && rec.numeric?.includes(i) ? ' (the cell is a number, which loses leading zeros: format the column as text)' : '';
    };
    const err = (column: string | undefined, message: string) => errors.push({ line: rec.line, ...(column ? { column } : {}), message });
    const before = errors.length;
    if (rec.fields.length !== header.length) err(undefined, `expected ${header.length} fields, found ${rec.fields.length}`);
    const kind = get('kind');
    const knownKind = kind in KINDS;
    if (!knownKind) err('kind', `kind must be 检验 or 检查, not '${kind}'`);
    const field = get('field');
    const category = get('category_zh');
    const item = get('item_zh');
    if (!field) err('field', 'field is empty');
    else if (strict && knownKind && !strict.fields[kind as Kind].has(normalise(field))) {
      err('field', `unknown field '${field}' for ${kind} (known: ${[...strict.fields[kind as Kind]].join('、')}); admit a new field explicitly`);
    }
    if (!category) err('category_zh', 'category is empty');
    else if (strict && knownKind && !strict.categories[kind as Kind].has(normalise(category))) {
      err('category_zh', `unknown category '${category}' for ${kind}; admit a new category explicitly`);
    }
    if (!item) err('item_zh', 'item name is empty');
    const nationalCode = get('nhsa_code');
    if (nationalCode && !NATIONAL_CODE_RE.test(nationalCode)) err('nhsa_code', `national code '${nationalCode}' is not 15 digits${numericHint('nhsa_code')}`);
    const legacyCode = get('legacy_code');
    if (legacyCode && !LEGACY_CODE_RE.test(legacyCode)) err('legacy_code', `legacy code '${legacyCode}' is not 9 or 11 digits${numericHint('legacy_code')}`);
    const loinc = get('loinc_hint');
    if (loinc && !LOINC_RE.test(loinc)) err('loinc_hint', `'${loinc}' does not look like a LOINC code`);
    const windowText = get('window_days');
    const noWindow = windowText === NO_WINDOW;
    if (windowText && !noWindow && !/^\d{1,5}$/.test(windowText)) err('window_days', `window '${windowText}' is not a whole number of days (leave it empty or write ${NO_WINDOW} for an item that is not time-limited)`);
    const windowSource = get('window_source');
    if (windowSource && windowSource !== 'S' && windowSource !== 'I') err('window_source', `window source must be S or I, not '${windowSource}'`);
    const priceText = get('price_cny');
    if (priceText && !PRICE_RE.test(priceText)) err('price_cny', `price '${priceText}' is not an amount in 元 (e.g. 25 or 25.50: at most two decimals, no currency sign; leave it empty when unknown)`);
    const explicitCode = get('platform_code');
    if (explicitCode && !PLATFORM_CODE_RE.test(explicitCode)) err('platform_code', `platform code '${explicitCode}' is malformed`);
    // duplicates are found even when a row has other errors
    if (knownKind && item) {
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
    if (strict && nationalCode && NATIONAL_CODE_RE.test(nationalCode)) {
      const twin = byNational.get(nationalCode);
      if (twin !== undefined) err('nhsa_code', `duplicate national code ${nationalCode}: already on line ${twin}`);
      else byNational.set(nationalCode, rec.line);
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
      ...(windowText && !noWindow ? { windowDays: Number(windowText) } : {}),
      ...(windowSource ? { windowSource: windowSource as 'S' | 'I' } : {}),
      onLists: get('on_lists').split(/\s+/).filter(Boolean),
      ...(get('note') ? { note: get('note') } : {}),
      ...(priceText ? { price: Number(priceText) } : {}),
      code,
    });
  }
  options.onProgress?.(total, total);
  return { rows, errors };
}
