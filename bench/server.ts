/**
 * The server under test runs as a child process (`node --import tsx server/main.ts`), so that the load
 * generator never shares its event loop. For PostgreSQL it gets a fresh database (dropped afterwards); for
 * PGlite a temporary data directory (removed afterwards).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
/**
 * The PostgreSQL server of the benchmark, on this machine: through its Unix socket when it has one (as a server
 * on the database's own machine would be configured: measured on the report transaction, about 1 ms less server
 * CPU and less PostgreSQL CPU than loopback TCP), else 127.0.0.1:5432. HUREN_BENCH_PG_URL overrides.
 */
const SOCKET_DIR = '/var/run/postgresql';
export const ADMIN_DB_URL =
  process.env.HUREN_BENCH_PG_URL ??
  (existsSync(`${SOCKET_DIR}/.s.PGSQL.5432`) ? `postgres://postgres@localhost/postgres?host=${encodeURIComponent(SOCKET_DIR)}` : 'postgres://postgres@127.0.0.1:5432/postgres');
/** How the server reaches PostgreSQL, for the results. */
export const PG_CONNECTION = new URL(ADMIN_DB_URL).searchParams.get('host')?.startsWith('/') ? 'unix socket' : 'tcp';

export type Store = 'pglite' | 'postgres';

export interface ServerOptions {
  store: Store;
  /** Extra node flags for the server process (e.g. --cpu-prof). */
  nodeFlags?: string[];
  /** Keep the PostgreSQL database instead of dropping it (for EXPLAIN afterwards). */
  keepDatabase?: boolean;
  /** Use this existing database instead of creating one (it is not dropped). */
  databaseName?: string;
  /** Extra environment of the server process (e.g. HUREN_ANCHOR_CRON). */
  env?: Record<string, string>;
  /** The data directory of another server on the same database (its key files); left in place at stop. */
  dataDir?: string;
}

export interface RunningServer {
  store: Store;
  baseUrl: string;
  token: string;
  pid: number;
  databaseUrl?: string;
  databaseName?: string;
  dataDir: string;
  /** Version string of the database engine (PostgreSQL server, or PGlite's embedded PostgreSQL). */
  engineVersion?: string;
  /** CPU seconds (user + system) used so far by the server process. */
  cpuSeconds(): number;
  /** The server process's resident memory now and at its peak (VmRSS, VmHWM), in MB. */
  memory(): ProcessMemory;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export async function adminQuery<T = Record<string, unknown>>(text: string, url = ADMIN_DB_URL, params?: unknown[]): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text, params)).rows as T[];
  } finally {
    await client.end();
  }
}

/** Where a kept bench database's data directory is (its keys): beside the system's temporary files, by name. */
export function keptDataDir(databaseName: string): string {
  return join(tmpdir(), `huren-bench-data-${databaseName}`);
}

