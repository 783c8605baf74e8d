/**
 * SMART Backend Services for hospital systems: a registered HIS client gets a short-lived access token with a
 * JWT signed by its own key, then calls the FHIR API as its institution (the default requester of the
 * recognition checks), within its scopes. Every wrong token request is an OAuth error; every call outside the
 * scopes is a 403 that writes nothing.
 */
import test from 'ava';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { BackendAuth } from '../server/auth/backend.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { countOf, NATIONAL_ID, ORG_ID, param, params, seedScenario, requesterOf, type Seeded } from './helpers/recognition-data.ts';

const TAG = 'smart';
const WRITER = 'his-liwan';
const READER = 'his-foshan-readonly';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

let s: TestServer;
let d: Seeded;
let writerKey: Awaited<ReturnType<typeof generateKeyPair>>;
let readerKey: Awaited<ReturnType<typeof generateKeyPair>>;
let jwks: (kp: Awaited<ReturnType<typeof generateKeyPair>>, kid: string, alg: string) => Promise<{ keys: JWK[] }>;

test.before(async () => {
  writerKey = await generateKeyPair('ES384', { extractable: true });
  readerKey = await generateKeyPair('RS384', { extractable: true });
  jwks = async (kp, kid, alg) => ({ keys: [{ ...(await exportJWK(kp.publicKey)), kid, alg }] });
  s = await startTestServer({
    clients: [
      {
        clientId: WRITER,
        organization: `Organization?identifier=${ORG_ID}|req-gz-${TAG}`,
        scope: 'system/*.rs system/DiagnosticReport.cu system/Observation.cu system/DetectedIssue.u',
        jwks: await jwks(writerKey, 'lw-1', 'ES384'),
      },
      { clientId: READER, organization: `Organization?identifier=${ORG_ID}|req-fs-${TAG}`, scope: 'system/*.read', jwks: await jwks(readerKey, 'fs-1', 'RS384') },
    ],
  });
  d = await seedScenario(s, TAG);
});
test.after.always(async () => {
  await s?.close();
});

const tokenUrl = () => `${s.huren.url}/auth/token`;

async function assertion(o: { iss?: string; sub?: string; aud?: string; exp?: number; jti?: string; key?: CryptoKey; alg?: string; kid?: string } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: o.alg ?? 'ES384', kid: o.kid ?? 'lw-1', typ: 'JWT' })
    .setIssuer(o.iss ?? WRITER)
    .setSubject(o.sub ?? o.iss ?? WRITER)
    .setAudience(o.aud ?? tokenUrl())
    .setExpirationTime(o.exp ?? now + 240)
    .setJti(o.jti ?? crypto.randomUUID())
    .sign(o.key ?? writerKey.privateKey);
}

async function requestToken(fields: Record<string, string>, type = 'application/x-www-form-urlencoded'): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(tokenUrl(), { method: 'POST', headers: { 'content-type': type }, body: new URLSearchParams(fields).toString() });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

const form = async (scope: string, a?: string) => ({ grant_type: 'client_credentials', scope, client_assertion_type: ASSERTION_TYPE, client_assertion: a ?? (await assertion()) });

async function tokenFor(client: 'writer' | 'reader', scope: string): Promise<string> {
  const a = client === 'writer' ? await assertion() : await assertion({ iss: READER, key: readerKey.privateKey, alg: 'RS384', kid: 'fs-1' });
  const res = await requestToken(await form(scope, a));
  if (res.status !== 200) throw new Error(`token: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.access_token;
}

const fhir = (token: string, path: string, init: RequestInit & { json?: unknown } = {}) =>
  fetch(`${s.base}/${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, accept: 'application/fhir+json', ...(init.json !== undefined ? { 'content-type': 'application/fhir+json' } : {}) },
    ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
  });

test.serial('the SMART configuration is public and names the token endpoint', async (t) => {
  for (const path of ['/.well-known/smart-configuration', '/fhir/.well-known/smart-configuration']) {
    const res = await fetch(`${s.huren.url}${path}`);
    t.is(res.status, 200, path);
    const body = await res.json();
    t.is(body.token_endpoint, tokenUrl());
    t.deepEqual(body.grant_types_supported, ['client_credentials']);
    t.deepEqual(body.token_endpoint_auth_signing_alg_values_supported, ['ES384', 'RS384']);
    t.true(body.capabilities.includes('client-confidential-asymmetric'));
  }
  const cs = await (await fetch(`${s.base}/metadata`)).json();
  const oauth = cs.rest[0].security.extension.find((e: any) => e.url.endsWith('/oauth-uris'));
  t.is(oauth.extension.find((e: any) => e.url === 'token').valueUri, tokenUrl(), 'the CapabilityStatement names the token endpoint');
});

