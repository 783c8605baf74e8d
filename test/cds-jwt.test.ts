/**
 * Trusting CDS clients (CDS Hooks 2.0): a registered hospital CDS client calls with its own signed JWT instead
 * of the platform token; the call is made for the client's institution (the default requester). Every way a
 * JWT can be wrong is refused with 401 and writes nothing; a JWT opens the CDS calls only, never the FHIR API.
 * The audience is the server's own address (never the request's Host), keys come from the registration only
 * (by kid), and a used jti is kept in the database.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { countOf, NATIONAL, NATIONAL_ID, ORG_ID, seedScenario, requesterOf, type Seeded } from './helpers/recognition-data.ts';
import { loadCdsClients, CdsTrust } from '../server/cds/trust.ts';

const TAG = 'jwt';
const ISS = 'https://his.liwan-hospital.example/cds-client';
const REMOTE_ISS = 'https://his.foshan-hospital.example/cds-client';

let s: TestServer;
let d: Seeded;
let jwksServer: Server;
let es: Awaited<ReturnType<typeof generateKeyPair>>;
let rs: Awaited<ReturnType<typeof generateKeyPair>>;
let rs2: Awaited<ReturnType<typeof generateKeyPair>>;
let jwksUrl: string;
let stranger: Awaited<ReturnType<typeof generateKeyPair>>;

test.before(async () => {
  es = await generateKeyPair('ES384', { extractable: true });
  rs = await generateKeyPair('RS384', { extractable: true });
  rs2 = await generateKeyPair('RS384', { extractable: true });
  stranger = await generateKeyPair('ES384', { extractable: true });
  const esJwk: JWK = { ...(await exportJWK(es.publicKey)), kid: 'liwan-1', alg: 'ES384', use: 'sig' };
  const rsJwk: JWK = { ...(await exportJWK(rs.publicKey)), kid: 'foshan-1', alg: 'RS384', use: 'sig' };
  const rs2Jwk: JWK = { ...(await exportJWK(rs2.publicKey)), kid: 'foshan-2', alg: 'RS384', use: 'sig' };
  // the Foshan client publishes its keys at a URL (plain http: loopback, outside production), rotating: two keys
  jwksServer = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: [rsJwk, rs2Jwk] }));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
  s = await startTestServer({
    cdsClients: [
      { iss: ISS, organization: `Organization?identifier=${ORG_ID}|req-gz-${TAG}`, jwks: { keys: [esJwk] } },
      { iss: REMOTE_ISS, organization: `Organization?identifier=${ORG_ID}|req-fs-${TAG}`, jwksUrl },
    ],
  });
  d = await seedScenario(s, TAG);
});
test.after.always(async () => {
  await s?.close();
  jwksServer?.close();
});

const endpoint = (path: string) => `${s.huren.url}/cds-services/${path}`;

interface JwtOptions {
  iss?: string;
  aud?: string;
  key?: CryptoKey;
  alg?: string;
  kid?: string;
  jti?: string | null;
  exp?: number;
  iat?: number;
  header?: Record<string, unknown>;
}

async function jwt(path: string, o: JwtOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = { ...(o.jti === null ? {} : { jti: o.jti ?? crypto.randomUUID() }) };
  return new SignJWT(claims)
    .setProtectedHeader({ alg: o.alg ?? 'ES384', kid: o.kid ?? 'liwan-1', typ: 'JWT', ...o.header })
    .setIssuer(o.iss ?? ISS)
    .setAudience(o.aud ?? endpoint(path))
    .setIssuedAt(o.iat ?? now)
    .setExpirationTime(o.exp ?? now + 300)
    .sign(o.key ?? es.privateKey);
}

async function call(path: string, token: string, body: unknown): Promise<{ status: number; body: any; auth: string | null }> {
  const res = await fetch(endpoint(path), { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json(), auth: res.headers.get('www-authenticate') };
}

/** order-sign for a blood count the patient already has (covered) — with no requester named anywhere. */
function orderSign(patientId = d.patient) {
  return {
    hook: 'order-sign',
    hookInstance: crypto.randomUUID(),
    context: {
      userId: 'Practitioner/unknown-to-the-platform',
      patientId,
      draftOrders: {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [{ resource: { resourceType: 'ServiceRequest', id: 'ord-cbc', status: 'draft', intent: 'order', code: { coding: [{ system: NATIONAL, code: '002501010150000' }] }, subject: { reference: `Patient/${patientId}` } } }],
      },
    },
    prefetch: { patient: { resourceType: 'Patient', id: patientId, identifier: [{ system: NATIONAL_ID, value: d.nationalId }] } },
  };
}

