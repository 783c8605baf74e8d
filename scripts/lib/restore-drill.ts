/**
 * The restore drill (docs/operations/备份与恢复.md): prove that a backup brings the platform back with every
 * report provably the one that was anchored.
 *   1. a source store with generated reports, anchored on the (embedded) chain — or, with `backup`, skip this
 *   2. the backup (scripts/lib/backup.ts); then the source database is dropped: it is lost
 *   3. the backup restored into a fresh database and data directory, the chain node kept as it was
 *   4. a server on the restored store: the deep sweep (stored records against their seals and the chain's
 *      anchors) and `$verify` of every report; the drill passes when every report is `consistent`
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { start, type Huren } from '../../server/app.ts';
import { loadConfig } from '../../server/config.ts';
import { KeyMismatchError } from '../../server/key-check.ts';
import { backupStore, restoreStore, type StoreLocation } from './backup.ts';

export interface DrillOptions {
  /** A PostgreSQL server to drill on (any database URL of it; the drill makes its own databases): absent → PGlite. */
  databaseUrl?: string;
  /** Reports generated in the source store (default 20). */
  reports?: number;
  /** Restore this backup (made by `npm run backup`) instead of generating a source: its data directory's chain is `chainDir`. */
  backup?: string;
  /** With `backup`: the embedded chain's directory to check against (default: none; an evm ledger from the environment). */
  chainDir?: string;
  log?: (line: string) => void;
}

export interface DrillResult {
  store: 'pglite' | 'postgres';
  reports: number;
  consistent: number;
  /** Reports whose status after the restore is not `consistent`, with the status. */
  failures: { id: string; status: string }[];
  sweep: { checked: number; flagged: number; unrecorded: number };
  backupBytes: number;
  seconds: { source: number; backup: number; restore: number; verify: number };
  passed: boolean;
  /** Set when the server refused to start on the restored store: its key files are not the database's (server/key-check.ts). */
  refused?: string;
}

const ENV = { HUREN_EMBEDDED_RPC: 'off', HUREN_PLATFORM_ANCHOR_DELAY_SECONDS: '0', HUREN_ANCHOR_CRON: 'off', HUREN_SWEEP_CRON: 'off' };

