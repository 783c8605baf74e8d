import test from 'ava';
import { startTestServer, type TestServer } from './helpers/server.ts';

let s: TestServer;
const ids: Record<string, string> = {};
const LOINC = 'http://loinc.org';
const tag = `run-${Date.now()}`; // isolates this file's data by a meta.tag-free identifier system

async function create(resource: any): Promise<any> {
  const res = await s.fhir(resource.resourceType, { method: 'POST', json: resource });
  if (res.status !== 201) throw new Error(`create failed ${res.status} ${await res.text()}`);
  return res.json();
}

async function search(query: string, headers: Record<string, string> = {}): Promise<any> {
  const res = await s.fhir(query, { headers });
  if (res.status !== 200) throw new Error(`search ${query} → ${res.status} ${await res.text()}`);
  return res.json();
}

const matchIds = (bundle: any) =>
  (bundle.entry ?? []).filter((e: any) => e.search?.mode === 'match').map((e: any) => e.resource.id).sort();

test.before(async () => {
  s = await startTestServer();
  const org = await create({ resourceType: 'Organization', name: '广州医科大学附属第一医院', identifier: [{ system: 'urn:huren:org', value: `${tag}-gy1` }] });
  ids.org = org.id;
  const zhang = await create({
    resourceType: 'Patient',
    identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: `${tag}-440101198001010011` }],
    name: [{ family: '张', given: ['伟'], text: '张伟' }],
    gender: 'male',
    birthDate: '1980-01-01',
    managingOrganization: { reference: `Organization/${org.id}` },
  });
  ids.zhang = zhang.id;
  const mueller = await create({
    resourceType: 'Patient',
    identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: `${tag}-440101199002020022` }],
    name: [{ family: 'Müller', given: ['Anna'] }],
    gender: 'female',
    birthDate: '1990-02-02',
  });
  ids.mueller = mueller.id;
  const obs = (subject: string, code: string, display: string, value: number, unit: string, date: string, status = 'final') => ({
    resourceType: 'Observation',
    status,
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] }],
    code: { coding: [{ system: LOINC, code, display }], text: display },
    subject: { reference: `Patient/${subject}` },
    performer: [{ reference: `Organization/${org.id}` }],
    effectiveDateTime: date,
    valueQuantity: { value, unit, system: 'http://unitsofmeasure.org', code: unit },
  });
  ids.k1 = (await create(obs(zhang.id, '2823-3', 'Potassium 钾', 4.1, 'mmol/L', '2024-03-01T08:00:00+08:00'))).id;
  ids.k2 = (await create(obs(zhang.id, '2823-3', 'Potassium 钾', 5.6, 'mmol/L', '2024-06-15T08:00:00+08:00'))).id;
  ids.na = (await create(obs(zhang.id, '2951-2', 'Sodium 钠', 140, 'mmol/L', '2024-06-15T08:00:00+08:00'))).id;
  ids.k3 = (await create(obs(mueller.id, '2823-3', 'Potassium 钾', 3.2, 'mmol/L', '2023-12-31T23:00:00Z', 'preliminary'))).id;
  ids.report = (
    await create({
      resourceType: 'DiagnosticReport',
      status: 'final',
      code: { coding: [{ system: LOINC, code: '24326-1', display: 'Electrolytes panel' }] },
      subject: { reference: `Patient/${zhang.id}` },
      result: [{ reference: `Observation/${ids.k2}` }, { reference: `Observation/${ids.na}` }],
      issued: '2024-06-15T10:00:00+08:00',
    })
  ).id;
});
test.after.always(async () => {
  await s?.close();
});

