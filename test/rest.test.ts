import test from 'ava';
import { Client } from 'fhir-kit-client';
import { startTestServer, type TestServer } from './helpers/server.ts';

let s: TestServer;
test.before(async () => {
  s = await startTestServer({ maxBodyBytes: 256 * 1024, maxJsonDepth: 32 });
});
test.after.always(async () => {
  await s?.close();
});

const patient = (family: string, extra: Record<string, unknown> = {}) => ({
  resourceType: 'Patient',
  name: [{ family, given: ['三'] }],
  gender: 'male',
  birthDate: '1980-01-02',
  ...extra,
});

test('metadata is public and lists the resource types, interactions and $validate', async (t) => {
  const res = await fetch(`${s.base}/metadata`);
  t.is(res.status, 200);
  const cs = await res.json();
  t.is(cs.resourceType, 'CapabilityStatement');
  t.is(cs.fhirVersion, '4.0.1');
  const obs = cs.rest[0].resource.find((r: any) => r.type === 'Observation');
  t.truthy(obs.searchParam.find((p: any) => p.name === 'code' && p.type === 'token'));
  t.true(obs.interaction.some((i: any) => i.code === 'patch'));
  t.true(obs.operation.some((o: any) => o.name === 'validate'));
  t.deepEqual(cs.rest[0].interaction.map((i: any) => i.code).sort(), ['batch', 'history-system', 'transaction']);
});

test('requests without a valid token get 401 OperationOutcome', async (t) => {
  const none = await fetch(`${s.base}/Patient`);
  t.is(none.status, 401);
  t.is((await none.json()).resourceType, 'OperationOutcome');
  const wrong = await fetch(`${s.base}/Patient`, { headers: { authorization: 'Bearer nope' } });
  t.is(wrong.status, 401);
  const metrics = await fetch(`${s.huren.url}/metrics`);
  t.is(metrics.status, 401);
});

