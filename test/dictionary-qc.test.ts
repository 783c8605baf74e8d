/**
 * Dictionary QC (字典数据质控, issue 3): an institution's local dictionary and its map to the catalogue; the
 * review status of every map entry with the time and author of its last change; every change traced per
 * entry; the institution's QC report finds each kind of problem. Through FHIR operations and the JSON API.
 */
import test from 'ava';
import { platformCode } from '../server/terminology/catalogue-source.ts';
import { importCatalogue } from '../server/terminology/import.ts';
import { HEADER, shippedRows } from './helpers/catalogue.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const CATALOGUE = 'https://fhir.huren.gz.cn/CodeSystem/recognition-catalogue';
const LOCAL = 'http://lis.hospital-a.example/items';
const ORG = 'hospital-a';
const OTHER = 'hospital-b';
const MAP = 'hospital-a-items';
const venue = (org: string) => [{ code: { system: 'http://terminology.hl7.org/CodeSystem/usage-context-type', code: 'venue' }, valueReference: { reference: `Organization/${org}` } }];
const CODES = {
  cbc: platformCode('检验', '血细胞分析'),
  alt: platformCode('检验', '丙氨酸氨基转移酶'),
  ast: platformCode('检验', '天门冬氨酸氨基转移酶'),
  abo: platformCode('检验', 'ABO血型鉴定'), // no validity window
  potassium: platformCode('检验', '钾'), // retired by the edition imported below
};

let s: TestServer;
test.before(async () => {
  s = await startTestServer();
  // an edition without 钾: it is retired
  const rows = shippedRows()
    .filter((r) => r[3] !== '钾')
    .map((r) => (r[8] === '' ? [...r.slice(0, 8), '不限', ...r.slice(9)] : r));
  await importCatalogue(s.huren.db, Buffer.from(`${HEADER}\n${rows.map((r) => r.join(',')).join('\n')}\n`), { effectiveFrom: '2024-06-01' });
  for (const id of [ORG, OTHER]) await put({ resourceType: 'Organization', id, name: id });
});
test.after.always(async () => {
  await s?.close();
});