test('token: system|code, code, |code, system|, :not, :text', async (t) => {
  const sub = `subject=Patient/${ids.zhang}`;
  t.deepEqual(matchIds(await search(`Observation?${sub}&code=${LOINC}|2823-3`)), [ids.k1, ids.k2].sort());
  t.deepEqual(matchIds(await search(`Observation?${sub}&code=2951-2`)), [ids.na]);
  t.deepEqual(matchIds(await search(`Observation?${sub}&code=|2951-2`)), [], '|code means no system');
  t.deepEqual(matchIds(await search(`Observation?${sub}&code=${LOINC}|`)), [ids.k1, ids.k2, ids.na].sort());
  t.deepEqual(matchIds(await search(`Observation?${sub}&code:not=${LOINC}|2823-3`)), [ids.na]);
  t.deepEqual(matchIds(await search(`Observation?${sub}&code:text=sodium`)), [ids.na]);
  t.deepEqual(matchIds(await search(`Observation?${sub}&code:text=${encodeURIComponent('钠')}`)), [ids.na], 'text matches at the start of any word');
  t.deepEqual(matchIds(await search(`Observation?${sub}&code:text=odium`)), [], 'but not inside a word');
  t.deepEqual(matchIds(await search(`Observation?${sub}&code=2951-2,2823-3`)), [ids.k1, ids.k2, ids.na].sort(), 'comma is OR');
  t.deepEqual(matchIds(await search(`Patient?identifier=${encodeURIComponent(`urn:oid:2.16.156.10011.1.3|${tag}-440101198001010011`)}`)), [ids.zhang]);
  t.deepEqual(matchIds(await search(`Observation?status=preliminary&subject=Patient/${ids.mueller}`)), [ids.k3]);
});

test('string: default starts-with, accent and case insensitive, :exact, :contains', async (t) => {
  // a Patient's name is a blind index (server/privacy/): whole components, accent and case insensitive, and :exact
  t.deepEqual(matchIds(await search(`Patient?name=${encodeURIComponent('张')}&_id=${ids.zhang},${ids.mueller}`)), [ids.zhang]);
  t.deepEqual(matchIds(await search(`Patient?family=muller&_id=${ids.zhang},${ids.mueller}`)), [ids.mueller]);
  t.deepEqual(matchIds(await search(`Patient?family:exact=muller&_id=${ids.zhang},${ids.mueller}`)), []);
  t.deepEqual(matchIds(await search(`Patient?family:exact=${encodeURIComponent('Müller')}&_id=${ids.zhang},${ids.mueller}`)), [ids.mueller]);
  t.deepEqual(matchIds(await search(`Patient?name=ull&_id=${ids.zhang},${ids.mueller}`)), []);
  // starts-with and :contains over a clear string (a Practitioner's name)
  const doc = await create({ resourceType: 'Practitioner', name: [{ family: 'Müller', given: ['Hans'] }] });
  t.deepEqual(matchIds(await search(`Practitioner?name=mul&_id=${doc.id}`)), [doc.id]);
  t.deepEqual(matchIds(await search(`Practitioner?name:contains=ull&_id=${doc.id}`)), [doc.id]);
  t.deepEqual(matchIds(await search(`Practitioner?name=ull&_id=${doc.id}`)), []);
  t.deepEqual(matchIds(await search(`Organization?name=${encodeURIComponent('广州医科')}&_id=${ids.org}`)), [ids.org]);
});