test('GET / without a token points a newcomer to /fhir/metadata and the other public entry points (JSON, or HTML for a browser)', async (t) => {
  const res = await fetch(`${s.huren.url}/`);
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /json/);
  const doc = await res.json();
  t.is(doc.fhir, `${s.huren.url}/fhir`);
  const metadata = doc.links.find((l: any) => l.rel === 'metadata');
  t.is(metadata.href, `${s.huren.url}/fhir/metadata`);
  t.regex(doc.authentication, /bootstrap-token/);
  // every link it gives works without a token, except the FHIR base that says it needs one
  for (const l of doc.links.filter((x: any) => x.rel !== 'fhir-base')) t.is((await fetch(l.href)).status, 200, l.href);
  t.is((await fetch(doc.fhir)).status, 401);
  const html = await fetch(`${s.huren.url}/`, { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
  t.is(html.status, 200);
  t.regex(html.headers.get('content-type') ?? '', /text\/html/);
  t.regex(await html.text(), new RegExp(`<a href="${s.huren.url}/fhir/metadata">`));
  // only reading it is public
  t.is((await fetch(`${s.huren.url}/`, { method: 'POST' })).status, 401);
});

test('health, readiness and metrics', async (t) => {
  t.is((await fetch(`${s.huren.url}/healthz`)).status, 200);
  const ready = await fetch(`${s.huren.url}/readyz`);
  t.is(ready.status, 200);
  const metrics = await fetch(`${s.huren.url}/metrics`, { headers: { authorization: `Bearer ${s.token}` } });
  t.is(metrics.status, 200);
  t.regex(await metrics.text(), /huren_http_requests_total\{method="GET",route="\/fhir\/metadata",status="200"\}/);
});

test('create, read, vread, update with ETag and Last-Modified, delete, history', async (t) => {
  const created = await s.fhir('Patient', { method: 'POST', json: patient('王') });
  t.is(created.status, 201);
  t.is(created.headers.get('etag'), 'W/"1"');
  t.truthy(created.headers.get('last-modified'));
  const body = await created.json();
  t.regex(created.headers.get('location')!, new RegExp(`/fhir/Patient/${body.id}/_history/1$`));

  const read = await s.fhir(`Patient/${body.id}`);
  t.is(read.status, 200);
  t.is(read.headers.get('etag'), 'W/"1"');
  const notModified = await s.fhir(`Patient/${body.id}`, { headers: { 'if-none-match': 'W/"1"' } });
  t.is(notModified.status, 304);

  const updated = await s.fhir(`Patient/${body.id}`, { method: 'PUT', json: { ...body, gender: 'female' }, headers: { 'if-match': 'W/"1"' } });
  t.is(updated.status, 200);
  t.is(updated.headers.get('etag'), 'W/"2"');
  const v1 = await (await s.fhir(`Patient/${body.id}/_history/1`)).json();
  t.is(v1.gender, 'male');
  const v2 = await (await s.fhir(`Patient/${body.id}/_history/2`)).json();
  t.is(v2.gender, 'female');

  const same = await s.fhir(`Patient/${body.id}`, { method: 'PUT', json: { ...v2 } });
  t.is(same.headers.get('etag'), 'W/"2"', 'an update that changes nothing makes no new version');

  const del = await s.fhir(`Patient/${body.id}`, { method: 'DELETE' });
  t.is(del.status, 200);
  t.is((await s.fhir(`Patient/${body.id}`)).status, 410);
  t.is((await s.fhir(`Patient/${body.id}`, { method: 'DELETE' })).status, 200, 'deleting again is not an error');

  const history = await (await s.fhir(`Patient/${body.id}/_history`)).json();
  t.is(history.type, 'history');
  t.deepEqual(
    history.entry.map((e: any) => e.request.method),
    ['DELETE', 'PUT', 'POST']
  );
  t.is(history.entry[0].resource, undefined);
  const v3 = await s.fhir(`Patient/${body.id}/_history/3`);
  t.is(v3.status, 410);
});

test('two updates with the same If-Match give one 200 and one 412', async (t) => {
  const body = await (await s.fhir('Patient', { method: 'POST', json: patient('李') })).json();
  const [a, b] = await Promise.all(
    ['male', 'female'].map((g) => s.fhir(`Patient/${body.id}`, { method: 'PUT', json: { ...body, gender: g === 'male' ? 'other' : g }, headers: { 'if-match': 'W/"1"' } }))
  );
  t.deepEqual([a.status, b.status].sort(), [200, 412]);
  const loser = a.status === 412 ? a : b;
  const outcome = await loser.json();
  t.is(outcome.resourceType, 'OperationOutcome');
  t.deepEqual(outcome.issue[0].expression, ['If-Match']);
  const stale = await s.fhir(`Patient/${body.id}`, { method: 'PUT', json: body, headers: { 'if-match': 'W/"1"' } });
  t.is(stale.status, 412);
});

test('20 concurrent identical conditional creates leave exactly one resource', async (t) => {
  const identifier = { system: 'urn:oid:2.16.840.1.113883.2.4.6.3', value: `cc-${Date.now()}` };
  const responses = await Promise.all(
    Array.from({ length: 20 }, () =>
      s.fhir('Patient', {
        method: 'POST',
        json: patient('赵', { identifier: [identifier] }),
        headers: { 'if-none-exist': `identifier=${identifier.system}|${identifier.value}` },
      })
    )
  );
  const statuses = responses.map((r) => r.status);
  t.is(statuses.filter((x) => x === 201).length, 1);
  t.is(statuses.filter((x) => x === 200).length, 19);
  const ids = new Set(await Promise.all(responses.map(async (r) => (await r.json()).id)));
  t.is(ids.size, 1);
  const bundle = await (await s.fhir(`Patient?identifier=${encodeURIComponent(`${identifier.system}|${identifier.value}`)}&_total=accurate`)).json();
  t.is(bundle.total, 1);
});

test('conditional update creates then updates; conditional delete', async (t) => {
  const ident = `cu-${Date.now()}`;
  const q = `identifier=${encodeURIComponent(`urn:test|${ident}`)}`;
  const first = await s.fhir(`Patient?${q}`, { method: 'PUT', json: patient('钱', { identifier: [{ system: 'urn:test', value: ident }] }) });
  t.is(first.status, 201);
  const id = (await first.json()).id;
  const second = await s.fhir(`Patient?${q}`, { method: 'PUT', json: patient('钱', { identifier: [{ system: 'urn:test', value: ident }], gender: 'female' }) });
  t.is(second.status, 200);
  t.is((await second.json()).id, id);
  const del = await s.fhir(`Patient?${q}`, { method: 'DELETE' });
  t.is(del.status, 200);
  t.is((await s.fhir(`Patient/${id}`)).status, 410);
});

test('JSON Patch', async (t) => {
  const body = await (await s.fhir('Patient', { method: 'POST', json: patient('孙') })).json();
  const ok = await s.fhir(`Patient/${body.id}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json-patch+json' },
    body: JSON.stringify([{ op: 'replace', path: '/gender', value: 'female' }, { op: 'add', path: '/active', value: true }]),
  });
  t.is(ok.status, 200);
  const patched = await ok.json();
  t.is(patched.gender, 'female');
  t.is(patched.active, true);
  t.is(patched.meta.versionId, '2');
  const failedTest = await s.fhir(`Patient/${body.id}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json-patch+json' },
    body: JSON.stringify([{ op: 'test', path: '/gender', value: 'male' }]),
  });
  t.is(failedTest.status, 412);
  const invalidResult = await s.fhir(`Patient/${body.id}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json-patch+json' },
    body: JSON.stringify([{ op: 'replace', path: '/gender', value: 42 }]),
  });
  t.is(invalidResult.status, 400);
  const badOp = await s.fhir(`Patient/${body.id}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json-patch+json' },
    body: JSON.stringify([{ op: 'explode', path: '/gender' }]),
  });
  t.is(badOp.status, 400);
  t.is((await (await s.fhir(`Patient/${body.id}`)).json()).meta.versionId, '2', 'failed patches wrote nothing');
});

