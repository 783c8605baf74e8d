import test from 'ava';
import { randomUUID } from 'node:crypto';
import { startTestServer, type TestServer } from './helpers/server.ts';

let s: TestServer;
test.before(async () => {
  s = await startTestServer();
});
test.after.always(async () => {
  await s?.close();
});

const ID_SYSTEM = 'urn:oid:2.16.156.10011.1.3';

function reportBundle(patientRef: string, reportId: string, obsCount = 3, invalidAt = -1) {
  const obs = Array.from({ length: obsCount }, (_, i) => ({
    fullUrl: `urn:uuid:${randomUUID()}`,
    resource: {
      resourceType: 'Observation',
      identifier: [{ system: 'urn:huren:obs', value: `${reportId}-${i}` }],
      status: i === invalidAt ? 'not-a-status' : 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '2823-3' }] },
      subject: { reference: patientRef },
      valueQuantity: { value: i === invalidAt ? ('x' as unknown as number) : 4 + i / 10, unit: 'mmol/L' },
    },
    request: { method: 'POST', url: 'Observation' },
  }));
  const report = {
    fullUrl: `urn:uuid:${randomUUID()}`,
    resource: {
      resourceType: 'DiagnosticReport',
      identifier: [{ system: 'urn:huren:report', value: reportId }],
      status: 'final',
      code: { text: '电解质' },
      subject: { reference: patientRef },
      result: obs.map((o) => ({ reference: o.fullUrl })),
    },
    request: { method: 'POST', url: 'DiagnosticReport', ifNoneExist: `identifier=urn:huren:report|${reportId}` },
  };
  return { resourceType: 'Bundle', type: 'transaction', entry: [report, ...obs] };
}

test('a transaction creates everything and rewrites urn:uuid references', async (t) => {
  const patientUrn = `urn:uuid:${randomUUID()}`;
  const nid = `440101${Date.now()}`;
  const bundle = reportBundle(patientUrn, `r-${randomUUID()}`);
  bundle.entry.unshift({
    fullUrl: patientUrn,
    resource: { resourceType: 'Patient', identifier: [{ system: ID_SYSTEM, value: nid }], name: [{ family: '陈' }] } as any,
    request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${ID_SYSTEM}|${nid}` } as any,
  });
  const res = await s.fhir('', { method: 'POST', json: bundle });
  t.is(res.status, 200);
  const out = await res.json();
  t.is(out.type, 'transaction-response');
  t.is(out.entry.length, 5);
  t.true(out.entry.every((e: any) => e.response.status === '201'));
  const patientId = out.entry[0].resource.id;
  const report = out.entry[1].resource;
  t.is(report.subject.reference, `Patient/${patientId}`);
  t.deepEqual(report.result.map((r: any) => r.reference), out.entry.slice(2).map((e: any) => `Observation/${e.resource.id}`));
  const found = await (await s.fhir(`Observation?subject=Patient/${patientId}&_total=accurate`)).json();
  t.is(found.total, 3);
});

test('a retried transaction with conditional creates is idempotent for the conditional entries', async (t) => {
  const pid = (await (await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', name: [{ family: '林' }] } })).json()).id;
  const reportId = `r-${randomUUID()}`;
  const first = await (await s.fhir('', { method: 'POST', json: reportBundle(`Patient/${pid}`, reportId, 1) })).json();
  const again = await (await s.fhir('', { method: 'POST', json: reportBundle(`Patient/${pid}`, reportId, 1) })).json();
  t.is(first.entry[0].response.status, '201');
  t.is(again.entry[0].response.status, '200');
  t.is(again.entry[0].resource.id, first.entry[0].resource.id);
  const reports = await (await s.fhir(`DiagnosticReport?identifier=urn:huren:report|${reportId}&_total=accurate`)).json();
  t.is(reports.total, 1);
});

test('a transaction with one invalid entry writes nothing and names the entry', async (t) => {
  const pid = (await (await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', name: [{ family: '黄' }] } })).json()).id;
  const reportId = `r-${randomUUID()}`;
  const res = await s.fhir('', { method: 'POST', json: reportBundle(`Patient/${pid}`, reportId, 5, 3) });
  t.is(res.status, 400);
  const outcome = await res.json();
  t.is(outcome.resourceType, 'OperationOutcome');
  t.true(outcome.issue.every((i: any) => i.expression[0].startsWith('Bundle.entry[4]')), JSON.stringify(outcome.issue));
  t.regex(outcome.issue[0].diagnostics, /Bundle\.entry\[4\]/);
  for (const q of [`DiagnosticReport?identifier=urn:huren:report|${reportId}`, `Observation?subject=Patient/${pid}`]) {
    const found = await (await s.fhir(`${q}&_total=accurate`)).json();
    t.is(found.total, 0, q);
  }
});

test('a failing update rolls back the creates before it', async (t) => {
  const existing = await (await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', name: [{ family: '何' }] } })).json();
  const marker = `m-${randomUUID()}`;
  const res = await s.fhir('', {
    method: 'POST',
    json: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { resource: { resourceType: 'Device', status: 'active', identifier: [{ system: 'urn:m', value: marker }] }, request: { method: 'POST', url: 'Device' } },
        { resource: { ...existing, gender: 'male' }, request: { method: 'PUT', url: `Patient/${existing.id}`, ifMatch: 'W/"7"' } },
      ],
    },
  });
  t.is(res.status, 412);
  const outcome = await res.json();
  t.regex(outcome.issue[0].expression[0], /^Bundle\.entry\[1\]/);
  t.is((await (await s.fhir(`Device?identifier=urn:m|${marker}&_total=accurate`)).json()).total, 0);
  t.is((await (await s.fhir(`Patient/${existing.id}`)).json()).meta.versionId, '1');
});

test('transaction order: DELETE, POST, PUT, GET; conditional references resolved', async (t) => {
  const nid = `cr-${randomUUID()}`;
  const patient = await (await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', identifier: [{ system: ID_SYSTEM, value: nid }] } })).json();
  const doomed = await (await s.fhir('Device', { method: 'POST', json: { resourceType: 'Device', status: 'active' } })).json();
  const res = await s.fhir('', {
    method: 'POST',
    json: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { request: { method: 'GET', url: `Observation?subject=Patient/${patient.id}` } },
        { resource: { ...patient, gender: 'female' }, request: { method: 'PUT', url: `Patient/${patient.id}` } },
        {
          resource: { resourceType: 'Observation', status: 'final', code: { text: '钾' }, subject: { reference: `Patient?identifier=${ID_SYSTEM}|${nid}` } },
          request: { method: 'POST', url: 'Observation' },
        },
        { request: { method: 'DELETE', url: `Device/${doomed.id}` } },
      ],
    },
  });
  t.is(res.status, 200);
  const out = await res.json();
  t.deepEqual(out.entry.map((e: any) => e.response.status), ['200', '200', '201', '200']);
  t.is(out.entry[0].resource.entry.length, 1, 'the GET ran after the POST');
  t.is(out.entry[2].resource.subject.reference, `Patient/${patient.id}`);
  t.is((await s.fhir(`Device/${doomed.id}`)).status, 410);

  const unresolved = await s.fhir('', {
    method: 'POST',
    json: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient?identifier=${ID_SYSTEM}|nobody` } }, request: { method: 'POST', url: 'Observation' } }],
    },
  });
  t.is(unresolved.status, 404);
  t.deepEqual((await unresolved.json()).issue[0].expression, ['Bundle.entry[0].resource.subject.reference']);
});