test('date prefixes eq ne lt gt le ge sa eb, with implicit ranges and time zones', async (t) => {
  const sub = `subject=Patient/${ids.zhang}`;
  const q = async (d: string) => matchIds(await search(`Observation?${sub}&date=${encodeURIComponent(d)}`));
  t.deepEqual(await q('2024-06'), [ids.k2, ids.na].sort());
  t.deepEqual(await q('eq2024-03-01'), [ids.k1]);
  t.deepEqual(await q('ne2024-03-01'), [ids.k2, ids.na].sort());
  t.deepEqual(await q('lt2024-06-15'), [ids.k1]);
  t.deepEqual(await q('gt2024-03-01'), [ids.k2, ids.na].sort());
  t.deepEqual(await q('le2024-03-01'), [ids.k1]);
  t.deepEqual(await q('ge2024-06-15'), [ids.k2, ids.na].sort());
  t.deepEqual(await q('sa2024-03-01'), [ids.k2, ids.na].sort());
  t.deepEqual(await q('eb2024-06-15'), [ids.k1]);
  t.deepEqual(await q('2024-03-01T00:00:00Z'), [ids.k1], '08:00+08:00 is 00:00Z');
  t.deepEqual(await q('2024-03-01T00:00Z'), [ids.k1], 'a minute-precision value covers the whole minute');
  t.deepEqual(await q('2024-03-01T00:01Z'), []);
  t.deepEqual(await q('2024-03-01T00:00:01Z'), [], 'the stored value has second precision');
  const mueller = matchIds(await search(`Observation?subject=Patient/${ids.mueller}&date=2024-01-01T07:00:00%2B08:00`));
  t.deepEqual(mueller, [ids.k3], 'time zones are compared as instants');
  t.deepEqual(matchIds(await search(`Patient?birthdate=ge1985&_id=${ids.zhang},${ids.mueller}`)), [ids.mueller]);
});

test('quantity and number prefixes with units', async (t) => {
  const sub = `subject=Patient/${ids.zhang}`;
  const q = async (v: string) => matchIds(await search(`Observation?${sub}&value-quantity=${encodeURIComponent(v)}`));
  t.deepEqual(await q('4.1'), [ids.k1]);
  t.deepEqual(await q('4'), [ids.k1], '4 means [3.5, 4.5)');
  t.deepEqual(await q('gt5'), [ids.k2, ids.na].sort());
  t.deepEqual(await q('lt5|http://unitsofmeasure.org|mmol/L'), [ids.k1]);
  t.deepEqual(await q('ge5.6||mmol/L'), [ids.k2, ids.na].sort());
  t.deepEqual(await q('le4.1'), [ids.k1]);
  t.deepEqual(await q('ne4.1'), [ids.k2, ids.na].sort());
  t.deepEqual(await q('gt5|http://unitsofmeasure.org|mg/dL'), []);
  t.deepEqual(await q('ap140'), [ids.na]);
  const bad = await s.fhir(`Observation?value-quantity=lots`);
  t.is(bad.status, 400);
});

test('reference, one level of chaining, _has', async (t) => {
  t.deepEqual(matchIds(await search(`Observation?subject=${ids.zhang}&code=2951-2`)), [ids.na]);
  t.deepEqual(matchIds(await search(`Observation?subject:Patient=${ids.zhang}&code=2951-2`)), [ids.na]);
  t.deepEqual(matchIds(await search(`Observation?patient=Patient/${ids.mueller}`)), [ids.k3]);
  const chained = await search(`Observation?subject:Patient.identifier=${encodeURIComponent(`urn:oid:2.16.156.10011.1.3|${tag}-440101199002020022`)}`);
  t.deepEqual(matchIds(chained), [ids.k3]);
  t.deepEqual(matchIds(await search(`Observation?patient.family=muller`)), [ids.k3]);
  const has = await search(`Patient?_has:Observation:patient:code=2951-2&_id=${ids.zhang},${ids.mueller}`);
  t.deepEqual(matchIds(has), [ids.zhang]);
  const hasStatus = await search(`Patient?_has:Observation:subject:status=preliminary&_id=${ids.zhang},${ids.mueller}`);
  t.deepEqual(matchIds(hasStatus), [ids.mueller]);
  t.is((await s.fhir('Observation?subject.foo.bar=1')).status, 400);
  t.is((await s.fhir('Patient?_has:Observation:nope:code=1')).status, 400);
});

