/**
 * The restore drill (npm run restore-drill, docs/operations/备份与恢复.md) on the test's store: a backup restored
 * into a fresh store proves every report against the chain; a backup without its key files cannot.
 */
import test from 'ava';
import { existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backupStore } from '../scripts/lib/backup.ts';
import { runDrill } from '../scripts/lib/restore-drill.ts';
import pg from 'pg';
import { reportBundle, testProvenanceConfig } from './helpers/chain.ts';
import { ADMIN_DB_URL, startTestServer, storeKind } from './helpers/server.ts';

const databaseUrl = storeKind() === 'postgres' ? ADMIN_DB_URL : undefined;

test('the drill: generated reports anchored, backed up, the source dropped, restored — every report consistent with the chain', async (t) => {
  const result = await runDrill({ databaseUrl, reports: 5 });
  t.is(result.store, storeKind());
  t.deepEqual(result.failures, []);
  t.is(result.consistent, 5);
  t.is(result.sweep.flagged, 0);
  t.true(result.passed);
});

test('a backup whose key files were left out does not pass the drill: the server refuses to start on the restored store', async (t) => {
  const server = await startTestServer({ provenance: testProvenanceConfig() }, { persistent: true });
  const work = mkdtempSync(join(tmpdir(), 'huren-drill-test-'));
  try {
    for (const key of ['k1', 'k2']) t.is((await server.fhir('', { method: 'POST', json: reportBundle(key).bundle })).status, 200);
    await server.huren.provenance.anchorNow({ force: true });
    await server.huren.provenance.verifyNow({ force: true });
    await server.close({ keepStore: true });
    const backup = join(work, 'backup');
    await backupStore(server.store, backup);
    t.true(existsSync(join(backup, 'files', 'record-keys.json')), 'the seal keys are in the backup');
    rmSync(join(backup, 'files', 'record-keys.json'));
    const chainDir = join(work, 'chain');
    renameSync(join(server.store.dataDir, 'chain'), chainDir);
    const result = await runDrill({ databaseUrl, backup, chainDir });
    t.false(result.passed);
    t.regex(result.refused ?? '', /record key file .*record-keys\.json .*expects key ids k1\b/);
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(server.store.dataDir, { recursive: true, force: true });
    if (server.store.dbName) {
      const admin = new pg.Client({ connectionString: ADMIN_DB_URL });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${server.store.dbName} WITH (FORCE)`);
      await admin.end();
    }
  }
});
