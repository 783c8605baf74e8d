/**
 * CDS Hooks 2.0 (issue 4, must-show 3): discovery; patient-view, order-select and order-sign cards, with and
 * without prefetch; feedback that records the doctor's decision on the recognition record (DetectedIssue),
 * read back through the FHIR API; bad input is a 4xx and writes nothing.
 *
 * Serial: several tests count the DetectedIssues before and after.
 */
import test from 'ava';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { statementsOf } from './helpers/statements.ts';
import { Repository } from '../server/fhir/repository.ts';
import { callService } from '../server/cds/hooks.ts';
import { findService } from '../server/cds/services.ts';
import { charLength, duplicateOrderCard, encounterCard, md, MAX_SUMMARY, uuidV5 } from '../server/cds/cards.ts';
import { countOf, idOf, ITEM, NATIONAL, NATIONAL_ID, ORG_ID, CATALOGUE, seedScenario, transaction, requesterOf, type Seeded } from './helpers/recognition-data.ts';

let s: TestServer;
let d: Seeded;
let roleId: string;
let practitionerId: string;
let twoRolePractitioner: string;

const CARD = 'https://fhir.huren.gz.cn/NamingSystem/cds-card';
const REASON = 'https://fhir.huren.gz.cn/CodeSystem/not-recognised-reason';
const DECISION = 'https://fhir.huren.gz.cn/CodeSystem/recognition-decision';
const RECORD_KIND = 'https://fhir.huren.gz.cn/CodeSystem/recognition-record-kind';
const DECISION_REPORT = 'https://fhir.huren.gz.cn/StructureDefinition/decision-report';
const REQUESTER = 'cn.gz.huren.requester';
const TAG = 'cds';

test.before(async () => {
  s = await startTestServer();
  d = await seedScenario(s, TAG);
  // the platform's register of users: a doctor of 荔湾区人民医院 (req-gz), and one working for two institutions
  const reply = await transaction(s, [
    { fullUrl: 'urn:uuid:7d1c0f5e-0000-4000-8000-000000000001', resource: { resourceType: 'Practitioner', name: [{ family: '王' }] }, request: { method: 'POST', url: 'Practitioner' } },
    {
      fullUrl: 'urn:uuid:7d1c0f5e-0000-4000-8000-000000000002',
      resource: { resourceType: 'PractitionerRole', active: true, practitioner: { reference: 'urn:uuid:7d1c0f5e-0000-4000-8000-000000000001' }, organization: { reference: `Organization/${d.org['req-gz']}` } },
      request: { method: 'POST', url: 'PractitionerRole' },
    },
    { fullUrl: 'urn:uuid:7d1c0f5e-0000-4000-8000-000000000003', resource: { resourceType: 'Practitioner', name: [{ family: '赵' }] }, request: { method: 'POST', url: 'Practitioner' } },
    ...['req-gz', 'req-fs'].map((key, i) => ({
      fullUrl: `urn:uuid:7d1c0f5e-0000-4000-8000-00000000001${i}`,
      resource: { resourceType: 'PractitionerRole', active: true, practitioner: { reference: 'urn:uuid:7d1c0f5e-0000-4000-8000-000000000003' }, organization: { reference: `Organization/${d.org[key]}` } },
      request: { method: 'POST', url: 'PractitionerRole' },
    })),
  ]);
  practitionerId = idOf(reply.entry[0]);
  roleId = idOf(reply.entry[1]);
  twoRolePractitioner = idOf(reply.entry[2]);
});
test.after.always(async () => {
  await s?.close();
});

const root = () => s.huren.url;

