/**
 * Catalogue files for the import tests: a large valid file built from the shipped CSV plus generated items,
 * and a file with one row for each kind of error.
 */
import { readFileSync } from 'node:fs';
import { DEFAULT_CSV } from '../../scripts/generate-terminology.ts';

export const HEADER = 'kind,field,category_zh,item_zh,abbr,nhsa_code,legacy_code,loinc_hint,window_days,window_source,on_lists,note';

/** The shipped CSV's data rows, as field arrays. */
export function shippedRows(): string[][] {
  const [, ...lines] = readFileSync(DEFAULT_CSV, 'utf8').split(/\r?\n/).filter((l) => l.trim() !== '');
  return lines.map((l) => l.split(','));
}

export interface GeneratedCatalogue {
  csv: string;
  /** Data rows in the file. */
  rows: number;
  /** Item names of the shipped CSV left out of the file (they become retired). */
  dropped: string[];
  /** A generated item: its name, national and legacy codes. */
  sample: { item: string; national: string; legacy: string; category: string };
  /** Categories the file introduces (to be admitted with newCategory). */
  newCategories: string[];
}

/**
 * A valid catalogue of `total` rows: the shipped items (windows filled in: 不限 where the CSV has none)
 * except the last `drop` of them, then generated items spread over the known categories and two new ones.
 */
export function generateCatalogue(total: number, drop = 2): GeneratedCatalogue {
  const shipped = shippedRows();
  const kept = shipped.slice(0, shipped.length - drop);
  const dropped = shipped.slice(shipped.length - drop).map((r) => r[3]);
  const lines = [HEADER];
  for (const r of kept) {
    const row = [...r];
    if (!row[8]) row[8] = '不限';
    lines.push(row.join(','));
  }
  const categories = [...new Map(kept.map((r) => [`${r[0]}|${r[1]}|${r[2]}`, r])).values()].map((r) => [r[0], r[1], r[2]]);
  const newCategories = ['生化扩展项', '超声扩展项'];
  categories.push(['检验', '化学', newCategories[0]], ['检查', '超声', newCategories[1]]);
  let sample: GeneratedCatalogue['sample'] | undefined;
  for (let i = 0; lines.length - 1 < total; i++) {
    const [kind, field, category] = categories[i % categories.length];
    const item = `${category}测定项目${i + 1}`;
    const national = `0099${String(i + 1).padStart(11, '0')}`;
    const legacy = `99${String(i + 1).padStart(7, '0')}`;
    const window = [7, 30, 90][i % 3];
    lines.push([kind, field, category, item, `G${i + 1}`, national, legacy, '', String(window), 'I', '', 'generated'].join(','));
    if (i === 1000) sample = { item, national, legacy, category };
  }
  return { csv: `${lines.join('\n')}\n`, rows: lines.length - 1, dropped, sample: sample as GeneratedCatalogue['sample'], newCategories };
}

/** A catalogue file with one row per kind of error; `errors` gives the line and column each must be reported at. */
export function errorCatalogue(): { csv: string; errors: { line: number; column?: string; pattern: RegExp }[] } {
  const ok = (name: string, national = '', legacy = '') => ['检验', '化学', '肝功能', name, '', national, legacy, '', '30', 'I', '', ''].join(',');
  const lines = [
    HEADER,
    ok('错误文件项目一', '009900000000001', '990000001'), // line 2: fine
    ok('错误文件项目一'), // 3: duplicate item
    ok('错误文件项目二', '0099000000002'), // 4: national code of 13 digits
    ok('错误文件项目三', '', '9900003'), // 5: legacy code of 7 digits
    ok('错误文件项目四', '', '99000000041'.slice(0, 10)), // 6: legacy code of 10 digits
    ['化验', '化学', '肝功能', '错误文件项目五', '', '', '', '', '30', 'I', '', ''].join(','), // 7: unknown kind
    ['检验', '炼金术', '肝功能', '错误文件项目六', '', '', '', '', '30', 'I', '', ''].join(','), // 8: unknown field
    ['检验', '化学', '肝功能检查', '错误文件项目七', '', '', '', '', '30', 'I', '', ''].join(','), // 9: unknown category
    ['检验', '化学', '肝功能', '错误文件项目八', '', '', '', '', '30', 'X', '', ''].join(','), // 10: window source neither S nor I
    ok('错误文件项目九', '009900000000001'), // 11: duplicate national code
    ['检验', '化学', '肝功能', '错误文件项目十', '', '', '', '', '三十', 'I', '', ''].join(','), // 12: window not a number
  ];
  return {
    csv: `${lines.join('\n')}\n`,
    errors: [
      { line: 3, column: 'item_zh', pattern: /duplicate item/ },
      { line: 4, column: 'nhsa_code', pattern: /not 15 digits/ },
      { line: 5, column: 'legacy_code', pattern: /not 9 or 11 digits/ },
      { line: 6, column: 'legacy_code', pattern: /not 9 or 11 digits/ },
      { line: 7, column: 'kind', pattern: /kind must be/ },
      { line: 8, column: 'field', pattern: /unknown field/ },
      { line: 9, column: 'category_zh', pattern: /unknown category/ },
      { line: 10, column: 'window_source', pattern: /window source must be S or I/ },
      { line: 11, column: 'nhsa_code', pattern: /duplicate national code/ },
      { line: 12, column: 'window_days', pattern: /not a whole number/ },
    ],
  };
}
