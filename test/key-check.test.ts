/**
 * Key files and their database (server/key-check.ts, docs/running.md): the database keeps a check value per key
 * file purpose and key id; a server whose privacy, record or audit key file is not the one this database's rows
 * were sealed with refuses to start with a message naming the file, the key ids expected and what to do; the
 * same keys, and rotated ones, start.
 */
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { startTestServer, type Store } from './helpers/server.ts';
import { PrivacyKeys } from '../server/privacy/keys.ts';
import { RecordKeys } from '../server/provenance/record-keys.ts';
import { rotateAuditKey } from '../server/audit/keys.ts';
import { checkKeyFile, KeyMismatchError } from '../server/key-check.ts';

const PATIENT = { resourceType: 'Patient', name: [{ family: '欧阳', given: ['明月'] }], identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: '44010619850505123X' }] };

async function firstStart() {
  const s = await startTestServer({}, { persistent: true });
  const res = await s.fhir('Patient', { method: 'POST', json: PATIENT });
  if (res.status !== 201) throw new Error(`Patient not created: ${res.status}`);
  const { id } = (await res.json()) as { id: string };
  await s.close({ keepStore: true });
  return { store: s.store, id };
}

/** Starts on the store and closes again (the store kept), or returns the refusal. */
async function restart(store: Store): Promise<Error | undefined> {
  try {
    const s = await startTestServer({}, { store });
    await s.close({ keepStore: true });
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

/** The last start: checks the patient reads and searches, then drops the store. */
async function finish(store: Store, id: string) {
  const s = await startTestServer({}, { store });
  try {
    const read = await s.fhir(`Patient/${id}`);
    const found = (await (await s.fhir('Patient?identifier=urn:oid:2.16.156.10011.1.3|44010619850505123X')).json()) as { total?: number; entry?: unknown[] };
    const rows = await s.huren.db.query<{ purpose: string; kid: string }>('SELECT purpose, kid FROM key_check ORDER BY purpose, kid');
    return { status: read.status, found: found.entry?.length ?? 0, rows };
  } finally {
    await s.close();
  }
}

test('a restart with the same key files starts, reads the sealed patient and finds it by identifier', async (t) => {
  const { store, id } = await firstStart();
  t.is(await restart(store), undefined);
  const r = await finish(store, id);
  t.is(r.status, 200);
  t.is(r.found, 1);
  t.deepEqual(
    r.rows.map((x) => x.purpose),
    ['audit', 'privacy', 'record']
  );
});

test('another privacy key file (same key id, another key; or other key ids) refuses to start, naming the file, the ids and what to do', async (t) => {
  const { store, id } = await firstStart();
  const file = join(store.dataDir, 'privacy-keys.json');
  const own = readFileSync(file, 'utf8');
  const keyHex = Object.values((JSON.parse(own) as { keys: Record<string, string> }).keys);
  copyFileSync(file, `${file}.own`);
  rmSync(file); // a fresh data directory: a new k1 is made
  const changed = await restart(store);
  t.true(changed instanceof KeyMismatchError, String(changed));
  t.true(changed!.message.includes(file), changed!.message);
  t.regex(changed!.message, /expects key ids k1\b/);
  t.regex(changed!.message, /key id k1 in the file is another key/);
  t.regex(changed!.message, /HUREN_PRIVACY_KEY_FILE/);
  t.regex(changed!.message, /data directory/);
  const fresh = Object.values((JSON.parse(readFileSync(file, 'utf8')) as { keys: Record<string, string> }).keys);
  for (const hex of [...keyHex, ...fresh]) t.false(changed!.message.includes(hex), 'no key in the message');

  writeFileSync(file, JSON.stringify({ version: 1, current: 'x9', keys: { x9: 'ab'.repeat(32) }, created: new Date().toISOString() }));
  const other = await restart(store);
  t.true(other instanceof KeyMismatchError, String(other));
  t.regex(other!.message, /none of those key ids is in the file \(it has x9\)/);

  writeFileSync(file, own); // the database's own key file again
  const r = await finish(store, id);
  t.is(r.status, 200);
  t.is(r.found, 1);
  t.false(r.rows.some((x) => x.kid === 'x9'), 'a refused key is not recorded');
});

test('another record or audit key file refuses to start; rotating every key file then restarting starts', async (t) => {
  const { store, id } = await firstStart();
  for (const [name, envVar] of [
    ['record-keys.json', 'HUREN_RECORD_KEY_FILE'],
    ['audit-keys.json', 'HUREN_AUDIT_KEY_FILE'],
  ] as const) {
    const file = join(store.dataDir, name);
    const own = readFileSync(file, 'utf8');
    rmSync(file);
    const err = await restart(store);
    t.true(err instanceof KeyMismatchError, `${name}: ${String(err)}`);
    t.true(err!.message.includes(file), err!.message);
    t.true(err!.message.includes(envVar), err!.message);
    writeFileSync(file, own);
  }
  new PrivacyKeys(join(store.dataDir, 'privacy-keys.json')).rotate();
  new RecordKeys(join(store.dataDir, 'record-keys.json')).rotate();
  rotateAuditKey(join(store.dataDir, 'audit-keys.json'));
  t.is(await restart(store), undefined);
  const r = await finish(store, id);
  t.is(r.status, 200);
  t.is(r.found, 1);
  t.deepEqual(
    r.rows.filter((x) => x.purpose !== 'audit').map((x) => `${x.purpose}:${x.kid}`),
    ['privacy:k1', 'privacy:k2', 'record:k1', 'record:k2']
  );
  t.is(r.rows.filter((x) => x.purpose === 'audit').length, 2);
});

test('processes starting at once with the same new key both start; with different keys for one id, one is refused', async (t) => {
  const s = await startTestServer();
  try {
    const facts = (checks: Record<string, string>, purpose = 'test') => ({ purpose, path: '/keys.json', envVar: 'HUREN_TEST_KEY_FILE', checks });
    await Promise.all([checkKeyFile(s.huren.db, facts({ a: '01' })), checkKeyFile(s.huren.db, facts({ a: '01' })), checkKeyFile(s.huren.db, facts({ a: '01' }))]);
    const results = await Promise.allSettled([checkKeyFile(s.huren.db, facts({ b: '02' }, 'test2')), checkKeyFile(s.huren.db, facts({ b: '03' }, 'test2'))]);
    t.is(results.filter((r) => r.status === 'fulfilled').length, 1);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    t.true(refused.reason instanceof KeyMismatchError);
    t.deepEqual(await s.huren.db.query(`SELECT purpose, kid FROM key_check WHERE purpose LIKE 'test%' ORDER BY purpose`), [
      { purpose: 'test', kid: 'a' },
      { purpose: 'test2', kid: 'b' },
    ]);
  } finally {
    await s.close();
  }
});
