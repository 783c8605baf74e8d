/**
 * Approved local-code mappings feed recognition (issue 10, item 6): a report coded with the performing
 * institution's local code whose dictionary entry is approved (LIS001 → 血细胞分析) is recognisable, an order
 * coded with the requester's approved local code finds the duplicate, the report views show the item — and each
 * answer names the mapping it used. Pending, retired, re-targeted entries and another institution's entries
 * do not count; approvals and map uploads are seen at once (the cache is dropped).
 */
import test from 'ava';
import { CATALOGUE, FIELD, ITEM, NATIONAL_ID, daysAgo, idOf, organization, transaction } from './helpers/recognition-data.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const LAB = 'http://lis.performer.example/items';
const HIS = 'http://his.requester.example/orders';
const venue = (org: string) => [{ code: { system: 'http://terminology.hl7.org/CodeSystem/usage-context-type', code: 'venue' }, valueReference: { reference: `Organization/${org}` } }];

let s: TestServer;
let performer: string;
let requester: string;
let patient: string;
let report: string;

function map(id: string, org: string, source: string, elements: [string, string, string][]): any {
  return {
    resourceType: 'ConceptMap',
    id,
    status: 'active',
    useContext: venue(org),
    group: [{ source, target: CATALOGUE, element: elements.map(([code, display, target]) => ({ code, display, target: [{ code: target, equivalence: 'equivalent' }] })) }],
  };
}
async function put(resource: any): Promise<void> {
  const res = await s.fhir(`${resource.resourceType}/${resource.id}`, { method: 'PUT', json: resource });
  if (res.status >= 300) throw new Error(`PUT ${resource.id}: ${res.status} ${await res.text()}`);
}
async function status(mapId: string, code: string, value: string): Promise<void> {
  const res = await s.fhir(`ConceptMap/${mapId}/$entry-status`, {
    method: 'POST',
    json: { resourceType: 'Parameters', parameter: [{ name: 'code', valueCode: code }, { name: 'status', valueCode: value }] },
  });
  if (res.status !== 200) throw new Error(`$entry-status ${res.status}: ${await res.text()}`);
}
const part = (p: any, name: string) => p.part.find((x: any) => x.name === name);
const parts = (p: any, name: string) => p.part.filter((x: any) => x.name === name);
const mappingOf = (p: any) => {
  const m = part(p, 'mapping');
  return m && { map: part(m, 'map').valueReference.reference, source: `${part(m, 'source').valueCoding.system}|${part(m, 'source').valueCoding.code}` };
};

async function check(): Promise<any[]> {
  const res = await s.fhir(`Patient/${patient}/$recognition-check?requester=Organization/${requester}`);
  const body = (await res.json()) as any;
  if (res.status !== 200) throw new Error(`$recognition-check ${res.status}: ${JSON.stringify(body)}`);
  return body.parameter.filter((p: any) => p.name === 'result');
}
async function duplicate(coding: { system: string; code: string }): Promise<any> {
  const res = await s.fhir('ServiceRequest/$duplicate-check', {
    method: 'POST',
    json: {
      resourceType: 'Parameters',
      parameter: [
        { name: 'order', resource: { resourceType: 'ServiceRequest', status: 'draft', intent: 'order', code: { coding: [coding] }, subject: { reference: `Patient/${patient}` } } },
        { name: 'requester', valueReference: { reference: `Organization/${requester}` } },
      ],
    },
  });
  const body = (await res.json()) as any;
  if (res.status !== 200) throw new Error(`$duplicate-check ${res.status}: ${JSON.stringify(body)}`);
  return body.parameter.find((p: any) => p.name === 'item');
}

test.before(async () => {
  s = await startTestServer();
  const first = await transaction(s, [
    { resource: organization('lm-lab', '广州市第一人民医院', '440104', [{ field: FIELD.haematology, covers: ['440100'] }]), request: { method: 'POST', url: 'Organization' } },
    { resource: organization('lm-req', '广州市荔湾区人民医院', '440103', []), request: { method: 'POST', url: 'Organization' } },
    { resource: { resourceType: 'Patient', identifier: [{ system: NATIONAL_ID, value: '440101199001019999' }], name: [{ family: '陈' }] }, request: { method: 'POST', url: 'Patient' } },
  ]);
  [performer, requester, patient] = first.entry.map(idOf);
  // the documented Bundle shape: the performer on the report, local codes on the report and its result
  const posted = await transaction(s, [
    {
      fullUrl: 'urn:uuid:0f3c7a52-1d59-4a7e-9a39-6f1c2e0b0001',
      resource: { resourceType: 'Observation', status: 'final', code: { coding: [{ system: LAB, code: 'LIS012', display: '白细胞计数' }] }, subject: { reference: `Patient/${patient}` }, valueQuantity: { value: 6.1, unit: '10*9/L' } },
      request: { method: 'POST', url: 'Observation' },
    },
    {
      resource: {
        resourceType: 'DiagnosticReport',
        extension: [{ url: 'https://fhir.huren.gz.cn/StructureDefinition/hr-mark', valueString: '粤HR' }],
        status: 'final',
        code: { coding: [{ system: LAB, code: 'LIS001', display: '血常规' }] },
        subject: { reference: `Patient/${patient}` },
        performer: [{ reference: `Organization/${performer}` }],
        issued: daysAgo(1),
        result: [{ reference: 'urn:uuid:0f3c7a52-1d59-4a7e-9a39-6f1c2e0b0001' }],
      },
      request: { method: 'POST', url: 'DiagnosticReport' },
    },
  ]);
  report = idOf(posted.entry[1]);
  await put(map('lab-items', performer, LAB, [['LIS001', '血常规', ITEM.cbc], ['LIS012', '白细胞计数', ITEM.wbc]]));
  // the requester's own dictionary: its order code, and (wrongly for the performer's system) LIS001 → 钾
  const his = map('his-items', requester, HIS, [['HIS-100', '血常规', ITEM.cbc]]);
  his.group.push(map('x', requester, LAB, [['LIS001', '钾', ITEM.potassium]]).group[0]);
  await put(his);
  await status('his-items', 'HIS-100', 'approved');
  await status('his-items', 'LIS001', 'approved');
});
test.after.always(async () => {
  await s?.close();
});

