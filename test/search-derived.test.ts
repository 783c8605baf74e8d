/**
 * Search parameters whose values are by definition those of other parameters keep no index rows of their own
 * (server/fhir/search/indexer.ts `storageOf`): Observation `patient` is searched as the `subject` rows whose
 * target is a Patient, `combo-code` as the rows of `code` and `component-code`, Encounter `practitioner` as the
 * `participant` rows of Practitioners. Each way a parameter is used still answers as its definition says:
 * plain search, `:missing`, `:not`, chains, `_has`, `_include`, `_revinclude`, `_sort`, a chain over several
 * target types, and Patient `$everything` (whose compartment names Encounter by `patient`).
 */
import test from 'ava';
import { indexResource } from '../server/fhir/search/indexer.ts';
import { storageOf } from '../server/fhir/search/indexer.ts';
import { loadDefinitions } from '../server/fhir/definitions.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const LOINC = 'http://loinc.org';
let s: TestServer;
const ids: Record<string, string> = {};

async function create(resource: any): Promise<any> {
  const res = await s.fhir(resource.resourceType, { method: 'POST', json: resource });
  if (res.status !== 201) throw new Error(`create failed ${res.status} ${await res.text()}`);
  return res.json();
}
async function found(query: string): Promise<string[]> {
  const res = await s.fhir(query);
  if (res.status !== 200) throw new Error(`search ${query} → ${res.status} ${await res.text()}`);
  const bundle = await res.json();
  return (bundle.entry ?? []).map((e: any) => `${e.search?.mode ?? 'match'}:${e.resource.resourceType}/${e.resource.id}`).sort();
}
const m = (...refs: string[]) => refs.map((r) => `match:${r}`);
const inc = (...refs: string[]) => refs.map((r) => `include:${r}`);

