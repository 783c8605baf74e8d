/**
 * `npm run catalogue:upgrade -- [options]` — the code upgrade (编码升级) of stored records: legacy price codes
 * completed with the national and platform codes (server/terminology/code-upgrade.ts, docs/catalogue.md).
 *   --server URL --token T   through a running server ($code-upgrade, asynchronous, with progress);
 *   (default)                directly in the store named by DATABASE_URL / HUREN_DATA_DIR (with the
 *                            embedded PGlite store, stop the server first).
 * Options: --type T (repeatable: DiagnosticReport, Observation, ServiceRequest), --batch-size N, --limit N
 * (stop after N resources; run again to continue), --job ID (continue that walk), --restart.
 * Exit codes: 0 the walk is complete and every code was mapped; 1 complete, but some codes could not be
 * mapped or some resources could not be rewritten (listed); 2 usage; 3 failed; 4 stopped before the end
 * (run the command again to continue from the checkpoint).
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from './lib/args.ts';
import { issuesOf, paramsOf, remote, runOperation, UsageError, valueOf } from './lib/fhir-client.ts';
import { createProgress, type Progress } from './lib/progress.ts';
import type { UpgradeOptions, UpgradeReport, UpgradeType } from '../server/terminology/code-upgrade.ts';

const USAGE = `usage: npm run catalogue:upgrade -- [--server URL --token T] [--type T]... [--batch-size N] [--limit N] [--job ID] [--restart]`;
export const EXIT = { ok: 0, unmapped: 1, usage: 2, failed: 3, stopped: 4 } as const;

export async function main(argv: string[], out: NodeJS.WriteStream = process.stdout, err: NodeJS.WriteStream = process.stderr): Promise<number> {
  let args;
  let options: UpgradeOptions;
  try {
    args = parseArgs(argv, { values: ['--server', '--token', '--batch-size', '--limit', '--job'], repeatable: ['--type'], booleans: ['--restart', '--help'] });
    if (args.flags.has('--help')) {
      out.write(`${USAGE}\n`);
      return EXIT.ok;
    }
    if (args.positionals.length > 0) throw new UsageError(`unexpected argument ${args.positionals[0]}`);
    const int = (flag: string) => {
      const v = args!.values.get(flag);
      if (v === undefined) return undefined;
      if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`${flag} takes a positive integer`);
      return Number(v);
    };
    options = {
      types: (args.lists.get('--type') ?? []).flatMap((t) => t.split(',')) as UpgradeType[],
      batchSize: int('--batch-size'),
      limit: int('--limit'),
      jobId: args.values.get('--job'),
      restart: args.flags.has('--restart'),
    };
  } catch (e) {
    err.write(`${(e as Error).message}\n${USAGE}\n`);
    return EXIT.usage;
  }
  const progress = createProgress(err);
  try {
    const server = args.values.get('--server');
    const report = server ? await overHttp(server, args.values.get('--token') ?? process.env.HUREN_TOKEN, options, progress) : await direct(options, progress);
    progress.end();
    out.write(render(report));
    if (!report.complete) return EXIT.stopped;
    return report.unmapped.some((u) => u.reason !== 'no-national') || report.failed.length > 0 ? EXIT.unmapped : EXIT.ok;
  } catch (e) {
    progress.end();
    if (e instanceof UsageError) {
      err.write(`${e.message}\n${USAGE}\n`);
      return EXIT.usage;
    }
    err.write(`code upgrade failed: ${(e as Error).message}\n`);
    return EXIT.failed;
  }
}

async function overHttp(server: string, token: string | undefined, options: UpgradeOptions, progress: Progress): Promise<UpgradeReport> {
  const r = remote(server, token);
  const parameter: unknown[] = [];
  for (const t of options.types ?? []) parameter.push({ name: 'type', valueCode: t });
  if (options.batchSize) parameter.push({ name: 'batchSize', valueInteger: options.batchSize });
  if (options.limit) parameter.push({ name: 'limit', valueInteger: options.limit });
  if (options.jobId) parameter.push({ name: 'job', valueString: options.jobId });
  if (options.restart) parameter.push({ name: 'restart', valueBoolean: true });
  progress.update('upgrade', 0, 1);
  const answer = await runOperation(r, '$code-upgrade', parameter, progress, 'upgrade');
  if (answer.status !== 200) throw new Error(`HTTP ${answer.status}: ${issuesOf(answer.body).join('; ') || 'no details'}`);
  const p = paramsOf(answer.body);
  const get = (n: string) => valueOf(p.get(n)?.[0]);
  const part = (x: any, n: string) => x.part?.filter((y: any) => y.name === n).map(valueOf) ?? [];
  return {
    job: get('job') as string,
    complete: get('complete') as boolean,
    total: get('total') as number,
    scanned: get('scanned') as number,
    upgraded: get('upgraded') as number,
    unchanged: get('unchanged') as number,
    run: { scanned: get('runScanned') as number, upgraded: get('runUpgraded') as number },
    ...(get('mapVersion') ? { mapVersion: get('mapVersion') as string } : {}),
    unmapped: (p.get('unmapped') ?? []).map((u: any) => ({
      code: (part(u, 'code')[0] as { code: string }).code,
      reason: part(u, 'reason')[0],
      count: part(u, 'count')[0],
      examples: part(u, 'example').map((e: any) => e.reference),
    })),
    failed: (p.get('failed') ?? []).map((f: any) => ({ reference: (part(f, 'resource')[0] as { reference: string }).reference, message: part(f, 'message')[0] as string })),
  };
}

async function direct(options: UpgradeOptions, progress: Progress): Promise<UpgradeReport> {
  const { loadConfig } = await import('../server/config.ts');
  const { openDatabase } = await import('../server/db/database.ts');
  const { migrate } = await import('../server/db/migrate.ts');
  const { loadDefinitions } = await import('../server/fhir/definitions.ts');
  const { loadTerminology } = await import('../server/terminology/load.ts');
  const { codeUpgrade, UpgradeRefused } = await import('../server/terminology/code-upgrade.ts');
  const { installEngine } = await import('../server/fhir/engine.ts');
  const { createLogger } = await import('../server/http/observability.ts');
  const { ProvenanceService } = await import('../server/provenance/service.ts');
  const { privacyCodec } = await import('../server/privacy/codec.ts');
  const { PrivacyKeys, privacyKeyFile } = await import('../server/privacy/keys.ts');
  const config = loadConfig();
  loadDefinitions();
  const db = await openDatabase({ url: config.databaseUrl, dataDir: config.inMemory ? undefined : `${config.dataDir}/pglite` });
  // chain provenance's intake sees the upgraded versions, as in the server: they are recorded as the
  // platform's revisions and queued for anchoring (the server's anchoring job anchors them)
  const provenance = new ProvenanceService(db, config, createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, process.stderr));
  // and personal data stays sealed at rest, with the server's keys (server/privacy/)
  installEngine(db, { writeObservers: provenance.engineParts().writeObservers, codec: privacyCodec(new PrivacyKeys(privacyKeyFile(config.dataDir))) });
  try {
    await migrate(db);
    await loadTerminology(db);
    return await codeUpgrade(db, options, { kind: 'bootstrap', id: 'catalogue-upgrade-command', scopes: ['system/*.*'] }, (done, total) => progress.update('upgrade', done, total));
  } catch (e) {
    if (e instanceof UpgradeRefused) throw new UsageError(e.message);
    throw e;
  } finally {
    await provenance.stop().catch(() => undefined);
    await db.close();
  }
}

function render(r: UpgradeReport): string {
  const lines = [
    r.complete ? `code upgrade ${r.job}: complete` : `code upgrade ${r.job}: stopped at ${r.scanned}/${r.total}; run the command again to continue`,
    `  this run: ${r.run.scanned} examined, ${r.run.upgraded} upgraded`,
    `  whole walk: ${r.scanned} examined, ${r.upgraded} upgraded, ${r.unchanged} unchanged${r.mapVersion ? ` (concept map ${r.mapVersion})` : ''}`,
  ];
  if (r.unmapped.length > 0) {
    lines.push(`  codes not fully mapped: ${r.unmapped.length}`);
    for (const u of r.unmapped) lines.push(`    ${u.code} ${u.reason} ×${u.count}${u.examples.length ? ` e.g. ${u.examples.join(', ')}` : ''}`);
  }
  if (r.failed.length > 0) {
    lines.push(`  resources not rewritten: ${r.failed.length}`);
    for (const f of r.failed) lines.push(`    ${f.reference}: ${f.message}`);
  }
  return `${lines.join('\n')}\n`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
