/**
 * SMART Backend Services for hospital systems: a registered HIS client gets a short-lived access token with a
 * JWT signed by its own key, then calls the FHIR API as its institution (the default requester of the
 * recognition checks), within its scopes. Every wrong token request is an OAuth error; every call outside the
 * scopes is a 403 that writes nothing. The assertion's audience is the server's own address (never the Host
 * the request names), its keys come from the registration only (picked by kid), and the platform signs the
 * access tokens with its own key (not derived from the bootstrap token), can rotate it and revoke a client's
 * tokens.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { BackendAuth, type BackendClient } from '../server/auth/backend.ts';
import { SIGNING_KEY_FILE, TokenKeys } from '../server/auth/signing.ts';
import { start } from '../server/app.ts';
import { loadConfig } from '../server/config.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { countOf, NATIONAL_ID, ORG_ID, param, params, seedScenario, requesterOf, type Seeded } from './helpers/recognition-data.ts';

const TAG = 'smart';
const WRITER = 'his-liwan';
const READER = 'his-foshan-readonly';
const ROTATING = 'his-rotating';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

let s: TestServer;
let d: Seeded;
let writerKey: Awaited<ReturnType<typeof generateKeyPair>>;
let readerKey: Awaited<ReturnType<typeof generateKeyPair>>;
let oldKey: Awaited<ReturnType<typeof generateKeyPair>>;
let newKey: Awaited<ReturnType<typeof generateKeyPair>>;
let jwks: (kp: Awaited<ReturnType<typeof generateKeyPair>>, kid: string, alg: string) => Promise<{ keys: JWK[] }>;

test.before(async () => {
  writerKey = await generateKeyPair('ES384', { extractable: true });
  readerKey = await generateKeyPair('RS384', { extractable: true });
  oldKey = await generateKeyPair('ES384', { extractable: true });
  newKey = await generateKeyPair('ES384', { extractable: true });
  jwks = async (kp, kid, alg) => ({ keys: [{ ...(await exportJWK(kp.publicKey)), kid, alg }] });
  // a client rotating its key publishes both, each with its kid
  const both = { keys: [...(await jwks(oldKey, 'rot-1', 'ES384')).keys, ...(await jwks(newKey, 'rot-2', 'ES384')).keys] };
  s = await startTestServer({
    clients: [
      {
        clientId: WRITER,
        organization: `Organization?identifier=${ORG_ID}|req-gz-${TAG}`,
        scope: 'system/*.rs system/DiagnosticReport.cu system/Observation.cu system/DetectedIssue.cu',
        jwks: await jwks(writerKey, 'lw-1', 'ES384'),
      },
      { clientId: READER, organization: `Organization?identifier=${ORG_ID}|req-fs-${TAG}`, scope: 'system/*.read system/DetectedIssue.c', jwks: await jwks(readerKey, 'fs-1', 'RS384') },
      { clientId: ROTATING, organization: `Organization?identifier=${ORG_ID}|req-gz-${TAG}`, scope: 'system/*.rs', jwks: both },
    ],
  });
  d = await seedScenario(s, TAG);
});
test.after.always(async () => {
  await s?.close();
});

const tokenUrl = () => `${s.huren.url}/auth/token`;

interface AssertionOptions {
  iss?: string;
  sub?: string;
  aud?: string;
  exp?: number;
  iat?: number;
  jti?: string;
  key?: CryptoKey;
  alg?: string;
  kid?: string;
  header?: Record<string, unknown>;
}

async function assertion(o: AssertionOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT(o.iat !== undefined ? { iat: o.iat } : {})
    .setProtectedHeader({ alg: o.alg ?? 'ES384', kid: o.kid ?? 'lw-1', typ: 'JWT', ...o.header })
    .setIssuer(o.iss ?? WRITER)
    .setSubject(o.sub ?? o.iss ?? WRITER)
    .setAudience(o.aud ?? tokenUrl())
    .setExpirationTime(o.exp ?? now + 240)
    .setJti(o.jti ?? crypto.randomUUID());
  return jwt.sign(o.key ?? writerKey.privateKey);
}

async function requestToken(fields: Record<string, string>, type = 'application/x-www-form-urlencoded'): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(tokenUrl(), { method: 'POST', headers: { 'content-type': type }, body: new URLSearchParams(fields).toString() });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

/** A POST with the Host header of another server (fetch does not let one set it). */
function postWithHost(path: string, host: string, body: string): Promise<{ status: number; body: any }> {
  const url = new URL(`${s.huren.url}${path}`);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, method: 'POST', headers: { host, 'content-type': 'application/x-www-form-urlencoded' } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
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
    headers: { authorization: `Bearer ${token}`, accept: 'application/fhir+json', ...(init.json !== undefined ? { 'content-type': 'application/fhir+json' } : {}), ...(init.headers as Record<string, string>) },
    ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
  });