async function put(resource: any): Promise<any> {
  const res = await s.fhir(`${resource.resourceType}/${resource.id}`, { method: 'PUT', json: resource });
  if (res.status >= 300) throw new Error(`PUT ${resource.resourceType}/${resource.id}: ${res.status} ${await res.text()}`);
  return res.json();
}
async function post(resource: any): Promise<any> {
  const res = await s.fhir(resource.resourceType, { method: 'POST', json: resource });
  if (res.status !== 201) throw new Error(`POST ${resource.resourceType}: ${res.status} ${await res.text()}`);
  return res.json();
}
function map(elements: [string, string, string | undefined][]): any {
  return {
    resourceType: 'ConceptMap',
    id: MAP,
    url: 'http://lis.hospital-a.example/ConceptMap/items-to-catalogue',
    status: 'active',
    useContext: venue(ORG),
    group: [{ source: LOCAL, target: CATALOGUE, element: elements.map(([code, display, target]) => ({ code, display, target: target ? [{ code: target, equivalence: 'equivalent' }] : [{ equivalence: 'unmatched' }] })) }],
  };
}
async function op(path: string, parameter: unknown[], method = 'POST') {
  const res =
    method === 'GET'
      ? await s.fhir(`${path}?${new URLSearchParams(parameter as [string, string][])}`)
      : await s.fhir(path, { method: 'POST', json: { resourceType: 'Parameters', parameter } });
  return { status: res.status, body: (await res.json()) as any };
}
const parts = (p: any) => Object.fromEntries(p.part.map((x: any) => [x.name, x.valueString ?? x.valueCode ?? x.valueDateTime ?? x.valueInteger ?? x.valueBoolean ?? x.valueCoding ?? x.valueUri ?? x.valueReference]));
const api = (path: string, init: RequestInit = {}) =>
  fetch(`${s.huren.url}/api/dictionary${path}`, { ...init, headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json', ...(init.headers as Record<string, string>) } });
const pause = () => new Promise((r) => setTimeout(r, 15));

test.serial('an entry changed three times shows every change with its time and author', async (t) => {
  const v1 = await put(map([['LIS001', '血常规', CODES.cbc], ['LIS002', '谷丙转氨酶', CODES.alt]]));
  const created = await op(`ConceptMap/${MAP}/$entry-history`, [['code', 'LIS002']], 'GET');
  t.is(created.status, 200, JSON.stringify(created.body));
  await pause();
  // 1: approved by a reviewer
  const approved = await op(`ConceptMap/${MAP}/$entry-status`, [{ name: 'code', valueCode: 'LIS002' }, { name: 'status', valueCode: 'approved' }]);
  t.is(approved.status, 200, JSON.stringify(approved.body));
  t.is(parts(approved.body.parameter[0]).status.code, 'approved');
  t.true(parts(approved.body.parameter[0]).statusChanged);
  await pause();
  // 2: the institution uploads a map that points LIS002 elsewhere: back to pending
  const v2 = await put(map([['LIS001', '血常规', CODES.cbc], ['LIS002', '谷丙转氨酶', CODES.ast]]));
  await pause();
  // 3: rejected, with the reason
  const rejected = await op(`ConceptMap/${MAP}/$entry-status`, [{ name: 'code', valueCode: 'LIS002' }, { name: 'status', valueCode: 'rejected' }, { name: 'comment', valueString: '谷丙转氨酶应映射到 ALT' }]);
  t.is(rejected.status, 200, JSON.stringify(rejected.body));

  const history = await op(`ConceptMap/${MAP}/$entry-history`, [['code', 'LIS002']], 'GET');
  const entry = parts(history.body.parameter.find((p: any) => p.name === 'entry'));
  t.is(entry.status.code, 'rejected');
  t.is(entry.status.display, '已驳回');
  t.is(entry.changedBy, 'bootstrap');
  t.deepEqual(entry.target, { system: CATALOGUE, code: CODES.ast });
  const changes = history.body.parameter.filter((p: any) => p.name === 'change').map(parts);
  t.deepEqual(
    changes.map((c: any) => [c.action, c.fromStatus, c.toStatus, c.fromTarget, c.toTarget, c.by, c.mapVersion]),
    [
      ['created', undefined, 'pending', undefined, CODES.alt, `ConceptMap/${MAP}/_history/1`, 1],
      ['status-changed', 'pending', 'approved', CODES.alt, CODES.alt, 'bootstrap', 1],
      ['target-changed', 'approved', 'pending', CODES.alt, CODES.ast, `ConceptMap/${MAP}/_history/2`, 2],
      ['status-changed', 'pending', 'rejected', CODES.ast, CODES.ast, 'bootstrap', 2],
    ]
  );
  t.is(changes[0].at, v1.meta.lastUpdated, 'an upload change is dated when the map was uploaded');
  t.is(changes[2].at, v2.meta.lastUpdated);
  t.is(changes[3].comment, '谷丙转氨酶应映射到 ALT');
  const times = changes.map((c: any) => Date.parse(c.at));
  t.deepEqual([...times].sort((a, b) => a - b), times, 'in the order they happened');
  t.true(new Set(times).size === 4, 'each at its own time');

  // the same trace through the monitoring app's API
  const viaApi = (await (await api(`/maps/${MAP}/entries/LIS002/history`)).json()) as any;
  t.is(viaApi.entry.status, 'rejected');
  t.deepEqual(viaApi.changes.map((c: any) => c.action), ['created', 'status-changed', 'target-changed', 'status-changed']);
  t.deepEqual(viaApi.changes.map((c: any) => c.by), [`ConceptMap/${MAP}/_history/1`, 'bootstrap', `ConceptMap/${MAP}/_history/2`, 'bootstrap']);

  // the entry the upload did not change kept its status and history
  const other = await op(`ConceptMap/${MAP}/$entry-history`, [['code', 'LIS001']], 'GET');
  t.is(other.body.parameter.filter((p: any) => p.name === 'change').length, 1);
});

test.serial('status rules: allowed transitions, rejection needs a comment, approval needs an active catalogue item', async (t) => {
  await put(map([['LIS001', '血常规', CODES.cbc], ['LIS002', '谷丙转氨酶', CODES.ast], ['LIS007', '血钾', CODES.potassium]]));
  const status = (code: string, value: string, extra: unknown[] = []) => op(`ConceptMap/${MAP}/$entry-status`, [{ name: 'code', valueCode: code }, { name: 'status', valueCode: value }, ...extra]);
  const bad = await status('LIS002', 'approved'); // rejected → approved must go through pending
  t.is(bad.status, 422);
  t.deepEqual(bad.body.issue[0].expression, ["Parameters.parameter.where(name='status')"]);
  t.is((await status('LIS001', 'rejected')).status, 400, 'a rejection needs a comment');
  const retiredTarget = await status('LIS007', 'approved');
  t.is(retiredTarget.status, 422);
  t.regex(retiredTarget.body.issue[0].details.text, /retired/);
  t.is((await status('LIS404', 'approved')).status, 404);
  t.is((await status('LIS001', 'done')).status, 400);
  t.is((await op('ConceptMap/legacy-national-platform/$entry-status', [{ name: 'code', valueCode: '250101015' }, { name: 'status', valueCode: 'approved' }])).status, 422, 'not a dictionary map');
  t.is((await op('ConceptMap/no-such-map/$entries', [], 'GET')).status, 404);
  // the same status again: nothing changes
  const approve = await status('LIS001', 'approved');
  t.is(approve.status, 200);
  const again = await status('LIS001', 'approved');
  t.false(parts(again.body.parameter[0]).statusChanged);
  // the API: 4xx with OperationOutcome too
  const apiBad = await api(`/maps/${MAP}/entries/LIS001/status`, { method: 'POST', body: JSON.stringify({ status: 'nope' }) });
  t.is(apiBad.status, 400);
  t.is(((await apiBad.json()) as any).resourceType, 'OperationOutcome');
  const apiOk = await api(`/maps/${MAP}/entries/LIS002/status`, { method: 'POST', body: JSON.stringify({ status: 'pending', comment: '已更正' }) });
  t.is(apiOk.status, 200);
  t.is(((await apiOk.json()) as any).entry.status, 'pending');
  t.is((await fetch(`${s.huren.url}/api/dictionary/maps/${MAP}/entries`)).status, 401, 'the API needs the token');
  // odd input never gives a 5xx
  t.is((await api(`/maps/${MAP}/entries/%00/history`)).status, 400);
  t.is((await api(`/maps/${MAP}/entries/${'x'.repeat(300)}/history`)).status, 400);
  t.is((await api(`/maps/bad%20id/entries`)).status, 400);
  t.is((await op(`ConceptMap/${MAP}/$entry-history`, [['code', '不存在的编码'.repeat(20)]], 'GET')).status, 404);
  t.is((await op(`Organization/${'x'.repeat(64)}/$dictionary-qc`, [], 'GET')).status, 404);
  t.is((await op(`ConceptMap/${MAP}/$entry-history`, [], 'GET')).status, 400);
});

test.serial('the QC report finds unmapped seen codes, unlisted items, retired and unknown targets, items without a window, overdue reviews', async (t) => {
  await put({
    resourceType: 'CodeSystem',
    id: 'hospital-a-items',
    url: LOCAL,
    status: 'active',
    content: 'complete',
    useContext: venue(ORG),
    concept: [
      { code: 'LIS001', display: '血常规' },
      { code: 'LIS002', display: '谷丙转氨酶' },
      { code: 'LIS003', display: 'ABO血型' },
      { code: 'LIS005', display: '字典里有、映射里没有' },
    ],
  });
  await put(
    map([
      ['LIS001', '血常规', CODES.cbc],
      ['LIS002', '谷丙转氨酶', CODES.ast],
      ['LIS003', 'ABO血型', CODES.abo],
      ['LIS006', '未知目标', 'L-00000000'],
      ['LIS007', '血钾', CODES.potassium],
      ['LIS011', '本院自定项目', undefined],
    ])
  );
  const report = (code: string, org = ORG) => ({ resourceType: 'DiagnosticReport', status: 'final', performer: [{ reference: `Organization/${org}` }], code: { coding: [{ system: LOCAL, code }] } });
  await post(report('LIS001')); // mapped: fine
  await post(report('LIS008')); // not in the map
  await post(report('LIS008'));
  await post({ resourceType: 'Observation', status: 'final', performer: [{ reference: `Organization/${ORG}` }], code: { coding: [{ system: LOCAL, code: 'LIS009' }] } });
  await post(report('LIS010', OTHER)); // another institution's report
  await post(report('LIS011')); // mapped to nothing, pending: not usable
  // LIS011 approved as "not in the catalogue": no longer a problem once approved
  const qc = async (days?: number) => {
    const res = await op(`Organization/${ORG}/$dictionary-qc`, days === undefined ? [] : [['pendingDays', String(days)]], 'GET');
    t.is(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };
  const body = await qc(0);
  const issues = body.parameter.filter((p: any) => p.name === 'issue').map(parts);
  const of = (kind: string) => issues.filter((i: any) => i.kind === kind).map((i: any) => i.code.code).sort();
  t.deepEqual(of('unmapped'), ['LIS008', 'LIS009', 'LIS011']);
  const lis008 = issues.find((i: any) => i.kind === 'unmapped' && i.code.code === 'LIS008');
  t.is(lis008.count, 2);
  t.regex(lis008.example.reference, /^DiagnosticReport\//);
  t.deepEqual(of('not-in-map'), ['LIS005']);
  t.deepEqual(of('retired-target'), ['LIS007']);
  t.deepEqual(of('unknown-target'), ['LIS006']);
  t.deepEqual(of('no-window'), ['LIS003']);
  t.deepEqual(of('pending-overdue'), ['LIS002', 'LIS003', 'LIS006', 'LIS007', 'LIS011'], 'with pendingDays=0 every pending entry is overdue');
  t.false(issues.some((i: any) => i.code.code === 'LIS010'), "another institution's codes are not counted");
  const summary = Object.fromEntries(body.parameter.filter((p: any) => p.name === 'summary').map((p: any) => [parts(p).kind, parts(p).count]));
  t.is(summary.unmapped, 3);
  t.deepEqual(body.parameter.filter((p: any) => p.name === 'map').map((p: any) => p.valueReference.reference), [`ConceptMap/${MAP}`]);

  const relaxed = await qc();
  t.is(relaxed.parameter.filter((p: any) => p.name === 'issue' && parts(p).kind === 'pending-overdue').length, 0, 'nothing waits longer than 7 days');

  const approve = await op(`ConceptMap/${MAP}/$entry-status`, [{ name: 'code', valueCode: 'LIS011' }, { name: 'status', valueCode: 'approved' }, { name: 'comment', valueString: '本院特有项目，不在互认目录' }]);
  t.is(approve.status, 200);
  const after = await qc(0);
  t.false(after.parameter.some((p: any) => p.name === 'issue' && parts(p).code.code === 'LIS011'));

  // the API serves the same report as JSON
  const json = (await (await api(`/organizations/${ORG}/qc?pendingDays=0`)).json()) as any;
  t.is(json.summary['retired-target'], 1);
  t.deepEqual(json.issues.filter((i: any) => i.kind === 'unmapped').map((i: any) => i.code).sort(), ['LIS008', 'LIS009']);
  t.is((await api('/organizations/nobody/qc')).status, 404);
  t.is((await api(`/organizations/${ORG}/qc?pendingDays=x`)).status, 400);
});

test.serial('an entry the upload drops is retired; listed with its status; $entries filters by status', async (t) => {
  await put(map([['LIS001', '血常规', CODES.cbc]]));
  const list = await op(`ConceptMap/${MAP}/$entries`, [['status', 'retired']], 'GET');
  t.is(list.status, 200);
  const retired = list.body.parameter.filter((p: any) => p.name === 'entry').map(parts);
  t.true(retired.length >= 5);
  t.true(retired.every((e: any) => e.status.code === 'retired' && e.inMap === false));
  const history = await op(`ConceptMap/${MAP}/$entry-history`, [['code', 'LIS003']], 'GET');
  const last = history.body.parameter.filter((p: any) => p.name === 'change').map(parts).pop();
  t.is(last.action, 'removed');
  t.is(last.toStatus, 'retired');
  const cannot = await op(`ConceptMap/${MAP}/$entry-status`, [{ name: 'code', valueCode: 'LIS003' }, { name: 'status', valueCode: 'pending' }]);
  t.is(cannot.status, 422, 'an entry no longer in the map stays retired');
  const viaApi = (await (await api(`/maps/${MAP}/entries?status=approved`)).json()) as any;
  t.deepEqual(viaApi.entries.map((e: any) => e.code), ['LIS001']);
});

test.serial("results of a report are attributed to the report's performer (the documented Bundle: performer on the DiagnosticReport only)", async (t) => {
  await put(map([['LIS001', '血常规', CODES.cbc]]));
  const bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: 'urn:uuid:6a1c2f0e-0000-4000-8000-000000000001',
        resource: { resourceType: 'Observation', status: 'final', code: { coding: [{ system: LOCAL, code: 'LIS012', display: '白细胞计数' }] }, valueQuantity: { value: 6.1, unit: '10*9/L' } },
        request: { method: 'POST', url: 'Observation' },
      },
      {
        resource: {
          resourceType: 'DiagnosticReport',
          status: 'final',
          performer: [{ reference: `Organization/${ORG}` }],
          code: { coding: [{ system: LOCAL, code: 'LIS001' }] },
          result: [{ reference: 'urn:uuid:6a1c2f0e-0000-4000-8000-000000000001' }],
        },
        request: { method: 'POST', url: 'DiagnosticReport' },
      },
      {
        // another institution's report listing a result with a code of hospital-a's system: not hospital-a's
        fullUrl: 'urn:uuid:6a1c2f0e-0000-4000-8000-000000000002',
        resource: { resourceType: 'Observation', status: 'final', code: { coding: [{ system: LOCAL, code: 'LIS013' }] } },
        request: { method: 'POST', url: 'Observation' },
      },
      {
        resource: { resourceType: 'DiagnosticReport', status: 'final', performer: [{ reference: `Organization/${OTHER}` }], code: { text: 'x' }, result: [{ reference: 'urn:uuid:6a1c2f0e-0000-4000-8000-000000000002' }] },
        request: { method: 'POST', url: 'DiagnosticReport' },
      },
    ],
  };
  const res = await s.fhir('', { method: 'POST', json: bundle });
  t.is(res.status, 200, await res.clone().text());
  const qc = await op(`Organization/${ORG}/$dictionary-qc`, [], 'GET');
  t.is(qc.status, 200);
  const unmapped = qc.body.parameter.filter((p: any) => p.name === 'issue').map(parts).filter((i: any) => i.kind === 'unmapped');
  const lis012 = unmapped.find((i: any) => i.code.code === 'LIS012');
  t.truthy(lis012, 'the result code is seen through the report performer');
  t.is(lis012?.count, 1);
  t.regex(lis012?.example.reference ?? '', /^Observation\//);
  t.false(unmapped.some((i: any) => i.code.code === 'LIS013'), "a result of another institution's report is not counted");
  t.false(unmapped.some((i: any) => i.code.code === 'LIS001'), 'the mapped report code is not a problem');
});
