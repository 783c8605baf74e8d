/** Configuration from the environment (DESIGN.md §6a). */
import { resolve } from 'node:path';
import { loadBackendClients, type BackendClient } from './auth/backend.ts';
import { loadCdsClients, type CdsClient } from './cds/trust.ts';
import { loadAccountsConfig, type AccountsConfig } from './accounts/config.ts';
import { loadLedgerConfig, type LedgerConfig } from './ledger/config.ts';
import { loadProvenanceConfig, type ProvenanceConfig } from './provenance/config.ts';
import { loadExchangeConfig, type ExchangeConfig } from './exchange/config.ts';
import { parseCorsOrigins } from './http/cors.ts';
import { DEFAULT_LIMITS, type Limits } from './fhir/limits.ts';

export interface Config {
  /**
   * `production` (HUREN_MODE=production): HUREN_PUBLIC_URL (https) is required, key URLs must be https.
   * `development` (the default, tests and `npm start`): without HUREN_PUBLIC_URL the JWT audiences are the
   * listen address; http key URLs are accepted on loopback only. Production also refuses an operator-set
   * bootstrap token (HUREN_BOOTSTRAP_TOKEN).
   */
  mode: 'production' | 'development';
  port: number;
  /** Listen address: 127.0.0.1 by default (this machine only); `HOST=0.0.0.0` accepts connections from the network. */
  host: string;
  /** PGlite files, the bootstrap token and (later) the embedded chain live here. */
  dataDir: string;
  /** A PostgreSQL server instead of PGlite. */
  databaseUrl?: string;
  /** DATABASE_READ_URL: a streaming replica for reads that may be slightly stale (search, history, statistics). */
  databaseReadUrl?: string;
  /** Use an in-memory PGlite (tests). */
  inMemory: boolean;
  bootstrapToken?: string;
  /** Human accounts: password policy, lockout, sessions (HUREN_ACCOUNT_…, HUREN_SESSION_…; server/accounts/config.ts). */
  accounts: AccountsConfig;
  /** Largest accepted request body, in bytes (default 16 MiB). */
  maxBodyBytes: number;
  /** Deepest accepted JSON nesting (default 64). */
  maxJsonDepth: number;
  /** Bounds on the work of one request (server/fhir/limits.ts; HUREN_MAX_COUNT, HUREN_MAX_OFFSET, …). */
  limits: Limits;
  /** Longest a single SQL statement may run before it is cancelled and the request answered 503 (0: no limit). */
  statementTimeoutMs: number;
  /**
   * Public base URL of the server (HUREN_PUBLIC_URL): the only source of the audience (`aud`) expected in
   * client assertions and CDS client JWTs; required in production. Without it (development) the audience is
   * the listen address; links in answers are then derived from the request.
   */
  publicUrl?: string;
  /**
   * Behind a reverse proxy (HUREN_TRUST_PROXY, default: on when HUREN_PUBLIC_URL is set): X-Forwarded-Proto
   * and -Host are believed, and the source address is the last X-Forwarded-For entry (the one the proxy added).
   */
  trustProxy: boolean;
  logLevel: string;
  /** Asynchronous requests: results kept this long (seconds), jobs run at once (0: no worker). */
  asyncRetentionSeconds: number;
  asyncConcurrency: number;
  /**
   * Reads with a reason (server/auth/care.ts): another institution's personal data is readable for a patient for
   * this many hours after the caller's institution checked, ordered for or saw that patient (HUREN_CARE_WINDOW_HOURS,
   * default 24).
   */
  careWindowHours: number;
  /** When tables that grew are analysed (HUREN_ANALYZE_CRON, default every 30 s; `off` disables; server/db/database.ts). */
  analyzeCron?: string;
  /** The chain (HUREN_LEDGER…, server/ledger/config.ts); default the embedded chain under dataDir/chain, opened on first use. */
  ledger: LedgerConfig;
  /** Anchoring, verification and sweep schedules (server/provenance/config.ts). */
  provenance: ProvenanceConfig;
  /** The partner platforms' exchange: this platform's identity, the check's time budget (server/exchange/config.ts). */
  exchange: ExchangeConfig;
  /** The CDS clients whose signed JWTs are accepted on CDS Hooks calls (HUREN_CDS_CLIENTS; server/cds/trust.ts). */
  cdsClients: CdsClient[];
  /** The hospital systems that get access tokens (SMART Backend Services; HUREN_CLIENTS; server/auth/backend.ts). */
  clients: BackendClient[];
  /** Browser origins allowed to call the server (CORS; HUREN_CORS_ORIGINS, comma-separated; none by default; server/http/cors.ts). */
  corsOrigins: string[];
  /** Throttles, per minute (server/auth/throttle.ts): token requests per source address and per client, failed bearer tokens per source and per client. */
  rateLimits: RateLimits;
  edge: EdgeHeaders;
}

export interface RateLimits {
  tokenPerSource: number;
  tokenPerClient: number;
  badTokenPerSource: number;
  badTokenPerClient: number;
  /** Every request, per source address and per authenticated caller (server/http/rate-limit.ts; per process). */
  apiPerSource: number;
  apiPerClient: number;
  /** Sign-in attempts (password and second factor) per source address, counted across processes in the database. */
  loginPerSource: number;
}