test.serial('the SMART configuration is public and names the token endpoint', async (t) => {
  for (const path of ['/.well-known/smart-configuration', '/fhir/.well-known/smart-configuration']) {
    const res = await fetch(`${s.huren.url}${path}`);
    t.is(res.status, 200, path);
    const body = await res.json();
    t.is(body.token_endpoint, tokenUrl());
    t.deepEqual(body.grant_types_supported, ['client_credentials', 'authorization_code']);
    t.deepEqual(body.token_endpoint_auth_signing_alg_values_supported, ['ES384', 'RS384']);
    t.true(body.capabilities.includes('client-confidential-asymmetric'));
  }
  const cs = await (await fetch(`${s.base}/metadata`)).json();
  const oauth = cs.rest[0].security.extension.find((e: any) => e.url.endsWith('/oauth-uris'));
  t.is(oauth.extension.find((e: any) => e.url === 'token').valueUri, tokenUrl(), 'the CapabilityStatement names the token endpoint');
});

test.serial('a registered client gets a token within its registered scopes, and checks as its own institution', async (t) => {
  const res = await requestToken(await form('system/*.rs system/DiagnosticReport.cu system/DetectedIssue.c system/Patient.c'));
  t.is(res.status, 200, JSON.stringify(res.body));
  t.is(res.body.token_type, 'bearer');
  t.is(res.body.expires_in, 300);
  t.is(res.body.scope, 'system/*.rs system/DiagnosticReport.cu system/DetectedIssue.c', 'a scope it was never given is left out');
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
  const fs = await fhir(await tokenFor('reader', 'system/*.read system/DetectedIssue.c'), `Patient/${d.patient}/$recognition-check`);
  t.is(fs.status, 200);
  t.true(params(await fs.json(), 'result').length < params(body, 'result').length);
});

test.serial('calls outside the scopes are 403 and write nothing; the bootstrap token is unaffected', async (t) => {
  const reader = await tokenFor('reader', 'system/*.read');
  const writer = await tokenFor('writer', 'system/*.rs system/DiagnosticReport.cu');
  const patients = await countOf(s, 'Patient');

  // the Foshan client checked this patient (the test before): in its care, read with a stated purpose
  t.is((await fhir(reader, `Patient/${d.patient}`, { headers: { 'x-purpose-of-use': 'TREAT' } })).status, 200);
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
  // the same signing keys (the data directory's file) in another registry: expiry and withdrawal
  const clients = s.huren.config.clients;
  const options = { db: s.huren.db, keys: platformKeys() };
  const auth = new BackendAuth(clients, options);
  t.truthy(await auth.principal(token));
  t.is(await auth.principal(token, new Date(Date.now() + 301_000)), undefined, 'expired after 300 s');
  t.is(await new BackendAuth(clients.filter((c) => c.clientId !== WRITER), options).principal(token), undefined, 'a withdrawn client');
  const narrowed = await new BackendAuth([{ ...clients[0], scope: 'system/Patient.rs' }, ...clients.slice(1)], options).principal(token);
  t.deepEqual(narrowed?.scopes, [], 'scopes withdrawn from the registration are withdrawn from the token');
  const elsewhere = TokenKeys.open(mkdtempSync(join(tmpdir(), 'huren-keys-')), 360_000);
  t.is(await new BackendAuth(clients, { db: s.huren.db, keys: elsewhere }).principal(token), undefined, 'another platform’s keys do not verify it');
});

