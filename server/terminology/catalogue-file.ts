/**
 * Reading an official catalogue file: CSV (UTF-8, with or without BOM) or an Excel workbook (.xlsx, first
 * worksheet), into table records that keep their line (row) numbers, for the row checks of
 * catalogue-source.ts. Cells are read as text; a number cell is flagged, because a code typed as a number
 * has lost its leading zeros.
 */
import { CsvSyntaxError, parseCsv } from './csv.ts';
import type { SourceRecord } from './catalogue-source.ts';

export type CatalogueFormat = 'csv' | 'xlsx';

export const XLSX_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
export const CSV_TYPE = 'text/csv';

export class CatalogueFileError extends Error {
  constructor(
    message: string,
    readonly line?: number
  ) {
    super(message);
  }
}

/** The format of a file from its name or content type, else from its first bytes (a ZIP is a workbook). */
export function formatOf(data: Buffer, nameOrType?: string): CatalogueFormat {
  const hint = (nameOrType ?? '').toLowerCase();
  if (hint.endsWith('.xlsx') || hint.includes('spreadsheetml')) return 'xlsx';
  if (hint.endsWith('.csv') || hint.startsWith('text/csv') || hint.startsWith('text/plain')) return 'csv';
  if (hint.endsWith('.xls') || hint.includes('ms-excel')) throw new CatalogueFileError('the old Excel format (.xls) is not supported: save the file as .xlsx or .csv');
  return data.subarray(0, 4).equals(Buffer.from([0x50, 0x4b, 0x03, 0x04])) ? 'xlsx' : 'csv';
}

/** The records of a catalogue file (the first one is the header). */
export async function readCatalogueFile(data: Buffer, nameOrType?: string): Promise<SourceRecord[]> {
  const format = formatOf(data, nameOrType);
  if (format === 'csv') {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(data);
    } catch {
      throw new CatalogueFileError('the CSV file is not UTF-8 text (save it as "CSV UTF-8")');
    }
    try {
      return parseCsv(text);
    } catch (err) {
      if (err instanceof CsvSyntaxError) throw new CatalogueFileError(err.message, err.line);
      throw err;
    }
  }
  return readXlsx(data);
}

async function readXlsx(data: Buffer): Promise<SourceRecord[]> {
  const { default: ExcelJS } = await import('exceljs');
  const workbook = new ExcelJS.Workbook();
  try {
    await workbook.xlsx.load(data as unknown as ArrayBuffer);
  } catch {
    throw new CatalogueFileError('the file is not a readable .xlsx workbook');
  }
  const sheet = workbook.worksheets[0];
  if (!sheet) throw new CatalogueFileError('the workbook has no worksheet');
  const records: SourceRecord[] = [];
  let width = 0;
  sheet.eachRow({ includeEmpty: false }, (row, rowNumber) => {
    const values = row.values as unknown[]; // 1-based: values[0] is empty
    if (records.length === 0) width = Math.max(0, values.length - 1);
    const fields: string[] = [];
    const numeric: number[] = [];
    for (let c = 1; c <= Math.max(width, values.length - 1); c++) {
      const v = values[c];
      if (typeof v === 'number') numeric.push(c - 1);
      fields.push(cellText(v));
    }
    // trailing empty cells beyond the header are not fields
    while (fields.length > width && fields[fields.length - 1] === '') fields.pop();
    if (fields.every((f) => f.trim() === '')) return;
    records.push({ line: rowNumber, fields, ...(numeric.length ? { numeric } : {}) });
  });
  return records;
}

function cellText(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v instanceof Date) return v.toISOString().slice(0, 10);
  if (typeof v === 'object') {
    const o = v as { richText?: { text: string }[]; text?: unknown; result?: unknown; error?: string };
    if (Array.isArray(o.richText)) return o.richText.map((r) => r.text).join('');
    if ('result' in o) return cellText(o.result);
    if (typeof o.text === 'string') return o.text;
    if (o.error) return String(o.error);
  }
  return String(v);
}