async function post(path: string, body: unknown, init: { token?: string | null; raw?: string; type?: string } = {}): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { 'content-type': init.type ?? 'application/json', accept: 'application/json' };
  if (init.token !== null) headers.authorization = `Bearer ${init.token ?? s.token}`;
  const res = await fetch(`${root()}/cds-services${path}`, { method: 'POST', headers, body: init.raw ?? JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const requesterExt = (key = 'req-gz') => ({ [REQUESTER]: `Organization/${d.org[key]}` });
const ehrPatient = (id: string) => ({ resourceType: 'Patient', id, identifier: [{ system: 'https://his.example/mrn', value: `MRN-${id}` }, { system: NATIONAL_ID, value: d.nationalId }] });

function patientView(context: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { hook: 'patient-view', hookInstance: crypto.randomUUID(), context: { userId: `PractitionerRole/${roleId}`, patientId: d.patient, ...context }, ...extra };
}

const serviceRequest = (id: string, coding: { system: string; code: string; display?: string }[], patientId: string, text?: string) => ({
  resourceType: 'ServiceRequest',
  id,
  status: 'draft',
  intent: 'order',
  code: { coding, ...(text ? { text } : {}) },
  subject: { reference: `Patient/${patientId}` },
});

/** Draft orders: a blood count (covered by the cbc report), total protein (expired: not covered), a drug order. */
function draftOrders(patientId: string) {
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [
      { resource: serviceRequest('ord-cbc', [{ system: NATIONAL, code: '002501010150000', display: '血细胞分析' }], patientId, '血常规') },
      { resource: serviceRequest('ord-tp', [{ system: NATIONAL, code: '002503010010000', display: '总蛋白' }], patientId) },
      { resource: { resourceType: 'MedicationRequest', id: 'med-1', status: 'draft', intent: 'order', subject: { reference: `Patient/${patientId}` }, medicationCodeableConcept: { text: '阿司匹林' } } },
    ],
  };
}

function orderSign(patientId = d.patient, extra: Record<string, unknown> = {}, context: Record<string, unknown> = {}) {
  return { hook: 'order-sign', hookInstance: crypto.randomUUID(), context: { userId: `PractitionerRole/${roleId}`, patientId, draftOrders: draftOrders(patientId), ...context }, ...extra };
}

const feedback = (card: string, outcome: 'accepted' | 'overridden', more: Record<string, unknown> = {}) => ({
  feedback: [{ card, outcome, outcomeTimestamp: new Date().toISOString(), ...more }],
});

async function recordOf(card: string): Promise<any> {
  const res = await s.fhir(`DetectedIssue?identifier=${encodeURIComponent(`${CARD}|${card}`)}`);
  const bundle = await res.json();
  return bundle.entry?.[0]?.resource;
}

function assertCard(t: any, card: any, indicator: string) {
  t.regex(card.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.is(card.indicator, indicator);
  t.true([...card.summary].length <= 140, `summary of ${[...card.summary].length} characters`);
  t.regex(card.summary, /[\u4e00-\u9fff]/, 'the summary is in Chinese');
  t.is(card.source.label, '广州市检查检验结果互认平台');
  t.is(card.source.url, `${root()}/app`);
  t.is(card.selectionBehavior, 'at-most-one');
  t.deepEqual(card.overrideReasons.map((r: any) => r.code), ['01', '02', '03', '04', '05', '06', '07', '08', '98', '99']);
  t.true(card.overrideReasons.every((r: any) => r.system === REASON && /[\u4e00-\u9fff]/.test(r.display)));
  t.deepEqual(card.overrideReasons[0], { system: REASON, code: '01', display: '病情变化' });
  t.true(card.links.length > 0);
  for (const link of card.links) {
    t.is(link.type, 'absolute');
    t.regex(link.url, new RegExp(`^${root().replace(/[.]/g, '\\.')}/app/reports/[A-Za-z0-9-]+$`));
  }
}

test.serial('discovery lists the three services with their prefetch templates, without a token', async (t) => {
  const res = await fetch(`${root()}/cds-services`);
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /application\/json/);
  const body = await res.json();
  const byHook = Object.fromEntries(body.services.map((x: any) => [x.hook, x]));
  t.deepEqual(Object.keys(byHook).sort(), ['order-select', 'order-sign', 'patient-view']);
  for (const service of body.services) {
    t.truthy(service.id);
    t.truthy(service.title);
    t.truthy(service.description);
    t.deepEqual(service.prefetch, { patient: 'Patient/{{context.patientId}}', user: '{{context.userId}}' });
    t.is(service.kind, undefined, 'internal fields stay internal');
  }
  t.is(byHook['patient-view'].id, 'recognition-reminder');
  t.is(byHook['order-sign'].id, 'duplicate-order-sign');
  // calls need the token
  t.is((await post('/recognition-reminder', patientView({}, { extension: requesterExt() }), { token: null })).status, 401);
  t.is((await post('/recognition-reminder', patientView({}, { extension: requesterExt() }), { token: 'wrong' })).status, 401);
});

test.serial('patient-view: one info card listing the recognisable results, written as an encounter reminder', async (t) => {
  const before = await countOf(s, 'DetectedIssue');
  // with prefetch: the client's own patient id, found on the platform by the national ID
  const { status, body } = await post('/recognition-reminder', patientView({ patientId: 'ehr-8841' }, { prefetch: { patient: ehrPatient('ehr-8841'), user: null }, extension: requesterExt() }));
  t.is(status, 200, JSON.stringify(body));
  t.is(body.cards.length, 1);
  const [card] = body.cards;
  assertCard(t, card, 'info');
  t.regex(card.summary, /^患者有 11 项可互认的检查检验结果（8 份报告/);
  t.true(card.detail.includes('- **钾** — 广州市第一人民医院，'));
  t.true(card.detail.includes('剩余 5 天，异常 1 项'));
  t.true(card.detail.includes('长期有效'), 'ABO blood group never expires');
  t.true(card.links.some((l: any) => l.url.endsWith(`/app/reports/${d.report.fresh}`)));
  t.is(card.suggestions.length, 1);
  t.is(card.suggestions[0].actions, undefined, 'accepting the encounter card only records the decision');
  t.is(card.source.topic.code, 'encounter-reminder');

  t.is(await countOf(s, 'DetectedIssue'), before + 1, 'one record per call');
  const record = await recordOf(card.uuid);
  t.truthy(record, 'the card uuid is an identifier of the record');
  t.deepEqual(record.code.coding[0], { system: RECORD_KIND, code: 'encounter-reminder', display: '就诊提醒' });
  t.is(record.patient.reference, `Patient/${d.patient}`);
  t.is(requesterOf(record), `Organization/${d.org['req-gz']}`);
  t.is(record.implicated.length, 8);
  t.is(record.meta.versionId, '1', 'written once, with its card');

  // without prefetch: context.patientId is the platform's id, the requester the user's PractitionerRole here
  const plain = await post('/recognition-reminder', patientView({}));
  t.is(plain.status, 200, JSON.stringify(plain.body));
  t.is(plain.body.cards.length, 1);
  t.is(plain.body.cards[0].summary, card.summary);
  t.not(plain.body.cards[0].uuid, card.uuid);
  t.is(requesterOf(await recordOf(plain.body.cards[0].uuid)), `Organization/${d.org['req-gz']}`);
  // the user as a Practitioner: its role on the platform names the institution
  const asPractitioner = await post('/recognition-reminder', patientView({ userId: `Practitioner/${practitionerId}` }));
  t.is(asPractitioner.status, 200);
  t.is(requesterOf(await recordOf(asPractitioner.body.cards[0].uuid)), `Organization/${d.org['req-gz']}`);
  // the user prefetched as a PractitionerRole whose organization carries the platform identifier
  const prefetchedRole = { resourceType: 'PractitionerRole', id: 'ehr-role-1', organization: { identifier: { system: ORG_ID, value: `req-fs-${TAG}` } } };
  const foshan = await post('/recognition-reminder', patientView({ userId: 'PractitionerRole/ehr-role-1', patientId: 'ehr-8841' }, { prefetch: { patient: ehrPatient('ehr-8841'), user: prefetchedRole } }));
  t.is(foshan.status, 200, JSON.stringify(foshan.body));
  t.regex(foshan.body.cards[0].summary, /^患者有 3 项可互认/, 'a Foshan requester recognises the province-wide and partner-city results only');
  t.is(requesterOf(await recordOf(foshan.body.cards[0].uuid)), `Organization/${d.org['req-fs']}`);
  t.is(await countOf(s, 'DetectedIssue'), before + 4);
});

test.serial('patient-view: no card when nothing is recognisable; nothing at all for a patient the platform does not know', async (t) => {
  const before = await countOf(s, 'DetectedIssue');
  const empty = await post('/recognition-reminder', patientView({ patientId: d.emptyPatient }, { extension: requesterExt() }));
  t.is(empty.status, 200);
  t.deepEqual(empty.body, { cards: [] });
  t.is(await countOf(s, 'DetectedIssue'), before + 1, 'the encounter reminder is still written');
  const unknown = await post('/recognition-reminder', patientView({ patientId: 'not-on-the-platform' }, { prefetch: { patient: { resourceType: 'Patient', id: 'not-on-the-platform', identifier: [{ system: NATIONAL_ID, value: '440101199912310000' }] } }, extension: requesterExt() }));
  t.is(unknown.status, 200);
  t.deepEqual(unknown.body, { cards: [] });
  t.is(await countOf(s, 'DetectedIssue'), before + 1);
});

test.serial('round trip: discovery, order-sign card with a delete suggestion, feedback overriding with reason 01 → the record in the FHIR API', async (t) => {
  const services = (await (await fetch(`${root()}/cds-services`)).json()).services;
  const sign = services.find((x: any) => x.hook === 'order-sign');
  const { status, body } = await post(`/${sign.id}`, orderSign('ehr-8841', { prefetch: { patient: ehrPatient('ehr-8841') }, extension: requesterExt() }));
  t.is(status, 200, JSON.stringify(body));
  t.is(body.cards.length, 1, 'only the blood count is covered (total protein expired; the drug order is not the platform’s business)');
  const [card] = body.cards;
  assertCard(t, card, 'warning');
  t.regex(card.summary, /^重复检查提醒：血细胞分析已有可互认结果（广州市第一人民医院，\d{4}-\d{2}-\d{2}，剩余 6 天），建议撤销本医嘱$/);
  t.true(card.detail.includes('医嘱「血常规」'));
  t.deepEqual(card.suggestions.map((x: any) => x.label), ['撤销重复医嘱']);
  const [action] = card.suggestions[0].actions;
  t.is(action.type, 'delete');
  t.is(action.resourceId, 'ServiceRequest/ord-cbc');
  t.regex(action.description, /^撤销医嘱「血常规」/);
  t.true(card.links.some((l: any) => l.url.endsWith(`/app/reports/${d.report.cbc}`)));

  const fb = await post(`/${sign.id}/feedback`, feedback(card.uuid, 'overridden', { overrideReason: { reason: { system: REASON, code: '01', display: '病情变化' }, userComment: '患者近两日发热，需复查。' } }));
  t.is(fb.status, 200, JSON.stringify(fb.body));
  const reminder = fb.body.feedback[0].reminder;
  t.regex(reminder, /^DetectedIssue\//);
  // the recognition record, read through the FHIR API
  const res = await s.fhir(reminder);
  t.is(res.status, 200);
  const record = await res.json();
  t.is(record.code.coding[0].code, 'duplicate-order-reminder');
  t.is(record.patient.reference, `Patient/${d.patient}`);
  t.deepEqual(record.identifier, [{ system: CARD, value: card.uuid }]);
  t.is(record.mitigation.length, 1);
  const [m] = record.mitigation;
  t.deepEqual(m.action.coding, [
    { system: DECISION, code: 'not-recognised', display: '不予互认' },
    { system: REASON, code: '01', display: '病情变化' },
  ]);
  t.is(m.action.text, '患者近两日发热，需复查。');
  t.deepEqual(m.extension, [{ url: DECISION_REPORT, valueReference: { reference: `DiagnosticReport/${d.report.cbc}` } }]);
  t.truthy(m.date);
  // the evidence: the ordered blood count names its matching report and the card
  const cbcEvidence = record.evidence.find((e: any) => e.code[0].coding[0].code === ITEM.cbc);
  t.true(cbcEvidence.detail.some((x: any) => x.reference === `DiagnosticReport/${d.report.cbc}`));
  t.true(cbcEvidence.detail.some((x: any) => x.identifier?.value === card.uuid));
  // and by search on the decision
  const search = await (await s.fhir(`DetectedIssue?identifier=${encodeURIComponent(`${CARD}|${card.uuid}`)}`)).json();
  t.is(search.entry.length, 1);
  t.is(search.entry[0].resource.mitigation[0].action.coding[1].code, '01');

  // the same call without prefetch: the platform's patient id, the user's role from the store
  const plain = await post(`/${sign.id}`, orderSign());
  t.is(plain.status, 200, JSON.stringify(plain.body));
  t.is(plain.body.cards.length, 1);
  t.is(plain.body.cards[0].summary, card.summary);
});

test.serial('feedback accepted records "recognised"; the same feedback twice records it once', async (t) => {
  const { body } = await post('/duplicate-order-sign', orderSign());
  const [card] = body.cards;
  const entry = { card: card.uuid, outcome: 'accepted', acceptedSuggestions: [{ id: card.suggestions[0].uuid }], outcomeTimestamp: new Date().toISOString() };
  const first = await post('/duplicate-order-sign/feedback', { feedback: [entry] });
  t.is(first.status, 200, JSON.stringify(first.body));
  t.like(first.body.feedback[0], { card: card.uuid, decision: 'recognised', recorded: 1 });
  const again = await post('/duplicate-order-sign/feedback', { feedback: [entry] });
  t.is(again.status, 200);
  t.is(again.body.feedback[0].recorded, 0);
  const record = await recordOf(card.uuid);
  t.is(record.mitigation.length, 1);
  t.deepEqual(record.mitigation[0].action.coding, [{ system: DECISION, code: 'recognised', display: '已互认' }]);
  t.is(record.mitigation[0].date, new Date(entry.outcomeTimestamp).toISOString(), 'the decision time is the outcome timestamp');

  // an encounter card: the decision covers every implicated report
  const pv = await post('/recognition-reminder', patientView({}, { extension: requesterExt() }));
  const pvCard = pv.body.cards[0];
  const accepted = await post('/recognition-reminder/feedback', feedback(pvCard.uuid, 'accepted', { acceptedSuggestions: [{ id: pvCard.suggestions[0].uuid }] }));
  t.is(accepted.status, 200, JSON.stringify(accepted.body));
  const pvRecord = await recordOf(pvCard.uuid);
  t.is(pvRecord.mitigation.length, 1);
  t.is(pvRecord.mitigation[0].extension, undefined);
  t.is(pvRecord.mitigation[0].action.coding[0].code, 'recognised');
  // reason 08 with its comment
  const other = await post('/recognition-reminder/feedback', feedback(pvCard.uuid, 'overridden', { overrideReason: { reason: { system: REASON, code: '08' }, userComment: '外院结果与临床表现不符。' } }));
  t.is(other.status, 200, JSON.stringify(other.body));
  t.is((await recordOf(pvCard.uuid)).mitigation[1].action.coding[1].code, '08');
});

test.serial('order-sign with the patient prefetched costs three statements: the patient by identifier, the facts (hash statuses included), the record with its cards', async (t) => {
  const service = findService('duplicate-order-sign');
  if (!service) throw new Error('no duplicate-order-sign service');
  const env = { repo: new Repository(s.huren.db), publicBase: root() };
  const body = orderSign(d.patient, { prefetch: { patient: ehrPatient(d.patient) }, extension: requesterExt() });
  await callService(env, service, body); // the process's caches (approved local codes, the institutions' districts) filled once
  const before = await countOf(s, 'DetectedIssue');
  const { value, statements } = await statementsOf(s.huren.db, () => callService(env, service, { ...body, hookInstance: crypto.randomUUID() }));
  t.true(value.cards.length > 0);
  t.is(statements.length, 3, statements.map((x) => x.slice(0, 60)).join(' / '));
  t.regex(statements[0]!, /FROM resource r .*idx_token/, 'the patient, by the national ID');
  t.regex(statements[1]!, /^WITH rep AS MATERIALIZED .*FROM report_version rv/, 'the hash statuses are read with the reports');
  t.regex(statements[2]!, /^WITH p AS MATERIALIZED .*INSERT INTO resource .*INSERT INTO anchor_outbox/, 'the record, written alone with its outbox row');
  t.is(await countOf(s, 'DetectedIssue'), before + 1);
});

test.serial('order-select checks only the selected orders; an order partly covered gets a card without a delete action', async (t) => {
  const bundle = {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [
      { resource: serviceRequest('ord-lytes', [{ system: CATALOGUE, code: ITEM.potassium, display: '钾' }, { system: CATALOGUE, code: ITEM.magnesium, display: '镁' }], d.patient, '电解质') },
      { resource: serviceRequest('ord-cbc', [{ system: NATIONAL, code: '002501010150000' }], d.patient) },
    ],
  };
  const call = (selections: string[]) =>
    post('/duplicate-order-select', {
      hook: 'order-select',
      hookInstance: crypto.randomUUID(),
      context: { userId: `PractitionerRole/${roleId}`, patientId: d.patient, selections, draftOrders: bundle },
    });
  const { status, body } = await call(['ServiceRequest/ord-lytes']);
  t.is(status, 200, JSON.stringify(body));
  t.is(body.cards.length, 1);
  const [card] = body.cards;
  assertCard(t, card, 'warning');
  t.regex(card.summary, /^部分开单项目已有可互认结果：钾/);
  t.true(card.detail.includes('**镁** — 未找到该患者此项目的既往结果'));
  t.deepEqual(card.suggestions.map((x: any) => [x.label, x.actions]), [['互认已有结果', undefined]]);
  const record = await recordOf(card.uuid);
  t.deepEqual(record.evidence.map((e: any) => e.code[0].coding[0].code), [ITEM.potassium, ITEM.magnesium], 'the unselected blood count is not checked');
  // overriding it records the decision on the potassium report only
  const fb = await post('/duplicate-order-select/feedback', feedback(card.uuid, 'overridden', { overrideReason: { reason: { system: REASON, code: '02' } } }));
  t.is(fb.status, 200);
  const decided = await recordOf(card.uuid);
  t.deepEqual(decided.mitigation.map((m: any) => m.extension[0].valueReference.reference), [`DiagnosticReport/${d.report.fresh}`]);
  // a selection that is not a ServiceRequest: nothing to check, nothing written
  const before = await countOf(s, 'DetectedIssue');
  const drug = await post('/duplicate-order-select', {
    hook: 'order-select',
    hookInstance: crypto.randomUUID(),
    context: { userId: `PractitionerRole/${roleId}`, patientId: d.patient, selections: ['MedicationRequest/m1'], draftOrders: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'MedicationRequest', id: 'm1', status: 'draft', intent: 'order', subject: { reference: `Patient/${d.patient}` }, medicationCodeableConcept: { text: 'x' } } }] } },
  });
  t.is(drug.status, 200);
  t.deepEqual(drug.body, { cards: [] });
  t.is(await countOf(s, 'DetectedIssue'), before);
});

