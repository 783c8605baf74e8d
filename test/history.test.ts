/**
 * History paging on a snapshot (docs/fhir-api.md): the `next`/`previous` links freeze the instant of the first
 * page, so versions written meanwhile neither repeat the entries of earlier pages nor appear in later ones.
 * Its own server: the type history below must see only this file's Patients.
 */
import test from 'ava';
import { startTestServer, type TestServer } from './helpers/server.ts';

let s: TestServer;
test.before(async () => {
  s = await startTestServer();
});
test.after.always(async () => {
  await s?.close();
});

const relative = (url: string) => url.slice(s.base.length + 1);
const ids = (bundle: any): string[] => bundle.entry.map((e: any) => e.resource?.id ?? e.fullUrl.split('/').pop());
const createPatient = async (family: string) => (await (await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', name: [{ family }] } })).json()).id as string;

test.serial('Patient/_history?_count=3: two Patients created after page 1 neither repeat page 1 on page 2 nor appear on it', async (t) => {
  const before: string[] = [];
  for (const family of ['一', '二', '三', '四', '五']) before.push(await createPatient(family));
  const page1 = await (await s.fhir('Patient/_history?_count=3')).json();
  t.deepEqual(ids(page1), before.slice(2).reverse(), 'newest first');
  const next = page1.link.find((l: any) => l.relation === 'next')?.url as string;
  t.regex(next, /_snapshot=/);
  const added = [await createPatient('六'), await createPatient('七')];

  const page2 = await (await s.fhir(relative(next))).json();
  t.deepEqual(ids(page2), before.slice(0, 2).reverse(), 'the two oldest, as when page 1 was served');
  t.false(ids(page2).some((id) => ids(page1).includes(id)), 'no entry of page 1 repeats');
  t.false(ids(page2).some((id) => added.includes(id)));
  t.is(page2.link.find((l: any) => l.relation === 'next'), undefined);
  const previous = page2.link.find((l: any) => l.relation === 'previous')?.url as string;
  t.deepEqual(ids(await (await s.fhir(relative(previous))).json()), ids(page1), 'previous is page 1 again, on the same snapshot');

  // a fresh first page sees the new versions
  t.deepEqual(ids(await (await s.fhir('Patient/_history?_count=2')).json()), [...added].reverse());
});

test.serial('instance history: an update after page 1 does not shift page 2', async (t) => {
  const id = await createPatient('甲');
  for (const family of ['乙', '丙']) await s.fhir(`Patient/${id}`, { method: 'PUT', json: { resourceType: 'Patient', id, name: [{ family }] } });
  const page1 = await (await s.fhir(`Patient/${id}/_history?_count=2`)).json();
  t.deepEqual(page1.entry.map((e: any) => e.response.etag), ['W/"3"', 'W/"2"']);
  await s.fhir(`Patient/${id}`, { method: 'PUT', json: { resourceType: 'Patient', id, name: [{ family: '丁' }] } });
  const page2 = await (await s.fhir(relative(page1.link.find((l: any) => l.relation === 'next').url))).json();
  t.deepEqual(page2.entry.map((e: any) => e.response.etag), ['W/"1"']);
});

test('a malformed _snapshot is a 400 naming it', async (t) => {
  const res = await s.fhir('Patient/_history?_snapshot=yesterday');
  t.is(res.status, 400);
  t.deepEqual((await res.json()).issue[0].expression, ['_snapshot']);
});
