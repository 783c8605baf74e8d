/**
 * SMART App Launch, EHR launch (docs/his-integration.md 从 HIS 打开报告调阅): a HIS client with system/launch
 * creates a launch context for patient A; the report viewer (public client huren-viewer) gets a code from
 * /auth/authorize with PKCE S256 and exchanges it for a token with A in its context. That token reads A's
 * reports as the HIS's institution, for treatment, every read audited with the HIS's user, and never anything
 * of patient B — by read, search, _include/_revinclude, chains, $everything/$summary/$reports/$view, history,
 * the JSON APIs. The unhappy paths: a reused or expired launch, unknown client or redirect URI, PKCE mismatch,
 * a code used twice (its token stops working), a client without the scope, the launch and code as bearer tokens.
 */
import { createHash } from 'node:crypto';
import test from 'ava';
import { LaunchContexts } from '../server/auth/launch.ts';
import { backendClients, type BackendClients } from './helpers/backend-token.ts';
import { NATIONAL_ID, ORG_ID, params, reportEntries, seedScenario, transaction, idOf, CATALOGUE, ITEM, daysAgo, type Seeded } from './helpers/recognition-data.ts';
import { authorize, authorizeParams, createLaunch, exchange, launchToken, pkce, redirectUri, VIEWER } from './helpers/smart-launch.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const TAG = 'sl';
let s: TestServer;
let d: Seeded;
let his: BackendClients;
let launcher = '';
let plain = '';
/** Patient B (another person) and its report, issued by the HIS institution itself: without the launch binding its token would see it. */
const B = { patient: '', report: '' };

test.before(async () => {
  his = await backendClients([
    { clientId: 'his-launcher', organization: `Organization?identifier=${ORG_ID}|req-gz-${TAG}`, scope: 'system/launch system/Patient.rs' },
    { clientId: 'his-plain', organization: `Organization?identifier=${ORG_ID}|req-gz-${TAG}`, scope: 'system/*.rs' },
  ]);
  // a store on disk: the last test restarts the server on it
  s = await startTestServer({ clients: his.clients as any }, { persistent: true });
  d = await seedScenario(s, TAG);
  const other = await transaction(s, [{ resource: { resourceType: 'Patient', identifier: [{ system: NATIONAL_ID, value: '440101198001011234' }], name: [{ family: '王' }] }, request: { method: 'POST', url: 'Patient' } }]);
  B.patient = idOf(other.entry[0]);
  const rep = await transaction(s, reportEntries(`Patient/${B.patient}`, { key: `b-${TAG}`, org: `req-gz-${TAG}`, code: { system: CATALOGUE, code: ITEM.potassium, display: '钾' }, issued: daysAgo(1), obs: [{ code: { system: CATALOGUE, code: ITEM.potassium }, value: 4 }] }));
  B.report = idOf(rep.entry[0]);
  launcher = await his.tokenFor(s.huren.url, 'his-launcher', 'system/launch');
  plain = await his.tokenFor(s.huren.url, 'his-plain', 'system/*.rs');
});
test.after.always(async () => {
  await s?.close();
});

const USER = { practitioner: { identifier: { system: 'https://his.example/staff', value: 'D0042' } }, user: 'dr.wang' };
const read = (token: string, path: string, headers: Record<string, string> = {}) => fetch(`${s.base}/${path}`, { headers: { authorization: `Bearer ${token}`, accept: 'application/fhir+json', ...headers } });
const launchA = () => launchToken(s.huren.url, launcher, { patient: `Patient/${d.patient}`, ...USER });

test.serial('the smart configuration and the CapabilityStatement advertise the EHR launch', async (t) => {
  const config = await (await fetch(`${s.huren.url}/.well-known/smart-configuration`)).json();
  t.is(config.authorization_endpoint, `${s.huren.url}/auth/authorize`);
  t.is(config.token_endpoint, `${s.huren.url}/auth/token`);
  t.deepEqual(config.code_challenge_methods_supported, ['S256']);
  for (const c of ['launch-ehr', 'context-ehr-patient', 'client-public', 'permission-patient', 'permission-v1', 'permission-v2']) t.true(config.capabilities.includes(c), c);
  t.true(config.grant_types_supported.includes('authorization_code'));
  const cs = await (await fetch(`${s.base}/metadata`)).json();
  const uris = cs.rest[0].security.extension[0].extension;
  t.is(uris.find((e: any) => e.url === 'authorize').valueUri, `${s.huren.url}/auth/authorize`);
});

