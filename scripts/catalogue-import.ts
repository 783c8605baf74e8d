/**
 * `npm run catalogue:import -- <file.csv|file.xlsx> [options]`
 *
 * Imports an official catalogue file as a new edition of the recognition catalogue (see
 * server/terminology/import.ts and docs/catalogue.md). Two ways to reach the store:
 *   --server URL --token T   through the FHIR API of a running server (CodeSystem/$catalogue-import),
 *                            the recommended way: the servers reload the catalogue at once;
 *   (default)                directly in the store named by DATABASE_URL / HUREN_DATA_DIR, like the server
 *                            (with the embedded PGlite store, stop the server first: one process at a time).
 * Options: --version V, --effective-from YYYY-MM-DD, --scope S, --hr-label L, --new-field F (repeatable),
 * --new-category C (repeatable), --dry-run.
 * Row errors go to standard error as `line N [column]: message`; the progress bar too.
 * Exit codes: 0 imported (or nothing changed), 1 the file has errors (nothing imported), 2 usage,
 * 3 refused or failed (e.g. a version that is not newer, server unreachable).
 */
import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from './lib/args.ts';
import { issuesOf, paramsOf, remote, runOperation, UsageError, valueOf } from './lib/fhir-client.ts';
import { createProgress, type Progress } from './lib/progress.ts';
import type { ImportResult } from '../server/terminology/import.ts';

const USAGE = `usage: npm run catalogue:import -- <file.csv|file.xlsx> [--server URL --token T] [--version V]
       [--effective-from YYYY-MM-DD] [--scope S] [--hr-label L] [--new-field F]... [--new-category C]... [--dry-run]`;

export const EXIT = { ok: 0, rejected: 1, usage: 2, failed: 3 } as const;

/** What the command prints: the import's own report, whether it ran here or on the server. */
type Summary = Omit<ImportResult, 'provenance' | 'sha256'>;

export async function main(argv: string[], out: NodeJS.WriteStream = process.stdout, err: NodeJS.WriteStream = process.stderr): Promise<number> {
  let args;
  try {
    args = parseArgs(argv, {
      values: ['--server', '--token', '--version', '--effective-from', '--scope', '--hr-label'],
      repeatable: ['--new-field', '--new-category'],
      booleans: ['--dry-run', '--help'],
    });
    if (args.flags.has('--help')) {
      out.write(`${USAGE}\n`);
      return EXIT.ok;
    }
    if (args.positionals.length !== 1) throw new UsageError('give exactly one catalogue file');
  } catch (e) {
    err.write(`${(e as Error).message}\n${USAGE}\n`);
    return EXIT.usage;
  }
  const path = resolve(args.positionals[0]);
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch {
    err.write(`cannot read ${path}\n`);
    return EXIT.usage;
  }
  const progress = createProgress(err);
  const options = {
    version: args.values.get('--version'),
    effectiveFrom: args.values.get('--effective-from'),
    scope: args.values.get('--scope'),
    hrLabel: args.values.get('--hr-label'),
    newFields: args.lists.get('--new-field') ?? [],
    newCategories: args.lists.get('--new-category') ?? [],
    dryRun: args.flags.has('--dry-run'),
    fileName: basename(path),
  };
  try {
    const server = args.values.get('--server');
    const result = server ? await overHttp(server, args.values.get('--token') ?? process.env.HUREN_TOKEN, data, options, progress) : await direct(data, options, progress);
    progress.end();
    if ('errors' in result) {
      for (const line of result.errors) err.write(`${line}\n`);
      err.write(`${result.errors.length} error(s) in ${basename(path)}; nothing was imported\n`);
      return EXIT.rejected;
    }
    if ('refused' in result) {
      err.write(`import refused: ${result.refused}\n`);
      return EXIT.failed;
    }
    out.write(report(result));
    return EXIT.ok;
  } catch (e) {
    progress.end();
    if (e instanceof UsageError) {
      err.write(`${e.message}\n${USAGE}\n`);
      return EXIT.usage;
    }
    err.write(`import failed: ${(e as Error).message}\n`);
    return EXIT.failed;
  }
}

type Outcome = Summary | { errors: string[] } | { refused: string };