test('_id, _lastUpdated, _count, _sort with several keys', async (t) => {
  t.deepEqual(matchIds(await search(`Observation?_id=${ids.k1},${ids.na}`)), [ids.k1, ids.na].sort());
  const recent = await search(`Observation?_id=${ids.k1}&_lastUpdated=gt2020-01-01`);
  t.deepEqual(matchIds(recent), [ids.k1]);
  t.deepEqual(matchIds(await search(`Observation?_id=${ids.k1}&_lastUpdated=lt2020-01-01`)), []);
  const sorted = await search(`Observation?subject=Patient/${ids.zhang}&_sort=code,-date`);
  t.deepEqual(sorted.entry.map((e: any) => e.resource.id), [ids.k2, ids.k1, ids.na]);
  const byValue = await search(`Observation?subject=Patient/${ids.zhang}&_sort=-value-quantity`);
  t.deepEqual(byValue.entry.map((e: any) => e.resource.id), [ids.na, ids.k2, ids.k1]);
  const counted = await search(`Observation?subject=Patient/${ids.zhang}&_count=2&_sort=date`);
  t.is(counted.entry.length, 2);
  t.is(counted.total, undefined, 'no total unless asked when there are more pages');
  t.is((await s.fhir('Observation?_sort=nope')).status, 400);
});

test('_include and _revinclude', async (t) => {
  const inc = await search(`Observation?_id=${ids.k1}&_include=Observation:subject&_include=Observation:performer:Organization`);
  const included = inc.entry.filter((e: any) => e.search.mode === 'include').map((e: any) => `${e.resource.resourceType}/${e.resource.id}`).sort();
  t.deepEqual(included, [`Organization/${ids.org}`, `Patient/${ids.zhang}`].sort());
  const rev = await search(`Patient?_id=${ids.zhang}&_revinclude=DiagnosticReport:subject`);
  t.deepEqual(
    rev.entry.filter((e: any) => e.search.mode === 'include').map((e: any) => e.resource.id),
    [ids.report]
  );
  const iter = await search(`DiagnosticReport?_id=${ids.report}&_include=DiagnosticReport:result&_include:iterate=Observation:performer`);
  const types = iter.entry.filter((e: any) => e.search.mode === 'include').map((e: any) => e.resource.resourceType).sort();
  t.deepEqual(types, ['Observation', 'Observation', 'Organization']);
  t.is((await s.fhir('Observation?_include=Observation:status')).status, 400);
});

test('_total=accurate, _summary=count, _elements, _summary=true', async (t) => {
  const acc = await search(`Observation?subject=Patient/${ids.zhang}&_count=1&_total=accurate`);
  t.is(acc.total, 3);
  t.is(acc.entry.length, 1);
  const cnt = await search(`Observation?subject=Patient/${ids.zhang}&_summary=count`);
  t.is(cnt.total, 3);
  t.is(cnt.entry, undefined);
  const el = await search(`Observation?_id=${ids.k1}&_elements=status,code`);
  const r = el.entry[0].resource;
  t.deepEqual(Object.keys(r).sort(), ['code', 'id', 'meta', 'resourceType', 'status']);
  t.true(r.meta.tag.some((x: any) => x.code === 'SUBSETTED'));
  const sum = await search(`Patient?_id=${ids.zhang}&_summary=true`);
  const p = sum.entry[0].resource;
  t.truthy(p.name);
  t.truthy(p.birthDate);
  t.is(p.text, undefined);
});

test('paging links stay correct while new resources arrive', async (t) => {
  const system = `urn:paging:${Date.now()}`;
  for (let i = 0; i < 5; i++) {
    await create({ resourceType: 'Device', identifier: [{ system, value: String(i) }], status: 'active' });
  }
  const first = await search(`Device?identifier=${encodeURIComponent(system)}|&_count=2`);
  t.is(first.entry.length, 2);
  // five more arrive while the client pages
  for (let i = 5; i < 10; i++) {
    await create({ resourceType: 'Device', identifier: [{ system, value: String(i) }], status: 'active' });
  }
  const seen = matchIds(first);
  let page = first;
  while (page.link.find((l: any) => l.relation === 'next')) {
    const url = page.link.find((l: any) => l.relation === 'next').url;
    const res = await fetch(url, { headers: { authorization: `Bearer ${s.token}` } });
    page = await res.json();
    seen.push(...matchIds(page));
  }
  t.is(seen.length, 5, 'the paged result set is the one frozen at the first page');
  t.is(new Set(seen).size, 5, 'no resource appears twice');
  const prev = page.link.find((l: any) => l.relation === 'previous');
  t.truthy(prev);
  const back = await (await fetch(prev.url, { headers: { authorization: `Bearer ${s.token}` } })).json();
  t.is(back.entry.length, 2);
  const fresh = await search(`Device?identifier=${encodeURIComponent(system)}|&_total=accurate&_count=1`);
  t.is(fresh.total, 10);
});