test.serial('the full launch: the token names the patient, reads its reports as the HIS institution for TREAT, and audits the HIS user', async (t) => {
  const { token } = await launchA();
  t.is(token.patient, d.patient);
  t.is(token.token_type, 'Bearer');
  t.is(token.scope, 'launch patient/*.rs');
  t.false(token.need_patient_banner);
  // no purpose header: the launch's purpose; another header changes nothing
  const reports = await read(token.access_token, `Patient/${d.patient}/$reports`, { 'x-purpose-of-use': 'HRESCH' });
  t.is(reports.status, 200);
  const body = await reports.json();
  t.true(params(body, 'report').length >= 10, 'the patient\'s reports of every institution');
  t.true(params(body, 'report').some((p: any) => p.part.some((x: any) => x.name === 'recognisable')), 'judged for the HIS institution as requester');
  const view = await read(token.access_token, `DiagnosticReport/${d.report.fresh}/$view`);
  t.is(view.status, 200);
  const records = await (await s.fhir(`AuditEvent?entity=DiagnosticReport/${d.report.fresh}&_count=100`)).json();
  const mine = (records.entry ?? []).map((e: any) => e.resource).filter((e: any) => e.agent.some((a: any) => a.altId === 'dr.wang'));
  t.true(mine.length >= 2, 'the access record and the request trail both name the HIS user');
  for (const event of mine) {
    const user = event.agent.find((a: any) => a.altId === 'dr.wang');
    t.deepEqual(user.who.identifier, USER.practitioner.identifier);
    t.true(event.agent.some((a: any) => /^app:huren-viewer@his-launcher\/[0-9a-f]{16}$/.test(a.who?.identifier?.value ?? '')), 'the app, the HIS client and the launch');
  }
  const trail = mine.find((e: any) => e.purposeOfEvent);
  t.is(trail?.purposeOfEvent[0].coding[0].code, 'TREAT');
});

test.serial('patient by national-ID identifier; v1 scopes; bad launch bodies are 4xx naming the field', async (t) => {
  const byId = await createLaunch(s.huren.url, launcher, { patient: `Patient?identifier=${NATIONAL_ID}|${d.nationalId}`, user: 'dr.li' });
  t.is(byId.status, 201);
  t.is(byId.body.patient, d.patient);
  t.is(byId.body.expires_in, 300);
  t.regex(byId.body.launch_url, /\/app\/launch\?iss=.*%2Ffhir&launch=/);
  const p = pkce();
  const answer = await authorize(s.huren.url, authorizeParams(s.huren.url, byId.body.launch, p, { scope: 'launch patient/DiagnosticReport.read patient/Observation.read openid fhirUser' }));
  const code = answer.redirect!.searchParams.get('code')!;
  const token = await exchange(s.huren.url, { grant_type: 'authorization_code', code, client_id: VIEWER, redirect_uri: redirectUri(s.huren.url), code_verifier: p.verifier });
  t.is(token.body.scope, 'launch patient/DiagnosticReport.read patient/Observation.read');
  t.is((await read(token.body.access_token, `DiagnosticReport/${d.report.fresh}`)).status, 200);
  t.is((await read(token.body.access_token, `Patient/${d.patient}`)).status, 403, 'no Patient scope was granted');

  const bad = async (body: unknown, status: number, expression: string) => {
    const r = await createLaunch(s.huren.url, launcher, body);
    t.is(r.status, status, JSON.stringify(body));
    t.is(r.body.resourceType, 'OperationOutcome');
    t.deepEqual(r.body.issue[0].expression, [expression]);
  };
  await bad({ user: 'dr.li' }, 400, 'patient');
  await bad({ patient: 'Patient/does-not-exist', user: 'dr.li' }, 404, 'patient');
  await bad({ patient: d.patient }, 400, 'practitioner');
  await bad({ patient: d.patient, user: '王医生 (name)' }, 400, 'user');
  await bad({ patient: d.patient, user: 'dr.li', encounter: 'Encounter/nope' }, 404, 'encounter');
  await bad({ patient: d.patient, user: 'dr.li', extra: 1 }, 400, 'extra');
});

