/** Configuration from the environment (DESIGN.md §6a). */
import { resolve } from 'node:path';
import { loadBackendClients, type BackendClient } from './auth/backend.ts';
import { loadCdsClients, type CdsClient } from './cds/trust.ts';
import { loadLedgerConfig, type LedgerConfig } from './ledger/config.ts';
import { loadProvenanceConfig, type ProvenanceConfig } from './provenance/config.ts';
import { parseCorsOrigins } from './http/cors.ts';
import { DEFAULT_LIMITS, type Limits } from './fhir/limits.ts';

export interface Config {
  port: number;
  /** Listen address: 127.0.0.1 by default (this machine only); `HOST=0.0.0.0` accepts connections from the network. */
  host: string;
  /** PGlite files, the bootstrap token and (later) the embedded chain live here. */
  dataDir: string;
  /** A PostgreSQL server instead of PGlite. */
  databaseUrl?: string;
  /** Use an in-memory PGlite (tests). */
  inMemory: boolean;
  bootstrapToken?: string;
  /** Largest accepted request body, in bytes (default 16 MiB). */
  maxBodyBytes: number;
  /** Deepest accepted JSON nesting (default 64). */
  maxJsonDepth: number;
  /** Bounds on the work of one request (server/fhir/limits.ts; HUREN_MAX_COUNT, HUREN_MAX_OFFSET, …). */
  limits: Limits;
  /** Longest a single SQL statement may run before it is cancelled and the request answered 503 (0: no limit). */
  statementTimeoutMs: number;
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
  /** Browser origins allowed to call the server (CORS; HUREN_CORS_ORIGINS, comma-separated; none by default; server/http/cors.ts). */
  corsOrigins: string[];
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const dataDir = resolve(overrides.dataDir ?? env.HUREN_DATA_DIR ?? './data');
  return {
    port: intEnv(env.PORT, 8080),
    host: env.HOST || '127.0.0.1',
    dataDir,
    databaseUrl: env.DATABASE_URL || undefined,
    inMemory: env.HUREN_IN_MEMORY === '1',
    bootstrapToken: env.HUREN_BOOTSTRAP_TOKEN || undefined,
    maxBodyBytes: intEnv(env.HUREN_MAX_BODY_BYTES, 16 * 1024 * 1024),
    maxJsonDepth: intEnv(env.HUREN_MAX_JSON_DEPTH, 64),
    limits: overrides.limits ?? {
      maxCount: intEnv(env.HUREN_MAX_COUNT, DEFAULT_LIMITS.maxCount),
      maxOffset: intEnv(env.HUREN_MAX_OFFSET, DEFAULT_LIMITS.maxOffset),
      maxBundleEntries: intEnv(env.HUREN_MAX_BUNDLE_ENTRIES, DEFAULT_LIMITS.maxBundleEntries),
      maxAnswerEntries: intEnv(env.HUREN_MAX_ANSWER_ENTRIES, DEFAULT_LIMITS.maxAnswerEntries),
      maxAnswerBytes: intEnv(env.HUREN_MAX_ANSWER_BYTES, DEFAULT_LIMITS.maxAnswerBytes),
      maxArrayLength: intEnv(env.HUREN_MAX_ARRAY_LENGTH, DEFAULT_LIMITS.maxArrayLength),
      maxIndexRows: intEnv(env.HUREN_MAX_INDEX_ROWS, DEFAULT_LIMITS.maxIndexRows),
    },
    statementTimeoutMs: intEnv(env.HUREN_STATEMENT_TIMEOUT_MS, 30_000),
    publicUrl: env.HUREN_PUBLIC_URL?.replace(/\/$/, '') || undefined,
    logLevel: env.LOG_LEVEL ?? 'info',
    asyncRetentionSeconds: intEnv(env.HUREN_ASYNC_RETENTION_SECONDS, 24 * 3600),
    asyncConcurrency: intEnv(env.HUREN_ASYNC_CONCURRENCY, 2),
    analyzeCron: env.HUREN_ANALYZE_CRON === 'off' ? undefined : env.HUREN_ANALYZE_CRON || '*/30 * * * * *',
    ledger: overrides.ledger ?? loadLedgerConfig(env, { dataDir }),
    provenance: overrides.provenance ?? loadProvenanceConfig(env),
    cdsClients: overrides.cdsClients ?? loadCdsClients(env.HUREN_CDS_CLIENTS),
    clients: overrides.clients ?? loadBackendClients(env.HUREN_CLIENTS),
    corsOrigins: overrides.corsOrigins ?? parseCorsOrigins(env.HUREN_CORS_ORIGINS),
    ...overrides,
  };
}

function intEnv(value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`Expected a non-negative integer, got '${value}'`);
  return n;
}
