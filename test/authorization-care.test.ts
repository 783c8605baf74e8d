/**
 * Institution binding and reads with a reason (issue 11, must-show 2; docs/security.md 访问控制), as the issue's
 * attacker tried them: hospital A's own token files a report naming hospital B, sets B's report
 * entered-in-error, changes B's potassium, PATCHes the HR mark onto B's report — each refused with a 403 naming
 * the element, nothing changed. A read of B's patient's data without a care relationship is refused; after
 * A's recognition check for the patient (the care event) it is allowed when the request states its purpose,
 * and the AuditEvent records that purpose; the care ends with its window. A Consent and an Encounter make care
 * too.
 */
import { randomUUID } from 'node:crypto';
import test from 'ava';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { careOptionsOf, configureCare } from '../server/auth/care.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { CATALOGUE, EXT_HR, ITEM, NATIONAL_ID, ORG_ID, daysAgo, idOf, param, reportEntries, seedScenario, transaction, type Seeded } from './helpers/recognition-data.ts';

const TAG = 'care';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
let s: TestServer;
let d: Seeded;
let tokenA = '';
let tokenB = '';
let A = '';
let B = '';
const keys: Record<string, Awaited<ReturnType<typeof generateKeyPair>>> = {};

async function clientToken(clientId: string): Promise<string> {
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES384', kid: `${clientId}-1`, typ: 'JWT' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(`${s.huren.url}/auth/token`)
    .setExpirationTime(Math.floor(Date.now() / 1000) + 240)
    .setJti(randomUUID())
    .sign(keys[clientId].privateKey);
  const res = await fetch(`${s.huren.url}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'system/*.cruds', client_assertion_type: ASSERTION_TYPE, client_assertion: assertion }).toString(),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`token: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

function as(bearer: string, path: string, init: { method?: string; json?: unknown; headers?: Record<string, string> } = {}): Promise<Response> {
  return fetch(`${s.base}/${path}`, {
    method: init.method ?? (init.json !== undefined ? 'POST' : 'GET'),
    headers: {
      authorization: `Bearer ${bearer}`,
      accept: 'application/fhir+json',
      ...(init.json !== undefined ? { 'content-type': init.method === 'PATCH' ? 'application/json-patch+json' : 'application/fhir+json' } : {}),
      ...init.headers,
    },
    body: init.json !== undefined ? JSON.stringify(init.json) : undefined,
  });
}

const TREAT = { 'x-purpose-of-use': 'TREAT' };

test.before(async () => {
  const clients = [
    { clientId: 'his-a', org: 'req-gz' },
    { clientId: 'his-b', org: 'city' },
  ];
  for (const c of clients) keys[c.clientId] = await generateKeyPair('ES384', { extractable: true });
  s = await startTestServer({
    clients: await Promise.all(
      clients.map(async (c) => ({
        clientId: c.clientId,
        organization: `Organization?identifier=${ORG_ID}|${c.org}-${TAG}`,
        scope: 'system/*.cruds',
        jwks: { keys: [{ ...(await exportJWK(keys[c.clientId].publicKey)), kid: `${c.clientId}-1`, alg: 'ES384' }] },
      }))
    ),
  });
  d = await seedScenario(s, TAG);
  A = d.org['req-gz'];
  B = d.org.city;
  tokenA = await clientToken('his-a');
  tokenB = await clientToken('his-b');
});
test.after.always(async () => {
  await s?.close();
});

async function refusal(res: Response): Promise<{ status: number; expression?: string; text?: string }> {
  const body = await res.json();
  return { status: res.status, expression: body.issue?.[0]?.expression?.[0], text: body.issue?.[0]?.details?.text };
}

const platformRead = async (path: string) => (await s.fhir(path)).json() as Promise<any>;

test.serial("A's token cannot write as B: a report naming B, B's report entered-in-error, B's potassium, the HR mark — 403 naming the element, nothing changed", async (t) => {
  const fresh = await platformRead(`DiagnosticReport/${d.report.fresh}`);
  const potassiumId = fresh.result[0].reference.split('/')[1];
  const potassium = await platformRead(`Observation/${potassiumId}`);
  const noHr = await platformRead(`DiagnosticReport/${d.report['no-hr']}`);

  const filed = await refusal(await as(tokenA, 'DiagnosticReport', { json: { ...fresh, id: undefined, meta: undefined, identifier: [{ system: 'https://his.example/report-id', value: 'forged' }] } }));
  t.deepEqual([filed.status, filed.expression], [403, 'DiagnosticReport.performer[0]']);
  t.regex(filed.text!, /names another institution/);

  const erred = await refusal(await as(tokenA, `DiagnosticReport/${fresh.id}`, { method: 'PUT', json: { ...fresh, status: 'entered-in-error', performer: [{ reference: `Organization/${A}` }] } }));
  t.deepEqual([erred.status, erred.expression], [403, 'DiagnosticReport.performer[0]'], 'even claiming the report for itself: it is B\'s');

  const changed = await refusal(await as(tokenA, `Observation/${potassiumId}`, { method: 'PUT', json: { ...potassium, valueQuantity: { ...potassium.valueQuantity, value: 1.1 } } }));
  t.is(changed.status, 403);
  t.regex(changed.text!, /not this institution's/);

  const marked = await refusal(await as(tokenA, `DiagnosticReport/${noHr.id}`, { method: 'PATCH', json: [{ op: 'add', path: '/extension', value: [{ url: EXT_HR, valueString: '粤HR' }] }] }));
  t.deepEqual([marked.status, marked.expression], [403, 'DiagnosticReport.performer[0]']);

  // the same through a transaction and a conditional update
  const tx = await refusal(
    await as(tokenA, '', { json: { resourceType: 'Bundle', type: 'transaction', entry: [{ fullUrl: `${s.base}/Observation/${potassiumId}`, resource: { ...potassium, valueQuantity: { ...potassium.valueQuantity, value: 1.1 } }, request: { method: 'PUT', url: `Observation/${potassiumId}` } }] } })
  );
  t.is(tx.status, 403);
  t.regex(tx.expression!, /^Bundle\.entry\[0\]/);
  const conditional = await refusal(await as(tokenA, `DiagnosticReport?identifier=${encodeURIComponent(`https://his.example/report-id|fresh-${TAG}`)}`, { method: 'PUT', json: { ...fresh, id: undefined, status: 'entered-in-error' } }));
  t.is(conditional.status, 403);
  const deleted = await refusal(await as(tokenA, `DiagnosticReport/${fresh.id}`, { method: 'DELETE' }));
  t.is(deleted.status, 403);

  // a check in B's name, and a decision on B's reminder
  const inB = await refusal(await as(tokenA, `Patient/${d.patient}/$recognition-check?requester=Organization/${B}`));
  t.deepEqual([inB.status, inB.expression], [403, 'requester']);
  const own = await as(tokenB, `Patient/${d.patient}/$recognition-check`);
  t.is(own.status, 200);
  const reminder = param(await own.json(), 'reminder').valueReference.reference;
  const decided = await refusal(await as(tokenA, `${reminder}/$decide`, { json: { resourceType: 'Parameters', parameter: [{ name: 'decision', valueCode: 'recognised' }] } }));
  t.is(decided.status, 403);
  t.regex(decided.text!, /another institution/);
  // platform records
  const issue = await refusal(await as(tokenA, 'DetectedIssue', { json: { resourceType: 'DetectedIssue', status: 'final' } }));
  t.deepEqual([issue.status, issue.expression], [403, 'DetectedIssue']);

  const after = await platformRead(`DiagnosticReport/${fresh.id}`);
  t.is(after.status, 'final');
  t.is(after.meta.versionId, fresh.meta.versionId, 'B\'s report is unchanged');
  t.is((await platformRead(`Observation/${potassiumId}`)).valueQuantity.value, 5.8, 'the potassium is 5.8 still');
  t.is((await platformRead(`DiagnosticReport/${noHr.id}`)).extension, undefined, 'no HR mark');

  // B, writing its own report, may
  const mine = await as(tokenB, `DiagnosticReport/${noHr.id}`, { method: 'PATCH', json: [{ op: 'add', path: '/conclusion', value: '复核' }] });
  t.is(mine.status, 200);
  const mineNew = await as(tokenB, 'DiagnosticReport', { json: { resourceType: 'DiagnosticReport', status: 'final', code: { text: 'K' }, subject: { reference: `Patient/${d.patient}` }, performer: [{ reference: `Organization/${B}` }] } });
  t.is(mineNew.status, 201);
});

test.serial('a read of B\'s patient without care is refused; after A\'s recognition check it is allowed with a stated purpose and audited with it; the care ends with its window', async (t) => {
  const report = `DiagnosticReport/${d.report.cbc}`;
  // a patient of its own: the one with no reports (no one's care yet)
  const before = await refusal(await as(tokenA, report, { headers: TREAT }));
  t.is(before.status, 403);
  t.regex(before.text!, /not in this institution's care/);
  const list = await (await as(tokenA, `DiagnosticReport?subject=Patient/${d.patient}`, { headers: TREAT })).json();
  t.deepEqual(list.entry ?? [], [], 'a search leaves out what may not be seen');
  t.is(list.total, undefined, 'and gives no total');
  t.is((await as(tokenA, `Patient/${d.patient}/$everything`, { headers: TREAT })).status, 403);

  // the check is the care event (its own answer lists B's results)
  const check = await as(tokenA, `Patient/${d.patient}/$recognition-check`);
  t.is(check.status, 200);
  t.true(param(await check.json(), 'exists').valueBoolean);

  const unstated = await refusal(await as(tokenA, report));
  t.deepEqual([unstated.status, unstated.expression], [403, 'X-Purpose-Of-Use'], 'the purpose must be stated');
  const bad = await refusal(await as(tokenA, report, { headers: { 'x-purpose-of-use': 'CURIOSITY' } }));
  t.deepEqual([bad.status, bad.expression], [400, 'X-Purpose-Of-Use']);

  const requestId = `care-read-${randomUUID()}`;
  const read = await as(tokenA, report, { headers: { ...TREAT, 'x-request-id': requestId } });
  t.is(read.status, 200);
  t.is((await read.json()).id, d.report.cbc);
  const search = await (await as(tokenA, `DiagnosticReport?subject=Patient/${d.patient}`, { headers: TREAT })).json();
  t.true(search.entry.some((e: any) => e.resource.id === d.report.cbc));
  t.is((await as(tokenA, `Patient/${d.patient}/$everything`, { headers: TREAT })).status, 200);

  // the AuditEvent of the read records the purpose
  const events: any = await (await s.fhir('AuditEvent?_count=500&_sort=-date')).json();
  const event = events.entry.map((e: any) => e.resource).find((e: any) => e.entity?.[0]?.detail?.some((x: any) => x.type === 'requestId' && x.valueString === requestId));
  t.truthy(event, 'the read has its AuditEvent');
  t.is(event.purposeOfEvent?.[0].coding?.[0].code, 'TREAT');
  t.is(event.agent[0].purposeOfUse?.[0].coding?.[0].code, 'TREAT');

  // 25 hours later the care has ended (HUREN_CARE_WINDOW_HOURS, default 24)
  const options = careOptionsOf(s.huren.db);
  t.is(options.windowHours, 24);
  configureCare(s.huren.db, { ...options, now: () => new Date(Date.now() + 25 * 3_600_000) });
  try {
    t.is((await as(tokenA, report, { headers: TREAT })).status, 403);
  } finally {
    configureCare(s.huren.db, options);
  }
  t.is((await as(tokenA, report, { headers: TREAT })).status, 200);
});

test.serial('a Consent of the patient permitting the institution makes care; an inactive one does not; an Encounter does too', async (t) => {
  // a second person with a result of B
  const made = await transaction(s, [{ fullUrl: `urn:uuid:${randomUUID()}`, resource: { resourceType: 'Patient', identifier: [{ system: NATIONAL_ID, value: `44010419700101${Math.floor(Math.random() * 9000) + 1000}` }] }, request: { method: 'POST', url: 'Patient' } }]);
  const patient = idOf(made.entry[0]);
  const rep = await transaction(s, reportEntries(`Patient/${patient}`, { key: `consent-${TAG}`, org: `city-${TAG}`, code: { system: CATALOGUE, code: ITEM.glucose }, issued: daysAgo(5) }));
  const report = `DiagnosticReport/${idOf(rep.entry[0])}`;
  t.is((await as(tokenA, report, { headers: TREAT })).status, 403);

  const consent = { resourceType: 'Consent', status: 'inactive', scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] }, category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }], patient: { reference: `Patient/${patient}` }, policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] }, organization: [{ reference: `Organization/${A}` }], provision: { type: 'permit', actor: [{ role: { text: 'reader' }, reference: { reference: `Organization/${A}` } }] } };
  // A records the consent it obtained in its own name (naming B as the custodian is refused)
  const foreign = await as(tokenA, 'Consent', { json: { ...consent, organization: [{ reference: `Organization/${B}` }] } });
  t.is(foreign.status, 403, JSON.stringify(await foreign.clone().json()));
  const inactive = await as(tokenA, 'Consent', { json: consent });
  t.is(inactive.status, 201);
  t.is((await as(tokenA, report, { headers: TREAT })).status, 403, 'an inactive Consent permits nothing');
  const stored = await inactive.json();
  t.is((await as(tokenA, `Consent/${stored.id}`, { method: 'PUT', json: { ...stored, status: 'active', provision: { ...consent.provision, purpose: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'TREAT' }] } } })).status, 200);
  t.is((await as(tokenA, report, { headers: TREAT })).status, 200, 'an active Consent for this purpose permits it');
  t.is((await as(tokenA, report, { headers: { 'x-purpose-of-use': 'HRESCH' } })).status, 403, 'not for another purpose');

  // an Encounter of B's patient at A (A records its own encounter) is care too
  const third = await transaction(s, [{ fullUrl: `urn:uuid:${randomUUID()}`, resource: { resourceType: 'Patient', identifier: [{ system: NATIONAL_ID, value: `44010419600101${Math.floor(Math.random() * 9000) + 1000}` }] }, request: { method: 'POST', url: 'Patient' } }]);
  const p3 = idOf(third.entry[0]);
  const rep3 = await transaction(s, reportEntries(`Patient/${p3}`, { key: `enc-${TAG}`, org: `city-${TAG}`, code: { system: CATALOGUE, code: ITEM.glucose }, issued: daysAgo(5) }));
  const report3 = `DiagnosticReport/${idOf(rep3.entry[0])}`;
  t.is((await as(tokenA, report3, { headers: TREAT })).status, 403);
  const enc = await as(tokenA, 'Encounter', { json: { resourceType: 'Encounter', status: 'in-progress', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: { reference: `Patient/${p3}` }, serviceProvider: { reference: `Organization/${A}` } } });
  t.is(enc.status, 201);
  t.is((await as(tokenA, report3, { headers: TREAT })).status, 200);
});