test.serial('a launch is used once and expires after 5 minutes', async (t) => {
  const launch = await createLaunch(s.huren.url, launcher, { patient: d.patient, user: 'dr.wang' });
  const first = await authorize(s.huren.url, authorizeParams(s.huren.url, launch.body.launch, pkce()));
  t.truthy(first.redirect?.searchParams.get('code'));
  const again = await authorize(s.huren.url, authorizeParams(s.huren.url, launch.body.launch, pkce(), { state: 'again' }));
  t.is(again.status, 302);
  t.is(again.redirect?.searchParams.get('error'), 'invalid_request');
  t.is(again.redirect?.searchParams.get('state'), 'again');
  t.is(again.redirect?.searchParams.get('code'), null);

  const old = await createLaunch(s.huren.url, launcher, { patient: d.patient, user: 'dr.wang' });
  t.is(old.body.expires_in, 300);
  // six minutes later (the clock of the stored context moved back)
  await s.huren.db.query(`UPDATE smart_launch SET created_at = created_at - interval '6 minutes', expires_at = expires_at - interval '6 minutes' WHERE launch_hash = $1`, [createHash('sha256').update(old.body.launch).digest('hex')]);
  const expired = await authorize(s.huren.url, authorizeParams(s.huren.url, old.body.launch, pkce()));
  t.is(expired.redirect?.searchParams.get('error'), 'invalid_request');
  t.regex(expired.redirect?.searchParams.get('error_description') ?? '', /expired/);
});

test.serial('an unknown client or an unregistered redirect URI gets a Chinese page, never a redirect; other errors go back to the app', async (t) => {
  const launch = await createLaunch(s.huren.url, launcher, { patient: d.patient, user: 'dr.wang' });
  const l = launch.body.launch;
  const unknown = await authorize(s.huren.url, authorizeParams(s.huren.url, l, pkce(), { client_id: 'evil-app' }));
  t.is(unknown.status, 400);
  t.is(unknown.redirect, undefined);
  t.regex(unknown.body, /未在平台登记/);
  for (const uri of ['https://evil.example/cb', `${s.huren.url}/app/launch/callback/x`, undefined]) {
    const r = await authorize(s.huren.url, authorizeParams(s.huren.url, l, pkce(), { redirect_uri: uri }));
    t.is(r.status, 400);
    t.is(r.redirect, undefined);
    t.regex(r.body, /回调地址/);
  }
  const cases: [Record<string, string | undefined>, string][] = [
    [{ code_challenge_method: 'plain' }, 'invalid_request'],
    [{ code_challenge: undefined }, 'invalid_request'],
    [{ aud: 'https://other.example/fhir' }, 'invalid_request'],
    [{ scope: 'patient/*.rs' }, 'invalid_scope'],
    [{ scope: 'launch user/*.rs' }, 'invalid_scope'],
    [{ response_type: 'token' }, 'unsupported_response_type'],
    [{ state: undefined }, 'invalid_request'],
  ];
  for (const [override, error] of cases) {
    const r = await authorize(s.huren.url, authorizeParams(s.huren.url, l, pkce(), override));
    t.is(r.redirect?.searchParams.get('error'), error, JSON.stringify(override));
  }
  // none of these spent the launch
  const ok = await authorize(s.huren.url, authorizeParams(s.huren.url, l, pkce()));
  t.truthy(ok.redirect?.searchParams.get('code'));
});

test.serial('PKCE mismatch, a code used twice (its token stops working), a code for another redirect URI or client', async (t) => {
  const launch = await createLaunch(s.huren.url, launcher, { patient: d.patient, user: 'dr.wang' });
  const p = pkce();
  const code = (await authorize(s.huren.url, authorizeParams(s.huren.url, launch.body.launch, p))).redirect!.searchParams.get('code')!;
  const form = { grant_type: 'authorization_code', code, client_id: VIEWER, redirect_uri: redirectUri(s.huren.url), code_verifier: p.verifier };
  const wrong = await exchange(s.huren.url, { ...form, code_verifier: pkce().verifier });
  t.is(wrong.status, 400);
  t.is(wrong.body.error, 'invalid_grant');
  t.is((await exchange(s.huren.url, { ...form, redirect_uri: `${s.huren.url}/app/other` })).body.error, 'invalid_grant');
  t.is((await exchange(s.huren.url, { ...form, client_id: 'evil-app' })).status, 401);
  const first = await exchange(s.huren.url, form);
  t.is(first.status, 200, 'the failed attempts did not spend the code');
  t.is((await read(first.body.access_token, `Patient/${d.patient}/$reports`)).status, 200);
  const second = await exchange(s.huren.url, form);
  t.is(second.status, 400);
  t.is(second.body.error, 'invalid_grant');
  t.is((await read(first.body.access_token, `Patient/${d.patient}/$reports`)).status, 401, 'a replayed code revokes its token');
  t.is((await exchange(s.huren.url, { ...form, code: 'made-up' })).body.error, 'invalid_grant');

  // a code is good for 60 s
  const late = await createLaunch(s.huren.url, launcher, { patient: d.patient, user: 'dr.wang' });
  const q = pkce();
  const lateCode = (await authorize(s.huren.url, authorizeParams(s.huren.url, late.body.launch, q))).redirect!.searchParams.get('code')!;
  await s.huren.db.query(`UPDATE smart_code SET expires_at = now() - interval '1 second' WHERE code_hash = $1`, [createHash('sha256').update(lateCode).digest('hex')]);
  const expired = await exchange(s.huren.url, { ...form, code: lateCode, code_verifier: q.verifier });
  t.is(expired.body.error, 'invalid_grant');
  t.regex(expired.body.error_description, /expired/);
});

