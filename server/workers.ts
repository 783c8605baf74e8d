/**
 * Several server processes behind one port (HUREN_WORKERS, default: the number of cores), with node:cluster:
 * the primary process only supervises — it forks the first worker, waits until it listens (so one-time work
 * such as migrations and key files happens once, not in a race), forks the others, and forks a new worker when
 * one dies. Every worker is a whole server; scheduled jobs still run once per tick across all of them
 * (server/scheduler/). What cannot be shared stays single-process: PGlite (one process owns its data
 * directory) and the embedded chain (a node inside the process) — with either, the server runs one process and
 * says why.
 */
import { availableParallelism } from 'node:os';
import type { Config } from './config.ts';

export interface WorkerPlan {
  workers: number;
  /** Why fewer processes than asked for, when so. */
  reason?: string;
}

/** How many server processes to run for `config` and the HUREN_WORKERS setting (undefined: the cores). */
export function planWorkers(config: Config, setting: string | undefined, cores = availableParallelism()): WorkerPlan {
  let asked = cores;
  if (setting !== undefined && setting !== '') {
    const n = Number(setting);
    if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`HUREN_WORKERS must be a whole number from 1 to 256, not '${setting.slice(0, 20)}'`);
    asked = n;
  }
  if (asked === 1) return { workers: 1 };
  if (!config.databaseUrl) return { workers: 1, reason: 'PGlite is single-process: set DATABASE_URL to run several workers' };
  if (config.ledger.kind === 'embedded') return { workers: 1, reason: 'the embedded chain lives in one process: use HUREN_LEDGER=evm or gov-gateway to run several workers' };
  return { workers: asked };
}