test.before(async () => {
  s = await startTestServer();
  const pat = (family: string, gender: string) => create({ resourceType: 'Patient', name: [{ family }], gender });
  ids.li = (await pat('李', 'female')).id;
  ids.wang = (await pat('王', 'male')).id;
  ids.group = (await create({ resourceType: 'Group', type: 'person', actual: true, name: '体检组' })).id;
  ids.doc = (await create({ resourceType: 'Practitioner', name: [{ family: '陈' }] })).id;
  const obs = (subject: string, code: string, component?: string) => ({
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: LOINC, code }] },
    subject: { reference: subject },
    ...(component ? { component: [{ code: { coding: [{ system: LOINC, code: component }] }, valueQuantity: { value: 120, unit: 'mm[Hg]' } }] } : {}),
  });
  ids.bp = (await create(obs(`Patient/${ids.li}`, '85354-9', '8480-6'))).id; // panel with a systolic component
  ids.k = (await create(obs(`Patient/${ids.wang}`, '2823-3'))).id;
  ids.grp = (await create(obs(`Group/${ids.group}`, '2823-3'))).id;
  ids.none = (await create({ resourceType: 'Observation', status: 'final', code: { text: '无编码' } })).id;
  ids.enc = (await create({ resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' }, subject: { reference: `Patient/${ids.li}` }, participant: [{ individual: { reference: `Practitioner/${ids.doc}` } }] })).id;
});
test.after.always(async () => {
  await s?.close();
});

test('derived parameters keep no rows of their own, and say where theirs are', (t) => {
  loadDefinitions();
  t.deepEqual(storageOf('Observation', 'patient'), { codes: ['subject'], targetType: 'Patient' });
  t.deepEqual(storageOf('Observation', 'combo-code').codes.sort(), ['code', 'component-code']);
  t.deepEqual(storageOf('Encounter', 'practitioner'), { codes: ['participant'], targetType: 'Practitioner' });
  t.deepEqual(storageOf('Observation', 'subject'), { codes: ['subject'] });
  t.deepEqual(storageOf('Consent', 'patient'), { codes: ['patient'] }); // Consent.patient is an element of its own
  const rows = indexResource({ resourceType: 'Observation', id: 'x', status: 'final', code: { coding: [{ system: LOINC, code: '1-8' }] }, subject: { reference: 'Patient/p' }, component: [{ code: { coding: [{ system: LOINC, code: '2-6' }] } }] } as any);
  const params = new Set([...rows.token, ...rows.reference].map((r) => r[2]));
  t.true(params.has('subject') && params.has('code') && params.has('component-code'));
  t.false(params.has('patient'));
  t.false(params.has('combo-code'));
});

test('patient= matches subjects that are Patients, not Groups', async (t) => {
  t.deepEqual(await found(`Observation?patient=${ids.li}`), m(`Observation/${ids.bp}`));
  t.deepEqual(await found(`Observation?patient=Patient/${ids.wang}`), m(`Observation/${ids.k}`));
  t.deepEqual(await found(`Observation?patient=${ids.group}`), []);
  t.deepEqual(await found(`Observation?subject=Group/${ids.group}`), m(`Observation/${ids.grp}`));
  t.deepEqual(await found(`Observation?patient:missing=true&code=2823-3`), m(`Observation/${ids.grp}`));
  t.deepEqual(await found(`Observation?patient:missing=false&code=2823-3`), m(`Observation/${ids.k}`));
});

test('combo-code= matches the code and the component codes; :missing and :not as defined', async (t) => {
  t.deepEqual(await found(`Observation?combo-code=8480-6`), m(`Observation/${ids.bp}`)); // a component's code
  t.deepEqual(await found(`Observation?combo-code=${LOINC}|85354-9`), m(`Observation/${ids.bp}`)); // the main code
  t.deepEqual(await found(`Observation?combo-code=2823-3&patient=${ids.wang}`), m(`Observation/${ids.k}`));
  t.deepEqual(await found(`Observation?combo-code:missing=true`), []); // a code's text is a value too
  t.deepEqual(await found(`Observation?combo-code:text=无编码`), m(`Observation/${ids.none}`));
  t.deepEqual(await found(`Observation?combo-code:not=8480-6&patient:missing=false`), m(`Observation/${ids.k}`));
});

test('chains, _has, _include, _revinclude and _sort through a derived parameter', async (t) => {
  t.deepEqual(await found(`Observation?patient.gender=female`), m(`Observation/${ids.bp}`));
  t.deepEqual(await found(`Patient?_has:Observation:patient:code=2823-3`), m(`Patient/${ids.wang}`));
  t.deepEqual(await found(`Patient?_has:Observation:patient:combo-code=8480-6`), m(`Patient/${ids.li}`));
  t.deepEqual(await found(`Observation?_id=${ids.bp},${ids.grp}&_include=Observation:patient`), [...inc(`Patient/${ids.li}`), ...m(`Observation/${ids.bp}`, `Observation/${ids.grp}`)].sort());
  t.deepEqual(await found(`Patient?_id=${ids.li}&_revinclude=Observation:patient`), [...inc(`Observation/${ids.bp}`), ...m(`Patient/${ids.li}`)].sort());
  t.deepEqual(await found(`Encounter?practitioner=${ids.doc}`), m(`Encounter/${ids.enc}`));
  t.deepEqual(await found(`Encounter?practitioner.family=陈&patient=${ids.li}`), m(`Encounter/${ids.enc}`));
  const sorted = await (await s.fhir(`Observation?code=2823-3&_sort=patient`)).json();
  t.is(sorted.entry.length, 2);
  t.is(sorted.entry.at(-1).resource.id, ids.grp); // no Patient subject: sorted last
});

test('a chain over several target types keeps each type\'s way of storing the parameter', async (t) => {
  // Observation.derivedFrom reaches Observation (whose `patient` is kept as `subject` rows) and MolecularSequence
  // (whose `patient` is an element of its own, with rows of its own), among others
  t.deepEqual(storageOf('MolecularSequence', 'patient'), { codes: ['patient'] });
  const seq = await create({ resourceType: 'MolecularSequence', coordinateSystem: 0, patient: { reference: `Patient/${ids.li}` } });
  const fromObs = await create({ resourceType: 'Observation', status: 'final', code: { text: '推导' }, derivedFrom: [{ reference: `Observation/${ids.bp}` }] });
  const fromSeq = await create({ resourceType: 'Observation', status: 'final', code: { text: '推导' }, derivedFrom: [{ reference: `MolecularSequence/${seq.id}` }] });
  await create({ resourceType: 'Observation', status: 'final', code: { text: '推导' }, derivedFrom: [{ reference: `Observation/${ids.k}` }] });
  t.deepEqual(await found(`Observation?derived-from.patient=${ids.li}`), m(`Observation/${fromObs.id}`, `Observation/${fromSeq.id}`).sort());
  t.deepEqual(await found(`Observation?derived-from:Observation.patient=${ids.li}`), m(`Observation/${fromObs.id}`));
  t.deepEqual(await found(`Observation?derived-from:MolecularSequence.patient=${ids.li}`), m(`Observation/${fromSeq.id}`));
});

test('Patient $everything finds the Encounter its compartment names by patient', async (t) => {
  const res = await s.fhir(`Patient/${ids.li}/$everything`);
  t.is(res.status, 200);
  const refs = ((await res.json()).entry ?? []).map((e: any) => `${e.resource.resourceType}/${e.resource.id}`);
  t.true(refs.includes(`Encounter/${ids.enc}`));
  t.true(refs.includes(`Observation/${ids.bp}`));
  t.false(refs.includes(`Observation/${ids.k}`));
});
