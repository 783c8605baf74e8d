/**
 * Server-assigned resource ids are UUIDv7 (server/fhir/ids.ts): well formed, unique, and in the order they
 * were made — by a create, by a transaction's POST entries (in entry order), and within one millisecond.
 */
import test from 'ava';
import { idTimestamp, newResourceId } from '../server/fhir/ids.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('ids are version 7, unique, strictly increasing, and carry the time they were made', (t) => {
  const before = Date.now();
  const ids = Array.from({ length: 20_000 }, () => newResourceId());
  const after = Date.now();
  for (const id of ids) t.regex(id, V7);
  t.is(new Set(ids).size, ids.length);
  for (let i = 1; i < ids.length; i++) if (!(ids[i - 1] < ids[i])) t.fail(`id ${i} does not sort after id ${i - 1}`);
  const first = idTimestamp(ids[0])!;
  t.true(first >= before && first <= after + 20);
  t.is(idTimestamp('6f1c2f7e-3c1d-4b6a-9f0e-2a5b7c8d9e0f'), undefined); // a version 4 id
});

test('more ids in one millisecond than the sequence holds still sort in order', (t) => {
  const ms = Date.now() + 60_000; // a fixed millisecond ahead of the clock
  const ids = Array.from({ length: 5_000 }, () => newResourceId(ms));
  for (let i = 1; i < ids.length; i++) if (!(ids[i - 1] < ids[i])) t.fail(`id ${i} does not sort after id ${i - 1}`);
  t.is(idTimestamp(ids[0]), ms);
  t.true(idTimestamp(ids.at(-1)!)! > ms); // borrowed the next millisecond(s) rather than repeating
  // a clock that goes back does not make an id sort before the last one
  const later = newResourceId(ms - 10_000);
  t.true(later > ids.at(-1)!);
});

let s: TestServer;
test.before(async () => {
  s = await startTestServer();
});
test.after.always(async () => {
  await s?.close();
});

test('a create and the POST entries of a transaction get time-ordered ids, in entry order', async (t) => {
  const created = await (await s.fhir('/Patient', { method: 'POST', json: { resourceType: 'Patient', gender: 'female' } })).json();
  t.regex(created.id, V7);
  const entries = Array.from({ length: 8 }, (_, i) => ({
    fullUrl: `urn:uuid:00000000-0000-4000-8000-00000000000${i}`,
    resource: { resourceType: 'Patient', gender: 'male' },
    request: { method: 'POST', url: 'Patient' },
  }));
  const res = await s.fhir('', { method: 'POST', json: { resourceType: 'Bundle', type: 'transaction', entry: entries } });
  t.is(res.status, 200);
  const ids = (await res.json()).entry.map((e: any) => /Patient\/([^/]+)/.exec(e.response.location)![1]);
  t.is(ids.length, 8);
  for (const id of ids) t.regex(id, V7);
  t.true(created.id < ids[0]);
  t.deepEqual([...ids].sort(), ids);
});