test.serial('a registered client gets a token within its registered scopes, and checks as its own institution', async (t) => {
  const res = await requestToken(await form('system/*.rs system/DiagnosticReport.cu system/Patient.c'));
  t.is(res.status, 200, JSON.stringify(res.body));
  t.is(res.body.token_type, 'bearer');
  t.is(res.body.expires_in, 300);
  t.is(res.body.scope, 'system/*.rs system/DiagnosticReport.cu', 'a scope it was never given is left out');
  t.is(res.headers.get('cache-control'), 'no-store');

  // no requester anywhere: the client's institution is the requester
  const before = await countOf(s, 'DetectedIssue');
  const check = await fhir(res.body.access_token, `Patient/$recognition-check?identifier=${encodeURIComponent(`${NATIONAL_ID}|${d.nationalId}`)}`);
  t.is(check.status, 200);
  const body = await check.json();
  t.true(param(body, 'exists').valueBoolean);
  t.true(params(body, 'result').length > 3);
  const reminder = await (await s.fhir(param(body, 'reminder').valueReference.reference)).json();
  t.is(requesterOf(reminder), `Organization/${d.org['req-gz']}`);
  t.is(await countOf(s, 'DetectedIssue'), before + 1);

  // the Foshan client, asking the same, gets its own (narrower) answer
  const fs = await fhir(await tokenFor('reader', 'system/*.read'), `Patient/${d.patient}/$recognition-check`);
  t.is(fs.status, 200);
  t.true(params(await fs.json(), 'result').length < params(body, 'result').length);
});

test.serial('calls outside the scopes are 403 and write nothing; the bootstrap token is unaffected', async (t) => {
  const reader = await tokenFor('reader', 'system/*.read');
  const writer = await tokenFor('writer', 'system/*.rs system/DiagnosticReport.cu');
  const patients = await countOf(s, 'Patient');

  t.is((await fhir(reader, `Patient/${d.patient}`)).status, 200);
  t.is((await fhir(reader, 'Organization?_count=1')).status, 200);
  const refused: [string, string, RequestInit & { json?: unknown }][] = [
    [reader, 'Patient', { method: 'POST', json: { resourceType: 'Patient', name: [{ family: '测试' }] } }],
    [reader, `Patient/${d.patient}`, { method: 'DELETE' }],
    [writer, 'Patient', { method: 'POST', json: { resourceType: 'Patient', name: [{ family: '测试' }] } }],
    [writer, `DetectedIssue/${'x'}/$decide`, { method: 'POST', json: { resourceType: 'Parameters' } }],
    [writer, '$code-upgrade', { method: 'POST', json: { resourceType: 'Parameters' } }],
  ];
  for (const [token, path, init] of refused) {
    const res = await fhir(token, path, init);
    t.is(res.status, 403, `${init.method} ${path}`);
    const outcome = await res.json();
    t.is(outcome.issue[0].code, 'forbidden');
    t.regex(outcome.issue[0].details.text, /needs system\//);
  }
  // a transaction with one entry outside the scopes fails whole
  const tx = await fhir(writer, '', {
    method: 'POST',
    json: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: 'urn:uuid:0f7c7e2e-1111-4000-8000-000000000001', resource: { resourceType: 'Patient', name: [{ family: '测试' }] }, request: { method: 'POST', url: 'Patient' } },
      ],
    },
  });
  t.is(tx.status, 403);
  t.regex(JSON.stringify(await tx.json()), /Bundle\.entry\[0\]/);
  t.is(await countOf(s, 'Patient'), patients, 'nothing was written');
  // the dictionary API asks the same of the scopes
  const dict = await fetch(`${s.huren.url}/api/dictionary/maps/x/entries/y/status`, { method: 'POST', headers: { authorization: `Bearer ${reader}`, 'content-type': 'application/json' }, body: '{"status":"approved"}' });
  t.is(dict.status, 403);
  // operational metrics are for the platform's operators
  t.is((await fetch(`${s.huren.url}/metrics`, { headers: { authorization: `Bearer ${reader}` } })).status, 403);
  t.is((await fetch(`${s.huren.url}/metrics`, { headers: { authorization: `Bearer ${s.token}` } })).status, 200);
  t.is((await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', name: [{ family: '测试' }] } })).status, 201);
});

