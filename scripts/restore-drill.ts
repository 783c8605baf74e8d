/**
 * npm run restore-drill [-- --backup DIR [--chain-dir DIR]] [-- --reports N]
 *
 * The restore drill (docs/operations/备份与恢复.md). Without --backup it is self-contained: a source store with
 * generated reports anchored on the embedded chain, backed up, dropped, restored into a fresh store, and every
 * report verified against the chain. With --backup it restores that backup (made by `npm run backup`) into a
 * fresh store and verifies it. The store is PostgreSQL when DATABASE_URL is set (the drill makes and drops its
 * own databases on that server), else PGlite. Prints the result as JSON; exit code 1 when it does not pass.
 */
import { parseArgs } from './lib/args.ts';
import { runDrill } from './lib/restore-drill.ts';

const args = parseArgs(process.argv.slice(2), { values: ['--backup', '--chain-dir', '--reports'] });
const reports = args.values.has('--reports') ? Number(args.values.get('--reports')) : undefined;
if (reports !== undefined && !(Number.isInteger(reports) && reports > 0 && reports <= 100_000)) {
  console.error('--reports must be a whole number from 1 to 100000');
  process.exit(2);
}
const result = await runDrill({
  databaseUrl: process.env.DATABASE_URL || undefined,
  backup: args.values.get('--backup'),
  chainDir: args.values.get('--chain-dir'),
  reports,
  log: (line) => console.error(`restore-drill: ${line}`),
});
console.log(JSON.stringify(result, null, 2));
console.error(`restore-drill: ${result.passed ? 'PASSED' : 'FAILED'} — ${result.consistent} of ${result.reports} reports consistent with the chain after the restore (${result.store})`);
process.exit(result.passed ? 0 : 1);
