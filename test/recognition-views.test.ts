/**
 * Report viewing for doctors: the patient's reports across institutions ($reports), one report with its
 * abnormal items ($view), the health-record summary ($everything) — each view writes an access record
 * (AuditEvent) with no personal data in it.
 */
import test from 'ava';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { ITEM, param, params, part, parts, seedScenario, type Seeded } from './helpers/recognition-data.ts';

let s: TestServer;
let d: Seeded;

test.before(async () => {
  s = await startTestServer();
  d = await seedScenario(s);
});
test.after.always(async () => {
  await s?.close();
});

const keyOf = (ref: string) => Object.entries(d.report).find(([, id]) => `DiagnosticReport/${id}` === ref)?.[0];

async function get(path: string): Promise<any> {
  const res = await s.fhir(path);
  const body = await res.json();
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/**
 * The access records (the views' own AuditEvents) that name an entity, newest last. The request trail's
 * AuditEvents (server/audit/, one per request, test/audit.test.ts) name it too; they carry the request's path.
 */
async function auditsOf(reference: string): Promise<any[]> {
  const bundle = await get(`AuditEvent?entity=${encodeURIComponent(reference)}&_count=500&_sort=_lastUpdated`);
  return (bundle.entry ?? []).map((e: any) => e.resource).filter((a: any) => !a.entity[0].detail?.some((d: any) => d.type === 'path'));
}

test.serial('$reports: every report of the patient, newest first, with recognition status, HR mark and days left', async (t) => {
  const before = (await auditsOf(`Patient/${d.patient}`)).length;
  const body = await get(`Patient/${d.patient}/$reports?requester=Organization/${d.org['req-gz']}&_count=100`);
  t.is(param(body, 'total').valueInteger, Object.keys(d.report).length);
  const reports = params(body, 'report');
  const issued = reports.map((r: any) => part(r, 'issued').valueDateTime);
  t.deepEqual(issued, [...issued].sort().reverse(), 'newest first');
  const byKey = Object.fromEntries(reports.map((r: any) => [keyOf(part(r, 'report').valueReference.reference), r]));

  const fresh = byKey.fresh;
  t.is(part(fresh, 'recognisable').valueBoolean, true);
  t.is(part(fresh, 'daysRemaining').valueInteger, 5);
  t.is(part(fresh, 'hrMark').valueString, '粤HR');
  t.is(part(fresh, 'kind').valueString, '检验');
  t.is(part(fresh, 'abnormalCount').valueInteger, 1);
  t.is(part(fresh, 'status').valueCode, 'final');
  t.is(part(fresh, 'performer').valueReference.display, '广州市第一人民医院');
  const freshItem = part(fresh, 'item');
  t.is(part(freshItem, 'item').valueCoding.code, ITEM.potassium);
  t.is(part(freshItem, 'category').valueCoding.display, '化学');

  const expired = byKey.expired;
  t.is(part(expired, 'recognisable').valueBoolean, false);
  t.is(part(expired, 'daysRemaining'), undefined);
  t.deepEqual(parts(part(expired, 'item'), 'reason').map((r: any) => r.valueString), ['已超过 30 天互认有效期']);
  t.is(part(byKey['no-hr'], 'hrMark'), undefined);
  t.is(part(byKey['no-hr'], 'recognisable').valueBoolean, false);
  t.is(part(byKey['lapsed-before'], 'kind').valueString, '检查');
  t.is(part(byKey['not-in-catalogue'], 'item'), undefined, 'a report outside the catalogue is listed, without items');
  t.is(part(byKey['not-in-catalogue'], 'recognisable').valueBoolean, false);
  t.is(parts(byKey.cbc, 'item').length, 4);
  t.is(part(byKey.cbc, 'abnormalCount').valueInteger, 2);

  // the access record
  const audits = await auditsOf(`Patient/${d.patient}`);
  t.is(audits.length, before + 1);
  const audit = audits[audits.length - 1];
  t.is(audit.type.code, 'rest');
  t.is(audit.subtype[0].code, 'read');
  t.is(audit.action, 'R');
  t.is(audit.agent[0].who.identifier.value, 'bootstrap');
  t.true(audit.agent[0].requestor);
  t.is(audit.agent[1].who.reference, `Organization/${d.org['req-gz']}`);
  t.is(audit.entity[0].what.reference, `Patient/${d.patient}`);
  t.is(audit.entity[0].detail[0].valueString, '$reports');
  const text = JSON.stringify(audit);
  for (const personal of [d.nationalId, '陈', '1990-01-01']) t.false(text.includes(personal), `no personal data (${personal.slice(0, 2)}…)`);
});

test.serial('$reports filters by kind and category, pages, and works without a requester', async (t) => {
  const exams = await get(`Patient/${d.patient}/$reports?kind=${encodeURIComponent('检查')}`);
  t.deepEqual(params(exams, 'report').map((r: any) => keyOf(part(r, 'report').valueReference.reference)).sort(), ['ct-legacy', 'lapsed-before']);
  t.is(part(params(exams, 'report')[0], 'recognisable'), undefined, 'no requester: no recognition status');
  const lab = await get(`Patient/${d.patient}/$reports?kind=LAB&_count=100`);
  t.is(param(lab, 'total').valueInteger, Object.keys(d.report).length - 2);
  const haematology = await get(`Patient/${d.patient}/$reports?category=${encodeURIComponent('血液学')}`);
  t.deepEqual(params(haematology, 'report').map((r: any) => keyOf(part(r, 'report').valueReference.reference)), ['cbc']);
  const both = await get(`Patient/${d.patient}/$reports?kind=${encodeURIComponent('检验')}&category=${encodeURIComponent('化学')}&_count=100`);
  t.deepEqual(
    params(both, 'report').map((r: any) => keyOf(part(r, 'report').valueReference.reference)).sort(),
    ['amended', 'expired', 'fresh', 'lapsed-after', 'no-hr', 'not-qualified', 'partner', 'preliminary', 'province'].sort()
  );
  const page1 = await get(`Patient/${d.patient}/$reports?_count=5`);
  const page2 = await get(`Patient/${d.patient}/$reports?_count=5&_offset=5`);
  const page3 = await get(`Patient/${d.patient}/$reports?_count=5&_offset=10`);
  const ids = [page1, page2, page3].flatMap((p) => params(p, 'report').map((r: any) => part(r, 'report').valueReference.reference));
  t.is(ids.length, Object.keys(d.report).length);
  t.is(new Set(ids).size, ids.length);

  const unknown = await s.fhir(`Patient/nobody/$reports`);
  t.is(unknown.status, 404);
  t.deepEqual((await unknown.json()).issue[0].expression, ['patient']);
  const badKind = await s.fhir(`Patient/${d.patient}/$reports?kind=X`);
  t.is(badKind.status, 400);
  t.deepEqual((await badKind.json()).issue[0].expression, ['kind[0]']);
  t.is((await s.fhir(`Patient/${d.patient}/$reports?_count=-1`)).status, 400);
});

test.serial('$view: the report, its Observations, and the abnormal items picked out', async (t) => {
  const before = (await auditsOf(`DiagnosticReport/${d.report.cbc}`)).length;
  const body = await get(`DiagnosticReport/${d.report.cbc}/$view?requester=Organization/${d.org['req-gz']}`);
  t.is(param(body, 'report').resource.id, d.report.cbc);
  const observations = params(body, 'observation').map((p: any) => p.resource);
  t.deepEqual(observations.map((o: any) => o.code.text), ['白细胞计数', '红细胞计数', '血红蛋白'], 'in report order');
  t.is(param(body, 'performer').resource.name, '广州市第一人民医院');
  t.is(param(body, 'hrMark').valueString, '粤HR');
  t.is(param(body, 'kind').valueString, '检验');
  t.is(param(body, 'abnormalCount').valueInteger, 2);
  const abnormal = params(body, 'abnormal');
  t.deepEqual(abnormal.map((a: any) => part(a, 'code').valueCodeableConcept.text), ['白细胞计数', '血红蛋白']);
  t.is(part(abnormal[0], 'value').valueString, '2.1 mmol/L');
  t.is(part(abnormal[0], 'interpretation').valueCoding.code, 'L');
  t.is(part(abnormal[0], 'referenceRange').valueString, '3.5–5.3 mmol/L');
  t.false(part(abnormal[0], 'critical').valueBoolean);
  t.true(part(abnormal[1], 'critical').valueBoolean, 'LL is a critical value');
  t.is(param(body, 'recognisable').valueBoolean, true);
  t.is(param(body, 'daysRemaining').valueInteger, 6);
  t.is(params(body, 'item').length, 4);

  const audits = await auditsOf(`DiagnosticReport/${d.report.cbc}`);
  t.is(audits.length, before + 1);
  const entities = audits[audits.length - 1].entity.map((e: any) => e.what.reference);
  t.deepEqual(entities, [`DiagnosticReport/${d.report.cbc}`, `Patient/${d.patient}`]);

  const plain = await get(`DiagnosticReport/${d.report.expired}/$view`);
  t.is(param(plain, 'recognisable'), undefined);
  t.is(params(plain, 'abnormal').length, 0);
  t.is((await s.fhir('DiagnosticReport/nothing-here/$view')).status, 404);
  t.is((await s.fhir(`DiagnosticReport/${d.report.cbc}/$view?requester=Organization/nobody`)).status, 404);
});

test.serial('$everything: the patient compartment and what it refers to, paged, with _type and _since', async (t) => {
  const auditsBefore = (await auditsOf(`Patient/${d.patient}`)).length;
  const all = await get(`Patient/${d.patient}/$everything?_count=500`);
  t.is(all.type, 'searchset');
  const matches = all.entry.filter((e: any) => e.search.mode === 'match').map((e: any) => e.resource);
  const included = all.entry.filter((e: any) => e.search.mode === 'include').map((e: any) => e.resource);
  t.is(all.total, matches.length);
  t.is(matches[0].resourceType, 'Patient');
  t.is(matches[0].id, d.patient);
  const count = (type: string) => matches.filter((r: any) => r.resourceType === type).length;
  t.is(count('DiagnosticReport'), Object.keys(d.report).length);
  t.is(count('Observation'), 4);
  t.is(count('AuditEvent'), 0, 'the audit trail is not part of the health record');
  t.true(included.some((r: any) => r.resourceType === 'Organization' && r.id === d.org.city), 'performing institutions come along');
  t.false(matches.some((r: any) => r.resourceType === 'Patient' && r.id === d.emptyPatient));
  t.is((await auditsOf(`Patient/${d.patient}`)).length, auditsBefore + 1, 'an access record for the view');

  // paging: follow next links
  const seen: string[] = [];
  let url: string | undefined = `${s.base}/Patient/${d.patient}/$everything?_count=4`;
  let pages = 0;
  while (url && pages < 20) {
    const page: any = await (await fetch(url, { headers: { authorization: `Bearer ${s.token}` } })).json();
    for (const e of page.entry.filter((x: any) => x.search.mode === 'match')) seen.push(`${e.resource.resourceType}/${e.resource.id}`);
    url = page.link.find((l: any) => l.relation === 'next')?.url;
    pages++;
  }
  t.is(pages, Math.ceil(matches.length / 4));
  t.deepEqual(seen, matches.map((r: any) => `${r.resourceType}/${r.id}`));

  const reportsOnly = await get(`Patient/${d.patient}/$everything?_type=DiagnosticReport`);
  t.true(reportsOnly.entry.every((e: any) => e.resource.resourceType === 'DiagnosticReport'));
  t.is(reportsOnly.total, Object.keys(d.report).length);
  const withOrgs = await get(`Patient/${d.patient}/$everything?_type=DiagnosticReport,Organization`);
  t.true(withOrgs.entry.some((e: any) => e.resource.resourceType === 'Organization'));
  const audits = await get(`Patient/${d.patient}/$everything?_type=AuditEvent`);
  t.true(audits.total >= 1, 'asked for by _type, the access records are there');

  // _since: only what changed since
  const mark = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 20));
  const fresh = await get(`DiagnosticReport/${d.report.fresh}`);
  const put = await s.fhir(`DiagnosticReport/${d.report.fresh}`, { method: 'PUT', json: { ...fresh, conclusion: '血钾偏高' } });
  t.is(put.status, 200);
  const since = await get(`Patient/${d.patient}/$everything?_since=${encodeURIComponent(mark)}&_type=DiagnosticReport`);
  t.deepEqual(since.entry.map((e: any) => e.resource.id), [d.report.fresh]);

  t.is((await s.fhir('Patient/nobody/$everything')).status, 404);
  t.is((await s.fhir(`Patient/${d.patient}/$everything?_type=Nonsense`)).status, 400);
  t.is((await s.fhir(`Patient/${d.patient}/$everything?_since=yesterday`)).status, 400);
});