/** The running server's signing keys, read from its data directory as a second process would. */
const platformKeys = () => TokenKeys.open(s.huren.config.dataDir, 360_000);
const register = (clients: BackendClient[], production = false) => new BackendAuth(clients, { db: s.huren.db, keys: platformKeys(), production });

test.serial('the signing key is the platform’s own: not derived from the bootstrap token; no token lives longer than 300 s', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const claims = { scope: 'system/*.rs' };
  const mint = (key: Uint8Array, kid: string | undefined, lifetime: number) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', ...(kid ? { kid } : {}) })
      .setIssuer('huren-auth')
      .setAudience('huren-fhir')
      .setSubject(WRITER)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + lifetime)
      .sign(key);
  // who knows the bootstrap token can no longer mint a token (the key the platform once derived from it)
  const derived = createHmac('sha256', s.token).update('huren access token v1').digest();
  const { kid } = JSON.parse(Buffer.from((await tokenFor('writer', 'system/*.rs')).split('.')[0], 'base64url').toString());
  for (const forged of [await mint(derived, undefined, 300), await mint(derived, kid, 300)]) {
    t.is((await fhir(forged, 'Patient?_count=1')).status, 401);
  }
  const file = join(s.huren.config.dataDir, SIGNING_KEY_FILE);
  t.is(statSync(file).mode & 0o777, 0o600, 'the key file (in the data directory) is readable by its owner only');
  // nor does a ten-year token pass, even under the platform's own key
  const own = new Uint8Array(Buffer.from(JSON.parse(readFileSync(file, 'utf8')).keys.at(-1).k, 'base64url'));
  t.is((await fhir(await mint(own, kid, 10 * 365 * 86400), 'Patient?_count=1')).status, 401, 'a ten-year token');
  t.is((await fhir(await mint(own, kid, 300), 'Patient?_count=1')).status, 200, 'the same key with the platform’s lifetime');
});

test.serial('the signing key rotates: a new kid signs, tokens signed before stay valid until they expire', async (t) => {
  const before = await tokenFor('writer', 'system/*.rs');
  const kidOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()).kid;
  const reader = await tokenFor('reader', 'system/*.read');
  const denied = await fetch(`${s.huren.url}/auth/rotate-key`, { method: 'POST', headers: { authorization: `Bearer ${reader}` } });
  t.is(denied.status, 403, 'only the platform token rotates');
  const res = await fetch(`${s.huren.url}/auth/rotate-key`, { method: 'POST', headers: { authorization: `Bearer ${s.token}` } });
  t.is(res.status, 200);
  const { kid, kids } = await res.json();
  t.not(kid, kidOf(before));
  t.true(kids.includes(kidOf(before)) && kids.at(-1) === kid);
  const after = await tokenFor('writer', 'system/*.rs');
  t.is(kidOf(after), kid, 'new tokens carry the new kid');
  t.is((await fhir(before, 'Patient?_count=1')).status, 200, 'a token signed before the rotation still works');
  t.is((await fhir(after, 'Patient?_count=1')).status, 200);
  // another process on the same data directory sees the rotation
  t.is(platformKeys().current().kid, kid);
  t.is(await register(s.huren.config.clients).principal(before, new Date(Date.now() + 301_000)), undefined, 'and it ends with its expiry');
});