async function overHttp(server: string, token: string | undefined, data: Buffer, options: Record<string, unknown> & { newFields: string[]; newCategories: string[]; fileName: string }, progress: Progress): Promise<Outcome> {
  const r = remote(server, token);
  const xlsx = /\.xlsx$/i.test(options.fileName);
  const parameter: unknown[] = [
    { name: 'file', valueAttachment: { contentType: xlsx ? 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet' : 'text/csv', title: options.fileName, data: data.toString('base64') } },
  ];
  for (const [name, key] of [['version', 'version'], ['effectiveFrom', 'effectiveFrom'], ['scope', 'scope'], ['hrLabel', 'hrLabel']] as const) {
    if (options[key]) parameter.push({ name, valueString: options[key] });
  }
  for (const f of options.newFields) parameter.push({ name: 'newField', valueString: f });
  for (const c of options.newCategories) parameter.push({ name: 'newCategory', valueString: c });
  if (options.dryRun) parameter.push({ name: 'dryRun', valueBoolean: true });
  progress.update('upload', 0, 1);
  const answer = await runOperation(r, 'CodeSystem/$catalogue-import', parameter, progress);
  if (answer.status === 200) {
    const p = paramsOf(answer.body);
    const get = (n: string) => valueOf(p.get(n)?.[0]);
    return {
      version: get('version') as string,
      previousVersion: get('previousVersion') as string | undefined,
      items: get('items') as number,
      added: get('added') as number,
      changed: get('changed') as number,
      unchanged: get('unchanged') as number,
      retired: get('retired') as number,
      written: get('written') as number,
      dryRun: get('dryRun') as boolean,
      noChange: get('noChange') as boolean,
      codeSystem: (get('codeSystem') as { reference?: string } | undefined)?.reference,
    };
  }
  const lines = issuesOf(answer.body);
  if (answer.status === 422 && (answer.body?.issue ?? []).some((i: any) => i.location?.length)) {
    return { errors: (answer.body.issue as any[]).filter((i) => i.location?.length).map((i) => i.details?.text as string) };
  }
  return { refused: `HTTP ${answer.status}: ${lines.join('; ') || 'no details'}` };
}

async function direct(data: Buffer, options: Parameters<typeof import('../server/terminology/import.ts').importCatalogue>[2], progress: Progress): Promise<Outcome> {
  const { loadConfig } = await import('../server/config.ts');
  const { openDatabase } = await import('../server/db/database.ts');
  const { migrate } = await import('../server/db/migrate.ts');
  const { loadDefinitions } = await import('../server/fhir/definitions.ts');
  const { loadTerminology } = await import('../server/terminology/load.ts');
  const { importCatalogue, ImportRefused, ImportRejected } = await import('../server/terminology/import.ts');
  const config = loadConfig();
  progress.update('open', 0, 1);
  loadDefinitions();
  const db = await openDatabase({ url: config.databaseUrl, dataDir: config.inMemory ? undefined : `${config.dataDir}/pglite` });
  try {
    await migrate(db);
    await loadTerminology(db); // what the server does at start: the store holds the current edition
    const r = await importCatalogue(db, data, options, (phase, done, total) => progress.update(phase, done, total), { kind: 'bootstrap', id: 'catalogue-import-command', scopes: ['system/*.*'] });
    return r;
  } catch (e) {
    if (e instanceof ImportRejected) return { errors: e.errors.map((x) => `line ${x.line}${x.column ? ` [${x.column}]` : ''}: ${x.message}`) };
    if (e instanceof ImportRefused) return { refused: e.message };
    throw e;
  } finally {
    await db.close();
  }
}

function report(r: Summary): string {
  const head = r.dryRun
    ? `dry run: edition ${r.version} would replace ${r.previousVersion ?? 'nothing'}`
    : r.noChange
      ? `nothing to import: the file holds exactly the current edition ${r.previousVersion}`
      : `imported edition ${r.version}${r.previousVersion ? ` (replaces ${r.previousVersion}, still readable in the history)` : ''}`;
  return `${head}\n  items in the file: ${r.items}\n  added: ${r.added}, changed: ${r.changed}, unchanged: ${r.unchanged}, retired: ${r.retired}\n  resources written: ${r.written}${r.codeSystem ? `\n  code system: ${r.codeSystem}` : ''}\n`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