test.serial('HEAD does not spend a launch; spent and expired launches and codes are pruned after a day', async (t) => {
  const launch = await createLaunch(s.huren.url, launcher, { patient: d.patient, user: 'dr.wang' });
  const head = await fetch(`${s.huren.url}/auth/authorize?${authorizeParams(s.huren.url, launch.body.launch, pkce())}`, { method: 'HEAD', redirect: 'manual' });
  t.true(head.status === 401 || head.status === 405, String(head.status));
  t.truthy((await authorize(s.huren.url, authorizeParams(s.huren.url, launch.body.launch, pkce()))).redirect?.searchParams.get('code'));
  const count = async () => Number((await s.huren.db.query<{ n: string }>('SELECT count(*) AS n FROM smart_launch'))[0].n);
  const before = await count();
  t.true(before > 0);
  await new LaunchContexts(s.huren.db).prune(new Date(Date.now() + 3_600_000));
  t.is(await count(), before, 'kept for a day');
  await new LaunchContexts(s.huren.db).prune(new Date(Date.now() + 2 * 86_400_000));
  t.is(await count(), 0);
  t.is(Number((await s.huren.db.query<{ n: string }>('SELECT count(*) AS n FROM smart_code'))[0].n), 0);
});

test.serial('only a HIS client with system/launch creates launches; the launch and the code are no FHIR tokens', async (t) => {
  const refused = await createLaunch(s.huren.url, plain, { patient: d.patient, user: 'dr.wang' });
  t.is(refused.status, 403);
  t.is(refused.body.resourceType, 'OperationOutcome');
  t.is((await createLaunch(s.huren.url, s.token, { patient: d.patient, user: 'dr.wang' })).status, 403, 'not even the platform token: a launch is a HIS\'s word');
  const anonymous = await fetch(`${s.huren.url}/auth/launch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  t.is(anonymous.status, 401);
  t.is((await read(launcher, `Patient/${d.patient}`)).status, 403, 'the HIS token with system/launch alone reads nothing');

  const launch = await createLaunch(s.huren.url, launcher, { patient: d.patient, user: 'dr.wang' });
  t.is((await read(launch.body.launch, `Patient/${d.patient}`)).status, 401);
  const p = pkce();
  const code = (await authorize(s.huren.url, authorizeParams(s.huren.url, launch.body.launch, p))).redirect!.searchParams.get('code')!;
  t.is((await read(code, `Patient/${d.patient}`)).status, 401);
});

test.serial('a token for patient A never reads patient B, whichever way it asks', async (t) => {
  const a = (await launchA()).token.access_token;
  t.is((await read(a, `Patient/${d.patient}`)).status, 200);
  for (const path of [
    `Patient/${B.patient}`,
    `DiagnosticReport/${B.report}`,
    `DiagnosticReport/${B.report}/$view`,
    `Patient/${B.patient}/$reports`,
    `Patient/${B.patient}/$everything`,
    `Patient/${B.patient}/$summary`,
  ]) {
    const r = await read(a, path);
    t.true(r.status === 403 || r.status === 404, `${path}: ${r.status}`);
  }
  const leaks = async (path: string) => {
    const r = await read(a, path);
    t.is(r.status, 200, path);
    const body = await r.json();
    // the links echo the query; the entries are what is shown
    const shown = JSON.stringify(body.entry ?? []);
    t.false(shown.includes(B.patient) || shown.includes(B.report), `${path} shows B`);
    return body;
  };
  await leaks(`DiagnosticReport?subject=Patient/${B.patient}`);
  await leaks(`DiagnosticReport?_id=${B.report}`);
  await leaks(`Observation?subject.identifier=${NATIONAL_ID}|440101198001011234`);
  await leaks(`Patient?identifier=${NATIONAL_ID}|440101198001011234`);
  await leaks(`Patient?_id=${B.patient}&_revinclude=DiagnosticReport:subject`);
  await leaks(`Organization?identifier=${ORG_ID}|city-${TAG}&_revinclude=DiagnosticReport:performer&_count=200`);
  await leaks(`DiagnosticReport?performer.identifier=${ORG_ID}|city-${TAG}&_include=DiagnosticReport:subject&_count=200`);
  await leaks(`DiagnosticReport/${B.report}/_history`);
  await leaks('DiagnosticReport/_history?_count=500');
  t.is((await read(a, '_history?_count=500')).status, 403, 'the whole server\'s history is no patient read');
  const mine = await leaks(`DiagnosticReport?subject=Patient/${d.patient}&_count=200`);
  t.true((mine.entry ?? []).length >= 10, 'A\'s own reports are there');
  const batch = await fetch(s.base, {
    method: 'POST',
    headers: { authorization: `Bearer ${a}`, 'content-type': 'application/fhir+json' },
    body: JSON.stringify({ resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: `DiagnosticReport/${B.report}` } }] }),
  });
  t.false((await batch.text()).includes(`"subject":{"reference":"Patient/${B.patient}"`));
  // an asynchronous result kept for a session of patient B is not A's
  const b = (await launchToken(s.huren.url, launcher, { patient: B.patient, user: 'dr.wang' })).token.access_token;
  const submitted = await fetch(s.base, {
    method: 'POST',
    headers: { authorization: `Bearer ${b}`, 'content-type': 'application/fhir+json', prefer: 'respond-async' },
    body: JSON.stringify({ resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: `DiagnosticReport?subject=Patient/${B.patient}` } }] }),
  });
  t.is(submitted.status, 202);
  const job = submitted.headers.get('content-location')!;
  let polled: Response;
  do polled = await fetch(job, { headers: { authorization: `Bearer ${b}`, accept: 'application/fhir+json' } });
  while (polled.status === 202);
  t.true(JSON.stringify(await polled.json()).includes(B.report), 'B\'s session gets its result');
  const stolen = await fetch(job, { headers: { authorization: `Bearer ${a}`, accept: 'application/fhir+json' } });
  t.is(stolen.status, 404);
  // no writes, no other APIs
  const write = await fetch(`${s.base}/Observation`, { method: 'POST', headers: { authorization: `Bearer ${a}`, 'content-type': 'application/fhir+json' }, body: JSON.stringify({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${d.patient}` } }) });
  t.is(write.status, 403);
  t.is((await fetch(`${s.huren.url}/api/statistics`, { headers: { authorization: `Bearer ${a}` } })).status, 403);
  t.is((await read(a, 'AuditEvent?_count=1')).status, 403);
  // outside the patient record: dictionaries and other operations
  t.is((await read(a, 'ConceptMap?_count=1')).status, 403);
  t.is((await read(a, `Organization/${d.org.city}/$dictionary-qc`)).status, 403);
  t.is((await read(a, `Organization/${d.org.city}`)).status, 200, 'the institutions that issued its reports are shown');
});