test.serial('a client’s tokens can be revoked: refused on use at once, other clients unaffected, new tokens work', async (t) => {
  const writer = await tokenFor('writer', 'system/*.rs');
  const reader = await tokenFor('reader', 'system/*.read');
  const revoke = (token: string, body: string) =>
    fetch(`${s.huren.url}/auth/revoke`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' }, body });
  t.is((await revoke(reader, `client_id=${WRITER}`)).status, 403, 'only the platform token revokes');
  t.is((await fhir(writer, 'Patient?_count=1')).status, 200);
  const unknown = await revoke(s.token, 'client_id=his-nobody');
  t.is(unknown.status, 400);
  t.regex((await unknown.json()).error_description, /not a registered client/);
  t.is((await revoke(s.token, '')).status, 400);
  const res = await revoke(s.token, `client_id=${WRITER}`);
  t.is(res.status, 200);
  const revokedBefore = Date.parse((await res.json()).revoked_before);
  const refused = await fhir(writer, 'Patient?_count=1');
  t.is(refused.status, 401, 'the revoked token is refused');
  t.regex(refused.headers.get('www-authenticate') ?? '', /invalid_token/);
  t.is((await fhir(reader, 'Patient?_count=1')).status, 200, 'another client’s token still works');
  // the revocation is in the database: another server of the database refuses the token too
  const other = register(s.huren.config.clients);
  t.is(await other.principal(writer), undefined);
  // a token the client gets afterwards works
  const later = new Date(revokedBefore + 1000);
  const fields = new URLSearchParams({ ...(await form('system/*.rs', await assertion({ exp: Math.floor(later.getTime() / 1000) + 200 }))) });
  const fresh = await other.token(fields, tokenUrl(), later);
  t.truthy(await other.principal(fresh.access_token, later));
});

test.serial('scopes only of FHIR resource types: an unknown type is refused, never granted or echoed', async (t) => {
  for (const scope of ['system/Foo.rs', 'system/*.rs system/Foo.rs', 'system/Patients.read']) {
    const res = await requestToken(await form(scope));
    t.is(res.status, 400, scope);
    t.is(res.body.error, 'invalid_scope', scope);
    t.regex(res.body.error_description, /not a SMART system scope of a FHIR R4 resource type/, scope);
    t.is(res.body.scope, undefined, scope);
  }
  // the assertion of a refused request was not spent
  const a = await assertion();
  t.is((await requestToken(await form('system/Foo.rs', a))).status, 400);
  t.is((await requestToken(await form('system/Patient.rs', a))).status, 200);
  t.throws(() => register([{ clientId: 'a', organization: 'Organization/1', scope: 'system/Foo.rs', jwks: { keys: [] } }]), { message: /not 'system\/Foo\.rs'/ });
});

test.serial('the audience is the server’s own address, never the Host of the request', async (t) => {
  const host = 'huren.other-city.example';
  const a = await assertion({ aud: `http://${host}/auth/token` });
  const res = await postWithHost('/auth/token', host, new URLSearchParams(await form('system/*.rs', a)).toString());
  t.is(res.status, 401, 'an assertion made for another server is not redeemed here');
  t.is(res.body.error, 'invalid_client');
  t.regex(res.body.error_description, /audience/);
  // the configuration names the listen address whatever the Host
  const conf = await new Promise<any>((resolve, reject) => {
    const url = new URL(s.huren.url);
    httpRequest({ host: url.hostname, port: url.port, path: '/.well-known/smart-configuration', headers: { host } }, (r) => {
      let text = '';
      r.on('data', (c) => (text += c));
      r.on('end', () => resolve(JSON.parse(text)));
    })
      .on('error', reject)
      .end();
  });
  t.is(conf.token_endpoint, tokenUrl());
  // and an assertion for this server is redeemed whatever Host the request names
  const ok = await postWithHost('/auth/token', host, new URLSearchParams(await form('system/*.rs')).toString());
  t.is(ok.status, 200);
});

test.serial('the form’s client_id must be the assertion’s iss and sub; an iat in the future is refused', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const wrong = await requestToken({ ...(await form('system/*.rs')), client_id: READER });
  t.is(wrong.status, 401);
  t.is(wrong.body.error, 'invalid_client');
  t.regex(wrong.body.error_description, /client_id must be the client assertion’s iss and sub/);
  t.is((await requestToken({ ...(await form('system/*.rs')), client_id: WRITER })).status, 200, 'the same client_id is fine');
  const future = await requestToken(await form('system/*.rs', await assertion({ iat: now + 600 })));
  t.is(future.status, 401, 'iat 10 minutes ahead');
  t.regex(future.body.error_description, /future/);
  t.is((await requestToken(await form('system/*.rs', await assertion({ iat: now + 30 })))).status, 200, 'within the clock skew');
});

