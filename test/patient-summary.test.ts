/**
 * The health-record summary (健康档案, issue 10 item 10): `Patient/[id]/$summary` answers a FHIR document
 * (Bundle type document, first entry an IPS-shaped Composition) with, per kind and category, the latest
 * results, the abnormal ones and the recognisable ones with days left; it validates as a document; it is
 * authorised and audited like `$everything` (same scope answer, one access record per call); an unknown
 * patient is a 404.
 */
import test from 'ava';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { FIELD, ORG_ID, seedScenario, type Seeded } from './helpers/recognition-data.ts';
import { backendClients, type BackendClients } from './helpers/backend-token.ts';

const LOINC = 'http://loinc.org';
const SECTION = 'https://fhir.huren.gz.cn/CodeSystem/summary-section';
const DAYS = 'https://fhir.huren.gz.cn/StructureDefinition/days-remaining';

let s: TestServer;
let d: Seeded;
let backend: BackendClients;

test.before(async () => {
  backend = await backendClients([
    { clientId: 'summary-narrow', organization: `Organization?identifier=${ORG_ID}|summary-hospital`, scope: 'system/Observation.rs' },
    { clientId: 'summary-patient', organization: `Organization?identifier=${ORG_ID}|summary-hospital`, scope: 'system/Patient.rs system/DiagnosticReport.rs' },
  ]);
  s = await startTestServer({ clients: backend.clients as never });
  d = await seedScenario(s);
});
test.after.always(async () => {
  await s?.close();
});

async function get(path: string): Promise<any> {
  const res = await s.fhir(path);
  const body = await res.json();
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}
const codeOf = (section: any) => section.code?.coding?.[0]?.code;
const refs = (section: any) => (section.entry ?? []).map((e: any) => e.reference);
async function accessRecords(): Promise<any[]> {
  const bundle = await get(`AuditEvent?entity=${encodeURIComponent(`Patient/${d.patient}`)}&_count=500`);
  return (bundle.entry ?? []).map((e: any) => e.resource).filter((a: any) => !a.entity[0].detail?.some((x: any) => x.type === 'path') && a.entity[0].detail?.some((x: any) => x.type === 'operation' && x.valueString === '$summary'));
}

test.serial('the summary: latest results per kind and category, the abnormal ones, the recognisable ones with days left', async (t) => {
  const before = (await accessRecords()).length;
  const doc = await get(`Patient/${d.patient}/$summary?requester=Organization/${d.org['req-gz']}`);
  t.is(doc.resourceType, 'Bundle');
  t.is(doc.type, 'document');
  const composition = doc.entry[0].resource;
  t.is(composition.resourceType, 'Composition');
  t.deepEqual(composition.type.coding[0], { system: LOINC, code: '60591-5', display: 'Patient summary Document' });
  t.is(composition.subject.reference, `Patient/${d.patient}`);
  const [lab, exam, abnormal, recognisable] = composition.section;
  t.is(codeOf(lab), '30954-2');
  t.is(codeOf(exam), '18748-4');
  t.is(codeOf(abnormal), 'abnormal');
  t.is(abnormal.code.coding[0].system, SECTION);
  t.is(codeOf(recognisable), 'recognisable');

  // per category: the latest report of each item
  const chemistry = lab.section.find((x: any) => codeOf(x) === FIELD.chemistry);
  t.truthy(chemistry, lab.section.map((x: any) => x.title).join(', '));
  t.true(refs(chemistry).includes(`DiagnosticReport/${d.report.fresh}`));
  t.true(refs(chemistry).includes(`DiagnosticReport/${d.report.expired}`), 'an expired result is still the latest of its item');
  t.true(lab.section.some((x: any) => codeOf(x) === 'other' && refs(x).includes(`DiagnosticReport/${d.report['not-in-catalogue']}`)), 'a report outside the catalogue is shown too');
  t.true(exam.section.some((x: any) => codeOf(x) === FIELD.ct), 'CT under the examinations');

  // the abnormal results: H, L, LL (critical)
  const fresh = await get(`DiagnosticReport/${d.report.fresh}`);
  const cbc = await get(`DiagnosticReport/${d.report.cbc}`);
  const abnormalRefs = refs(abnormal);
  t.true(abnormalRefs.includes(fresh.result[0].reference));
  t.true(abnormalRefs.includes(cbc.result[0].reference), 'L');
  t.true(abnormalRefs.includes(cbc.result[2].reference), 'LL');
  t.false(abnormalRefs.includes(cbc.result[1].reference), 'a normal result is not listed');
  t.regex(abnormal.text.div, /危急值/);

  // the recognisable ones, with days left
  const freshEntry = recognisable.entry.find((e: any) => e.reference === `DiagnosticReport/${d.report.fresh}`);
  t.deepEqual(freshEntry.extension, [{ url: DAYS, valueInteger: 5 }]);
  t.regex(freshEntry.display, /剩余 5 天/);
  t.false(refs(recognisable).includes(`DiagnosticReport/${d.report.expired}`));
  t.false(refs(recognisable).includes(`DiagnosticReport/${d.report['no-hr']}`));

  // the referenced resources are in the document
  const inDoc = new Set(doc.entry.map((e: any) => `${e.resource.resourceType}/${e.resource.id}`));
  for (const r of [`Patient/${d.patient}`, `DiagnosticReport/${d.report.fresh}`, fresh.result[0].reference, `Organization/${d.org.city}`]) t.true(inDoc.has(r), r);
  t.true(doc.entry.every((e: any) => e.fullUrl === `${s.base}/${e.resource.resourceType}/${e.resource.id}`));

  t.is((await accessRecords()).length, before + 1, 'one access record, as for $everything');
});