async function recordFor(cardUuid: string): Promise<any> {
  const res = await s.fhir(`DetectedIssue?identifier=${encodeURIComponent(`https://fhir.huren.gz.cn/NamingSystem/cds-card|${cardUuid}`)}`);
  return (await res.json()).entry?.[0]?.resource;
}

test.serial('a registered client calls with its own JWT, for its own institution; feedback too', async (t) => {
  const res = await call('duplicate-order-sign', await jwt('duplicate-order-sign'), orderSign());
  t.is(res.status, 200, JSON.stringify(res.body));
  t.is(res.body.cards.length, 1);
  const record = await recordFor(res.body.cards[0].uuid);
  t.is(requesterOf(record), `Organization/${d.org['req-gz']}`, 'the requester is the client’s institution');

  // feedback, with a JWT whose audience is the feedback endpoint
  const card = res.body.cards[0].uuid;
  const fb = await call('duplicate-order-sign/feedback', await jwt('duplicate-order-sign/feedback'), {
    feedback: [{ card, outcome: 'overridden', outcomeTimestamp: new Date().toISOString(), overrideReason: { reason: { system: 'https://fhir.huren.gz.cn/CodeSystem/not-recognised-reason', code: '01' } } }],
  });
  t.is(fb.status, 200, JSON.stringify(fb.body));
  t.is((await recordFor(card)).mitigation?.length, 1);
});

test.serial('a client publishing its keys at a URL (RS384) is verified too, and speaks for its own institution', async (t) => {
  // patient-view: for a Foshan requester only the partner hospital's result counts and the provincial hospital count (QC scopes covering 440600 or 440000)
  const token = await jwt('recognition-reminder', { iss: REMOTE_ISS, key: rs.privateKey, alg: 'RS384', kid: 'foshan-1' });
  const res = await call('recognition-reminder', token, { hook: 'patient-view', hookInstance: crypto.randomUUID(), context: { userId: 'Practitioner/x', patientId: d.patient } });
  t.is(res.status, 200, JSON.stringify(res.body));
  t.is(res.body.cards.length, 1);
  t.regex(res.body.cards[0].summary, /3 项.*2 家机构/, "the partner and the provincial hospital only");
  t.is(requesterOf(await recordFor(res.body.cards[0].uuid)), `Organization/${d.org['req-fs']}`);
});

test.serial('every wrong JWT is refused with 401, says why without echoing it, and writes no record', async (t) => {
  const before = await countOf(s, 'DetectedIssue');
  const now = Math.floor(Date.now() / 1000);
  const path = 'duplicate-order-sign';
  const replayed = await jwt(path);
  t.is((await call(path, replayed, orderSign())).status, 200);
  const afterFirst = await countOf(s, 'DetectedIssue');
  const cases: [string, string, RegExp][] = [
    ['replayed jti', replayed, /already used/],
    ['expired', await jwt(path, { exp: now - 120, iat: now - 400 }), /expired/],
    ['issued too long ago', await jwt(path, { iat: now - 3600, exp: now + 60 }), /too old/],
    ['audience of another service', await jwt(path, { aud: endpoint('recognition-reminder') }), /audience/],
    ['audience of another server', await jwt(path, { aud: `https://elsewhere.example/cds-services/${path}` }), /audience/],
    ['unknown issuer', await jwt(path, { iss: 'https://rogue.example' }), /issuer/],
    ['signed by another key with the same kid', await jwt(path, { key: stranger.privateKey }), /signature/],
    ['no jti', await jwt(path, { jti: null }), /jti/],
    ['HMAC', await new SignJWT({ jti: 'x' }).setProtectedHeader({ alg: 'HS256' }).setIssuer(ISS).setAudience(endpoint(path)).setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode('a shared secret of 32 bytes!!!!!')), /algorithm/],
    ['unsigned (alg none)', `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: ISS, aud: endpoint(path), jti: 'y', iat: now, exp: now + 60 })).toString('base64url')}.`, /algorithm|not a JWT|verified/],
    ['not a JWT', 'aaa.bbb.ccc', /not a JWT/],
    ['issued in the future', await jwt(path, { iat: now + 600, exp: now + 900 }), /future/],
    ['a jku header', await jwt(path, { header: { jku: 'https://attacker.example/jwks.json' } }), /header 'jku' is not accepted/],
    ['an x5u header', await jwt(path, { header: { x5u: 'https://attacker.example/cert.pem' } }), /header 'x5u' is not accepted/],
    ['another client’s key URL as jku', await jwt(path, { header: { jku: jwksUrl } }), /header 'jku' is not accepted/],
  ];
  for (const [name, token, why] of cases) {
    const res = await call(path, token, orderSign());
    t.is(res.status, 401, name);
    t.is(res.body.resourceType, 'OperationOutcome', name);
    t.regex(res.body.issue[0].details.text, why, name);
    t.regex(res.auth ?? '', /invalid_token/, name);
    t.false(res.body.issue[0].details.text.includes(d.nationalId), name);
  }
  t.is(await countOf(s, 'DetectedIssue'), afterFirst, 'no refused call wrote a record');
  t.is(afterFirst, before + 1);
});

