/**
 * Chain provenance settings from the environment (docs/chain-provenance.md, docs/running.md):
 *
 *   HUREN_ANCHOR_CRON                  when the platform anchors its outbox (cron, default every 10 minutes;
 *                                      `off` disables the schedule — anchorNow() still works)
 *   HUREN_SWEEP_CRON                   when the hash-consistency sweep runs (default every 10 minutes, at 5, 15, …)
 *   HUREN_DEEP_SWEEP_CRON              when the deep sweep runs (every fingerprint recomputed, every digest
 *                                      rehashed; default daily at 03:30)
 *   HUREN_PLATFORM_ANCHORING           on (default) | off: anchor the reports of institutions that did not
 *   HUREN_PLATFORM_ANCHOR_DELAY_SECONDS   anchor them within this delay (default 600) — a late Provenance wins
 *   HUREN_ANCHOR_MAX_BATCH             records per tree and transaction (default 10000)
 *   HUREN_ANCHOR_LEASE_SECONDS         a worker's hold on the batch it anchors (default 30): renewed by a heartbeat
 *                                      every third of it while the worker lives; a crashed worker's batch is
 *                                      taken over once it expires
 *   HUREN_ANCHOR_RETRY_SECONDS         first retry after a chain failure (default 5), doubling up to
 *   HUREN_ANCHOR_RETRY_MAX_SECONDS     (default 600)
 *   HUREN_VERIFY_GIVE_UP_HOURS         an anchor the chain still does not hold after this long is inconsistent
 *                                      (default 24; until then it is pending)
 *   HUREN_CHAIN_RECHECK_PER_SWEEP      consistent anchors looked up again on the chain per sweep (default 200)
 *   HUREN_STATISTICS_CRON              when the chain statistics MeasureReports of yesterday and today
 *                                      (Asia/Shanghai) are generated (default hourly at minute 45; `off` disables)
 *   HUREN_VERIFY_CRON                  how often anchors waiting for the chain are looked for (default every 5 seconds)
 *
 * Each schedule is a job of the platform's scheduler (server/scheduler/): one run per tick across processes.
 */

export interface ProvenanceConfig {
  anchorCron?: string;
  sweepCron?: string;
  deepSweepCron?: string;
  platformAnchoring: boolean;
  platformAnchorDelaySeconds: number;
  maxBatch: number;
  leaseSeconds: number;
  retrySeconds: number;
  retryMaxSeconds: number;
  verifyGiveUpHours: number;
  chainRecheckPerSweep: number;
  statisticsCron?: string;
  verifyCron?: string;
  /** The record seals' key file (HUREN_RECORD_KEY_FILE; default `<data dir>/record-keys.json`), outside the database. */
  recordKeyFile?: string;
  /**
   * The institutions' SM2 public keys (HUREN_INSTITUTION_KEYS: a JSON array, or a file holding one, of
   * `{ organization: "<system>|<value>", kid, publicKey }`; institution-keys.ts). Kept outside the database.
   */
  institutionKeys?: string;
}

export class ProvenanceConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProvenanceConfigError';
  }
}

export function loadProvenanceConfig(env: NodeJS.ProcessEnv = process.env): ProvenanceConfig {
  return {
    anchorCron: cron(env.HUREN_ANCHOR_CRON, '*/10 * * * *'),
    sweepCron: cron(env.HUREN_SWEEP_CRON, '5-59/10 * * * *'),
    deepSweepCron: cron(env.HUREN_DEEP_SWEEP_CRON, '30 3 * * *'),
    platformAnchoring: onOff(env.HUREN_PLATFORM_ANCHORING, true, 'HUREN_PLATFORM_ANCHORING'),
    platformAnchorDelaySeconds: int(env.HUREN_PLATFORM_ANCHOR_DELAY_SECONDS, 600, 'HUREN_PLATFORM_ANCHOR_DELAY_SECONDS'),
    maxBatch: Math.max(1, int(env.HUREN_ANCHOR_MAX_BATCH, 10_000, 'HUREN_ANCHOR_MAX_BATCH')),
    leaseSeconds: Math.max(1, int(env.HUREN_ANCHOR_LEASE_SECONDS, 30, 'HUREN_ANCHOR_LEASE_SECONDS')),
    retrySeconds: Math.max(1, int(env.HUREN_ANCHOR_RETRY_SECONDS, 5, 'HUREN_ANCHOR_RETRY_SECONDS')),
    retryMaxSeconds: Math.max(1, int(env.HUREN_ANCHOR_RETRY_MAX_SECONDS, 600, 'HUREN_ANCHOR_RETRY_MAX_SECONDS')),
    verifyGiveUpHours: int(env.HUREN_VERIFY_GIVE_UP_HOURS, 24, 'HUREN_VERIFY_GIVE_UP_HOURS'),
    chainRecheckPerSweep: int(env.HUREN_CHAIN_RECHECK_PER_SWEEP, 200, 'HUREN_CHAIN_RECHECK_PER_SWEEP'),
    statisticsCron: cron(env.HUREN_STATISTICS_CRON, '45 * * * *'),
    verifyCron: cron(env.HUREN_VERIFY_CRON, '*/5 * * * * *'),
    recordKeyFile: env.HUREN_RECORD_KEY_FILE || undefined,
    institutionKeys: env.HUREN_INSTITUTION_KEYS || undefined,
  };
}

function cron(value: string | undefined, fallback: string): string | undefined {
  const v = value?.trim();
  if (v === undefined || v === '') return fallback;
  if (v === 'off') return undefined;
  return v;
}

function onOff(value: string | undefined, fallback: boolean, what: string): boolean {
  const v = value?.trim().toLowerCase();
  if (v === undefined || v === '') return fallback;
  if (['on', 'true', '1', 'yes'].includes(v)) return true;
  if (['off', 'false', '0', 'no'].includes(v)) return false;
  throw new ProvenanceConfigError(`${what} must be on or off, not '${value}'`);
}

function int(value: string | undefined, fallback: number, what: string): number {
  if (value === undefined || value.trim() === '') return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new ProvenanceConfigError(`${what} must be a non-negative integer, got '${value}'`);
  return n;
}