test.serial('an institution acts for its registered parts (Organization.partOf), and registers no other institution', async (t) => {
  const branch = await s.fhir('Organization', { method: 'POST', json: { resourceType: 'Organization', name: '荔湾区人民医院分院', identifier: [{ system: ORG_ID, value: `branch-${TAG}` }], partOf: { reference: `Organization/${A}` } } });
  const branchId = (await branch.json()).id;
  const report = { resourceType: 'DiagnosticReport', status: 'final', code: { text: 'K' }, subject: { reference: `Patient/${d.emptyPatient}` }, performer: [{ reference: `Organization?identifier=${ORG_ID}|branch-${TAG}` }] };
  const filed = await as(tokenA, 'DiagnosticReport', { json: report });
  t.is(filed.status, 201, 'a report of its branch, named by identifier');
  t.is((await filed.json()).performer[0].reference, `Organization/${branchId}`);
  t.is((await as(tokenB, 'DiagnosticReport', { json: report })).status, 403, 'B does not act for A\'s branch');
  const none = await refusal(await as(tokenA, 'DiagnosticReport', { json: { ...report, performer: undefined } }));
  t.deepEqual([none.status, none.expression], [403, 'DiagnosticReport.performer'], 'a report names its institution');
  const other = await refusal(await as(tokenA, 'Organization', { json: { resourceType: 'Organization', name: '另一家医院' } }));
  t.deepEqual([other.status, other.expression], [403, 'Organization.partOf']);
  t.is((await as(tokenA, 'Organization', { json: { resourceType: 'Organization', name: '第二分院', partOf: { reference: `Organization/${A}` } } })).status, 201);
  // its own Organization it may update; B's not
  const own = await platformRead(`Organization/${A}`);
  t.is((await as(tokenA, `Organization/${A}`, { method: 'PUT', json: { ...own, alias: ['荔湾'] } })).status, 200);
  const theirs = await platformRead(`Organization/${B}`);
  t.is((await as(tokenA, `Organization/${B}`, { method: 'PUT', json: { ...theirs, alias: ['x'] } })).status, 403);
});