test('type and system history with _since and _count', async (t) => {
  const before = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 5));
  for (const f of ['甲', '乙', '丙']) await s.fhir('Practitioner', { method: 'POST', json: { resourceType: 'Practitioner', name: [{ family: f }] } });
  const typeHistory = await (await s.fhir(`Practitioner/_history?_since=${encodeURIComponent(before)}&_count=2`)).json();
  t.is(typeHistory.entry.length, 2);
  t.truthy(typeHistory.link.find((l: any) => l.relation === 'next'));
  const next = await (await fetch(typeHistory.link.find((l: any) => l.relation === 'next').url, { headers: { authorization: `Bearer ${s.token}` } })).json();
  t.is(next.entry.length, 1);
  const system = await (await s.fhir(`_history?_since=${encodeURIComponent(before)}&_count=500`)).json(); // every request also adds its AuditEvent
  t.is(system.entry.filter((e: any) => e.resource?.resourceType === 'Practitioner').length, 3);
  t.is((await s.fhir('_history?_since=notadate')).status, 400);
});

test('bad requests get 4xx OperationOutcomes, never 5xx', async (t) => {
  const cases: [string, RequestInit, number][] = [
    ['Patient', { method: 'POST', body: '{"resourceType": "Patient",', headers: { 'content-type': 'application/fhir+json' } }, 400],
    ['Patient', { method: 'POST', body: '<Patient/>', headers: { 'content-type': 'application/fhir+xml' } }, 415],
    ['Patient', { method: 'POST', body: JSON.stringify(patient('大', { text: { status: 'generated', div: 'x'.repeat(300 * 1024) } })), headers: { 'content-type': 'application/fhir+json' } }, 413],
    ['Patient', { method: 'POST', body: '{"resourceType":"Patient","extension":' + '['.repeat(50) + ']'.repeat(50) + '}', headers: { 'content-type': 'application/fhir+json' } }, 400],
    ['Unicorn', { method: 'GET' }, 404],
    ['Unicorn', { method: 'POST', body: '{"resourceType":"Unicorn"}', headers: { 'content-type': 'application/fhir+json' } }, 404],
    ['Patient', { method: 'POST', body: JSON.stringify({ resourceType: 'Observation', status: 'final', code: { text: 'x' } }), headers: { 'content-type': 'application/fhir+json' } }, 400],
    ['Patient', { method: 'POST', body: JSON.stringify({ resourceType: 'Patient', gender: 42 }), headers: { 'content-type': 'application/fhir+json' } }, 400],
    ['Patient', { method: 'POST' }, 400],
    ['Patient/does-not-exist', { method: 'GET' }, 404],
    ['Patient/x/_history/abc', { method: 'GET' }, 404],
    ['Patient?birthdate=notadate', { method: 'GET' }, 400],
    ['Patient?_count=-1', { method: 'GET' }, 400],
    ['Patient/%E0%A4%A', { method: 'GET' }, 400],
    ['Patient/$nope', { method: 'POST', body: '{}', headers: { 'content-type': 'application/fhir+json' } }, 404],
    ['Patient?_format=xml', { method: 'GET' }, 406],
  ];
  for (const [path, init, status] of cases) {
    const res = await s.fhir(path, init);
    t.is(res.status, status, `${init.method} ${path}`);
    const body = await res.json();
    t.is(body.resourceType, 'OperationOutcome', path);
    t.true(body.issue.length > 0);
  }
});

