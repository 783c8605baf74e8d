/**
 * Starts a real Huren server for a test file, on the store named by HUREN_TEST_DB:
 * `pglite` (default, in memory) or `postgres` (a fresh database on 127.0.0.1:5432, dropped afterwards).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { start, type Huren, type StartOptions } from '../../server/app.ts';
import { loadConfig, type Config } from '../../server/config.ts';

export const ADMIN_DB_URL = process.env.HUREN_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestServer {
  huren: Huren;
  /** e.g. http://127.0.0.1:40123/fhir */
  base: string;
  token: string;
  /** fetch against the FHIR base with the token and FHIR JSON headers. */
  fhir(path: string, init?: RequestInit & { json?: unknown }): Promise<Response>;
  /** Stops the server; the store is dropped unless `keepStore` (to start another server on it). */
  close(options?: { keepStore?: boolean }): Promise<void>;
  store: Store;
}

export interface Store {
  dataDir: string;
  databaseUrl?: string;
  dbName?: string;
}

export interface TestStartOptions extends StartOptions {
  /** Start on the store of an earlier (closed with keepStore) server, e.g. to test a restart. */
  store?: Store;
  /** Keep the PGlite store on disk rather than in memory (needed to restart on it). */
  persistent?: boolean;
  /** HUREN_EMBEDDED_RPC for this server (default off). */
  embeddedRpc?: string;
}

export function storeKind(): 'pglite' | 'postgres' {
  return process.env.HUREN_TEST_DB === 'postgres' ? 'postgres' : 'pglite';
}

export async function startTestServer(overrides: Partial<Config> = {}, options: TestStartOptions = {}): Promise<TestServer> {
  const dataDir = options.store?.dataDir ?? mkdtempSync(join(tmpdir(), 'huren-test-'));
  let dbName = options.store?.dbName;
  let databaseUrl = options.store?.databaseUrl;
  if (storeKind() === 'postgres' && !options.store) {
    dbName = `huren_test_${process.pid}_${randomBytes(4).toString('hex')}`;
    await adminQuery(`CREATE DATABASE ${dbName}`);
    const url = new URL(ADMIN_DB_URL);
    url.pathname = `/${dbName}`;
    databaseUrl = url.toString();
  }
  const token = overrides.bootstrapToken ?? randomBytes(16).toString('hex');
  // the embedded chain's read-only JSON-RPC would want the same port in every test server: off unless asked
  const config = loadConfig({ HUREN_EMBEDDED_RPC: options.embeddedRpc ?? 'off' }, {
    port: 0,
    host: '127.0.0.1',
    dataDir,
    inMemory: !options.persistent && !options.store,
    databaseUrl,
    bootstrapToken: token,
    logLevel: 'warn',
    ...overrides,
  });
  const huren = await start(config, options);
  const base = `${huren.url}/fhir`;
  return {
    huren,
    base,
    token,
    fhir(path, init = {}) {
      const { json, headers, ...rest } = init;
      return fetch(`${base}${path.startsWith('/') || path === '' ? '' : '/'}${path}`, {
        ...rest,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/fhir+json',
          ...(json !== undefined ? { 'content-type': 'application/fhir+json' } : {}),
          ...(headers as Record<string, string>),
        },
        body: json !== undefined ? JSON.stringify(json) : rest.body,
      });
    },
    store: { dataDir, databaseUrl, dbName },
    async close(closeOptions = {}) {
      await huren.close();
      if (closeOptions.keepStore) return;
      rmSync(dataDir, { recursive: true, force: true });
      if (dbName) await adminQuery(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    },
  };
}

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_DB_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