test('a conditional reference resolves to a Patient the same transaction creates (ifNoneExist), also on a retry', async (t) => {
  const system = `urn:x:${randomUUID()}`;
  const bundle = () => ({
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        resource: { resourceType: 'Observation', status: 'final', code: { text: '钾' }, subject: { reference: `Patient?identifier=${system}|1` } },
        request: { method: 'POST', url: 'Observation' },
      },
      {
        fullUrl: `urn:uuid:${randomUUID()}`,
        resource: { resourceType: 'Patient', identifier: [{ system, value: '1' }], name: [{ family: '何' }] },
        request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${system}|1` },
      },
    ],
  });
  const res = await s.fhir('', { method: 'POST', json: bundle() });
  t.is(res.status, 200, JSON.stringify(await res.clone().json()));
  const out = await res.json();
  t.deepEqual(out.entry.map((e: any) => e.response.status), ['201', '201']);
  const patientId = out.entry[1].resource.id;
  t.is(out.entry[0].resource.subject.reference, `Patient/${patientId}`);
  // a retry: the Patient is now stored and the Bundle's entry matches it (one resource, not two)
  const again = await (await s.fhir('', { method: 'POST', json: bundle() })).json();
  t.deepEqual(again.entry.map((e: any) => e.response.status), ['201', '200']);
  t.is(again.entry[1].resource.id, patientId);
  t.is(again.entry[0].resource.subject.reference, `Patient/${patientId}`);
  const patients = await (await s.fhir(`Patient?identifier=${encodeURIComponent(`${system}|1`)}`)).json();
  t.is(patients.total ?? patients.entry.length, 1);
});

test('a conditional reference matching a stored resource and a different Bundle entry is a 412 naming the reference; nothing is written', async (t) => {
  const system = `urn:x:${randomUUID()}`;
  t.is((await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', identifier: [{ system, value: '1' }] } })).status, 201);
  const conditional = (entries: unknown[]) => ({
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      ...entries,
      {
        resource: { resourceType: 'Observation', status: 'final', code: { text: '钠' }, subject: { reference: `Patient?identifier=${system}|1` } },
        request: { method: 'POST', url: 'Observation' },
      },
    ],
  });
  const plainPatient = { resource: { resourceType: 'Patient', identifier: [{ system, value: '1' }] }, request: { method: 'POST', url: 'Patient' } };
  const res = await s.fhir('', { method: 'POST', json: conditional([plainPatient]) });
  t.is(res.status, 412);
  const outcome = await res.json();
  t.regex(outcome.issue[0].diagnostics, /matched 2 resources/);
  t.deepEqual(outcome.issue[0].expression, ['Bundle.entry[1].resource.subject.reference']);
  const patients = await (await s.fhir(`Patient?identifier=${encodeURIComponent(`${system}|1`)}`)).json();
  t.is(patients.entry.length, 1, 'the Bundle\'s Patient was rolled back');

  // two entries of the Bundle that match: 412 as well
  const other = `urn:x:${randomUUID()}`;
  const two = conditional([0, 1].map(() => ({ resource: { resourceType: 'Patient', identifier: [{ system: other, value: '1' }] }, request: { method: 'POST', url: 'Patient' } })));
  (two.entry[2] as any).resource.subject.reference = `Patient?identifier=${other}|1`;
  t.is((await s.fhir('', { method: 'POST', json: two })).status, 412);
});

test('the report Bundle of docs/submitting-reports.md works for a patient and an institution not registered yet, with their entries added', async (t) => {
  const { readFileSync } = await import('node:fs');
  const doc = readFileSync(new URL('../docs/submitting-reports.md', import.meta.url), 'utf8');
  // fresh identifiers, so that nothing registered by the other tests matches
  const fresh = (text: string) => text.replaceAll('440101198001010011', '440101199909090099').replaceAll('|gy1', '|gy1-new').replaceAll('"gy1"', '"gy1-new"').replaceAll('LAB-2024-000123', 'LAB-2024-NEW');
  const [report, registration] = [...doc.matchAll(/```json\n([\s\S]*?)\n```/g)].map((m) => JSON.parse(fresh(m[1])));
  t.true(Array.isArray(registration), 'the document shows the Patient and Organization entries');
  const bundle = { ...report, entry: [...report.entry, ...registration] };
  const res = await s.fhir('', { method: 'POST', json: bundle });
  t.is(res.status, 200);
  const out = await res.json();
  t.deepEqual(out.entry.map((e: any) => e.response.status), ['201', '201', '201', '201']);
  const [dr, obs, patient, org] = out.entry.map((e: any) => e.resource);
  t.is(dr.subject.reference, `Patient/${patient.id}`);
  t.is(obs.subject.reference, `Patient/${patient.id}`);
  t.is(dr.performer[0].reference, `Organization/${org.id}`);
  const retry = await (await s.fhir('', { method: 'POST', json: bundle })).json();
  t.deepEqual(retry.entry.map((e: any) => e.response.status), ['200', '200', '200', '200']);
  t.deepEqual(retry.entry.map((e: any) => e.resource.id), out.entry.map((e: any) => e.resource.id));
});

test('a batch answers each entry on its own', async (t) => {
  const res = await s.fhir('', {
    method: 'POST',
    json: {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { resource: { resourceType: 'Device', status: 'active' }, request: { method: 'POST', url: 'Device' } },
        { resource: { resourceType: 'Device', status: 42 }, request: { method: 'POST', url: 'Device' } },
        { request: { method: 'GET', url: 'Device/does-not-exist' } },
      ],
    },
  });
  t.is(res.status, 200);
  const out = await res.json();
  t.is(out.type, 'batch-response');
  t.deepEqual(out.entry.map((e: any) => e.response.status), ['201', '400', '404']);
  t.is(out.entry[1].response.outcome.resourceType, 'OperationOutcome');
});

test('malformed bundles are 400s', async (t) => {
  const cases = [
    { resourceType: 'Bundle', type: 'collection', entry: [] },
    { resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'POST', url: 'Patient' } }] },
    { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Patient' }, request: { method: 'FLY', url: 'Patient' } }] },
    { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Observation' } }] },
    { resourceType: 'Patient' },
  ];
  for (const body of cases) {
    const res = await s.fhir('', { method: 'POST', json: body });
    t.is(res.status, 400, JSON.stringify(body));
    t.is((await res.json()).resourceType, 'OperationOutcome');
  }
});

test('the report Bundle of docs/submitting-reports.md is accepted, and a retry stores nothing new', async (t) => {
  const { readFileSync } = await import('node:fs');
  const doc = readFileSync(new URL('../docs/submitting-reports.md', import.meta.url), 'utf8');
  const example = JSON.parse(/```json\n([\s\S]*?)\n```/.exec(doc)![1]);
  await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', identifier: [{ system: ID_SYSTEM, value: '440101198001010011' }] } });
  await s.fhir('Organization', { method: 'POST', json: { resourceType: 'Organization', identifier: [{ system: 'urn:huren:org', value: 'gy1' }], name: '广医一院' } });
  const first = await s.fhir('', { method: 'POST', json: example });
  t.is(first.status, 200);
  const out = await first.json();
  t.deepEqual(out.entry.map((e: any) => e.response.status), ['201', '201']);
  t.is(out.entry[0].resource.result[0].reference, `Observation/${out.entry[1].resource.id}`);
  const retry = await (await s.fhir('', { method: 'POST', json: example })).json();
  t.deepEqual(retry.entry.map((e: any) => e.response.status), ['200', '200']);
  t.deepEqual(retry.entry.map((e: any) => e.resource.id), out.entry.map((e: any) => e.resource.id));
});