export async function runDrill(options: DrillOptions = {}): Promise<DrillResult> {
  const log = options.log ?? (() => undefined);
  const work = mkdtempSync(join(tmpdir(), 'huren-drill-'));
  const made: string[] = [];
  const database = async (label: string) => {
    if (!options.databaseUrl) return undefined;
    const name = `huren_drill_${label}_${randomBytes(4).toString('hex')}`;
    await admin(options.databaseUrl, `CREATE DATABASE ${name}`);
    made.push(name);
    const url = new URL(options.databaseUrl);
    url.pathname = `/${name}`;
    return url.toString();
  };
  const seconds = { source: 0, backup: 0, restore: 0, verify: 0 };
  const timed = async <T>(phase: keyof typeof seconds, fn: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try {
      return await fn();
    } finally {
      seconds[phase] = (Date.now() - t0) / 1000;
    }
  };
  try {
    let backup = options.backup;
    let chainDir = options.chainDir;
    let generated = 0;
    if (!backup) {
      const source: StoreLocation = { dataDir: join(work, 'source'), databaseUrl: await database('source') };
      generated = await timed('source', () => makeSource(source, options.reports ?? 20, log));
      backup = join(work, 'backup');
      await timed('backup', () => backupStore(source, backup as string));
      // the source is lost; the chain node survives it
      chainDir = join(work, 'chain');
      renameSync(join(source.dataDir, 'chain'), chainDir);
      rmSync(source.dataDir, { recursive: true, force: true });
      if (source.databaseUrl) await admin(options.databaseUrl as string, `DROP DATABASE ${made[0]} WITH (FORCE)`);
      log(`backup made (${sizeOf(backup)} bytes); source store dropped`);
    }
    const target: StoreLocation = { dataDir: join(work, 'restored'), databaseUrl: await database('restored') };
    await timed('restore', () => restoreStore(backup as string, target));
    if (chainDir) renameSync(chainDir, join(target.dataDir, 'chain'));
    log('restored into a fresh store; starting a server on it');
    let huren: Huren;
    try {
      huren = await startOn(target, options.backup !== undefined);
    } catch (err) {
      if (!(err instanceof KeyMismatchError)) throw err;
      log(`the server refuses to start on the restored store: ${err.message}`);
      const sweep = { checked: 0, flagged: 0, unrecorded: 0 };
      return { store: target.databaseUrl ? 'postgres' : 'pglite', reports: generated, consistent: 0, failures: [], sweep, backupBytes: sizeOf(backup), seconds, passed: false, refused: err.message };
    }
    try {
      const result = await timed('verify', () => verifyAll(huren));
      const reports = generated || result.reports;
      const passed = result.failures.length === 0 && result.consistent === reports && reports > 0;
      return { store: target.databaseUrl ? 'postgres' : 'pglite', ...result, reports, backupBytes: sizeOf(backup), seconds, passed };
    } finally {
      await huren.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
    if (options.databaseUrl) for (const name of made) await admin(options.databaseUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
  }
}

async function startOn(store: StoreLocation, fromEnvironment: boolean, token?: string): Promise<Huren> {
  const env = fromEnvironment ? { ...process.env, ...ENV } : ENV;
  return start(
    loadConfig(env, { port: 0, host: '127.0.0.1', dataDir: store.dataDir, databaseUrl: store.databaseUrl, inMemory: false, logLevel: 'error', ...(token ? { bootstrapToken: token } : {}) })
  );
}

async function makeSource(store: StoreLocation, count: number, log: (line: string) => void): Promise<number> {
  const token = randomBytes(16).toString('hex');
  const huren = await startOn(store, false, token);
  try {
    for (let i = 0; i < count; i++) {
      const res = await fetch(`${huren.url}/fhir`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json', accept: 'application/fhir+json' },
        body: JSON.stringify(reportBundle(i)),
      });
      if (res.status !== 200) throw new Error(`drill: the source store refused report ${i} (${res.status}): ${(await res.text()).slice(0, 300)}`);
    }
    await huren.provenance.anchorNow({ force: true });
    await huren.provenance.verifyNow({ force: true });
    const before = await verifyAll(huren);
    if (before.consistent !== count) throw new Error(`drill: only ${before.consistent} of ${count} source reports are consistent before the backup`);
    log(`source store: ${count} reports, all consistent with the chain`);
    return count;
  } finally {
    await huren.close();
  }
}

async function verifyAll(huren: Huren): Promise<{ reports: number; consistent: number; failures: { id: string; status: string }[]; sweep: DrillResult['sweep'] }> {
  const sweep = await huren.provenance.sweep({ deep: true, chain: true });
  await huren.provenance.verifyNow({ force: true });
  const ids = (await huren.db.query<{ id: string }>(`SELECT id FROM resource WHERE type = 'DiagnosticReport' AND NOT deleted ORDER BY id`)).map((r) => r.id);
  const failures: { id: string; status: string }[] = [];
  let consistent = 0;
  for (const id of ids) {
    const { status } = await huren.provenance.verify(id);
    if (status === 'consistent') consistent++;
    else failures.push({ id, status });
  }
  return { reports: ids.length, consistent, failures, sweep: { checked: sweep.checked, flagged: sweep.flagged, unrecorded: sweep.unrecorded } };
}

async function admin(url: string, sql: string): Promise<void> {
  const u = new URL(url);
  u.pathname = '/postgres';
  const client = new pg.Client({ connectionString: u.toString() });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function sizeOf(path: string): number {
  const s = statSync(path);
  if (!s.isDirectory()) return s.size;
  return readdirSync(path).reduce((n, f) => n + sizeOf(join(path, f)), 0);
}

/** A generated lab report (synthetic person, one hospital, two results). */
function reportBundle(i: number): unknown {
  const patient = `urn:uuid:${randomUUID()}`;
  const org = `urn:uuid:${randomUUID()}`;
  const report = `urn:uuid:${randomUUID()}`;
  const results = [`urn:uuid:${randomUUID()}`, `urn:uuid:${randomUUID()}`];
  const id = String(440101199001010000 + i);
  const codes = [
    { code: '2823-3', text: '钾', unit: 'mmol/L', value: 4.1 },
    { code: '2951-2', text: '钠', unit: 'mmol/L', value: 140 },
  ];
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: patient,
        resource: { resourceType: 'Patient', identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: id }], name: [{ text: `演练${i}` }] },
        request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=urn:oid:2.16.156.10011.1.3|${id}` },
      },
      {
        fullUrl: org,
        resource: { resourceType: 'Organization', identifier: [{ system: 'urn:huren:org', value: 'drill1' }], name: '恢复演练医院' },
        request: { method: 'POST', url: 'Organization', ifNoneExist: 'identifier=urn:huren:org|drill1' },
      },
      {
        fullUrl: report,
        resource: {
          resourceType: 'DiagnosticReport',
          identifier: [{ system: 'https://his.drill1.example/report-id', value: `DRILL-${i}` }],
          status: 'final',
          category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'LAB' }] }],
          code: { coding: [{ system: 'http://loinc.org', code: '24326-1' }], text: '电解质' },
          subject: { reference: patient },
          performer: [{ reference: org }],
          issued: new Date().toISOString(),
          result: results.map((reference) => ({ reference })),
        },
        request: { method: 'POST', url: 'DiagnosticReport' },
      },
      ...codes.map((c, k) => ({
        fullUrl: results[k],
        resource: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: c.code }], text: c.text },
          subject: { reference: patient },
          effectiveDateTime: new Date().toISOString(),
          valueQuantity: { value: c.value, unit: c.unit, system: 'http://unitsofmeasure.org', code: c.unit },
        },
        request: { method: 'POST', url: 'Observation' },
      })),
    ],
  };
}
