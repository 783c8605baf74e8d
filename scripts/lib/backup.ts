/**
 * Backup and restore of a Huren store (docs/operations/备份与恢复.md). A backup is a directory with
 *   database.dump   PostgreSQL: `pg_dump --format=custom` (consistent while the servers run)
 *   pglite.tar.gz   PGlite: the data directory as PGlite dumps it (the server must be stopped: one process)
 *   files/          the data directory's key files, which are kept outside the database on purpose (record
 *                   seal keys, audit chain keys, token-signing keys, the platform secret, the bootstrap token
 *                   file): without them a restored database cannot prove its records
 * The embedded chain (`chain/`) is not in it: the chain is the witness the restore is checked against, it is
 * backed up as a node of its own (docs/ledger.md).
 * For point-in-time recovery on PostgreSQL, a base backup with WAL archiving is the operator's tool
 * (docs/operations/备份与恢复.md); this is the logical backup the drill proves.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

export interface StoreLocation {
  dataDir: string;
  /** A PostgreSQL database; absent: PGlite in `dataDir/pglite`. */
  databaseUrl?: string;
}

/** What stays outside the backup: the database's own directory and the embedded chain node. */
const NOT_FILES = new Set(['pglite', 'chain']);

export async function backupStore(source: StoreLocation, out: string): Promise<{ database: string; files: string[] }> {
  mkdirSync(join(out, 'files'), { recursive: true });
  let database: string;
  if (source.databaseUrl) {
    database = join(out, 'database.dump');
    execFileSync('pg_dump', ['--format=custom', '--no-owner', '--file', database, source.databaseUrl], { stdio: ['ignore', 'ignore', 'pipe'] });
  } else {
    const { PGlite } = await import('@electric-sql/pglite');
    const lite = await PGlite.create({ dataDir: join(source.dataDir, 'pglite') });
    try {
      const dump = await lite.dumpDataDir('gzip');
      database = join(out, 'pglite.tar.gz');
      writeFileSync(database, Buffer.from(await dump.arrayBuffer()));
    } finally {
      await lite.close();
    }
  }
  const files = existsSync(source.dataDir) ? readdirSync(source.dataDir).filter((f) => !NOT_FILES.has(f)) : [];
  for (const f of files) cpSync(join(source.dataDir, f), join(out, 'files', f), { recursive: true, preserveTimestamps: true });
  return { database, files };
}

/** Restores a backup into a fresh store: the database (created if it does not exist) and the key files. */
export async function restoreStore(backup: string, target: StoreLocation): Promise<void> {
  mkdirSync(target.dataDir, { recursive: true });
  if (target.databaseUrl) {
    const dump = join(backup, 'database.dump');
    if (!existsSync(dump)) throw new Error(`${dump}: no PostgreSQL dump in this backup`);
    await createDatabaseIfMissing(target.databaseUrl);
    execFileSync('pg_restore', ['--no-owner', '--exit-on-error', '--dbname', target.databaseUrl, dump], { stdio: ['ignore', 'ignore', 'pipe'] });
  } else {
    const dump = join(backup, 'pglite.tar.gz');
    if (!existsSync(dump)) throw new Error(`${dump}: no PGlite dump in this backup`);
    if (existsSync(join(target.dataDir, 'pglite'))) throw new Error(`${join(target.dataDir, 'pglite')} exists: restore into a fresh data directory`);
    const { PGlite } = await import('@electric-sql/pglite');
    const lite = await PGlite.create({ dataDir: join(target.dataDir, 'pglite'), loadDataDir: new Blob([readFileSync(dump)]) });
    await lite.close();
  }
  const files = join(backup, 'files');
  if (existsSync(files)) for (const f of readdirSync(files)) cpSync(join(files, f), join(target.dataDir, f), { recursive: true, preserveTimestamps: true });
}

async function createDatabaseIfMissing(url: string): Promise<void> {
  const name = decodeURIComponent(new URL(url).pathname.slice(1));
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`restore: database name '${name.slice(0, 70)}' must be a plain lower-case identifier`);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const { rows } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rows.length === 0) await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
}
