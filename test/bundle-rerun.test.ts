/**
 * A transaction PostgreSQL asks to run again (a serialization failure, a deadlock, two creates racing: database.ts)
 * is run again from the submission as received: the first attempt's rewriting (new ids, resolved references,
 * request URLs) must not leak into the second. Forced here by a write observer that fails the first attempt with
 * SQLSTATE 40001. And a reference naming no entry is refused with its location. (PGlite runs one transaction at
 * a time and never re-runs one: the first test is PostgreSQL's.)
 */
import test from 'ava';
import { engineOf } from '../server/fhir/engine.ts';
import type { WriteObserver } from '../server/fhir/repository.ts';
import { startTestServer, storeKind, type TestServer } from './helpers/server.ts';

let s: TestServer;
test.before(async () => {
  s = await startTestServer();
});
test.after.always(async () => {
  await s?.close();
});

const MARK = 'rerun-test-同一提交';

function bundle(mark = MARK) {
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: 'urn:uuid:11111111-1111-4111-8111-111111111111', resource: { resourceType: 'Patient', name: [{ text: mark }] }, request: { method: 'POST', url: 'Patient' } },
      {
        fullUrl: 'urn:uuid:22222222-2222-4222-8222-222222222222',
        resource: { resourceType: 'Observation', status: 'final', code: { text: mark }, subject: { reference: 'urn:uuid:11111111-1111-4111-8111-111111111111' } },
        request: { method: 'POST', url: 'Observation' },
      },
      {
        resource: { resourceType: 'Observation', status: 'final', code: { text: `${mark}-2` }, subject: { reference: 'urn:uuid:11111111-1111-4111-8111-111111111111' }, hasMember: [{ reference: 'urn:uuid:22222222-2222-4222-8222-222222222222' }] },
        request: { method: 'POST', url: 'Observation' },
      },
    ],
  };
}

if (storeKind() === 'postgres') {
  test('a transaction run again starts from the submission: its references point at what the second run wrote', async (t) => {
    let attempts = 0;
    const failOnce: WriteObserver = {
      async beforeCommit(_sql, writes) {
        if (!writes.versions.some((v) => JSON.stringify(v.resource).includes(MARK))) return;
        attempts++;
        if (attempts === 1) throw Object.assign(new Error('could not serialize access (forced by the test)'), { code: '40001' });
      },
    };
    const observers = engineOf(s.huren.db).writeObservers as WriteObserver[];
    observers.push(failOnce);
    try {
      const res = await s.fhir('', { method: 'POST', json: bundle() });
      t.is(res.status, 200, await res.clone().text());
      t.is(attempts, 2, 'the first attempt failed and the transaction ran again');
      const ids = (await res.json()).entry.map((e: any) => /\/(?:Patient|Observation)\/([^/]+)/.exec(e.response.location)![1]);
      const obs = await (await s.fhir(`Observation/${ids[1]}`)).json();
      t.is(obs.subject.reference, `Patient/${ids[0]}`);
      const member = await (await s.fhir(`Observation/${ids[2]}`)).json();
      t.is(member.hasMember[0].reference, `Observation/${ids[1]}`);
      t.is((await s.fhir(`Patient/${ids[0]}`)).status, 200);
      // nothing of the failed attempt is stored
      const found = await (await s.fhir(`Observation?code:text=${encodeURIComponent(MARK)}&_total=accurate`)).json();
      t.deepEqual(found.entry.map((e: any) => e.resource.id).sort(), [ids[1], ids[2]].sort());
    } finally {
      observers.splice(observers.indexOf(failOnce), 1);
    }
  });
}

test('a reference naming no entry of the transaction is refused with its location, and nothing is written', async (t) => {
  const mark = 'rerun-test-无此条目';
  const b = bundle(mark);
  (b.entry[2].resource as any).hasMember = [{ reference: 'urn:uuid:33333333-3333-4333-8333-333333333333' }];
  const res = await s.fhir('', { method: 'POST', json: b });
  t.is(res.status, 400);
  const outcome = await res.json();
  t.regex(outcome.issue[0].details.text, /names no entry of the transaction/);
  t.deepEqual(outcome.issue[0].expression, ['Bundle.entry[2].resource.hasMember[0].reference']);
  const found = await (await s.fhir(`Observation?code:text=${encodeURIComponent(mark)}`)).json();
  t.is((found.entry ?? []).length, 0);
});
