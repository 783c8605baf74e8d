/**
 * npm run backup -- OUT_DIR
 *
 * A logical backup of the store named by DATABASE_URL / HUREN_DATA_DIR (like the server): the database
 * (pg_dump custom format on PostgreSQL, which is consistent while the servers run; on PGlite the server must be
 * stopped) and the data directory's key files. docs/operations/备份与恢复.md; `npm run restore-drill -- --backup
 * OUT_DIR` proves it restores.
 */
import { existsSync, readdirSync } from 'node:fs';
import { loadConfig } from '../server/config.ts';
import { backupStore } from './lib/backup.ts';

const out = process.argv[2];
if (!out || out.startsWith('--')) {
  console.error('usage: npm run backup -- OUT_DIR');
  process.exit(2);
}
if (existsSync(out) && readdirSync(out).length > 0) {
  console.error(`${out} is not empty: back up into a new directory`);
  process.exit(2);
}
const config = loadConfig();
const made = await backupStore({ dataDir: config.dataDir, databaseUrl: config.databaseUrl }, out);
console.log(JSON.stringify({ out, ...made }, null, 2));