test.serial('keys come from the registration only: jku and x5u are refused; the key is picked by kid', async (t) => {
  const headers: [string, Record<string, unknown>][] = [
    ['jku', { jku: 'https://attacker.example/jwks.json' }],
    ['x5u', { x5u: 'https://attacker.example/cert.pem' }],
    ['jwk', { jwk: await exportJWK(writerKey.publicKey) }],
  ];
  for (const [name, header] of headers) {
    const res = await requestToken(await form('system/*.rs', await assertion({ header })));
    t.is(res.status, 401, name);
    t.regex(res.body.error_description, new RegExp(`header '${name}' is not accepted`), name);
  }
  // a client publishing two keys (rotation): each verifies under its own kid only
  const rotating = (key: CryptoKey, kid: string) => assertion({ iss: ROTATING, key, kid });
  t.is((await requestToken(await form('system/*.rs', await rotating(oldKey.privateKey, 'rot-1')))).status, 200, 'the old key');
  t.is((await requestToken(await form('system/*.rs', await rotating(newKey.privateKey, 'rot-2')))).status, 200, 'the new key');
  const crossed = await requestToken(await form('system/*.rs', await rotating(newKey.privateKey, 'rot-1')));
  t.is(crossed.status, 401, 'the new key under the old kid');
  t.regex(crossed.body.error_description, /signature/);
  const unknownKid = await requestToken(await form('system/*.rs', await rotating(newKey.privateKey, 'rot-3')));
  t.is(unknownKid.status, 401);
  t.regex(unknownKid.body.error_description, /kid/);
});

test.serial('the jti is kept in the database: a second server of the database refuses a used assertion', async (t) => {
  const a = await assertion();
  t.is((await requestToken(await form('system/*.rs', a))).status, 200);
  const other = register(s.huren.config.clients);
  const err = await t.throwsAsync(other.token(new URLSearchParams(await form('system/*.rs', a)), tokenUrl()));
  t.regex(err!.message, /already used/);
  const rows = await s.huren.db.query(`SELECT expires_at FROM auth_jti WHERE kind = 'client-assertion' AND issuer = $1`, [WRITER]);
  t.true(rows.length > 0, 'the jti rows are in the database');
  t.true(rows.every((r) => new Date(r.expires_at).getTime() < Date.now() + 400_000), 'each kept only until its assertion expires');
});