test.serial('a CDS client JWT opens the CDS calls only, never the FHIR API', async (t) => {
  for (const path of ['/fhir/Patient', `/fhir/Patient/${d.patient}/$recognition-check`]) {
    const token = await jwt('x', { aud: `${s.huren.url}${path}` });
    const res = await fetch(`${s.huren.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    t.is(res.status, 401, path);
  }
  // and the platform token still works on the CDS calls
  const res = await call('duplicate-order-sign', s.token, { ...orderSign(), extension: { 'cn.gz.huren.requester': `Organization/${d.org['req-gz']}` } });
  t.is(res.status, 200);
});

/** A POST with the Host header of another server (fetch does not let one set it). */
function postWithHost(path: string, host: string, token: string, body: unknown): Promise<number> {
  const url = new URL(s.huren.url);
  return new Promise((resolve, reject) => {
    httpRequest({ host: url.hostname, port: url.port, path, method: 'POST', headers: { host, authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    })
      .on('error', reject)
      .end(JSON.stringify(body));
  });
}

test.serial('the audience is the server’s own address: a JWT made for another server is refused whatever the Host', async (t) => {
  const host = 'cds.other-city.example';
  const path = 'duplicate-order-sign';
  t.is(await postWithHost(`/cds-services/${path}`, host, await jwt(path, { aud: `http://${host}/cds-services/${path}` }), orderSign()), 401);
  t.is(await postWithHost(`/cds-services/${path}`, host, await jwt(path), orderSign()), 200, 'a JWT for this server');
});

test.serial('keys by kid: a client publishing two keys is verified under each; the registered key URL may be named as jku', async (t) => {
  const body = { hook: 'patient-view', hookInstance: crypto.randomUUID(), context: { userId: 'Practitioner/x', patientId: d.patient } };
  const path = 'recognition-reminder';
  const remote = (o: JwtOptions) => jwt(path, { iss: REMOTE_ISS, alg: 'RS384', ...o });
  t.is((await call(path, await remote({ key: rs2.privateKey, kid: 'foshan-2' }), body)).status, 200, 'the new key');
  t.is((await call(path, await remote({ key: rs.privateKey, kid: 'foshan-1', header: { jku: jwksUrl } }), body)).status, 200, 'jku = the registered URL');
  const crossed = await call(path, await remote({ key: rs2.privateKey, kid: 'foshan-1' }), body);
  t.is(crossed.status, 401, 'the new key under the old kid');
  t.regex(crossed.body.issue[0].details.text, /signature/);
});

test.serial('a used jti is kept in the database: another server of the database refuses it', async (t) => {
  const path = 'duplicate-order-sign';
  const token = await jwt(path);
  t.is((await call(path, token, orderSign())).status, 200);
  const other = new CdsTrust(s.huren.config.cdsClients, { db: s.huren.db });
  await t.throwsAsync(other.verify(token, [endpoint(path)]), { message: /already used/ });
  const fresh = await jwt(path);
  t.truthy(await other.verify(fresh, [endpoint(path)]), 'a new JWT is accepted there');
  t.is((await call(path, fresh, orderSign())).status, 401, 'and then refused here');
});

test('the client register refuses bad entries at start', (t) => {
  t.deepEqual(loadCdsClients(undefined), []);
  t.throws(() => loadCdsClients('[{'), { message: /not valid JSON/ });
  t.throws(() => loadCdsClients('{}'), { message: /JSON array|ENOENT/ });
  t.throws(() => new CdsTrust([{ iss: 'a', organization: 'Patient/1', jwks: { keys: [] } }]), { message: /organization/ });
  t.throws(() => new CdsTrust([{ iss: 'a', organization: 'Organization/1' }]), { message: /exactly one of jwks and jwksUrl/ });
  t.throws(() => new CdsTrust([{ iss: 'a', organization: 'Organization/1', jwksUrl: 'file:///etc/passwd' }]), { message: /https/ });
  t.throws(() => new CdsTrust([{ iss: 'a', organization: 'Organization/1', jwksUrl: 'http://his.example/jwks.json' }]), { message: /https/ }, 'http only on loopback');
  t.throws(() => new CdsTrust([{ iss: 'a', organization: 'Organization/1', jwksUrl: 'http://127.0.0.1:9/jwks.json' }], { production: true }), { message: /https/ }, 'not even there in production');
  t.notThrows(() => new CdsTrust([{ iss: 'a', organization: 'Organization/1', jwksUrl: 'https://his.example/jwks.json' }], { production: true }));
  t.throws(
    () => new CdsTrust([{ iss: 'a', organization: 'Organization/1', jwks: { keys: [] } }, { iss: 'a', organization: 'Organization/2', jwks: { keys: [] } }]),
    { message: /twice/ }
  );
});