test.serial('a report coded with the performer’s local code: not recognisable while the entry is pending, recognisable once approved, naming the map', async (t) => {
  t.deepEqual(await check(), [], 'pending entries do not count (and the requester’s own entry for the same code is not the performer’s)');
  await status('lab-items', 'LIS001', 'approved'); // cached "no mappings" is dropped by the approval
  const results = await check();
  t.deepEqual(results.map((r) => part(r, 'item').valueCoding.code), [ITEM.cbc], 'the performer’s approved entry, not the requester’s (钾)');
  const r = results[0];
  t.is(part(r, 'report').valueReference.reference, `DiagnosticReport/${report}`);
  t.deepEqual(mappingOf(r), { map: 'ConceptMap/lab-items', source: `${LAB}|LIS001` });
  t.true(part(r, 'daysRemaining').valueInteger >= 5);
});

test.serial('the duplicate check: an order coded with the requester’s approved local code finds the result coded with the performer’s', async (t) => {
  const item = await duplicate({ system: HIS, code: 'HIS-100' });
  t.is(part(item, 'code').valueCoding.code, ITEM.cbc);
  t.true(part(item, 'duplicate').valueBoolean);
  const om = part(item, 'orderMapping');
  t.is(part(om, 'map').valueReference.reference, 'ConceptMap/his-items');
  t.is(part(om, 'source').valueCoding.code, 'HIS-100');
  const match = parts(item, 'match');
  t.is(match.length, 1);
  t.deepEqual(mappingOf(match[0]), { map: 'ConceptMap/lab-items', source: `${LAB}|LIS001` });
  // an order with the performer's code is not the requester's: its own dictionary maps LIS001 to 钾
  const other = await duplicate({ system: LAB, code: 'LIS001' });
  t.is(part(other, 'code').valueCoding.code, ITEM.potassium);
  t.false(part(other, 'duplicate').valueBoolean);
  // an unknown local code stays "not in the catalogue"
  const unknown = await duplicate({ system: HIS, code: 'HIS-404' });
  t.false(part(unknown, 'duplicate').valueBoolean);
  t.regex(part(unknown, 'reason').valueString, /不在互认目录中/);
  t.falsy(part(unknown, 'orderMapping'));
});

test.serial('report views show the item of a local code with the mapping used', async (t) => {
  const list = (await (await s.fhir(`Patient/${patient}/$reports?requester=Organization/${requester}`)).json()) as any;
  const entry = list.parameter.find((p: any) => p.name === 'report');
  t.is(part(entry, 'kind').valueString, '检验');
  t.true(part(entry, 'recognisable').valueBoolean);
  const items = parts(entry, 'item');
  t.deepEqual(items.map((i: any) => part(i, 'item').valueCoding.code).sort(), [ITEM.cbc].sort(), 'LIS012 is still pending: not an item');
  t.deepEqual(mappingOf(items[0]), { map: 'ConceptMap/lab-items', source: `${LAB}|LIS001` });
  await status('lab-items', 'LIS012', 'approved');
  const view = (await (await s.fhir(`DiagnosticReport/${report}/$view?requester=Organization/${requester}`)).json()) as any;
  const viewItems = view.parameter.filter((p: any) => p.name === 'item');
  t.deepEqual(viewItems.map((i: any) => part(i, 'item').valueCoding.code).sort(), [ITEM.cbc, ITEM.wbc].sort());
  t.deepEqual(mappingOf(viewItems.find((i: any) => part(i, 'item').valueCoding.code === ITEM.wbc)), { map: 'ConceptMap/lab-items', source: `${LAB}|LIS012` });
});

test.serial('a retired entry, or a map upload that re-targets the code (back to pending), no longer counts', async (t) => {
  await status('lab-items', 'LIS001', 'retired');
  t.deepEqual((await check()).map((r) => part(r, 'item').valueCoding.code), [ITEM.wbc], 'LIS001 retired; the approved result code LIS012 still counts');
  await status('lab-items', 'LIS001', 'pending');
  await status('lab-items', 'LIS001', 'approved');
  t.is((await check()).length, 2);
  await put(map('lab-items', performer, LAB, [['LIS001', '血常规', ITEM.potassium], ['LIS012', '白细胞计数', ITEM.wbc]]));
  t.deepEqual((await check()).map((r) => part(r, 'item').valueCoding.code), [ITEM.wbc], 'the re-targeted entry is pending again: the upload dropped the cache');
});