test('invalid resources are refused with a FHIRPath location', async (t) => {
  const res = await s.fhir('Observation', { method: 'POST', json: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueQuantity: { value: 'high' } } });
  t.is(res.status, 400);
  const outcome = await res.json();
  t.deepEqual(outcome.issue[0].expression, ['Observation.value[x].value']);
  const missing = await s.fhir('Observation', { method: 'POST', json: { resourceType: 'Observation', code: { text: 'x' } } });
  t.is(missing.status, 400);
  t.regex(JSON.stringify(await missing.json()), /Observation\.status/);
});

test('$validate reports issues without storing', async (t) => {
  const ok = await (await s.fhir('Patient/$validate', { method: 'POST', json: patient('周') })).json();
  t.is(ok.issue[0].severity, 'information');
  const bad = await (await s.fhir('Patient/$validate', { method: 'POST', json: { resourceType: 'Patient', birthDate: 'yesterday' } })).json();
  t.is(bad.issue[0].severity, 'error');
  t.truthy(bad.issue[0].expression?.[0]?.startsWith('Patient.birthDate'));
  const wrapped = await (await s.fhir('Patient/$validate', { method: 'POST', json: { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: patient('吴') }] } })).json();
  t.is(wrapped.issue[0].severity, 'information');
  const search = await (await s.fhir('Patient?family=周&_total=accurate')).json();
  t.is(search.total, 0);
});

test('works with fhir-kit-client', async (t) => {
  const client = new Client({ baseUrl: s.base, bearerToken: s.token });
  const created: any = await client.create({ resourceType: 'Organization', body: { resourceType: 'Organization', name: '广州市第一人民医院' } });
  t.truthy(created.id);
  const read: any = await client.read({ resourceType: 'Organization', id: created.id });
  t.is(read.name, '广州市第一人民医院');
  const updated: any = await client.update({ resourceType: 'Organization', id: created.id, body: { ...read, alias: ['市一'] } });
  t.is(updated.meta.versionId, '2');
  const found: any = await client.search({ resourceType: 'Organization', searchParams: { name: '广州市第一' } });
  t.true(found.entry.some((e: any) => e.resource.id === created.id));
  const history: any = await client.history({ resourceType: 'Organization', id: created.id });
  t.is(history.entry.length, 2);
  await client.delete({ resourceType: 'Organization', id: created.id });
  const error = await t.throwsAsync(client.read({ resourceType: 'Organization', id: created.id }));
  t.is((error as any).response.status, 410);
});

test('concurrent creates of the same new id by PUT all succeed, one version each', async (t) => {
  const id = `race-${Date.now()}`;
  const responses = await Promise.all(
    Array.from({ length: 10 }, (_, i) => s.fhir(`Patient/${id}`, { method: 'PUT', json: { resourceType: 'Patient', id, name: [{ family: `F${i}` }] } }))
  );
  const statuses = responses.map((r) => r.status);
  t.is(statuses.filter((x) => x === 201).length, 1, statuses.join(','));
  t.is(statuses.filter((x) => x === 200).length, 9, statuses.join(','));
  const versions = await Promise.all(responses.map(async (r) => (await r.json()).meta.versionId));
  t.deepEqual(versions.map(Number).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  const history = await (await s.fhir(`Patient/${id}/_history?_count=50`)).json();
  t.is(history.entry.length, 10);
});