test.serial('launches, codes and tokens live in the database: a launch made before a restart is honoured after it', async (t) => {
  const launch = await createLaunch(s.huren.url, launcher, { patient: d.patient, user: 'dr.wang' });
  const p = pkce();
  const before = s;
  await before.close({ keepStore: true });
  s = await startTestServer({ clients: his.clients as any }, { store: before.store });
  const answer = await authorize(s.huren.url, authorizeParams(s.huren.url, launch.body.launch, p));
  const code = answer.redirect?.searchParams.get('code');
  t.truthy(code, answer.redirect?.search ?? answer.body);
  const token = await exchange(s.huren.url, { grant_type: 'authorization_code', code: code!, client_id: VIEWER, redirect_uri: redirectUri(s.huren.url), code_verifier: p.verifier });
  t.is(token.status, 200);
  t.is((await read(token.body.access_token, `Patient/${d.patient}/$reports`)).status, 200);
});

test.serial('a launch names an encounter of the patient only; revoking the HIS client\'s tokens ends its launched sessions', async (t) => {
  const enc = await s.fhir('Encounter', { method: 'POST', json: { resourceType: 'Encounter', status: 'in-progress', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: { reference: `Patient/${B.patient}` } } });
  const encB = (await enc.json()).id;
  const mismatch = await createLaunch(s.huren.url, launcher, { patient: d.patient, user: 'dr.wang', encounter: `Encounter/${encB}` });
  t.is(mismatch.status, 422);
  const withEnc = await launchToken(s.huren.url, launcher, { patient: B.patient, user: 'dr.wang', encounter: encB });
  t.is(withEnc.token.encounter, encB);
  t.is((await read(withEnc.token.access_token, `Patient/${B.patient}`)).status, 200);
  const revoke = await fetch(`${s.huren.url}/auth/revoke`, { method: 'POST', headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'client_id=his-launcher' });
  t.is(revoke.status, 200);
  t.is((await read(withEnc.token.access_token, `Patient/${B.patient}`)).status, 401);
});
