/**
 * The authorisation matrix (issue 11, must-show 1 and 2; docs/security.md 访问控制): every role — two hospital
 * clients A and B, a read-only client of A, the report viewer launched from A's HIS for A's patient PA (SMART
 * EHR launch), and the human roles (doctor and institution administrator of A,
 * the system, security, audit and commission administrators) — against every FHIR interaction and every
 * operation the server offers (read from its OperationRegistry: an operation without a row here fails the
 * test), with the ways around (_include, _revinclude, chained search, $everything, _history at three levels,
 * batch/transaction entries, asynchronous results). Each cell is a probe that says whether the protected thing
 * was reached (a write made, B's data shown); the expected set of roles is written by hand per row. Unexpected
 * allows must be 0 (and unexpected refusals too, so the matrix is not passed by refusing everything).
 *
 * The protected things are hospital B's: its patient P (managingOrganization B), its report RB about P with
 * the potassium Observation OB. A has no care relationship with P during the matrix. A's own report RA about
 * its own patient PA shows the allowed side.
 */
import { randomUUID } from 'node:crypto';
import test from 'ava';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { generate } from 'otplib';
import { loadAccountsConfig } from '../server/accounts/config.ts';
import { engineOf } from '../server/fhir/engine.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { launchToken } from './helpers/smart-launch.ts';
import { EXT_HR, ITEM, CATALOGUE, NATIONAL_ID, ORG_ID, daysAgo, idOf, param, params, reportEntries, seedScenario, transaction, type Seeded } from './helpers/recognition-data.ts';

const TAG = 'authz';
const ROLES = ['A', 'B', 'RO', 'doctorA', 'instAdminA', 'sysAdmin', 'secAdmin', 'auditAdmin', 'commission', 'appA'] as const;
type Role = (typeof ROLES)[number];
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const PASSWORD = 'Initial-Passw0rd!';

let clock = Date.now();
let s: TestServer;
let d: Seeded;
const token: Partial<Record<Role, string>> = {};
let A = '';
let B = '';
/** B's patient, report and result; A's patient and report; a second patient of B's results for the checks. */
const ids = { P: '', RB: '', OB: '', PA: '', RA: '', RAP: '', P2: '', reminderB: '', mapB: '' };
const doomed: Partial<Record<Role, string[]>> = {};

type Keys = Awaited<ReturnType<typeof generateKeyPair>>;
const keys: Record<string, Keys> = {};