test.serial('every wrong token request is an OAuth error that says why', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const replayed = await assertion();
  t.is((await requestToken(await form('system/*.rs', replayed))).status, 200);
  const cases: [string, Record<string, string>, number, string, RegExp][] = [
    ['no grant_type', { scope: 'system/*.rs' }, 400, 'invalid_request', /grant_type/],
    ['another grant', { ...(await form('system/*.rs')), grant_type: 'password' }, 400, 'unsupported_grant_type', /client_credentials/],
    ['no assertion type', { grant_type: 'client_credentials', scope: 'system/*.rs', client_assertion: await assertion() }, 400, 'invalid_request', /client_assertion_type/],
    ['no assertion', { grant_type: 'client_credentials', scope: 'system/*.rs', client_assertion_type: ASSERTION_TYPE }, 400, 'invalid_request', /client_assertion is required/],
    ['not a JWT', await form('system/*.rs', 'abc'), 400, 'invalid_request', /not a JWT/],
    ['unknown client', await form('system/*.rs', await assertion({ iss: 'his-rogue' })), 401, 'invalid_client', /not registered/],
    ['sub differs', await form('system/*.rs', await assertion({ sub: READER })), 401, 'invalid_client', /sub/],
    ['wrong audience', await form('system/*.rs', await assertion({ aud: `${s.base}/metadata` })), 401, 'invalid_client', /audience/],
    ['expired', await form('system/*.rs', await assertion({ exp: now - 120 })), 401, 'invalid_client', /expired/],
    ['too long-lived', await form('system/*.rs', await assertion({ exp: now + 3600 })), 401, 'invalid_client', /within 5 minutes/],
    ['signed by another key', await form('system/*.rs', await assertion({ key: readerKey.privateKey, alg: 'RS384' })), 401, 'invalid_client', /kid|signature/],
    ['replayed', await form('system/*.rs', replayed), 401, 'invalid_client', /already used/],
    ['no scope', await form(''), 400, 'invalid_scope', /scope is required/],
    ['scope never granted', await form('system/Patient.c'), 400, 'invalid_scope', /none of the requested scopes/],
  ];
  for (const [name, fields, status, error, why] of cases) {
    const res = await requestToken(fields);
    t.is(res.status, status, name);
    t.is(res.body.error, error, name);
    t.regex(res.body.error_description, why, name);
  }
  const json = await requestToken(await form('system/*.rs'), 'application/json');
  t.is(json.status, 400);
  t.regex(json.body.error_description, /x-www-form-urlencoded/);
  t.is((await fetch(tokenUrl())).status, 405);
});

test.serial('access tokens: tampered or foreign ones are refused; they expire; a withdrawn client loses access at once', async (t) => {
  const token = await tokenFor('writer', 'system/*.rs');
  const [h, p, sig] = token.split('.');
  const widened = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), scope: 'system/*.*' })).toString('base64url');
  for (const bad of [`${h}.${widened}.${sig}`, `${h}.${p}.${sig.slice(0, -4)}AAAA`]) {
    const res = await fhir(bad, 'Patient');
    t.is(res.status, 401);
    t.regex(res.headers.get('www-authenticate') ?? '', /invalid_token/);
  }
  // the same signing key (derived from the bootstrap token) in another registry: expiry and withdrawal
  const clients = s.huren.config.clients;
  const auth = new BackendAuth(clients, s.token);
  t.truthy(await auth.principal(token));
  t.is(await auth.principal(token, new Date(Date.now() + 301_000)), undefined, 'expired after 300 s');
  t.is(await new BackendAuth(clients.filter((c) => c.clientId !== WRITER), s.token).principal(token), undefined, 'a withdrawn client');
  const narrowed = await new BackendAuth([{ ...clients[0], scope: 'system/Patient.rs' }, clients[1]], s.token).principal(token);
  t.deepEqual(narrowed?.scopes, [], 'scopes withdrawn from the registration are withdrawn from the token');
  t.is(await new BackendAuth(clients, 'another bootstrap token').principal(token), undefined);
});

test('the client register refuses bad entries at start', (t) => {
  const jwk = { keys: [] };
  t.throws(() => new BackendAuth([{ clientId: '', organization: 'Organization/1', scope: 'system/*.rs', jwks: jwk }], 'x'), { message: /clientId/ });
  t.throws(() => new BackendAuth([{ clientId: 'a', organization: 'Patient/1', scope: 'system/*.rs', jwks: jwk }], 'x'), { message: /organization/ });
  t.throws(() => new BackendAuth([{ clientId: 'a', organization: 'Organization/1', scope: 'patient/*.read', jwks: jwk }], 'x'), { message: /not 'patient\/\*\.read'/ });
  t.throws(() => new BackendAuth([{ clientId: 'a', organization: 'Organization/1', scope: '', jwks: jwk }], 'x'), { message: /scope/ });
  t.throws(() => new BackendAuth([{ clientId: 'a', organization: 'Organization/1', scope: 'system/*.rs' }], 'x'), { message: /exactly one of jwks and jwksUrl/ });
});
