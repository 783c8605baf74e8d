/**
 * Real PostgreSQL clusters of the test's own, made with Debian's server binaries: a primary on a free port
 * and streaming replicas of it (`pg_basebackup -R`), which a test may stop, kill and promote as an operator
 * or Patroni would. The shared test server at 127.0.0.1:5432 is never touched. The server binaries refuse to
 * run as root: as root, they run as the `postgres` user.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface Cluster {
  port: number;
  dir: string;
  /** postgres://postgres@127.0.0.1:port/huren */
  url: string;
  start(): void;
  /** `fast` lets the replicas receive all WAL first; `immediate` is a crash. */
  stop(mode?: 'fast' | 'immediate'): void;
  promote(): void;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
}

/** The directory of Debian's PostgreSQL server binaries, or undefined when they are not installed. */
export function serverBinaries(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  for (const v of readdirSync(root).sort().reverse()) {
    const bin = join(root, v, 'bin');
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_basebackup'))) return bin;
  }
  return undefined;
}

const asRoot = process.getuid?.() === 0;

function run(bin: string, tool: string, args: string[]): void {
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, tool), ...args]] : [join(bin, tool), args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${tool} ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function ownedTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  return dir;
}

function cluster(bin: string, dir: string, port: number): Cluster {
  const url = `postgres://postgres@127.0.0.1:${port}/huren`;
  return {
    port,
    dir,
    url,
    start: () => run(bin, 'pg_ctl', ['-D', join(dir, 'data'), '-l', join(dir, 'log'), '-o', `-p ${port} -k ${dir}`, '-w', '-t', '60', 'start']),
    stop: (mode = 'fast') => run(bin, 'pg_ctl', ['-D', join(dir, 'data'), '-m', mode, '-w', '-t', '60', 'stop']),
    promote: () => run(bin, 'pg_ctl', ['-D', join(dir, 'data'), '-w', '-t', '60', 'promote']),
    async query(sql, params) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return (await client.query(sql, params as unknown[])).rows;
      } finally {
        await client.end();
      }
    },
  };
}

/**
 * A primary with a database `huren` and `replicas` streaming replicas. With `synchronous`, a commit waits
 * until a replica has the WAL (`synchronous_standby_names = '*'`): what the primary acknowledged survives the
 * primary's loss, as in Patroni's synchronous mode.
 */
export async function startReplicatedClusters(bin: string, options: { replicas: number; synchronous: boolean }): Promise<{ primary: Cluster; replicas: Cluster[]; destroy(): void }> {
  const made: Cluster[] = [];
  const destroy = () => {
    for (const c of made) {
      try {
        c.stop('immediate');
      } catch {
        // already stopped
      }
      rmSync(c.dir, { recursive: true, force: true });
    }
  };
  try {
    const primaryDir = ownedTempDir('huren-pg-primary-');
    run(bin, 'initdb', ['-D', join(primaryDir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
    const primary = cluster(bin, primaryDir, await freePort());
    made.push(primary);
    const settings = [
      `listen_addresses = '127.0.0.1'`,
      'wal_level = replica',
      'max_wal_senders = 8',
      'fsync = off',
      'full_page_writes = off',
      ...(options.synchronous ? [`synchronous_standby_names = '*'`] : []),
    ];
    appendFileSync(join(primaryDir, 'data', 'postgresql.conf'), `\n${settings.join('\n')}\n`);
    primary.start();
    // with synchronous commit and no replica yet, a commit would wait: this one commits locally
    const admin = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${primary.port}/postgres` });
    await admin.connect();
    await admin.query(`SET synchronous_commit = local`);
    await admin.query('CREATE DATABASE huren');
    await admin.end();
    const replicas: Cluster[] = [];
    for (let i = 0; i < options.replicas; i++) {
      const dir = ownedTempDir('huren-pg-replica-');
      run(bin, 'pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', join(dir, 'data'), '-R', '-X', 'stream', '-c', 'fast', '--no-sync']);
      const replica = cluster(bin, dir, await freePort());
      made.push(replica);
      replica.start();
      replicas.push(replica);
    }
    // the standbys are streaming once the primary lists them
    for (let i = 0; i < 100; i++) {
      const rows = await primary.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'`);
      if (rows[0].n === options.replicas) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return { primary, replicas, destroy };
  } catch (err) {
    destroy();
    throw err;
  }
}