async function clientToken(clientId: string, scope: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES384', kid: `${clientId}-1`, typ: 'JWT' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(`${s.huren.url}/auth/token`)
    .setExpirationTime(now + 240)
    .setJti(randomUUID())
    .sign(keys[clientId].privateKey);
  const res = await fetch(`${s.huren.url}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope, client_assertion_type: ASSERTION_TYPE, client_assertion: assertion }).toString(),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`token ${clientId}: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

async function api(path: string, json: unknown, bearer: string | null = s.token): Promise<any> {
  const res = await fetch(`${s.huren.url}${path}`, {
    method: 'POST',
    headers: { ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), 'content-type': 'application/json' },
    body: JSON.stringify(json),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

let counter = 0;
/** The login names made, in order (the first is the doctor's). */
const logins: string[] = [];
/** A human account with its roles, signed in with password + TOTP, its first password change done. */
async function person(roles: string[], institution?: string): Promise<string> {
  const login = `matrix${++counter}.${roles[0]}`;
  logins.push(login);
  const created = await api('/api/accounts', { login, password: PASSWORD, roles, ...(institution ? { institution } : {}) });
  if (created.status !== 201) throw new Error(`account ${login}: ${created.status} ${JSON.stringify(created.body)}`);
  const first = await api('/api/session/login', { login, password: PASSWORD }, null);
  const second = await api('/api/session/second-factor', { challenge: first.body.challenge, code: await generate({ secret: first.body.secret, epoch: Math.floor(clock / 1000) }) }, null);
  clock += 30_000;
  if (second.status !== 200) throw new Error(`sign-in ${login}: ${second.status} ${JSON.stringify(second.body)}`);
  const changed = await api('/api/session/password', { currentPassword: PASSWORD, newPassword: `Changed-Pw-${counter}-9x` }, second.body.token);
  if (changed.status !== 200) throw new Error(`password ${login}: ${changed.status}`);
  return second.body.token;
}

function as(role: Role | 'platform', path: string, init: { method?: string; json?: unknown; headers?: Record<string, string> } = {}): Promise<Response> {
  const bearer = role === 'platform' ? s.token : token[role]!;
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

/** A JSON API call (outside /fhir) as a role. */
const apiAs = (role: Role, path: string) => fetch(`${s.huren.url}${path}`, { headers: { authorization: `Bearer ${token[role]!}`, accept: 'application/json' } });

async function read(res: Response): Promise<any> {
  const text = await res.text();
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

test.before(async () => {
  const clients = [
    { clientId: 'his-a', org: 'req-gz', scope: 'system/*.cruds system/launch' },
    { clientId: 'his-b', org: 'city', scope: 'system/*.cruds' },
    { clientId: 'his-a-readonly', org: 'req-gz', scope: 'system/*.rs' },
  ];
  for (const c of clients) keys[c.clientId] = await generateKeyPair('ES384', { extractable: true });
  s = await startTestServer({
    accounts: { ...loadAccountsConfig({}), now: () => clock },
    clients: await Promise.all(
      clients.map(async (c) => ({
        clientId: c.clientId,
        organization: `Organization?identifier=${ORG_ID}|${c.org}-${TAG}`,
        scope: c.scope,
        jwks: { keys: [{ ...(await exportJWK(keys[c.clientId].publicKey)), kid: `${c.clientId}-1`, alg: 'ES384' }] },
      }))
    ),
  });
  d = await seedScenario(s, TAG);
  A = d.org['req-gz'];
  B = d.org.city;
  ids.P = d.patient;
  ids.RB = d.report.fresh;
  const rb = await (await s.fhir(`DiagnosticReport/${ids.RB}`)).json();
  ids.OB = rb.result[0].reference.split('/')[1];
  // P is B's patient
  const p = await (await s.fhir(`Patient/${ids.P}`)).json();
  await s.fhir(`Patient/${ids.P}`, { method: 'PUT', json: { ...p, managingOrganization: { reference: `Organization/${B}` } } });
  // A's own patient and report
  const own = await transaction(s, [
    { fullUrl: 'urn:uuid:5b0c3a43-0000-4000-8000-00000000a001', resource: { resourceType: 'Patient', identifier: [{ system: NATIONAL_ID, value: `44010319800101${Math.floor(Math.random() * 9000) + 1000}` }], name: [{ family: '甲' }], managingOrganization: { reference: `Organization/${A}` } }, request: { method: 'POST', url: 'Patient' } },
  ]);
  ids.PA = idOf(own.entry[0]);
  const ra = await transaction(s, reportEntries(`Patient/${ids.PA}`, { key: `ra-${TAG}`, org: `req-gz-${TAG}`, code: { system: CATALOGUE, code: ITEM.sodium, display: '钠' }, issued: daysAgo(1) }));
  ids.RA = idOf(ra.entry[0]);
  const rap = await transaction(s, reportEntries(`Patient/${ids.P}`, { key: `rap-${TAG}`, org: `req-gz-${TAG}`, code: { system: CATALOGUE, code: ITEM.sodium, display: '钠' }, issued: daysAgo(1) }));
  ids.RAP = idOf(rap.entry[0]);
  // P2: another person with a recognisable result of B, for the checks (they make A's care, for P2 only)
  const p2 = await transaction(s, [
    { fullUrl: 'urn:uuid:5b0c3a43-0000-4000-8000-00000000a002', resource: { resourceType: 'Patient', identifier: [{ system: NATIONAL_ID, value: `44010519850101${Math.floor(Math.random() * 9000) + 1000}` }], name: [{ family: '乙' }] }, request: { method: 'POST', url: 'Patient' } },
  ]);
  ids.P2 = idOf(p2.entry[0]);
  await transaction(s, reportEntries(`Patient/${ids.P2}`, { key: `p2-${TAG}`, org: `city-${TAG}`, code: { system: CATALOGUE, code: ITEM.potassium, display: '钾' }, issued: daysAgo(1), obs: [{ code: { system: CATALOGUE, code: ITEM.potassium }, value: 5.6 }] }));
  // a reminder B asked for (the platform runs the check in B's name), for the decision rows
  const check = await s.fhir(`Patient/${ids.P}/$recognition-check?requester=Organization/${d.org['req-fs']}`);
  ids.reminderB = param(await check.json(), 'reminder').valueReference.reference.split('/')[1];
  // …whose requester is B: the platform records a reminder of B directly
  const issue = await (await s.fhir(`DetectedIssue/${ids.reminderB}`)).json();
  issue.extension = [{ url: 'https://fhir.huren.gz.cn/StructureDefinition/requesting-institution', valueReference: { reference: `Organization/${B}` } }];
  await s.fhir(`DetectedIssue/${ids.reminderB}`, { method: 'PUT', json: issue });
  // B's dictionary map
  const map = await s.fhir('ConceptMap', { method: 'POST', json: { resourceType: 'ConceptMap', status: 'active', url: `https://his-b.example/map-${TAG}`, useContext: [{ code: { system: 'http://terminology.hl7.org/CodeSystem/usage-context-type', code: 'venue' }, valueReference: { reference: `Organization/${B}` } }] } });
  ids.mapB = (await map.json()).id;
  // one report of B per role to delete (twice: by id and conditionally)
  for (const role of ROLES) {
    const made = await transaction(s, [
      ...reportEntries(`Patient/${ids.P}`, { key: `del-${role}-${TAG}`, org: `city-${TAG}`, code: { system: CATALOGUE, code: ITEM.glucose }, issued: daysAgo(3) }),
      ...reportEntries(`Patient/${ids.P}`, { key: `cdel-${role}-${TAG}`, org: `city-${TAG}`, code: { system: CATALOGUE, code: ITEM.glucose }, issued: daysAgo(3) }),
    ]);
    doomed[role] = [idOf(made.entry[0]), `cdel-${role}-${TAG}`];
  }

  token.A = await clientToken('his-a', 'system/*.cruds');
  token.B = await clientToken('his-b', 'system/*.cruds');
  token.RO = await clientToken('his-a-readonly', 'system/*.rs');
  token.doctorA = await person(['doctor'], `Organization/${A}`);
  token.instAdminA = await person(['institution-admin'], `Organization/${A}`);
  token.sysAdmin = await person(['system-admin']);
  token.secAdmin = await person(['security-admin']);
  token.auditAdmin = await person(['audit-admin']);
  token.commission = await person(['commission-admin']);
  // the report viewer opened from A's HIS for A's own patient PA (SMART EHR launch)
  token.appA = (await launchToken(s.huren.url, await clientToken('his-a', 'system/launch'), { patient: `Patient/${ids.PA}`, user: 'dr.matrix' })).token.access_token;
});
test.after.always(async () => {
  await s?.close();
});

// ---------------------------------------------------------------------------------------------------------
// the probes: each says whether the protected thing was reached

const refusedStatus = (status: number) => status === 401 || status === 403;
/** A write probe: allowed when the server accepted it. */
const wrote = async (res: Response) => res.status < 300;
/** A call probe (operations that show no one's data): allowed when authorisation let it through (any answer but 401/403). */
const called = async (res: Response) => !refusedStatus(res.status);

function holds(body: any, type: string, id?: string): boolean {
  const seen: any[] = [];
  const walk = (v: any) => {
    if (!v || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach(walk);
    if (typeof v.resourceType === 'string') seen.push(v);
    for (const x of Object.values(v)) walk(x);
  };
  walk(body);
  return seen.some((r) => r.resourceType === type && (id === undefined || r.id === id));
}
/** A read probe: allowed when the answer holds the resource. */
const shows = (type: string, id?: () => string) => async (res: Response) => res.status < 300 && holds(await read(res), type, id?.());
const showsB = shows('DiagnosticReport', () => ids.RB);
const showsAudit = shows('AuditEvent');

async function pollAsync(role: Role, res: Response): Promise<Response> {
  if (res.status !== 202) return res;
  const url = res.headers.get('content-location')!;
  for (let i = 0; i < 200; i++) {
    const polled = await fetch(url, { headers: { authorization: `Bearer ${token[role]}`, accept: 'application/fhir+json' } });
    if (polled.status !== 202) return polled;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('async job did not finish');
}

interface Row {
  name: string;
  /** The roles for which the probe must find the protected thing reached. */
  allowed: readonly Role[];
  run(role: Role): Promise<boolean>;
  /** Rows that change data run after the reads. */
  writes?: boolean;
}

const CLIENTS_AB: Role[] = ['A', 'B'];
const STAR_READERS: Role[] = ['A', 'B', 'RO'];
const OWNER_B: Role[] = ['B'];
const READERS_A: Role[] = ['A', 'RO', 'doctorA'];
/** A's readers of its own patient PA: with the viewer launched from A's HIS for PA. */
const READERS_PA: Role[] = [...READERS_A, 'appA'];
/** Terminology look-ups: every reader, the launched viewer too (the codes of its patient's reports). */
const TERMINOLOGY_READERS: Role[] = [...STAR_READERS, 'doctorA', 'instAdminA', 'sysAdmin', 'commission', 'appA'];

const rb = async () => (await (await s.fhir(`DiagnosticReport/${ids.RB}`)).json()) as any;
const ob = async () => (await (await s.fhir(`Observation/${ids.OB}`)).json()) as any;
const reportNaming = (org: string) => ({
  resourceType: 'DiagnosticReport',
  status: 'final',
  code: { coding: [{ system: CATALOGUE, code: ITEM.potassium }] },
  subject: { reference: `Patient/${ids.P}` },
  performer: [{ reference: `Organization/${org}` }],
  issued: new Date().toISOString(),
});

const REST: Row[] = [
  { name: 'read B report', allowed: OWNER_B, run: async (r) => showsB(await as(r, `DiagnosticReport/${ids.RB}`)) },
  { name: 'vread B report', allowed: OWNER_B, run: async (r) => showsB(await as(r, `DiagnosticReport/${ids.RB}/_history/1`)) },
  { name: 'read B patient', allowed: OWNER_B, run: async (r) => shows('Patient', () => ids.P)(await as(r, `Patient/${ids.P}`)) },
  { name: 'read B result', allowed: OWNER_B, run: async (r) => shows('Observation', () => ids.OB)(await as(r, `Observation/${ids.OB}`)) },
  { name: 'search B reports of P', allowed: OWNER_B, run: async (r) => showsB(await as(r, `DiagnosticReport?subject=Patient/${ids.P}`)) },
  { name: 'search patients by name', allowed: OWNER_B, run: async (r) => shows('Patient', () => ids.P)(await as(r, `Patient?name=${encodeURIComponent('陈')}`)) },
  { name: 'count patients (_summary=count)', allowed: [], run: async (r) => { const res = await as(r, `Patient?identifier=${encodeURIComponent(`${NATIONAL_ID}|${d.nationalId}`)}&_summary=count`); return res.status === 200 && (await read(res)).total > 0; } },
  { name: 'POST _search', allowed: OWNER_B, run: async (r) => showsB(await fetch(`${s.base}/DiagnosticReport/_search`, { method: 'POST', headers: { authorization: `Bearer ${token[r]}`, 'content-type': 'application/x-www-form-urlencoded' }, body: `subject=Patient/${ids.P}` })) },
  // A's own report about B's patient: A sees its report, not the Patient it includes
  { name: '_include subject of A report → B patient', allowed: OWNER_B, run: async (r) => shows('Patient', () => ids.P)(await as(r, `DiagnosticReport?_id=${ids.RAP}&_include=DiagnosticReport:subject`)) },
  { name: '_include: A sees its own report', allowed: READERS_A, run: async (r) => shows('DiagnosticReport', () => ids.RAP)(await as(r, `DiagnosticReport?_id=${ids.RAP}&_include=DiagnosticReport:subject`)) },
  { name: '_include result of B report', allowed: OWNER_B, run: async (r) => shows('Observation', () => ids.OB)(await as(r, `DiagnosticReport?_id=${ids.RB}&_include=DiagnosticReport:result`)) },
  { name: '_revinclude reports of organisation B', allowed: OWNER_B, run: async (r) => showsB(await as(r, `Organization?_id=${B}&_revinclude=DiagnosticReport:performer`)) },
  { name: '_revinclude AuditEvent of A patient', allowed: [], run: async (r) => showsAudit(await as(r, `Patient?_id=${ids.PA}&_revinclude=AuditEvent:patient`)) },
  { name: 'chain Observation?subject.name=', allowed: OWNER_B, run: async (r) => shows('Observation', () => ids.OB)(await as(r, `Observation?subject.name=${encodeURIComponent('陈')}`)) },
  { name: 'chain subject:Patient.identifier=', allowed: OWNER_B, run: async (r) => showsB(await as(r, `DiagnosticReport?subject:Patient.identifier=${encodeURIComponent(`${NATIONAL_ID}|${d.nationalId}`)}`)) },
  { name: 'history instance', allowed: OWNER_B, run: async (r) => showsB(await as(r, `DiagnosticReport/${ids.RB}/_history`)) },
  { name: 'history type', allowed: OWNER_B, run: async (r) => showsB(await as(r, `DiagnosticReport/_history?_count=1000`)) },
  { name: 'history system', allowed: OWNER_B, run: async (r) => showsB(await as(r, `_history?_count=1000`)) },
  { name: 'history system AuditEvent', allowed: [], run: async (r) => showsAudit(await as(r, `_history?_count=1000`)) },
  { name: 'search AuditEvent', allowed: ['auditAdmin'], run: async (r) => showsAudit(await as(r, `AuditEvent?_count=5`)) },
  { name: 'batch GET entry', allowed: OWNER_B, run: async (r) => showsB(await as(r, '', { json: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: `DiagnosticReport/${ids.RB}` } }] } })) },
  { name: 'transaction GET entry', allowed: OWNER_B, run: async (r) => showsB(await as(r, '', { json: { resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'GET', url: `DiagnosticReport?subject=Patient/${ids.P}` } }] } })) },
  { name: 'async search result', allowed: OWNER_B, run: async (r) => showsB(await pollAsync(r, await as(r, `DiagnosticReport?subject=Patient/${ids.P}`, { headers: { prefer: 'respond-async' } }))) },
  { name: 'async batch result', allowed: OWNER_B, run: async (r) => showsB(await pollAsync(r, await as(r, '', { json: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: `DiagnosticReport/${ids.RB}` } }] }, headers: { prefer: 'respond-async' } }))) },
  { name: 'async $trace result', allowed: OWNER_B, run: async (r) => { const res = await pollAsync(r, await as(r, `DiagnosticReport/${ids.RB}/$trace`, { headers: { prefer: 'respond-async' } })); return res.status === 200 && /^2/.test((await read(res))?.entry?.[0]?.response?.status ?? ''); } },
  { name: 'conditional create matching B patient', allowed: OWNER_B, run: async (r) => shows('Patient', () => ids.P)(await as(r, 'Patient', { json: { resourceType: 'Patient' }, headers: { 'if-none-exist': `identifier=${NATIONAL_ID}|${d.nationalId}` } })) },
  { name: 'read A report', allowed: READERS_PA, run: async (r) => shows('DiagnosticReport', () => ids.RA)(await as(r, `DiagnosticReport/${ids.RA}`)) },
  { name: 'search A patient', allowed: READERS_PA, run: async (r) => shows('Patient', () => ids.PA)(await as(r, `Patient?_id=${ids.PA}`)) },
  // the JSON APIs of the app's pages that show registrations and accounts, not patient data
  { name: 'API registered clients (GET /api/clients)', allowed: ['secAdmin'], run: async (r) => { const res = await apiAs(r, '/api/clients'); return res.status === 200 && (await read(res)).clients.some((c: any) => c.clientId === 'his-a'); } },
  { name: 'API account id by login (GET /api/accounts/by-login)', allowed: ['secAdmin', 'auditAdmin'], run: async (r) => { const res = await apiAs(r, `/api/accounts/by-login/${logins[0]}`); return res.status === 200 && typeof (await read(res)).id === 'string'; } },
  { name: 'API briefings (GET /api/monitoring/briefings)', allowed: ['commission'], run: async (r) => { const res = await apiAs(r, '/api/monitoring/briefings'); return res.status === 200 && Array.isArray((await read(res)).briefings); } },
  // writes
  { name: 'create report naming B', allowed: OWNER_B, writes: true, run: async (r) => wrote(await as(r, 'DiagnosticReport', { json: reportNaming(B) })) },
  { name: 'create report naming A', allowed: ['A'], writes: true, run: async (r) => wrote(await as(r, 'DiagnosticReport', { json: reportNaming(A) })) },
  { name: 'create Observation performed by B', allowed: OWNER_B, writes: true, run: async (r) => wrote(await as(r, 'Observation', { json: { resourceType: 'Observation', status: 'final', code: { text: 'K' }, subject: { reference: `Patient/${ids.P}` }, performer: [{ reference: `Organization/${B}` }] } })) },
  { name: 'create Provenance with agent B', allowed: OWNER_B, writes: true, run: async (r) => wrote(await as(r, 'Provenance', { json: { resourceType: 'Provenance', target: [{ reference: `DiagnosticReport/${ids.RB}` }], recorded: new Date().toISOString(), agent: [{ who: { reference: `Organization/${B}` } }] } })) },
  { name: 'update B report', allowed: OWNER_B, writes: true, run: async (r) => wrote(await as(r, `DiagnosticReport/${ids.RB}`, { method: 'PUT', json: { ...(await rb()), conclusion: `by ${r}` } })) },
  { name: 'update B result (potassium)', allowed: OWNER_B, writes: true, run: async (r) => { const o = await ob(); return wrote(await as(r, `Observation/${ids.OB}`, { method: 'PUT', json: { ...o, valueQuantity: { ...o.valueQuantity, value: o.valueQuantity.value + 0.1 } } })); } },
  { name: 'patch HR mark onto B report', allowed: OWNER_B, writes: true, run: async (r) => wrote(await as(r, `DiagnosticReport/${ids.RB}`, { method: 'PATCH', json: [{ op: 'add', path: '/extension/-', value: { url: EXT_HR, valueString: `粤HR-${r}` } }] })) },
  { name: 'conditional update B report', allowed: OWNER_B, writes: true, run: async (r) => wrote(await as(r, `DiagnosticReport?identifier=${encodeURIComponent(`https://his.example/report-id|fresh-${TAG}`)}`, { method: 'PUT', json: { ...(await rb()), id: undefined, conclusion: `cond ${r}` } })) },
  { name: 'delete B report', allowed: OWNER_B, writes: true, run: async (r) => { const res = await as(r, `DiagnosticReport/${doomed[r]![0]}`, { method: 'DELETE' }); return res.status < 300 && (await s.fhir(`DiagnosticReport/${doomed[r]![0]}`)).status === 410; } },
  { name: 'conditional delete B report', allowed: OWNER_B, writes: true, run: async (r) => { const res = await as(r, `DiagnosticReport?identifier=${encodeURIComponent(`https://his.example/report-id|${doomed[r]![1]}`)}`, { method: 'DELETE' }); return res.status < 300 && (await read(await s.fhir(`DiagnosticReport?identifier=${encodeURIComponent(`https://his.example/report-id|${doomed[r]![1]}`)}`))).entry?.length === 0; } },
  { name: 'transaction PUT B report', allowed: OWNER_B, writes: true, run: async (r) => wrote(await as(r, '', { json: { resourceType: 'Bundle', type: 'transaction', entry: [{ fullUrl: `${s.base}/DiagnosticReport/${ids.RB}`, resource: { ...(await rb()), conclusion: `tx ${r}` }, request: { method: 'PUT', url: `DiagnosticReport/${ids.RB}` } }] } })) },
  { name: 'transaction create naming B', allowed: OWNER_B, writes: true, run: async (r) => wrote(await as(r, '', { json: { resourceType: 'Bundle', type: 'transaction', entry: [{ fullUrl: `urn:uuid:${randomUUID()}`, resource: reportNaming(B), request: { method: 'POST', url: 'DiagnosticReport' } }] } })) },
  { name: 'batch PATCH B report', allowed: OWNER_B, writes: true, run: async (r) => { const res = await as(r, '', { json: { resourceType: 'Bundle', type: 'batch', entry: [{ resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: Buffer.from(JSON.stringify([{ op: 'replace', path: '/status', value: 'entered-in-error' }])).toString('base64') }, request: { method: 'PATCH', url: `DiagnosticReport/${ids.RB}` } }] } }); const body = await read(res); return res.status === 200 && /^2/.test(body.entry?.[0]?.response?.status ?? '') && (await rb()).status === 'entered-in-error' && !!(await s.fhir(`DiagnosticReport/${ids.RB}`, { method: 'PATCH', headers: { 'content-type': 'application/json-patch+json' }, body: JSON.stringify([{ op: 'replace', path: '/status', value: 'final' }]) })); } },
  { name: 'create reminder DetectedIssue', allowed: [], writes: true, run: async (r) => wrote(await as(r, 'DetectedIssue', { json: { resourceType: 'DetectedIssue', status: 'final', patient: { reference: `Patient/${ids.PA}` } } })) },
  { name: 'create MeasureReport', allowed: [], writes: true, run: async (r) => wrote(await as(r, 'MeasureReport', { json: { resourceType: 'MeasureReport', status: 'complete', type: 'summary', measure: 'https://x.example/m', period: { start: '2026-01-01', end: '2026-01-02' } } })) },
  { name: 'create Flag', allowed: [], writes: true, run: async (r) => wrote(await as(r, 'Flag', { json: { resourceType: 'Flag', status: 'active', code: { text: '断传' }, subject: { reference: `Organization/${A}` } } })) },
  { name: 'create AuditEvent', allowed: [], writes: true, run: async (r) => wrote(await as(r, 'AuditEvent', { json: { resourceType: 'AuditEvent', type: { code: 'rest' }, recorded: new Date().toISOString(), agent: [{ requestor: true }], source: { observer: { display: 'x' } } } })) },
];

/** One row per operation the server offers, by name: the probe and who must get through. */
const OPERATIONS: Record<string, Omit<Row, 'name'>> = {
  validate: { allowed: [...STAR_READERS, 'doctorA'], run: async (r) => called(await as(r, 'Patient/$validate', { json: { resourceType: 'Patient' } })) },
  // the check itself is the care event: its own answer lists B's results
  'recognition-check': { allowed: CLIENTS_AB, run: async (r) => { const res = await as(r, `Patient/${ids.P2}/$recognition-check`); return res.status === 200 && (r === 'B' || params(await read(res), 'result').length > 0); } },
  'duplicate-check': { allowed: CLIENTS_AB, run: async (r) => called(await as(r, 'ServiceRequest/$duplicate-check', { json: { resourceType: 'Parameters', parameter: [{ name: 'order', resource: { resourceType: 'ServiceRequest', status: 'active', intent: 'order', subject: { reference: `Patient/${ids.P2}` }, code: { coding: [{ system: CATALOGUE, code: ITEM.potassium }] } } }] } })) },
  decide: { allowed: OWNER_B, writes: true, run: async (r) => called(await as(r, `DetectedIssue/${ids.reminderB}/$decide`, { json: { resourceType: 'Parameters', parameter: [{ name: 'decision', valueCode: 'recognised' }] } })) },
  reports: { allowed: OWNER_B, run: async (r) => (await as(r, `Patient/${ids.P}/$reports`)).status === 200 },
  view: { allowed: OWNER_B, run: async (r) => showsB(await as(r, `DiagnosticReport/${ids.RB}/$view`)) },
  everything: { allowed: OWNER_B, run: async (r) => showsB(await as(r, `Patient/${ids.P}/$everything`)) },
  // the health-record summary goes through the same whole-record check as $everything
  summary: { allowed: OWNER_B, run: async (r) => (await as(r, `Patient/${ids.P}/$summary`)).status === 200 },
  // a partner platform's call (its registered SMART client) only: no hospital or person
  'exchange-check': { allowed: [], run: async (r) => called(await as(r, 'Endpoint/$exchange-check', { json: { resourceType: 'Parameters', parameter: [{ name: 'patient', valueString: '0'.repeat(64) }, { name: 'requesterCity', valueString: '440100' }] } })) },
  // a briefing covers a district or the city: the platform makes it (its job, or full rights)
  'monitoring-briefing': { allowed: [], writes: true, run: async (r) => called(await as(r, 'DocumentReference/$monitoring-briefing', { json: { resourceType: 'Parameters', parameter: [{ name: 'kind', valueString: 'month' }, { name: 'refresh', valueBoolean: false }] } })) },
  verify: { allowed: OWNER_B, run: async (r) => called(await as(r, `DiagnosticReport/${ids.RB}/$verify`)) },
  original: { allowed: OWNER_B, run: async (r) => called(await as(r, `DiagnosticReport/${ids.RB}/$original`)) },
  trace: { allowed: OWNER_B, run: async (r) => called(await as(r, `DiagnosticReport/${ids.RB}/$trace`)) },
  // the platform's own state: no institution runs these, whatever its scopes; the statistics and the monitors
  // also need MeasureReport/Flag writes, which no role holds (the platform's jobs run them)
  'chain-statistics': { allowed: [], run: async (r) => called(await as(r, 'Measure/$chain-statistics')) },
  'evaluate-monitoring': { allowed: [], writes: true, run: async (r) => called(await as(r, 'Measure/$evaluate-monitoring', { json: { resourceType: 'Parameters' } })) },
  'badge-settings': { allowed: [], writes: true, run: async (r) => called(await as(r, '$badge-settings', { json: { resourceType: 'Parameters' } })) },
  // the code upgrade is the system administrator's (the app's 设置 page), never an institution's
  'code-upgrade': { allowed: ['sysAdmin'], writes: true, run: async (r) => called(await as(r, '$code-upgrade', { json: { resourceType: 'Parameters', parameter: [{ name: 'dryRun', valueBoolean: true }] } })) },
  'catalogue-import': { allowed: ['sysAdmin'], writes: true, run: async (r) => called(await as(r, 'CodeSystem/$catalogue-import', { json: { resourceType: 'Parameters' } })) },
  lookup: { allowed: TERMINOLOGY_READERS, run: async (r) => called(await as(r, `CodeSystem/$lookup?system=${encodeURIComponent(CATALOGUE)}&code=${ITEM.potassium}`)) },
  subsumes: { allowed: TERMINOLOGY_READERS, run: async (r) => called(await as(r, `CodeSystem/$subsumes?system=${encodeURIComponent(CATALOGUE)}&codeA=${ITEM.potassium}&codeB=${ITEM.potassium}`)) },
  expand: { allowed: TERMINOLOGY_READERS, run: async (r) => called(await as(r, `ValueSet/$expand?url=${encodeURIComponent('http://hl7.org/fhir/ValueSet/administrative-gender')}`)) },
  'validate-code': { allowed: TERMINOLOGY_READERS, run: async (r) => called(await as(r, `ValueSet/$validate-code?url=${encodeURIComponent('http://hl7.org/fhir/ValueSet/administrative-gender')}&code=male&system=http://hl7.org/fhir/administrative-gender`)) },
  translate: { allowed: [...STAR_READERS, 'instAdminA', 'sysAdmin', 'commission'], run: async (r) => called(await as(r, `ConceptMap/$translate?code=x&system=x`)) },
  entries: { allowed: [...STAR_READERS, 'instAdminA', 'sysAdmin', 'commission'], run: async (r) => called(await as(r, `ConceptMap/${ids.mapB}/$entries`)) },
  'entry-history': { allowed: [...STAR_READERS, 'instAdminA', 'sysAdmin', 'commission'], run: async (r) => called(await as(r, `ConceptMap/${ids.mapB}/$entry-history?code=x`)) },
  // reviewing a dictionary's entries: its own institution or an administrator bound to none
  'entry-status': { allowed: ['B', 'sysAdmin'], writes: true, run: async (r) => called(await as(r, `ConceptMap/${ids.mapB}/$entry-status`, { json: { resourceType: 'Parameters', parameter: [{ name: 'code', valueString: 'x' }, { name: 'status', valueString: 'approved' }] } })) },
  'dictionary-qc': { allowed: [...STAR_READERS, 'doctorA', 'instAdminA', 'sysAdmin', 'commission'], run: async (r) => called(await as(r, `Organization/${B}/$dictionary-qc`)) },
  'verify-chain': { allowed: ['auditAdmin'], run: async (r) => called(await as(r, 'AuditEvent/$verify-chain')) },
};

test.serial('the authorisation matrix: every role × every interaction, operation and way around — 0 unexpected allows', async (t) => {
  const offered = [...new Set(engineOf(s.huren.db).operations.all.map((op) => op.name))].sort();
  const unlisted = offered.filter((name) => !(name in OPERATIONS));
  t.deepEqual(unlisted, [], 'every operation the server offers has its row in the matrix');
  const rows: Row[] = [...REST.filter((r) => !r.writes), ...offered.map((name) => ({ name: `$${name}`, ...OPERATIONS[name] })), ...REST.filter((r) => r.writes)];
  rows.sort((a, b) => Number(!!a.writes) - Number(!!b.writes));
  const unexpectedAllows: string[] = [];
  const unexpectedRefusals: string[] = [];
  const grid: string[] = [];
  for (const row of rows) {
    const marks: string[] = [];
    for (const role of ROLES) {
      const reached = await row.run(role);
      const expected = row.allowed.includes(role);
      if (reached && !expected) unexpectedAllows.push(`${role} × ${row.name}`);
      if (!reached && expected) unexpectedRefusals.push(`${role} × ${row.name}`);
      marks.push(reached ? '✓' : '·');
    }
    grid.push(`${marks.join(' ')}  ${row.name}`);
  }
  t.log(`authorisation matrix: ${ROLES.length} roles × ${rows.length} rows = ${ROLES.length * rows.length} cells (${REST.length} interactions and ways around, ${offered.length} operations)`);
  t.log(`roles: ${ROLES.join(' ')}\n${grid.join('\n')}`);
  t.deepEqual(unexpectedAllows, [], 'unexpected allows');
  t.deepEqual(unexpectedRefusals, [], 'unexpected refusals');
});
