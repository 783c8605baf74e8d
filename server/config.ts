/** Configuration from the environment (DESIGN.md §6a). */
import { resolve } from 'node:path';
import { loadBackendClients, type BackendClient } from './auth/backend.ts';
import { loadCdsClients, type CdsClient } from './cds/trust.ts';
import { loadAccountsConfig, type AccountsConfig } from './accounts/config.ts';
import { loadLedgerConfig, type LedgerConfig } from './ledger/config.ts';
import { loadProvenanceConfig, type ProvenanceConfig } from './provenance/config.ts';

export interface Config {
  port: number;
  host: string;
  /** PGlite files, the bootstrap token and (later) the embedded chain live here. */
  dataDir: string;
  /** A PostgreSQL server instead of PGlite. */
  databaseUrl?: string;
  /** Use an in-memory PGlite (tests). */
  inMemory: boolean;
  bootstrapToken?: string;
  /** `production` (HUREN_MODE=production) refuses an operator-set bootstrap token; anything else is development. */
  mode: 'production' | 'development';
  /** Human accounts: password policy, lockout, sessions (HUREN_ACCOUNT_…, HUREN_SESSION_…; server/accounts/config.ts). */
  accounts: AccountsConfig;
  /** Largest accepted request body, in bytes (default 16 MiB). */
  maxBodyBytes: number;
  /** Deepest accepted JSON nesting (default 64). */
  maxJsonDepth: number;
  /** Public base URL of the server, if it sits behind a proxy; otherwise derived from the request. */
  publicUrl?: string;
  logLevel: string;
  /** Asynchronous requests: results kept this long (seconds), jobs run at once (0: no worker). */
  asyncRetentionSeconds: number;
  asyncConcurrency: number;
  /** When tables that grew are analysed (HUREN_ANALYZE_CRON, default every 30 s; `off` disables; server/db/database.ts). */
  analyzeCron?: string;
  /** The chain (HUREN_LEDGER…, server/ledger/config.ts); default the embedded chain under dataDir/chain, opened on first use. */
  ledger: LedgerConfig;
  /** Anchoring, verification and sweep schedules (server/provenance/config.ts). */
  provenance: ProvenanceConfig;
  /** The CDS clients whose signed JWTs are accepted on CDS Hooks calls (HUREN_CDS_CLIENTS; server/cds/trust.ts). */
  cdsClients: CdsClient[];
  /** The hospital systems that get access tokens (SMART Backend Services; HUREN_CLIENTS; server/auth/backend.ts). */
  clients: BackendClient[];
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const dataDir = resolve(overrides.dataDir ?? env.HUREN_DATA_DIR ?? './data');
  return {
    port: intEnv(env.PORT, 8080),
    host: env.HOST ?? '0.0.0.0',
    dataDir,
    databaseUrl: env.DATABASE_URL || undefined,
    inMemory: env.HUREN_IN_MEMORY === '1',
    bootstrapToken: env.HUREN_BOOTSTRAP_TOKEN || undefined,
    mode: env.HUREN_MODE === 'production' ? 'production' : 'development',
    accounts: overrides.accounts ?? loadAccountsConfig(env),
    maxBodyBytes: intEnv(env.HUREN_MAX_BODY_BYTES, 16 * 1024 * 1024),
    maxJsonDepth: intEnv(env.HUREN_MAX_JSON_DEPTH, 64),
    publicUrl: env.HUREN_PUBLIC_URL?.replace(/\/$/, '') || undefined,
    logLevel: env.LOG_LEVEL ?? 'info',
    asyncRetentionSeconds: intEnv(env.HUREN_ASYNC_RETENTION_SECONDS, 24 * 3600),
    asyncConcurrency: intEnv(env.HUREN_ASYNC_CONCURRENCY, 2),
    analyzeCron: env.HUREN_ANALYZE_CRON === 'off' ? undefined : env.HUREN_ANALYZE_CRON || '*/30 * * * * *',
    ledger: overrides.ledger ?? loadLedgerConfig(env, { dataDir }),
    provenance: overrides.provenance ?? loadProvenanceConfig(env),
    cdsClients: overrides.cdsClients ?? loadCdsClients(env.HUREN_CDS_CLIENTS),
    clients: overrides.clients ?? loadBackendClients(env.HUREN_CLIENTS),
    ...overrides,
  };
}

function intEnv(value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`Expected a non-negative integer, got '${value}'`);
  return n;
}
