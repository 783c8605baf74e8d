import test from 'ava';
import { startTestServer, type TestServer } from './helpers/server.ts';

let s: TestServer;
test.before(async () => {
  s = await startTestServer();
});
test.after.always(async () => {
  await s?.close();
});

test('very long values are stored and still found by equality and prefix', async (t) => {
  const longCode = 'C'.repeat(5000);
  const longName = '长'.repeat(3000);
  const res = await s.fhir('Observation', {
    method: 'POST',
    json: { resourceType: 'Observation', status: 'final', code: { coding: [{ system: `urn:${'s'.repeat(3000)}`, code: longCode }] } },
  });
  t.is(res.status, 201);
  const id = (await res.json()).id;
  const found = await (await s.fhir(`Observation?code=${longCode}`)).json();
  t.deepEqual(found.entry.map((e: any) => e.resource.id), [id]);
  const org = await s.fhir('Organization', { method: 'POST', json: { resourceType: 'Organization', name: longName } });
  t.is(org.status, 201);
  const byName = await (await s.fhir(`Organization?name=${encodeURIComponent(longName)}`)).json();
  t.is(byName.entry.length, 1);
});

test('a UTF-8 byte-order mark before the JSON is ignored', async (t) => {
  const res = await s.fhir('Patient', { method: 'POST', body: '\uFEFF{"resourceType":"Patient","active":true}', headers: { 'content-type': 'application/fhir+json' } });
  t.is(res.status, 201);
});

test('text PostgreSQL cannot store is refused with 400, not 500', async (t) => {
  const bodies = [
    '{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}',
    '{"resourceType":"Patient","name":[{"family":"\\ud800"}]}',
    '{"resourceType":"Patient","name":[{"family":"ok"}],"\\u0000":1}',
  ];
  for (const body of bodies) {
    const res = await s.fhir('Patient', { method: 'POST', body, headers: { 'content-type': 'application/fhir+json' } });
    t.is(res.status, 400, body);
    t.is((await res.json()).resourceType, 'OperationOutcome');
  }
  for (const path of ['Patient?name=%00', 'Patient/%00', 'Patient?%00=1']) {
    const res = await s.fhir(path);
    t.is(res.status, 400, path);
  }
});

test('odd search requests never give a 5xx', async (t) => {
  const queries = [
    'Patient?_has:Observation',
    'Patient?_has:Observation:patient',
    'Patient?_has:Nope:patient:code=1',
    'Observation?subject:Nope.name=x',
    'Observation?subject:Patient.nope=x',
    'Observation?code:below=1',
    'Observation?date=ge',
    'Observation?date=2024-02-30',
    'Observation?date=9999-12-31T23:59:59.999999Z',
    'Observation?value-quantity=1e400',
    'Observation?value-quantity=gt|||',
    'Observation?_count=abc',
    'Observation?_count=100000',
    'Observation?_offset=99999999',
    'Observation?_sort=-',
    'Observation?_sort=,,,',
    'Observation?_total=maybe',
    'Observation?_summary=nope',
    'Observation?_include=*',
    'Observation?_include=Observation:subject:Nope',
    'Observation?_revinclude=Provenance:target',
    'Observation?subject=',
    'Observation?subject:missing=maybe',
    'Observation?subject:missing=true',
    'Observation?code=%7C',
    'Observation?code=a%5C,b',
    'Observation?_id:not=x',
    'Observation?_lastUpdated=xyz',
    'Observation?_snapshot=never',
    `Observation?${'a=1&'.repeat(200)}`,
    'Patient/../../etc/passwd',
    'Patient/x/_history/1/extra',
    'Patient/x/nope',
    '_history?_count=2&_since=2020-01-01',
    '$nope',
  ];
  for (const q of queries) {
    const res = await s.fhir(q);
    t.true(res.status < 500, `${q} → ${res.status}`);
    const body = await res.json();
    t.true(body.resourceType === 'Bundle' || body.resourceType === 'OperationOutcome', q);
  }
});

test('odd writes never give a 5xx', async (t) => {
  const writes: [string, string, unknown][] = [
    ['PUT', 'Patient/abc', { resourceType: 'Patient', id: 'xyz' }],
    ['PUT', 'Patient/abc', { resourceType: 'Patient' }],
    ['PUT', 'Patient/a%20b', { resourceType: 'Patient', id: 'a b' }],
    ['PUT', `Patient/${'x'.repeat(65)}`, { resourceType: 'Patient', id: 'x'.repeat(65) }],
    ['POST', 'Patient', []],
    ['POST', 'Patient', 'just a string'],
    ['POST', 'Patient', null],
    ['POST', 'Patient', { resourceType: 'Patient', meta: { versionId: 7, lastUpdated: 'never' } }],
    ['POST', 'Patient', { resourceType: 'Patient', id: { nested: true } }],
    ['PATCH', 'Patient/nope', [{ op: 'replace', path: '/active', value: true }]],
    ['PATCH', 'Patient/nope', { op: 'replace' }],
    ['DELETE', 'Unicorn/1', undefined],
    ['PUT', 'Patient?identifier=', { resourceType: 'Patient' }],
    ['DELETE', 'Patient', undefined],
    ['POST', 'Patient/_search', { resourceType: 'Patient' }],
  ];
  for (const [method, path, body] of writes) {
    const res = await s.fhir(path, body === undefined ? { method } : { method, body: JSON.stringify(body), headers: { 'content-type': method === 'PATCH' ? 'application/json-patch+json' : 'application/fhir+json' } });
    t.true(res.status >= 400 && res.status < 500, `${method} ${path} → ${res.status}`);
    t.is((await res.json()).resourceType, 'OperationOutcome', `${method} ${path}`);
  }
});
