/**
 * `npm run terminology:generate [-- <catalogue.csv>] [--out <dir>] [--version v] [--effective-from YYYY-MM-DD]
 *  [--scope 广州市] [--hr-label 粤HR]`
 *
 * Writes the platform's terminology (FHIR R4 JSON) into `terminology/` from the recognition catalogue CSV
 * (default `terminology/source/recognition-items.csv`). The catalogue facts come
 * only from the CSV; the output is deterministic (same input and options → byte-identical files), and a
 * `manifest.json` records the source hash and every file written, so a stale or hand-edited file is found
 * by the tests. Files listed in the previous manifest that are no longer generated are removed.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTerminology, type BuildOptions } from '../server/terminology/build.ts';
import { readCatalogueCsv, sha256Hex } from '../server/terminology/catalogue-source.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_CSV = resolve(REPO, 'terminology/source/recognition-items.csv');
export const DEFAULT_OUT = resolve(REPO, 'terminology');

/** The catalogue edition the committed files carry. Bump it (and regenerate) when the catalogue changes. */
export const DEFAULT_OPTIONS: BuildOptions = {
  version: '2024.1.0',
  effectiveFrom: '2024-01-01',
  scope: '广州市',
  hrLabel: '粤HR',
};

export interface Manifest {
  generator: string;
  source: { file: string; sha256: string; rows: number };
  options: BuildOptions;
  files: { file: string; resourceType: string; url: string; sha256: string }[];
}

export class CatalogueErrors extends Error {
  constructor(readonly errors: { line: number; column?: string; message: string }[]) {
    super(`${errors.length} error(s) in the catalogue:\n${errors.map((e) => `  line ${e.line}${e.column ? ` [${e.column}]` : ''}: ${e.message}`).join('\n')}`);
  }
}

/** Generates the terminology files; returns the manifest. Throws CatalogueErrors when the CSV has errors. */
export function generate(csvPath: string, outDir: string, options: BuildOptions = DEFAULT_OPTIONS): Manifest {
  const csv = readFileSync(csvPath);
  const { rows, errors } = readCatalogueCsv(csv.toString('utf8'));
  if (errors.length > 0) throw new CatalogueErrors(errors);
  const files = buildTerminology(rows, options);
  mkdirSync(outDir, { recursive: true });
  const manifestPath = join(outDir, 'manifest.json');
  const previous = existsSync(manifestPath) ? (JSON.parse(readFileSync(manifestPath, 'utf8')) as Partial<Manifest>) : undefined;
  const manifest: Manifest = {
    generator: 'scripts/generate-terminology.ts',
    source: { file: csvPath.split(/[\\/]/).pop() as string, sha256: sha256Hex(csv), rows: rows.length },
    options,
    files: [],
  };
  for (const { file, resource } of files) {
    const text = `${JSON.stringify(resource, null, 2)}\n`;
    writeFileSync(join(outDir, file), text);
    manifest.files.push({ file, resourceType: resource.resourceType, url: resource.url as string, sha256: sha256Hex(text) });
  }
  const current = new Set(files.map((f) => f.file));
  for (const old of previous?.files ?? []) {
    if (!current.has(old.file) && /^[A-Za-z]+-[A-Za-z0-9.-]+\.json$/.test(old.file)) rmSync(join(outDir, old.file), { force: true });
  }
  writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

function parseArgs(argv: string[]): { csv: string; out: string; options: BuildOptions } {
  let csv = DEFAULT_CSV;
  let out = DEFAULT_OUT;
  const options = { ...DEFAULT_OPTIONS };
  const flags: Record<string, (v: string) => void> = {
    '--out': (v) => (out = resolve(v)),
    '--version': (v) => (options.version = v),
    '--effective-from': (v) => {
      if (!/^\d{4}-\d{2}-\d{2}$/.test(v)) throw new Error('--effective-from takes YYYY-MM-DD');
      options.effectiveFrom = v;
    },
    '--scope': (v) => (options.scope = v),
    '--hr-label': (v) => (options.hrLabel = v),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.startsWith('--') ? a.split(/=(.*)/s, 2) : [a, undefined];
    if (flags[flag]) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new Error(`${flag} needs a value`);
      flags[flag](value);
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(`usage: npm run terminology:generate -- [catalogue.csv] [--out dir] [--version v] [--effective-from YYYY-MM-DD] [--scope s] [--hr-label l]\n`);
      process.exit(0);
    } else if (a.startsWith('--')) {
      throw new Error(`unknown option ${a}`);
    } else {
      csv = resolve(a);
    }
  }
  return { csv, out, options };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const { csv, out, options } = parseArgs(process.argv.slice(2));
    const manifest = generate(csv, out, options);
    process.stdout.write(`${manifest.source.rows} catalogue items from ${csv}\n${manifest.files.length} files written to ${out}\n`);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