function dbUrl(name: string): string {
  const url = new URL(ADMIN_DB_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** user+system CPU seconds of a process, from /proc (Linux); NaN elsewhere. */
export interface ProcessMemory {
  rssMB: number;
  peakMB: number;
}

/** Resident memory of a process from /proc (NaN when it is gone). */
export function processMemory(pid: number): ProcessMemory {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { rssMB: Math.round(kb('VmRSS') / 102.4) / 10, peakMB: Math.round(kb('VmHWM') / 102.4) / 10 };
  } catch {
    return { rssMB: Number.NaN, peakMB: Number.NaN };
  }
}

export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[11] = utime, fields[12] = stime (1-based 14 and 15 in proc(5)), in clock ticks (100/s on Linux)
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  let dataDir = mkdtempSync(join(tmpdir(), 'huren-bench-'));
  let databaseName: string | undefined;
  let databaseUrl: string | undefined;
  let created = false;
  if (options.store === 'postgres') {
    if (options.databaseName) {
      databaseName = options.databaseName;
    } else {
      databaseName = `huren_bench_${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}_${randomBytes(2).toString('hex')}`;
      await adminQuery(`CREATE DATABASE ${databaseName}`);
      created = true;
    }
    databaseUrl = dbUrl(databaseName);
    // a kept database keeps its data directory (the privacy and record keys its sealed rows need): a later run
    // with --database starts on both
    if (options.keepDatabase || options.databaseName) {
      rmSync(dataDir, { recursive: true, force: true });
      dataDir = keptDataDir(databaseName);
      mkdirSync(dataDir, { recursive: true });
    }
  }
  if (options.dataDir) {
    rmSync(dataDir, { recursive: true, force: true });
    dataDir = options.dataDir;
  }
  const port = await freePort();
  const token = randomBytes(24).toString('base64url');
  const child: ChildProcess = spawn(process.execPath, [...(options.nodeFlags ?? []), '--import', 'tsx', 'server/main.ts'], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      HUREN_DATA_DIR: dataDir,
      DATABASE_URL: databaseUrl ?? '',
      HUREN_BOOTSTRAP_TOKEN: token,
      LOG_LEVEL: 'warn',
      NODE_ENV: 'production',
      // the load generator is one address (and one token) sending thousands of requests a second: the per-source
      // and per-caller request limits (docs/security.md, test/edge.test.ts) would answer most of them 429
      HUREN_RATE_API_PER_SOURCE: '1000000000',
      HUREN_RATE_API_PER_CLIENT: '1000000000',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-4000)));
  child.stderr!.on('data', (c: Buffer) => {
    output = (output + c.toString()).slice(-4000);
    process.stderr.write(`[server] ${c}`);
  });
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));

  const cleanup = async () => {
    if (!options.dataDir && !(options.store === 'postgres' && (options.keepDatabase || options.databaseName))) rmSync(dataDir, { recursive: true, force: true });
    if (created && !options.keepDatabase) await adminQuery(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`);
  };

  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 180_000; // PGlite on a loaded machine can take a minute
  for (;;) {
    if (exited) {
      await cleanup();
      throw new Error(`The server exited during start:\n${output}`);
    }
    try {
      const res = await fetch(`${baseUrl}/readyz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await cleanup();
      throw new Error(`The server did not become ready within 180 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }

  let engineVersion: string | undefined;
  if (databaseUrl) {
    engineVersion = (await adminQuery<{ v: string }>('SHOW server_version', databaseUrl).catch(() => []))[0]?.v;
  } else {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules/@electric-sql/pglite/package.json'), 'utf8'));
    engineVersion = `PGlite ${pkg.version} (embedded PostgreSQL 18 in WASM)`;
  }

  const pid = child.pid as number;
  return {
    store: options.store,
    baseUrl,
    token,
    pid,
    databaseUrl,
    databaseName,
    dataDir,
    engineVersion,
    cpuSeconds: () => processCpuSeconds(pid),
    memory: () => processMemory(pid),
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exitPromise;
        clearTimeout(timer);
      }
      await cleanup();
    },
  };
}

/**
 * CPU of the PostgreSQL processes that work for the benchmark: the backends connected to its database and
 * the shared WAL writer, checkpointer and background writer (other databases on the same server — other
 * people's tests — are left out). Sampled every second, so that backends which exit are still counted up
 * to their last sample.
 */
export class PostgresCpu {
  private readonly start = new Map<number, number>();
  private readonly last = new Map<number, number>();
  private timer?: NodeJS.Timeout;
  constructor(private readonly databaseName: string) {}

  begin(): void {
    this.sample(true);
    this.timer = setInterval(() => this.sample(false), 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** CPU seconds used by the tracked processes since `begin()`. */
  seconds(): number {
    this.sample(false);
    let total = 0;
    for (const [pid, cpu] of this.last) total += cpu - (this.start.get(pid) ?? 0);
    return total;
  }

  private sample(initial: boolean): void {
    let pids: string[];
    try {
      pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
    } catch {
      return;
    }
    for (const p of pids) {
      const pid = Number(p);
      try {
        if (!this.last.has(pid)) {
          const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
          if (!cmdline.startsWith('postgres: ')) continue;
          const ours = cmdline.includes(` ${this.databaseName} `) || /^postgres: (?:\S+ )?(walwriter|checkpointer|background writer)/.test(cmdline);
          if (!ours) continue;
        }
        const cpu = processCpuSeconds(pid);
        if (Number.isNaN(cpu)) continue;
        if (initial || !this.last.has(pid)) this.start.set(pid, initial ? cpu : (this.start.get(pid) ?? 0));
        this.last.set(pid, cpu);
      } catch {
        // exited
      }
    }
  }
}