test.serial('the summary validates as a FHIR document; a patient without reports gets empty sections with a reason', async (t) => {
  for (const patient of [d.patient, d.emptyPatient]) {
    const doc = await get(`Patient/${patient}/$summary?requester=Organization/${d.org['req-gz']}`);
    const res = await s.fhir('Bundle/$validate', { method: 'POST', json: doc });
    const outcome = (await res.json()) as any;
    const errors = (outcome.issue ?? []).filter((i: any) => i.severity === 'error' || i.severity === 'fatal');
    t.deepEqual(errors, [], JSON.stringify(errors));
    t.truthy(doc.identifier?.value);
    t.truthy(doc.timestamp);
  }
  const empty = (await get(`Patient/${d.emptyPatient}/$summary`)).entry[0].resource;
  for (const section of empty.section) t.truthy(section.emptyReason, section.title);
  t.is(empty.section[3].emptyReason.coding[0].code, 'notasked', 'no requester: recognition was not judged');
});

test.serial('authorised like $everything: 403 without the scope, the same answer with it; 404 for an unknown patient', async (t) => {
  const narrow = await backend.tokenFor(s.huren.url, 'summary-narrow', 'system/Observation.rs');
  const wide = await backend.tokenFor(s.huren.url, 'summary-patient', 'system/Patient.rs system/DiagnosticReport.rs');
  const call = (op: string, token: string) => fetch(`${s.base}/Patient/${d.patient}/${op}`, { headers: { authorization: `Bearer ${token}` } });
  const refused = await call('$summary', narrow);
  t.is(refused.status, 403);
  t.is(((await refused.json()) as any).resourceType, 'OperationOutcome');
  t.is((await call('$everything', narrow)).status, 403);
  t.is((await call('$summary', wide)).status, (await call('$everything', wide)).status);
  t.is((await fetch(`${s.base}/Patient/${d.patient}/$summary`)).status, 401);

  const unknown = await s.fhir('Patient/no-such-patient/$summary');
  t.is(unknown.status, 404);
  t.is(((await unknown.json()) as any).resourceType, 'OperationOutcome');
  t.is((await s.fhir(`Patient/${d.patient}/$summary?requester=Organization/nowhere`)).status, 404, 'an unknown requester');
  t.is((await s.fhir(`Patient/${d.patient}/$summary?colour=blue`)).status, 400, 'an unknown parameter');
});