test.serial('bad input is a 4xx with an OperationOutcome, never a 5xx, and writes nothing', async (t) => {
  const { body } = await post('/duplicate-order-sign', orderSign());
  const card = body.cards[0];
  const pv = (await post('/recognition-reminder', patientView({}))).body.cards[0];
  const before = await countOf(s, 'DetectedIssue');
  const mitigations = async () => (await recordOf(card.uuid)).mitigation?.length ?? 0;
  const decisionsBefore = await mitigations();
  const overridden = (reason: unknown, userComment?: string) => feedback(card.uuid, 'overridden', { overrideReason: { reason, ...(userComment !== undefined ? { userComment } : {}) } });
  const cases: [string, string, unknown, number, string?, { raw?: string; type?: string }?][] = [
    ['unknown service', '/no-such-service', patientView({}), 404],
    ['unknown service feedback', '/no-such-service/feedback', feedback(card.uuid, 'accepted'), 404],
    ['malformed JSON', '/recognition-reminder', undefined, 400, undefined, { raw: '{"hook": "patient-view",' }],
    ['not JSON', '/recognition-reminder', undefined, 415, undefined, { raw: 'hook=patient-view', type: 'text/plain' }],
    ['empty body', '/recognition-reminder', undefined, 400, undefined, { raw: '' }],
    ['an array', '/recognition-reminder', [], 400],
    ['wrong hook', '/recognition-reminder', { ...patientView({}), hook: 'order-sign' }, 400, 'hook'],
    ['no hookInstance', '/recognition-reminder', { ...patientView({}), hookInstance: undefined }, 400, 'hookInstance'],
    ['no context', '/recognition-reminder', { hook: 'patient-view', hookInstance: crypto.randomUUID() }, 400, 'context'],
    ['no patientId', '/recognition-reminder', patientView({ patientId: undefined }), 400, 'context.patientId'],
    ['bad userId', '/recognition-reminder', patientView({ userId: 'dr-1' }), 400, 'context.userId'],
    ['prefetch not a resource', '/recognition-reminder', patientView({}, { prefetch: { patient: 'Patient/1' } }), 400, 'prefetch.patient'],
    ['prefetched patient of another id', '/recognition-reminder', patientView({}, { prefetch: { patient: ehrPatient('someone-else') } }), 400, 'prefetch.patient.id'],
    ['no requester', '/recognition-reminder', patientView({ userId: 'Practitioner/unknown-doctor' }), 400, `extension.${REQUESTER}`],
    ['two institutions', '/recognition-reminder', patientView({ userId: `Practitioner/${twoRolePractitioner}` }), 400, `extension.${REQUESTER}`],
    ['requester not an Organization', '/recognition-reminder', patientView({}, { extension: { [REQUESTER]: 'Patient/1' } }), 400, `extension.${REQUESTER}`],
    ['unknown requester', '/recognition-reminder', patientView({}, { extension: { [REQUESTER]: 'Organization/nope' } }), 404, `extension.${REQUESTER}`],
    ['no draftOrders', '/duplicate-order-sign', orderSign(d.patient, {}, { draftOrders: undefined }), 400, 'context.draftOrders'],
    ['draftOrders not a Bundle', '/duplicate-order-sign', orderSign(d.patient, {}, { draftOrders: { resourceType: 'ServiceRequest' } }), 400, 'context.draftOrders'],
    ['order of another patient', '/duplicate-order-sign', orderSign(d.patient, {}, { draftOrders: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: serviceRequest('x', [{ system: NATIONAL, code: '002501010150000' }], 'other') }] } }), 400, 'context.draftOrders.entry[0].resource.subject'],
    ['unknown ordered code', '/duplicate-order-sign', orderSign(d.patient, {}, { draftOrders: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: serviceRequest('x', [{ system: CATALOGUE, code: 'L-00000000' }], d.patient) }] } }), 400, 'context.draftOrders.entry[0].resource.code.coding[0]'],
    ['order without code', '/duplicate-order-sign', orderSign(d.patient, {}, { draftOrders: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'ServiceRequest', id: 'x', status: 'draft', intent: 'order', subject: { reference: `Patient/${d.patient}` } } }] } }), 400, 'context.draftOrders.entry[0].resource.code'],
    ['selection not in draftOrders', '/duplicate-order-select', { hook: 'order-select', hookInstance: crypto.randomUUID(), context: { userId: `PractitionerRole/${roleId}`, patientId: d.patient, selections: ['ServiceRequest/zzz'], draftOrders: draftOrders(d.patient) } }, 400, 'context.selections[0]'],
    ['feedback not an array', '/duplicate-order-sign/feedback', { feedback: {} }, 400, 'feedback'],
    ['malformed card uuid', '/duplicate-order-sign/feedback', feedback('not-a-uuid', 'accepted'), 400, 'feedback[0].card'],
    ['unknown card uuid', '/duplicate-order-sign/feedback', feedback(crypto.randomUUID(), 'accepted'), 404, 'feedback[0].card'],
    ['card of another service', '/duplicate-order-sign/feedback', feedback(pv.uuid, 'accepted'), 400, 'feedback[0].card'],
    ['bad outcome', '/duplicate-order-sign/feedback', feedback(card.uuid, 'ignored' as any), 400, 'feedback[0].outcome'],
    ['no timestamp', '/duplicate-order-sign/feedback', { feedback: [{ card: card.uuid, outcome: 'accepted' }] }, 400, 'feedback[0].outcomeTimestamp'],
    ['future timestamp', '/duplicate-order-sign/feedback', feedback(card.uuid, 'accepted', { outcomeTimestamp: '2999-01-01T00:00:00Z' }), 400, 'feedback[0].outcomeTimestamp'],
    ['unknown suggestion', '/duplicate-order-sign/feedback', feedback(card.uuid, 'accepted', { acceptedSuggestions: [{ id: crypto.randomUUID() }] }), 400, 'feedback[0].acceptedSuggestions[0].id'],
    ['accepted with a reason', '/duplicate-order-sign/feedback', feedback(card.uuid, 'accepted', { overrideReason: { reason: { system: REASON, code: '01' } } }), 400, 'feedback[0].overrideReason'],
    ['overridden without a reason', '/duplicate-order-sign/feedback', feedback(card.uuid, 'overridden'), 400, 'feedback[0].overrideReason.reason'],
    ['comment only', '/duplicate-order-sign/feedback', feedback(card.uuid, 'overridden', { overrideReason: { userComment: '不需要' } }), 400, 'feedback[0].overrideReason.reason'],
    ['unknown reason', '/duplicate-order-sign/feedback', overridden({ system: REASON, code: '42' }), 400, 'feedback[0].overrideReason.reason'],
    ['reason of another system', '/duplicate-order-sign/feedback', overridden({ system: 'http://example.org/reasons', code: '01' }), 400, 'feedback[0].overrideReason.reason'],
    ['reason 08 without comment', '/duplicate-order-sign/feedback', overridden({ system: REASON, code: '08' }), 400, 'feedback[0].overrideReason.userComment'],
    ['comment over 200 characters', '/duplicate-order-sign/feedback', overridden({ system: REASON, code: '01' }, '复'.repeat(201)), 400, 'feedback[0].overrideReason.userComment'],
  ];
  for (const [what, path, payload, expected, expression, init] of cases) {
    const res = await post(path, payload, init ?? {});
    t.is(res.status, expected, `${what}: ${JSON.stringify(res.body)}`);
    t.is(res.body?.resourceType, 'OperationOutcome', what);
    if (expression) t.deepEqual(res.body.issue[0].expression, [expression], what);
  }
  // a post is all or nothing: a valid decision followed by an invalid one records neither
  const mixed = await post('/duplicate-order-sign/feedback', {
    feedback: [
      { card: card.uuid, outcome: 'accepted', outcomeTimestamp: new Date().toISOString() },
      { card: card.uuid, outcome: 'overridden', overrideReason: { reason: { system: REASON, code: '08' } }, outcomeTimestamp: new Date().toISOString() },
    ],
  });
  t.is(mixed.status, 400);
  t.deepEqual(mixed.body.issue[0].expression, ['feedback[1].overrideReason.userComment']);
  t.is(await countOf(s, 'DetectedIssue'), before, 'no reminder written by bad calls');
  t.is(await mitigations(), decisionsBefore, 'no decision written by bad feedback');
  // a comment of exactly 200 characters is fine
  const ok = await post('/duplicate-order-sign/feedback', overridden({ system: REASON, code: '01' }, '复'.repeat(200)));
  t.is(ok.status, 200);
  // methods
  const get = await fetch(`${root()}/cds-services/duplicate-order-sign`, { headers: { authorization: `Bearer ${s.token}` } });
  t.is(get.status, 405);
  t.is(get.headers.get('allow'), 'POST, OPTIONS');
  t.is((await fetch(`${root()}/cds-services`, { method: 'POST', headers: { authorization: `Bearer ${s.token}` } })).status, 405);
});

