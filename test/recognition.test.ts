/**
 * The recognition checks through the HTTP API (issue 4, must-show 1 and 4): a generated scenario with
 * institutions of different QC scopes and a patient with fresh, expired, preliminary, non-HR, non-qualified
 * (and more) reports; every rule's yes and no through $recognition-check and $duplicate-check, with the
 * reason texts; bad input gives a 4xx OperationOutcome with an expression and writes no reminder; the
 * doctor's decision is recorded with $decide.
 *
 * Serial: several tests count the DetectedIssues before and after.
 */
import test from 'ava';
import type { DetectedIssue, Resource } from '@medplum/fhirtypes';
import { engineOf } from '../server/fhir/engine.ts';
import { statusOf } from '../server/fhir/errors.ts';
import { Repository } from '../server/fhir/repository.ts';
import { recordDigest } from '../server/provenance/intake.ts';
import { reminder } from '../server/recognition/records.ts';
import { factsSql, recognitionCheck } from '../server/recognition/service.ts';
import { statementsOf } from './helpers/statements.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  CATALOGUE,
  countOf,
  daysAgo,
  ITEM,
  LEGACY,
  LOINC,
  NATIONAL,
  NATIONAL_ID,
  ORG_ID,
  param,
  params,
  part,
  parts,
  reportEntries,
  seedScenario,
  requesterOf,
  transaction,
  type Seeded,
} from './helpers/recognition-data.ts';

let s: TestServer;
let d: Seeded;
let tag: string;

test.before(async () => {
  s = await startTestServer();
  tag = 'main';
  d = await seedScenario(s, tag);
});
test.after.always(async () => {
  await s?.close();
});

const RECORD_KIND = 'https://fhir.huren.gz.cn/CodeSystem/recognition-record-kind';
const DECISION = 'https://fhir.huren.gz.cn/CodeSystem/recognition-decision';
const REASON = 'https://fhir.huren.gz.cn/CodeSystem/not-recognised-reason';
const PROFILE = 'https://fhir.huren.gz.cn/StructureDefinition/recognition-record';
const HASH_STATUSES = ['consistent', 'inconsistent', 'pending', 'unanchored'];
const POSTED = (name: string) => `Parameters.parameter.where(name='${name}')`;

