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
  close(): Promise<void>;
}

export function storeKind(): 'pglite' | 'postgres' {
  return process.env.HUREN_TEST_DB === 'postgres' ? 'postgres' : 'pglite';
}

export async function startTestServer(overrides: Partial<Config> = {}, options: StartOptions = {}): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'huren-test-'));
  let dbName: string | undefined;
  let databaseUrl: string | undefined;
  if (storeKind() === 'postgres') {
    dbName = `huren_test_${process.pid}_${randomBytes(4).toString('hex')}`;
    await adminQuery(`CREATE DATABASE ${dbName}`);
    const url = new URL(ADMIN_DB_URL);
    url.pathname = `/${dbName}`;
    databaseUrl = url.toString();
  }
  const token = randomBytes(16).toString('hex');
  const config = loadConfig({}, {
    port: 0,
    host: '127.0.0.1',
    dataDir,
    inMemory: true,
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
    async close() {
      await huren.close();
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