test('cards stay within 140 characters whatever the names, and escape Markdown in hospital data', (t) => {
  const long = '超长项目名称'.repeat(40);
  const match = {
    report: { reference: 'DiagnosticReport/r1', display: long },
    item: { system: CATALOGUE, code: 'L-1', display: long },
    performer: { reference: 'Organization/o1', display: '某*医院*_[测试]|' },
    issued: '2024-06-15T02:00:00Z',
    daysRemaining: 3,
    hashStatus: 'unanchored' as const,
    abnormalCount: 0,
  };
  const order = duplicateOrderCard('0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f', 'https://h.example', {
    id: 'o1',
    name: long,
    items: [{ index: 0, item: { order: 'o1', orderIndex: 0, code: match.item, duplicate: true, matches: [match], nearMatches: [] } }],
  });
  t.truthy(order);
  t.is(charLength(order!.card.summary), MAX_SUMMARY);
  t.true(order!.card.summary.endsWith('…'));
  t.true(order!.card.detail!.includes('某\\*医院\\*\\_\\[测试\\]\\|'));
  t.deepEqual(order!.reports, ['r1']);
  t.deepEqual(order!.evidence, [0]);
  const encounter = encounterCard('0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f', 'https://h.example', Array.from({ length: 30 }, () => match));
  t.true(charLength(encounter.card.summary) <= MAX_SUMMARY);
  t.true(encounter.card.detail!.includes('…另有 10 项'));
  t.is(encounter.card.links!.length, 1, 'one link per report');
  t.is(md('a  b\nc'), 'a b c');
  // RFC 9562 test vector: v5 of "www.example.com" in the DNS namespace
  t.is(uuidV5('6ba7b810-9dad-11d1-80b4-00c04fd430c8', 'www.example.com'), '2ed6657d-e927-568b-95e1-2665a8aea6a2');
});