async function check(patient: string, requesterKey: string, query = ''): Promise<any> {
  const res = await s.fhir(`Patient/${patient}/$recognition-check?requester=Organization/${d.org[requesterKey]}${query}`);
  const body = await res.json();
  if (res.status !== 200) throw new Error(`$recognition-check ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

/** `reportKey:itemCode` for each result. */
function resultKeys(body: any): string[] {
  const byId = new Map(Object.entries(d.report).map(([k, id]) => [`DiagnosticReport/${id}`, k]));
  return params(body, 'result')
    .map((r: any) => `${byId.get(part(r, 'report').valueReference.reference) ?? '?'}:${part(r, 'item').valueCoding.code}`)
    .sort();
}

async function duplicate(orders: unknown[], requesterKey: string): Promise<{ status: number; body: any }> {
  const res = await s.fhir('ServiceRequest/$duplicate-check', {
    method: 'POST',
    json: {
      resourceType: 'Parameters',
      parameter: [...orders.map((o) => ({ name: 'order', resource: o })), { name: 'requester', valueReference: { reference: `Organization/${d.org[requesterKey]}` } }],
    },
  });
  return { status: res.status, body: await res.json() };
}

const order = (coding: { system: string; code: string }, id?: string, subject: unknown = { identifier: { system: NATIONAL_ID, value: d.nationalId } }) => ({
  resourceType: 'ServiceRequest',
  ...(id ? { id } : {}),
  status: 'draft',
  intent: 'order',
  code: { coding: [coding] },
  subject,
});

test.serial('recognition check: every recognisable result for a Guangzhou requester, and none of the others', async (t) => {
  const before = await countOf(s, 'DetectedIssue');
  const body = await check(d.patient, 'req-gz');
  t.is(param(body, 'exists').valueBoolean, true);
  t.deepEqual(
    resultKeys(body),
    [
      `amended:${ITEM.creatinine}`, // counts from its latest version (issued yesterday), not the expired first one
      `blood-group:${ITEM.abo}`, // no window: never expires
      `cbc:${ITEM.cbc}`, // national code on the report
      `cbc:L-439EDFA3`, // LOINC 718-7 on an Observation → 血红蛋白测定
      `cbc:L-B3C40679`, // LOINC 789-8 → 红细胞计数
      `cbc:${ITEM.wbc}`, // LOINC 6690-2 → 白细胞计数
      `ct-legacy:${ITEM.ct}`, // legacy price code, province-wide QC
      `fresh:${ITEM.potassium}`,
      `lapsed-before:${ITEM.ct}`, // qualified when the report was issued, lapsed since
      `partner:${ITEM.uricAcid}`,
      `province:${ITEM.glucose}`,
    ].sort(),
    'expired, preliminary, non-HR, non-qualified, lapsed-after and out-of-catalogue reports are not results'
  );
  const results = params(body, 'result');
  const fresh = results.find((r: any) => part(r, 'report').valueReference.reference === `DiagnosticReport/${d.report.fresh}`);
  t.is(part(fresh, 'item').valueCoding.system, CATALOGUE);
  t.is(part(fresh, 'item').valueCoding.display, '钾');
  t.is(part(fresh, 'performer').valueReference.reference, `Organization/${d.org.city}`);
  t.is(part(fresh, 'performer').valueReference.display, '广州市第一人民医院');
  t.is(part(fresh, 'daysRemaining').valueInteger, 5, 'issued 2 days ago with a 7-day window');
  t.is(part(fresh, 'hrMark').valueString, '粤HR');
  t.true(HASH_STATUSES.includes(part(fresh, 'hashStatus').valueCode), 'hash consistency from the chain provenance (pluggable)');
  t.is(part(fresh, 'abnormalCount').valueInteger, 1);
  t.truthy(part(fresh, 'issued').valueDateTime);
  const amended = results.find((r: any) => part(r, 'report').valueReference.reference === `DiagnosticReport/${d.report.amended}`);
  t.is(part(amended, 'daysRemaining').valueInteger, 29);
  const abo = results.find((r: any) => part(r, 'item').valueCoding.code === ITEM.abo);
  t.is(part(abo, 'daysRemaining'), undefined, 'an item without a window has no days remaining');
  const cbc = results.find((r: any) => part(r, 'item').valueCoding.code === ITEM.cbc);
  t.is(part(cbc, 'abnormalCount').valueInteger, 2, 'the panel counts its L and LL Observations');
  const issuedOrder = results.map((r: any) => part(r, 'issued').valueDateTime);
  t.deepEqual(issuedOrder, [...issuedOrder].sort().reverse(), 'newest first');

  // the encounter reminder
  t.is(await countOf(s, 'DetectedIssue'), before + 1);
  const reminderRef = param(body, 'reminder').valueReference.reference;
  const reminder = await (await s.fhir(reminderRef)).json();
  t.deepEqual(reminder.meta.profile, [PROFILE]);
  t.is(reminder.status, 'final');
  t.deepEqual(reminder.code.coding[0], { system: RECORD_KIND, code: 'encounter-reminder', display: '就诊提醒' });
  t.is(reminder.patient.reference, `Patient/${d.patient}`);
  t.is(requesterOf(reminder), `Organization/${d.org['req-gz']}`);
  t.deepEqual(reminder.author, { type: 'Device', identifier: { system: 'https://fhir.huren.gz.cn/sid/device', value: 'huren-recognition' }, display: '互认平台互认服务' });
  const byRequester = await (await s.fhir(`DetectedIssue?requester=Organization/${d.org['req-gz']}&_count=200`)).json();
  t.true(byRequester.entry.some((e: any) => e.resource.id === reminder.id), 'searchable by the requesting institution');
  t.false(
    ((await (await s.fhir(`DetectedIssue?requester=Organization/${d.org['req-fs']}&_count=200`)).json()).entry ?? []).some((e: any) => e.resource.id === reminder.id)
  );
  t.truthy(reminder.identifiedDateTime);
  const implicated = reminder.implicated.map((r: any) => r.reference).sort();
  const expected = ['amended', 'blood-group', 'cbc', 'ct-legacy', 'fresh', 'lapsed-before', 'partner', 'province'].map((k) => `DiagnosticReport/${d.report[k]}`).sort();
  t.deepEqual(implicated, expected);
  t.regex(reminder.detail, /^患者有 11 项可互认的检查检验结果（8 份报告）/);
  t.true(reminder.detail.includes('钾（广州市第一人民医院'));
});

test.serial('QC scope: city, province and partner city, through both operations', async (t) => {
  // who must recognise what: city-only (钾), province-wide (葡萄糖), Guangzhou + Foshan partner (尿酸)
  const matrix: [string, string, boolean][] = [
    ['req-gz', ITEM.potassium, true],
    ['req-gz', ITEM.glucose, true],
    ['req-gz', ITEM.uricAcid, true],
    ['req-fs', ITEM.potassium, false],
    ['req-fs', ITEM.glucose, true],
    ['req-fs', ITEM.uricAcid, true],
    ['req-sz', ITEM.potassium, false],
    ['req-sz', ITEM.glucose, true],
    ['req-sz', ITEM.uricAcid, false],
    ['req-cs', ITEM.potassium, false],
    ['req-cs', ITEM.glucose, false],
    ['req-cs', ITEM.uricAcid, false],
  ];
  for (const [requester, item, yes] of matrix) {
    const body = await check(d.patient, requester, `&code=${encodeURIComponent(`${CATALOGUE}|${item}`)}`);
    t.is(param(body, 'exists').valueBoolean, yes, `$recognition-check ${requester} ${item}`);
    t.is(params(body, 'result').length, yes ? 1 : 0);
    const dup = await duplicate([order({ system: CATALOGUE, code: item })], requester);
    t.is(dup.status, 200);
    const it = param(dup.body, 'item');
    t.is(part(it, 'duplicate').valueBoolean, yes, `$duplicate-check ${requester} ${item}`);
    t.is(parts(it, 'match').length, yes ? 1 : 0);
    if (yes) t.is(part(it, 'reason'), undefined);
    else t.true(part(it, 'reason').valueString.includes('质控合格的互认范围不覆盖申请机构所在地区'), part(it, 'reason').valueString);
  }
});

test.serial('duplicate check: per ordered item, the matches or why the near-matches do not count', async (t) => {
  const before = await countOf(s, 'DetectedIssue');
  const orders = [
    order({ system: CATALOGUE, code: ITEM.potassium }, 'o-k'),
    order({ system: NATIONAL, code: '002503010010000' }), // 总蛋白, reported 40 days ago
    order({ system: CATALOGUE, code: ITEM.sodium }), // preliminary
    order({ system: CATALOGUE, code: ITEM.chloride }), // no HR mark
    order({ system: CATALOGUE, code: ITEM.calcium }), // performer not QC-qualified
    order({ system: CATALOGUE, code: ITEM.urea }), // performer's qualification lapsed before the report
    order({ system: CATALOGUE, code: ITEM.magnesium }), // never reported
    order({ system: LOINC, code: '99999-9' }), // not in the catalogue
    order({ system: LEGACY, code: '250101015' }), // 血细胞分析 by its legacy price code
    order({ system: LEGACY, code: '210300001' }), // CT by its legacy code: two reports
    order({ system: CATALOGUE, code: ITEM.creatinine }), // amended
  ];
  const { status, body } = await duplicate(orders, 'req-gz');
  t.is(status, 200, JSON.stringify(body));
  const items = params(body, 'item');
  t.is(items.length, orders.length);
  const get = (i: number) => items[i];
  const reason = (i: number) => part(get(i), 'reason')?.valueString as string;
  const dup = (i: number) => part(get(i), 'duplicate').valueBoolean as boolean;

  t.is(part(get(0), 'order').valueString, 'o-k', "the order's id");
  t.is(part(get(1), 'order').valueString, '1', 'or its index');
  t.true(dup(0));
  t.deepEqual(part(get(0), 'code').valueCoding, { system: CATALOGUE, code: ITEM.potassium, display: '钾' });
  const match = part(get(0), 'match');
  t.is(part(match, 'report').valueReference.reference, `DiagnosticReport/${d.report.fresh}`);
  t.is(part(match, 'daysRemaining').valueInteger, 5);
  t.is(part(match, 'hrMark').valueString, '粤HR');
  t.true(HASH_STATUSES.includes(part(match, 'hashStatus').valueCode));
  t.is(part(match, 'abnormalCount').valueInteger, 1);
  t.is(part(match, 'performer').valueReference.reference, `Organization/${d.org.city}`);

  t.false(dup(1));
  t.is(part(get(1), 'code').valueCoding.code, ITEM.totalProtein, 'a national code is answered with the platform item');
  t.true(reason(1).includes('已超过 30 天互认有效期'), reason(1));
  t.true(reason(1).includes('总蛋白（广州市第一人民医院'), reason(1));
  t.false(dup(2));
  t.true(reason(2).includes('报告状态为 preliminary，只有最终报告可以互认'), reason(2));
  t.false(dup(3));
  t.true(reason(3).includes('报告未标注互认标识（HR）'), reason(3));
  t.false(dup(4));
  t.true(reason(4).includes('出具机构在报告时未获得「化学」质控合格'), reason(4));
  t.false(dup(5));
  t.true(reason(5).includes('出具机构在报告时未获得「化学」质控合格'), reason(5));
  t.false(dup(6));
  t.is(reason(6), '未找到该患者此项目的既往结果');
  t.false(dup(7));
  t.deepEqual(part(get(7), 'code').valueCoding, { system: LOINC, code: '99999-9' });
  t.is(reason(7), '该项目不在互认目录中，不适用互认');
  t.true(dup(8));
  t.is(part(get(8), 'code').valueCoding.code, ITEM.cbc);
  t.is(part(part(get(8), 'match'), 'report').valueReference.reference, `DiagnosticReport/${d.report.cbc}`);
  t.true(dup(9));
  t.deepEqual(parts(get(9), 'match').map((m: any) => part(m, 'report').valueReference.reference).sort(), [`DiagnosticReport/${d.report['ct-legacy']}`, `DiagnosticReport/${d.report['lapsed-before']}`].sort());
  t.true(dup(10), 'an amended report counts from its latest version');
  for (const i of [0, 8, 9, 10]) t.is(part(get(i), 'reason'), undefined);

  t.is(await countOf(s, 'DetectedIssue'), before + 1);
  const reminder = await (await s.fhir(param(body, 'reminder').valueReference.reference)).json();
  t.is(reminder.code.coding[0].code, 'duplicate-order-reminder');
  t.is(reminder.code.coding[0].display, '重复检查提醒');
  t.is(reminder.patient.reference, `Patient/${d.patient}`);
  t.is(requesterOf(reminder), `Organization/${d.org['req-gz']}`);
  t.deepEqual(
    reminder.implicated.map((r: any) => r.reference).sort(),
    ['fresh', 'cbc', 'ct-legacy', 'lapsed-before', 'amended'].map((k) => `DiagnosticReport/${d.report[k]}`).sort()
  );
  t.is(reminder.evidence.length, orders.length, 'the ordered items are the evidence');
  t.regex(reminder.detail, /^开单项目中 4 项已有可互认结果/);
});

test.serial('for a Foshan requester a city-only result is explained by its scope, a province-wide one counts', async (t) => {
  // the same report judged for several requesters: the "no" of each rule comes with its own reason
  const { body } = await duplicate([order({ system: CATALOGUE, code: ITEM.potassium }), order({ system: CATALOGUE, code: ITEM.glucose })], 'req-fs');
  const [k, glucose] = params(body, 'item');
  t.false(part(k, 'duplicate').valueBoolean);
  t.is(part(k, 'reason').valueString, `钾（广州市第一人民医院，${(await (await s.fhir(`DiagnosticReport/${d.report.fresh}`)).json()).issued.slice(0, 10)}）：出具机构「化学」质控合格的互认范围不覆盖申请机构所在地区`);
  t.true(part(glucose, 'duplicate').valueBoolean);
});

test.serial('type level by national ID; filters by category (kind, field, name, report category) and by code', async (t) => {
  const all = await check(d.patient, 'req-gz');
  const byId = await (await s.fhir(`Patient/$recognition-check?identifier=${encodeURIComponent(`${NATIONAL_ID}|${d.nationalId}`)}&requester=Organization/${d.org['req-gz']}`)).json();
  t.deepEqual(resultKeys(byId), resultKeys(all));

  const chemistry = await check(d.patient, 'req-gz', `&category=${encodeURIComponent('化学')}`);
  t.deepEqual(resultKeys(chemistry), [`amended:${ITEM.creatinine}`, `fresh:${ITEM.potassium}`, `partner:${ITEM.uricAcid}`, `province:${ITEM.glucose}`].sort());
  const exams = await check(d.patient, 'req-gz', '&category=EXAM');
  t.deepEqual(resultKeys(exams), [`ct-legacy:${ITEM.ct}`, `lapsed-before:${ITEM.ct}`].sort());
  const haematology = await check(d.patient, 'req-gz', '&category=F-92623b');
  t.is(params(haematology, 'result').length, 4);
  const twoCategories = await check(d.patient, 'req-gz', `&category=EXAM&category=${encodeURIComponent('血型')}`);
  t.deepEqual(resultKeys(twoCategories), [`blood-group:${ITEM.abo}`, `ct-legacy:${ITEM.ct}`, `lapsed-before:${ITEM.ct}`].sort());
  const rad = await check(d.patient, 'req-gz', `&category=${encodeURIComponent('http://terminology.hl7.org/CodeSystem/v2-0074|RAD')}`);
  t.deepEqual(resultKeys(rad), [`ct-legacy:${ITEM.ct}`, `lapsed-before:${ITEM.ct}`].sort());

  const national = await check(d.patient, 'req-gz', '&code=002501010150000');
  t.deepEqual(resultKeys(national), [`cbc:${ITEM.cbc}`]);
  const loinc = await check(d.patient, 'req-gz', `&code=${encodeURIComponent(`${LOINC}|6690-2`)}`);
  t.deepEqual(resultKeys(loinc), [`cbc:${ITEM.wbc}`]);
  const unknownLoinc = await check(d.patient, 'req-gz', `&code=${encodeURIComponent(`${LOINC}|1-8`)}`);
  t.is(param(unknownLoinc, 'exists').valueBoolean, false, 'a code the catalogue does not list matches nothing');

  // POST: requester by identifier, category as a Coding, patient by a logical reference
  const posted = await s.fhir('Patient/$recognition-check', {
    method: 'POST',
    json: {
      resourceType: 'Parameters',
      parameter: [
        { name: 'patient', valueReference: { identifier: { system: NATIONAL_ID, value: d.nationalId } } },
        { name: 'requester', valueReference: { identifier: { system: ORG_ID, value: `req-gz-${tag}` } } },
        { name: 'category', valueCoding: { system: CATALOGUE, code: 'F-613bc1' } },
      ],
    },
  });
  t.is(posted.status, 200);
  t.deepEqual(resultKeys(await posted.json()), resultKeys(chemistry));

  // conditional references: the requester in a query, the patient of an order
  const conditional = await (await s.fhir(`Patient/${d.patient}/$recognition-check?requester=${encodeURIComponent(`Organization?identifier=${ORG_ID}|req-gz-${tag}`)}&category=EXAM`)).json();
  t.deepEqual(resultKeys(conditional), resultKeys(exams));
  const { status, body } = await duplicate([order({ system: CATALOGUE, code: ITEM.glucose }, undefined, { reference: `Patient?identifier=${NATIONAL_ID}|${d.nationalId}` })], 'req-gz');
  t.is(status, 200, JSON.stringify(body));
  t.true(part(param(body, 'item'), 'duplicate').valueBoolean);
});

test.serial('a report issued in the future, or cancelled, is not recognisable, and says why', async (t) => {
  const patient = await (await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', identifier: [{ system: NATIONAL_ID, value: `${d.nationalId}F` }] } })).json();
  await transaction(s, [
    ...reportEntries(`Patient/${patient.id}`, { key: `future-${tag}`, org: `city-${tag}`, code: { system: CATALOGUE, code: ITEM.potassium }, issued: daysAgo(-2) }),
    ...reportEntries(`Patient/${patient.id}`, { key: `cancelled-${tag}`, org: `city-${tag}`, code: { system: CATALOGUE, code: ITEM.sodium }, status: 'cancelled', issued: daysAgo(1) }),
  ]);
  const subject = { reference: `Patient/${patient.id}` };
  const { body } = await duplicate([order({ system: CATALOGUE, code: ITEM.potassium }, undefined, subject), order({ system: CATALOGUE, code: ITEM.sodium }, undefined, subject)], 'req-gz');
  const [future, cancelled] = params(body, 'item');
  t.false(part(future, 'duplicate').valueBoolean);
  t.true(part(future, 'reason').valueString.endsWith('报告发布时间无效或晚于当前时间'), part(future, 'reason').valueString);
  t.false(part(cancelled, 'duplicate').valueBoolean);
  t.true(part(cancelled, 'reason').valueString.endsWith('报告状态为 cancelled，只有最终报告可以互认'), part(cancelled, 'reason').valueString);
  t.is(param(await check(patient.id, 'req-gz'), 'exists').valueBoolean, false);
});

test.serial('a patient without recognisable results: exists false, and the reminder is still written', async (t) => {
  const before = await countOf(s, 'DetectedIssue');
  const body = await check(d.emptyPatient, 'req-gz');
  t.is(param(body, 'exists').valueBoolean, false);
  t.is(params(body, 'result').length, 0);
  t.is(await countOf(s, 'DetectedIssue'), before + 1);
  const reminder = await (await s.fhir(param(body, 'reminder').valueReference.reference)).json();
  t.is(reminder.implicated, undefined);
  t.is(reminder.detail, '未发现可互认的检查检验结果。');
});

test.serial('bad input: a 4xx OperationOutcome naming the input, never a 5xx, and no reminder written', async (t) => {
  const before = await countOf(s, 'DetectedIssue');
  const gz = `requester=Organization/${d.org['req-gz']}`;
  const p = d.patient;
  const gets: [string, number, string][] = [
    [`Patient/unknown-patient/$recognition-check?${gz}`, 404, 'patient'],
    [`Patient/$recognition-check?identifier=${encodeURIComponent(`${NATIONAL_ID}|000000000000000000`)}&${gz}`, 404, 'identifier'],
    [`Patient/$recognition-check?${gz}`, 400, 'identifier'],
    [`Patient/${p}/$recognition-check`, 400, 'requester'],
    [`Patient/${p}/$recognition-check?requester=Organization/unknown-org`, 404, 'requester'],
    [`Patient/${p}/$recognition-check?requester=Patient/${p}`, 400, 'requester'],
    [`Patient/${p}/$recognition-check?requester=Organization/${d.org['req-nodistrict']}`, 422, 'requester'],
    [`Patient/${p}/$recognition-check?${gz}&code=L-00000000`, 400, 'code[0]'],
    [`Patient/${p}/$recognition-check?${gz}&code=${encodeURIComponent(`${CATALOGUE}|F-613bc1`)}`, 400, 'code[0]'],
    [`Patient/${p}/$recognition-check?${gz}&code=${encodeURIComponent(`${NATIONAL}|12345`)}`, 400, 'code[0]'],
    [`Patient/${p}/$recognition-check?${gz}&code=${ITEM.potassium}&code=nonsense`, 400, 'code[1]'],
    [`Patient/${p}/$recognition-check?${gz}&category=${encodeURIComponent('不存在的分类')}`, 400, 'category[0]'],
    [`Patient/${p}/$recognition-check?${gz}&requestor=x`, 400, 'requestor'],
    [`Patient/${p}/$recognition-check?${gz}&identifier=${encodeURIComponent(`${NATIONAL_ID}|${d.nationalId}`)}`, 400, 'identifier'],
    [`ServiceRequest/$duplicate-check?${gz}`, 405, ''],
  ];
  for (const [path, status, expression] of gets) {
    const res = await s.fhir(path);
    const body = await res.json();
    t.is(res.status, status, `${path}: ${JSON.stringify(body)}`);
    t.is(body.resourceType, 'OperationOutcome');
    if (expression) t.deepEqual(body.issue[0].expression, [expression], path);
  }

  const good = order({ system: CATALOGUE, code: ITEM.potassium });
  const posts: [unknown[], string, number, string][] = [
    [[], 'req-gz', 400, POSTED('order')],
    [[{ resourceType: 'Patient' }], 'req-gz', 400, `${POSTED('order')}[0].resource`],
    [[good, { ...good, status: 'bogus' }], 'req-gz', 400, `${POSTED('order')}[1].resource.status`],
    [[{ ...good, code: undefined }], 'req-gz', 400, `${POSTED('order')}[0].resource.code`],
    [[{ ...good, subject: undefined }], 'req-gz', 400, `${POSTED('order')}[0].resource.subject`],
    [[order({ system: CATALOGUE, code: 'L-00000000' })], 'req-gz', 400, `${POSTED('order')}[0].resource.code.coding[0]`],
    [[order({ system: LEGACY, code: '12' })], 'req-gz', 400, `${POSTED('order')}[0].resource.code.coding[0]`],
    [[good, order({ system: CATALOGUE, code: ITEM.sodium }, undefined, { reference: `Patient/${d.emptyPatient}` })], 'req-gz', 400, `${POSTED('order')}[1].resource.subject`],
    [[order({ system: CATALOGUE, code: ITEM.sodium }, undefined, { reference: 'Patient/nobody' })], 'req-gz', 404, `${POSTED('order')}[0].resource.subject`],
    [[order({ system: CATALOGUE, code: ITEM.sodium }, undefined, { identifier: { system: NATIONAL_ID, value: 'nobody' } })], 'req-gz', 404, `${POSTED('order')}[0].resource.subject`],
    [[good], 'req-nodistrict', 422, POSTED('requester')],
  ];
  for (const [orders, requester, status, expression] of posts) {
    const { status: got, body } = await duplicate(orders, requester);
    t.is(got, status, `${expression}: ${JSON.stringify(body)}`);
    t.is(body.resourceType, 'OperationOutcome');
    t.deepEqual(body.issue[0].expression, [expression]);
  }
  const noRequester = await s.fhir('ServiceRequest/$duplicate-check', { method: 'POST', json: { resourceType: 'Parameters', parameter: [{ name: 'order', resource: good }] } });
  t.is(noRequester.status, 400);
  t.deepEqual((await noRequester.json()).issue[0].expression, [POSTED('requester')]);
  const notParameters = await s.fhir('ServiceRequest/$duplicate-check', { method: 'POST', json: good });
  t.is(notParameters.status, 400);
  const garbage = await s.fhir('ServiceRequest/$duplicate-check', { method: 'POST', body: '{"resourceType": "Parameters", "parameter": [', headers: { 'content-type': 'application/fhir+json' } });
  t.is(garbage.status, 400);

  t.is(await countOf(s, 'DetectedIssue'), before, 'no reminder was written by any bad request');
});

test.serial("the doctor's decision is recorded against the reminder, as new versions of it", async (t) => {
  const body = await check(d.patient, 'req-gz', `&code=${ITEM.potassium}&code=${ITEM.glucose}`);
  const ref = param(body, 'reminder').valueReference.reference as string;
  const decide = async (parameter: unknown[], target = ref) => {
    const res = await s.fhir(`${target}/$decide`, { method: 'POST', json: { resourceType: 'Parameters', parameter } });
    return { status: res.status, body: await res.json(), etag: res.headers.get('etag') };
  };
  const recognised = await decide([
    { name: 'decision', valueCode: 'recognised' },
    { name: 'report', valueReference: { reference: `DiagnosticReport/${d.report.fresh}` } },
  ]);
  t.is(recognised.status, 200, JSON.stringify(recognised.body));
  t.is(recognised.etag, 'W/"2"');
  t.is(recognised.body.meta.versionId, '2');
  const m0 = recognised.body.mitigation[0];
  t.deepEqual(m0.action.coding, [{ system: DECISION, code: 'recognised', display: '已互认' }]);
  t.deepEqual(m0.extension, [{ url: 'https://fhir.huren.gz.cn/StructureDefinition/decision-report', valueReference: { reference: `DiagnosticReport/${d.report.fresh}` } }]);
  t.truthy(m0.date);

  const retest = await decide([
    { name: 'decision', valueCode: 'not-recognised' },
    { name: 'reason', valueCoding: { system: REASON, code: '01' } },
    { name: 'report', valueReference: { reference: `DiagnosticReport/${d.report.province}` } },
    { name: 'author', valueReference: { reference: 'Practitioner/dr-1' } },
  ]);
  t.is(retest.status, 200, JSON.stringify(retest.body));
  const m1 = retest.body.mitigation[1];
  t.deepEqual(m1.action.coding, [
    { system: DECISION, code: 'not-recognised', display: '不予互认' },
    { system: REASON, code: '01', display: '病情变化' },
  ]);
  t.is(m1.author.reference, 'Practitioner/dr-1');

  const bad: [unknown[], number, string][] = [
    [[], 400, POSTED('decision')],
    [[{ name: 'decision', valueCode: 'maybe' }], 400, POSTED('decision')],
    [[{ name: 'decision', valueCode: 'not-recognised' }], 400, POSTED('reason')],
    [[{ name: 'decision', valueCode: 'recognised' }, { name: 'reason', valueCoding: { system: REASON, code: '01' } }], 400, POSTED('reason')],
    [[{ name: 'decision', valueCode: 'not-recognised' }, { name: 'reason', valueCoding: { system: REASON, code: '77' } }], 400, POSTED('reason')],
    [[{ name: 'decision', valueCode: 'not-recognised' }, { name: 'reason', valueCoding: { system: 'http://example.org/reasons', code: '01' } }], 400, POSTED('reason')],
    [[{ name: 'decision', valueCode: 'not-recognised' }, { name: 'reason', valueCoding: { system: REASON, code: '08' } }], 400, POSTED('comment')],
    [[{ name: 'decision', valueCode: 'not-recognised' }, { name: 'reason', valueCoding: { system: REASON, code: '08' } }, { name: 'comment', valueString: '字'.repeat(201) }], 400, POSTED('comment')],
    [[{ name: 'decision', valueCode: 'recognised' }, { name: 'report', valueReference: { reference: `DiagnosticReport/${d.report.expired}` } }], 400, POSTED('report')],
    [[{ name: 'decision', valueCode: 'recognised' }, { name: 'author', valueReference: { reference: 'Organization/x' } }], 400, POSTED('author')],
  ];
  for (const [parameter, status, expression] of bad) {
    const res = await decide(parameter);
    t.is(res.status, status, JSON.stringify(res.body));
    t.deepEqual(res.body.issue[0].expression, [expression], JSON.stringify(parameter));
  }

  const other = await decide([
    { name: 'decision', valueCode: 'not-recognised' },
    { name: 'reason', valueString: '08' },
    { name: 'comment', valueString: '患者要求在本院复查。'.padEnd(200, '。') },
  ]);
  t.is(other.status, 200, JSON.stringify(other.body));
  t.is(other.body.mitigation[2].action.text.length, 200);
  t.is(other.body.mitigation[2].action.coding[1].code, '08');
  t.is(other.body.mitigation[2].extension, undefined, 'without report: the decision covers every implicated report');

  const history = await (await s.fhir(`${ref}/_history`)).json();
  t.is(history.entry.length, 4);
  t.is((await decide([{ name: 'decision', valueCode: 'recognised' }], 'DetectedIssue/no-such-reminder')).status, 404);
  const plain = await (await s.fhir('DetectedIssue', { method: 'POST', json: { resourceType: 'DetectedIssue', status: 'final' } })).json();
  t.is((await decide([{ name: 'decision', valueCode: 'recognised' }], `DetectedIssue/${plain.id}`)).status, 400, 'only recognition records take decisions');
  const empty = await check(d.emptyPatient, 'req-gz');
  const nothing = await decide([{ name: 'decision', valueCode: 'recognised' }], param(empty, 'reminder').valueReference.reference);
  t.is(nothing.status, 400, 'a reminder without recognisable results has nothing to decide');
  t.is((await s.fhir(`${ref}/$decide?decision=recognised`)).status, 405);
});

test.serial('the operations are in the CapabilityStatement with their definitions', async (t) => {
  const cs = await (await fetch(`${s.base}/metadata`)).json();
  const ops = (type: string) => Object.fromEntries(cs.rest[0].resource.find((r: any) => r.type === type).operation.map((o: any) => [o.name, o.definition]));
  t.is(ops('Patient')['recognition-check'], 'https://fhir.huren.gz.cn/OperationDefinition/Patient-recognition-check');
  t.is(ops('Patient').reports, 'https://fhir.huren.gz.cn/OperationDefinition/Patient-reports');
  t.is(ops('Patient').everything, 'http://hl7.org/fhir/OperationDefinition/Patient-everything');
  t.is(ops('ServiceRequest')['duplicate-check'], 'https://fhir.huren.gz.cn/OperationDefinition/ServiceRequest-duplicate-check');
  t.is(ops('DetectedIssue').decide, 'https://fhir.huren.gz.cn/OperationDefinition/DetectedIssue-decide');
  t.is(ops('DiagnosticReport').view, 'https://fhir.huren.gz.cn/OperationDefinition/DiagnosticReport-view');
  t.is(ops('Observation')['recognition-check'], undefined);
});

test.serial("the platform's own records are validated under test, and their outbox and monitoring rows commit (or roll back) with them", async (t) => {
  const db = s.huren.db;
  const repo = new Repository(db);
  t.true(engineOf(db).assertOwnRecords, 'under test (NODE_ENV=test) the own records are asserted');
  const before = await countOf(s, 'DetectedIssue');
  const invalid = await t.throwsAsync(repo.create({ resourceType: 'DetectedIssue', status: 'no-such-status' } as unknown as Resource, { own: true }));
  t.is(statusOf(invalid), 400);
  t.is(await countOf(s, 'DetectedIssue'), before, 'an invalid own record is not stored');

  const record = (): DetectedIssue =>
    reminder({ kind: 'encounter-reminder', patient: { reference: `Patient/${d.patient}` }, requester: { reference: `Organization/${d.org['req-gz']}` }, implicated: [], detail: '测试', now: new Date() });
  const written = (await repo.create(record(), { own: true })).resource;
  const key = `DetectedIssue/${written.id}/_history/1`;
  t.deepEqual(await db.query('SELECT kind, digest FROM anchor_outbox WHERE key = $1', [key]), [{ kind: 'recognition-record', digest: recordDigest(written) }]);
  t.deepEqual(await db.query('SELECT institution, kind, implicated FROM monitoring_record WHERE id = $1', [written.id]), [
    { institution: `Organization/${d.org['req-gz']}`, kind: 'encounter-reminder', implicated: 0 },
  ]);

  // the rows written beside a version are part of its transaction: a failure leaves none of them
  let id: string | undefined;
  await t.throwsAsync(
    repo.transaction(async (tx) => {
      id = (await tx.create(record(), { own: true })).resource.id;
      throw new Error('after the write');
    }),
    { message: 'after the write' }
  );
  t.truthy(id);
  t.deepEqual(await db.query('SELECT 1 FROM anchor_outbox WHERE key = $1', [`DetectedIssue/${id}/_history/1`]), []);
  t.deepEqual(await db.query('SELECT 1 FROM monitoring_record WHERE id = $1', [id]), []);
  t.deepEqual(await db.query("SELECT 1 FROM resource WHERE type = 'DetectedIssue' AND id = $1", [id]), []);
});

test.serial('a recognition record is ONE statement with its outbox and monitoring rows (no BEGIN, no COMMIT); a failing one leaves none of them', async (t) => {
  const db = s.huren.db;
  const repo = new Repository(db);
  const record = (implicated: DetectedIssue['implicated'] = []): DetectedIssue =>
    reminder({ kind: 'encounter-reminder', patient: { reference: `Patient/${d.patient}` }, requester: { reference: `Organization/${d.org['req-gz']}` }, implicated: implicated ?? [], detail: '一条语句', now: new Date() });
  await repo.create(record(), { own: true }); // the requester's district known to the live stream (cached once)
  const { value, statements } = await statementsOf(db, () => repo.create(record(), { own: true }));
  t.is(statements.length, 1, statements.map((x) => x.slice(0, 60)).join(' / '));
  t.regex(statements[0]!, /INSERT INTO resource .*INSERT INTO anchor_outbox .*INSERT INTO monitoring_record/);
  const id = value.resource.id as string;
  const key = `DetectedIssue/${id}/_history/1`;
  t.is((await db.query('SELECT 1 FROM anchor_outbox WHERE key = $1', [key])).length, 1);

  // the same id and version again (another content): resource_history refuses version 1 twice, and the whole
  // statement fails — neither the new outbox row (another digest) nor the monitoring row's change is kept
  const again = record([{ reference: `DiagnosticReport/${d.report.fresh}` }]);
  await t.throwsAsync(repo.create({ ...again, detail: '另一条' }, { id, own: true }));
  t.deepEqual(await db.query('SELECT digest FROM anchor_outbox WHERE key = $1', [key]), [{ digest: recordDigest(value.resource) }]);
  t.deepEqual(await db.query('SELECT implicated FROM monitoring_record WHERE id = $1', [id]), [{ implicated: 0 }]);
  t.is(((await (await s.fhir(`DetectedIssue/${id}`)).json()) as DetectedIssue).detail, '一条语句');
});

test.serial('$recognition-check costs two statements: the facts (reports with their hash statuses, the patient, the requester) and the record', async (t) => {
  const db = s.huren.db;
  const check = () => recognitionCheck({ repo: new Repository(db) }, { patient: { id: d.patient }, requester: { reference: `Organization/${d.org['req-gz']}` } });
  await check(); // the process's caches (approved local codes, the institutions' districts) filled once
  const { value, statements } = await statementsOf(db, check);
  t.true(value.results.length > 0);
  t.is(statements.length, 2, statements.map((x) => x.slice(0, 60)).join(' / '));
  t.regex(statements[0]!, /^WITH rep AS MATERIALIZED .*FROM report_version rv/, 'the hash statuses are read with the reports');
  t.regex(statements[1]!, /^WITH p AS MATERIALIZED .*INSERT INTO resource /, 'the record, written alone');
});

test.serial('an institution changed between two checks is judged as it is now; the facts statement sends an institution this process holds only as its id and version', async (t) => {
  const db = s.huren.db;
  const check = async () => (await recognitionCheck({ repo: new Repository(db) }, { patient: { id: d.patient }, requester: { reference: `Organization/${d.org['req-gz']}` } })).results.map((r) => r.report.reference);
  const fresh = `DiagnosticReport/${d.report.fresh}`;
  t.true((await check()).includes(fresh));
  const city: any = await (await s.fhir(`Organization/${d.org.city}`)).json();
  const rows = await db.query<{ k: number; id: string; content: unknown }>(factsSql({ single: true, withPatients: false }), [d.patient, null, [`${city.id}/${city.meta.versionId}`]]);
  const institutions = rows.filter((r) => Number(r.k) === 2);
  t.true(institutions.some((r) => r.id === city.id && r.content === null), 'a known version: no content');
  t.true(institutions.some((r) => r.id !== city.id && r.content !== null), 'the others: their content');

  // the city hospital loses its QC qualifications (a new version): its fresh report no longer counts ...
  const { meta: _meta, ...content } = city;
  const bare = { ...content, extension: city.extension.filter((e: any) => e.url !== 'https://fhir.huren.gz.cn/StructureDefinition/qc-qualification') };
  t.is((await s.fhir(`Organization/${city.id}`, { method: 'PUT', json: bare })).status, 200);
  t.false((await check()).includes(fresh), 'judged by its new version');
  // ... and regains them
  t.is((await s.fhir(`Organization/${city.id}`, { method: 'PUT', json: content })).status, 200);
  t.true((await check()).includes(fresh));
});
