/**
 * The authentication edges across restarts and servers, and their throttles: a used client assertion or CDS
 * client JWT stays used after a restart and on another server of the database (the jti is in the
 * database); the platform's signing key survives a restart (it lives in the data directory); token
 * requests and refused bearer tokens are throttled per source address and per client (429, Retry-After).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { SIGNING_KEY_FILE } from '../server/auth/signing.ts';
import type { BackendClient } from '../server/auth/backend.ts';
import { startTestServer, storeKind, type TestServer } from './helpers/server.ts';

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const ISS = 'https://his.liwan-hospital.example/cds-client';

let key: Awaited<ReturnType<typeof generateKeyPair>>;
let clients: BackendClient[];
let cdsJwk: Record<string, unknown>;

test.before(async () => {
  key = await generateKeyPair('ES384', { extractable: true });
  const jwk = { ...(await exportJWK(key.publicKey)), kid: 'k-1', alg: 'ES384' };
  cdsJwk = jwk;
  clients = ['his-a', 'his-b'].map((clientId) => ({ clientId, organization: 'Organization?identifier=urn:huren:org|hardening', scope: 'system/*.rs', jwks: { keys: [jwk] } }));
});

const now = () => Math.floor(Date.now() / 1000);

function assertion(iss: string, aud: string): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'ES384', kid: 'k-1' }).setIssuer(iss).setSubject(iss).setAudience(aud).setExpirationTime(now() + 240).setJti(crypto.randomUUID()).sign(key.privateKey);
}

function cdsJwt(aud: string): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'ES384', kid: 'k-1' }).setIssuer(ISS).setAudience(aud).setIssuedAt().setExpirationTime(now() + 240).setJti(crypto.randomUUID()).sign(key.privateKey);
}

async function requestToken(base: string, a: string, headers: Record<string, string> = {}): Promise<Response> {
  const body = new URLSearchParams({ grant_type: 'client_credentials', scope: 'system/*.rs', client_assertion_type: ASSERTION_TYPE, client_assertion: a });
  return fetch(`${base}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
}

const keyFileOf = (s: TestServer): string | undefined => {
  const file = join(s.store.dataDir, SIGNING_KEY_FILE);
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
};

const patientView = { hook: 'patient-view', hookInstance: crypto.randomUUID(), context: { userId: 'Practitioner/x', patientId: 'nobody' } };
const cdsCall = (url: string, token: string) =>
  fetch(`${url}/cds-services/recognition-reminder`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(patientView) });

test.serial('a used assertion and a used CDS JWT stay used after a restart and on another server; the signing key survives', async (t) => {
  const cdsClients = [{ iss: ISS, organization: 'Organization?identifier=urn:huren:org|hardening', jwks: { keys: [cdsJwk] } }];
  // the audience names the public URL, the same for every server of the platform
  const publicUrl = 'https://huren.restart.example';
  const first = await startTestServer({ clients, cdsClients, publicUrl }, { persistent: true });
  const url = first.huren.url;
  const a = await assertion('his-a', `${publicUrl}/auth/token`);
  const res = await requestToken(url, a);
  t.is(res.status, 200);
  const { access_token: token } = await res.json();
  const j = await cdsJwt(`${publicUrl}/cds-services/recognition-reminder`);
  t.is((await cdsCall(url, j)).status, 200);
  const keyFile = keyFileOf(first);
  await first.close({ keepStore: true });

  const second = await startTestServer({ clients, cdsClients, publicUrl, bootstrapToken: first.token }, { store: first.store });
  const others: TestServer[] = [];
  try {
    const servers = [second];
    // on PostgreSQL, a second server of the same database (and data directory) at the same time
    if (storeKind() === 'postgres') others.push(await startTestServer({ clients, cdsClients, publicUrl, bootstrapToken: first.token }, { store: first.store }));
    for (const server of [...servers, ...others]) {
      const replay = await requestToken(server.huren.url, a);
      t.is(replay.status, 401);
      t.regex((await replay.json()).error_description, /already used/);
      const cds = await cdsCall(server.huren.url, j);
      t.is(cds.status, 401);
      t.regex((await cds.json()).issue[0].details.text, /already used/);
      t.is((await fetch(`${server.base}/Patient?_count=1`, { headers: { authorization: `Bearer ${token}` } })).status, 200, 'a token issued before the restart still verifies');
    }
    t.truthy(keyFile);
    t.is(keyFileOf(second), keyFile, 'the key file is kept, not regenerated');
  } finally {
    for (const o of others) await o.close({ keepStore: true });
    await second.close();
  }
});

test.serial('token requests and refused bearer tokens are throttled per source address and per client', async (t) => {
  // behind a proxy (HUREN_PUBLIC_URL): the source is the X-Forwarded-For address
  const publicUrl = 'https://huren.throttle.example';
  const s = await startTestServer({ clients, publicUrl, rateLimits: { tokenPerSource: 3, tokenPerClient: 2, badTokenPerSource: 3, badTokenPerClient: 2, apiPerSource: 12_000, apiPerClient: 6_000, loginPerSource: 60 } });
  try {
    const url = s.huren.url;
    const from = (ip: string) => ({ 'x-forwarded-for': ip });
    const aud = `${publicUrl}/auth/token`;

    // /auth/token per source: three answers, then 429 (another source is not affected)
    for (let i = 0; i < 3; i++) t.is((await requestToken(url, 'not-a-jwt', from('10.0.0.1'))).status, 400);
    const throttled = await requestToken(url, 'not-a-jwt', from('10.0.0.1'));
    t.is(throttled.status, 429);
    t.true(Number(throttled.headers.get('retry-after')) >= 1);
    t.regex((await throttled.json()).error_description, /too many token requests from this address/);
    t.is((await requestToken(url, 'not-a-jwt', from('10.0.0.2'))).status, 400);

    // /auth/token per client, whatever the source
    t.is((await requestToken(url, await assertion('his-a', aud), from('10.0.1.1'))).status, 200);
    t.is((await requestToken(url, await assertion('his-a', aud), from('10.0.1.2'))).status, 200);
    const perClient = await requestToken(url, await assertion('his-a', aud), from('10.0.1.3'));
    t.is(perClient.status, 429);
    t.regex((await perClient.json()).error_description, /for this client/);
    const b = await requestToken(url, await assertion('his-b', aud), from('10.0.1.4'));
    t.is(b.status, 200, 'another client is not affected');
    const bToken = (await b.json()).access_token;

    // refused bearer tokens per source: three 401, then 429 for everything from there — the platform token too
    const get = (token: string, ip: string) => fetch(`${url}/fhir/Patient?_count=1`, { headers: { authorization: `Bearer ${token}`, ...from(ip) } });
    for (let i = 0; i < 3; i++) t.is((await get('guessed-token', '10.0.2.1')).status, 401);
    const blocked = await get('guessed-token', '10.0.2.1');
    t.is(blocked.status, 429);
    t.true(Number(blocked.headers.get('retry-after')) >= 1);
    t.is((await blocked.json()).issue[0].code, 'throttled');
    t.is((await get(s.token, '10.0.2.1')).status, 429, 'no more guesses from that address, right or wrong');
    t.is((await get(s.token, '192.0.2.7, 10.0.2.1')).status, 429, 'an X-Forwarded-For entry the client wrote before the proxy’s does not help');
    t.is((await get(s.token, '10.0.2.2')).status, 200, 'another address is not affected');

    // refused bearer tokens per claimed client: its forged tokens get 429, its own token keeps working
    const forged = (sub: string) => `${Buffer.from('{"alg":"HS256","kid":"x"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub, exp: now() + 60 })).toString('base64url')}.AAAA`;
    t.is((await get(forged('his-b'), '10.0.3.1')).status, 401);
    t.is((await get(forged('his-b'), '10.0.3.2')).status, 401);
    t.is((await get(forged('his-b'), '10.0.3.3')).status, 429);
    t.is((await get(bToken, '10.0.3.4')).status, 200, "the client's valid token is not locked out");
  } finally {
    await s.close();
  }
});