test('POST _search equals GET; unknown parameters warn, or fail under handling=strict', async (t) => {
  const res = await s.fhir('Observation/_search', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ subject: `Patient/${ids.zhang}`, code: `${LOINC}|2823-3` }).toString(),
  });
  t.is(res.status, 200);
  t.deepEqual(matchIds(await res.json()), [ids.k1, ids.k2].sort());
  const lenient = await search(`Observation?subject=Patient/${ids.zhang}&colour=blue`);
  t.is(matchIds(lenient).length, 3);
  const outcome = lenient.entry.find((e: any) => e.search.mode === 'outcome').resource;
  t.is(outcome.issue[0].severity, 'warning');
  t.deepEqual(outcome.issue[0].expression, ['colour']);
  const strict = await s.fhir(`Observation?subject=Patient/${ids.zhang}&colour=blue`, { headers: { prefer: 'handling=strict' } });
  t.is(strict.status, 400);
  t.is((await strict.json()).issue[0].expression[0], 'colour');
});

test('an ambiguous chain (subject.identifier: Patient, Group, Device, Location) is a 400 naming it under handling=strict; the typed chain is not', async (t) => {
  const nid = encodeURIComponent(`urn:oid:2.16.156.10011.1.3|${tag}-440101199002020022`);
  const strict = { prefer: 'handling=strict' };
  const refused = await s.fhir(`Observation?subject.identifier=${nid}`, { headers: strict });
  t.is(refused.status, 400);
  const issue = (await refused.json()).issue[0];
  t.deepEqual(issue.expression, ['subject.identifier']);
  t.regex(issue.details.text, /Ambiguous chain 'subject\.identifier'.*Patient.*subject:Patient\.identifier/);
  // the same search without strict handling searches every target type and finds the report's result
  t.deepEqual(matchIds(await search(`Observation?subject.identifier=${nid}`)), [ids.k3]);
  // named type, or a parameter only one target type has: fine under strict handling too
  t.deepEqual(matchIds(await search(`Observation?subject:Patient.identifier=${nid}`, strict)), [ids.k3]);
  t.deepEqual(matchIds(await search(`Observation?patient.identifier=${nid}`, strict)), [ids.k3]);
  // a malformed value inside a chain names the whole chained parameter
  const bad = await s.fhir('Observation?subject:Patient.birthdate=notadate');
  t.is(bad.status, 400);
  t.deepEqual((await bad.json()).issue[0].expression, ['subject:Patient.birthdate']);
});

test('deleted resources leave search results, updates re-index', async (t) => {
  const dev = await create({ resourceType: 'Device', status: 'active', identifier: [{ system: 'urn:del', value: tag }] });
  t.deepEqual(matchIds(await search(`Device?identifier=urn:del|${tag}`)), [dev.id]);
  await s.fhir(`Device/${dev.id}`, { method: 'PUT', json: { ...dev, status: 'inactive' } });
  t.deepEqual(matchIds(await search(`Device?identifier=urn:del|${tag}&status=active`)), []);
  t.deepEqual(matchIds(await search(`Device?identifier=urn:del|${tag}&status=inactive`)), [dev.id]);
  await s.fhir(`Device/${dev.id}`, { method: 'DELETE' });
  t.deepEqual(matchIds(await search(`Device?identifier=urn:del|${tag}`)), []);
});