/** The edge's response headers (server/http/headers.ts). */
export interface EdgeHeaders {
  /** Strict-Transport-Security max-age in seconds, sent on https (HUREN_PUBLIC_URL https or TLS seen); 0: never. */
  hstsMaxAge: number;
  /** The bearer token /metrics needs (HUREN_METRICS_TOKEN); without it only the platform token reads them. */
  metricsToken?: string;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const dataDir = resolve(overrides.dataDir ?? env.HUREN_DATA_DIR ?? './data');
  const mode = env.HUREN_MODE ?? 'development';
  if (mode !== 'production' && mode !== 'development') throw new Error(`HUREN_MODE must be 'production' or 'development', not '${mode.slice(0, 40)}'`);
  return {
    mode,
    port: intEnv(env.PORT, 8080),
    host: env.HOST || '127.0.0.1',
    dataDir,
    databaseUrl: env.DATABASE_URL || undefined,
    databaseReadUrl: env.DATABASE_READ_URL || undefined,
    inMemory: env.HUREN_IN_MEMORY === '1',
    bootstrapToken: env.HUREN_BOOTSTRAP_TOKEN || undefined,
    accounts: overrides.accounts ?? loadAccountsConfig(env),
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
      maxHasDepth: intEnv(env.HUREN_MAX_HAS_DEPTH, DEFAULT_LIMITS.maxHasDepth),
    },
    statementTimeoutMs: intEnv(env.HUREN_STATEMENT_TIMEOUT_MS, 30_000),
    publicUrl: env.HUREN_PUBLIC_URL?.replace(/\/$/, '') || undefined,
    trustProxy: flagEnv(env.HUREN_TRUST_PROXY, 'HUREN_TRUST_PROXY') ?? (!!env.HUREN_PUBLIC_URL || !!overrides.publicUrl),
    logLevel: env.LOG_LEVEL ?? 'info',
    asyncRetentionSeconds: intEnv(env.HUREN_ASYNC_RETENTION_SECONDS, 24 * 3600),
    asyncConcurrency: intEnv(env.HUREN_ASYNC_CONCURRENCY, 2),
    careWindowHours: intEnv(env.HUREN_CARE_WINDOW_HOURS, 24),
    analyzeCron: env.HUREN_ANALYZE_CRON === 'off' ? undefined : env.HUREN_ANALYZE_CRON || '*/30 * * * * *',
    ledger: overrides.ledger ?? loadLedgerConfig(env, { dataDir }),
    provenance: overrides.provenance ?? loadProvenanceConfig(env),
    exchange: overrides.exchange ?? loadExchangeConfig(env),
    cdsClients: overrides.cdsClients ?? loadCdsClients(env.HUREN_CDS_CLIENTS),
    clients: overrides.clients ?? loadBackendClients(env.HUREN_CLIENTS),
    corsOrigins: overrides.corsOrigins ?? parseCorsOrigins(env.HUREN_CORS_ORIGINS),
    rateLimits: {
      tokenPerSource: positiveEnv(env.HUREN_RATE_TOKEN_PER_SOURCE, 120),
      tokenPerClient: positiveEnv(env.HUREN_RATE_TOKEN_PER_CLIENT, 60),
      badTokenPerSource: positiveEnv(env.HUREN_RATE_BAD_TOKEN_PER_SOURCE, 60),
      badTokenPerClient: positiveEnv(env.HUREN_RATE_BAD_TOKEN_PER_CLIENT, 30),
      apiPerSource: positiveEnv(env.HUREN_RATE_API_PER_SOURCE, 12_000),
      apiPerClient: positiveEnv(env.HUREN_RATE_API_PER_CLIENT, 6_000),
      loginPerSource: positiveEnv(env.HUREN_RATE_LOGIN_PER_SOURCE, 60),
    },
    edge: {
      hstsMaxAge: intEnv(env.HUREN_HSTS_MAX_AGE, 31_536_000),
      metricsToken: env.HUREN_METRICS_TOKEN || undefined,
    },
    ...overrides,
  };
}

/** What the server refuses to start with (checked by start()). */
export function checkConfig(config: Config): void {
  if (config.mode !== 'production') return;
  if (!config.publicUrl) throw new Error('HUREN_MODE=production needs HUREN_PUBLIC_URL (the https base URL clients call; the expected JWT audience)');
  if (!/^https:\/\/[^/]+/.test(config.publicUrl)) throw new Error('HUREN_MODE=production: HUREN_PUBLIC_URL must be an https URL');
}

function flagEnv(value: string | undefined, name: string): boolean | undefined {
  if (value === undefined || value === '') return undefined;
  if (value !== '0' && value !== '1') throw new Error(`${name} must be 0 or 1, not '${value.slice(0, 20)}'`);
  return value === '1';
}

function positiveEnv(value: string | undefined, fallback: number): number {
  const n = intEnv(value, fallback);
  if (n === 0) throw new Error('Expected a positive integer, got 0');
  return n;
}

function intEnv(value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`Expected a non-negative integer, got '${value}'`);
  return n;
}