test.serial('scopes hold on every path: CDS Hooks calls and the recognition check’s reminder', async (t) => {
  const call = (token: string, path: string, body: unknown) =>
    fetch(`${s.huren.url}/cds-services/${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const patientView = { hook: 'patient-view', hookInstance: randomUUID(), context: { userId: 'Practitioner/x', patientId: d.patient } };
  const before = await countOf(s, 'DetectedIssue');
  const valueSetOnly = await tokenFor('reader', 'system/ValueSet.rs');
  const refused = await call(valueSetOnly, 'recognition-reminder', patientView);
  t.is(refused.status, 403, 'a ValueSet-only token gets no patient’s results through CDS Hooks');
  t.regex((await refused.json()).issue[0].details.text, /needs system\/Patient\.r/);
  const readOnly = await tokenFor('reader', 'system/*.read');
  const noWrite = await call(readOnly, 'recognition-reminder', patientView);
  t.is(noWrite.status, 403, 'a hook call writes a record: a read-only token may not');
  t.regex((await noWrite.json()).issue[0].details.text, /needs system\/DetectedIssue\.c/);
  t.is((await call(readOnly, 'recognition-reminder/feedback', { feedback: [] })).status, 403, 'feedback updates the record');
  // through the FHIR operations as well: the check writes a reminder
  for (const path of [`Patient/${d.patient}/$recognition-check`, `Patient/$recognition-check?identifier=${encodeURIComponent(`${NATIONAL_ID}|${d.nationalId}`)}`]) {
    const res = await fhir(readOnly, path);
    t.is(res.status, 403, path);
    t.regex((await res.json()).issue[0].details.text, /needs system\/DetectedIssue\.c/);
  }
  const dup = await fhir(readOnly, 'ServiceRequest/$duplicate-check', { method: 'POST', json: { resourceType: 'Parameters', parameter: [] } });
  t.is(dup.status, 403);
  t.is(await countOf(s, 'DetectedIssue'), before, 'no reminder was written');
  // with the scopes the calls need, they work
  const enough = await tokenFor('reader', 'system/*.read system/DetectedIssue.c');
  t.is((await call(enough, 'recognition-reminder', { ...patientView, hookInstance: randomUUID() })).status, 200);
  t.is((await fhir(enough, `Patient/${d.patient}/$recognition-check`)).status, 200);
});

test('production mode refuses to start without HUREN_PUBLIC_URL, or with an http one; key URLs must be https', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'huren-prod-'));
  for (const env of [{ HUREN_MODE: 'production' }, { HUREN_MODE: 'production', HUREN_PUBLIC_URL: 'http://huren.example' }]) {
    const config = loadConfig(env, { dataDir, inMemory: true, port: 0, host: '127.0.0.1', logLevel: 'warn' });
    await t.throwsAsync(start(config), { message: /HUREN_PUBLIC_URL/ }, JSON.stringify(env));
  }
  t.throws(() => loadConfig({ HUREN_MODE: 'staging' }), { message: /HUREN_MODE/ });
  t.is(loadConfig({}).mode, 'development');
  const client = (jwksUrl: string) => [{ clientId: 'a', organization: 'Organization/1', scope: 'system/*.rs', jwksUrl }];
  t.throws(() => register(client('http://127.0.0.1:9/jwks.json'), true), { message: /https/ }, 'no http in production, not even on loopback');
  t.throws(() => register(client('http://his.example/jwks.json')), { message: /https/ }, 'http only on loopback in development');
  t.throws(() => register(client('file:///etc/passwd')), { message: /https/ });
  t.notThrows(() => register(client('http://127.0.0.1:9/jwks.json')));
  t.notThrows(() => register(client('https://his.example/jwks.json'), true));
});

test('the client register refuses bad entries at start', (t) => {
  const jwk = { keys: [] };
  t.throws(() => register([{ clientId: '', organization: 'Organization/1', scope: 'system/*.rs', jwks: jwk }]), { message: /clientId/ });
  t.throws(() => register([{ clientId: 'a', organization: 'Patient/1', scope: 'system/*.rs', jwks: jwk }]), { message: /organization/ });
  t.throws(() => register([{ clientId: 'a', organization: 'Organization/1', scope: 'patient/*.read', jwks: jwk }]), { message: /not 'patient\/\*\.read'/ });
  t.throws(() => register([{ clientId: 'a', organization: 'Organization/1', scope: '', jwks: jwk }]), { message: /scope/ });
  t.throws(() => register([{ clientId: 'a', organization: 'Organization/1', scope: 'system/*.rs' }]), { message: /exactly one of jwks and jwksUrl/ });
});
