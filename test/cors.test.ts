/**
 * CORS (server/http/cors.ts, docs/running.md#browser-apps-cors): preflights and CORS headers only for the
 * origins in HUREN_CORS_ORIGINS, never credentials; the CapabilityStatement says cors only when configured.
 */
import test from 'ava';
import { loadConfig } from '../server/config.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const APP = 'https://smart-app.example.org';
let s: TestServer;
let plain: TestServer;
test.before(async () => {
  [s, plain] = await Promise.all([startTestServer({ corsOrigins: [APP, 'http://localhost:3000'] }), startTestServer()]);
});
test.after.always(async () => {
  await Promise.all([s?.close(), plain?.close()]);
});

const preflight = (base: string, origin: string, path = '/Patient') =>
  fetch(`${base}${path}`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, prefer' },
  });

test('a preflight from a listed origin is a 204 with the methods and headers a FHIR client needs, without a token', async (t) => {
  const res = await preflight(s.base, APP);
  t.is(res.status, 204);
  t.is(res.headers.get('access-control-allow-origin'), APP);
  t.regex(res.headers.get('access-control-allow-methods') ?? '', /\bPOST\b/);
  t.regex(res.headers.get('access-control-allow-methods') ?? '', /\bDELETE\b/);
  for (const h of ['authorization', 'content-type', 'prefer', 'if-match', 'if-none-exist']) t.regex(res.headers.get('access-control-allow-headers') ?? '', new RegExp(`\\b${h}\\b`));
  t.is(res.headers.get('access-control-allow-credentials'), null, 'credentials are never allowed');
  t.regex(res.headers.get('vary') ?? '', /Origin/i);
  // the token endpoint of SMART too
  t.is((await preflight(s.base.replace(/\/fhir$/, ''), 'http://localhost:3000', '/auth/token')).status, 204);
});

test('an answer to a listed origin carries Access-Control-Allow-Origin and exposes Location/ETag, errors included; the token is still required', async (t) => {
  const created = await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', gender: 'male' }, headers: { origin: APP } });
  t.is(created.status, 201);
  t.is(created.headers.get('access-control-allow-origin'), APP);
  const exposed = created.headers.get('access-control-expose-headers') ?? '';
  for (const h of ['Location', 'ETag', 'Last-Modified']) t.true(exposed.includes(h), h);
  const anonymous = await fetch(`${s.base}/Patient`, { headers: { origin: APP } });
  t.is(anonymous.status, 401, 'CORS does not open the API');
  t.is(anonymous.headers.get('access-control-allow-origin'), APP, 'the browser app can read the 401');
});

test('an origin that is not listed gets no CORS headers and its preflight is a 403 naming the origin', async (t) => {
  const res = await preflight(s.base, 'https://evil.example');
  t.is(res.status, 403);
  t.is(res.headers.get('access-control-allow-origin'), null);
  t.regex((await res.json()).issue[0].details?.text ?? '', /evil\.example.*HUREN_CORS_ORIGINS/);
  const read = await s.fhir('metadata', { headers: { origin: 'https://evil.example' } });
  t.is(read.status, 200);
  t.is(read.headers.get('access-control-allow-origin'), null);
});

test('the CapabilityStatement says security.cors only when origins are configured; without them no CORS headers at all', async (t) => {
  t.true((await (await s.fhir('metadata')).json()).rest[0].security.cors);
  t.false((await (await plain.fhir('metadata')).json()).rest[0].security.cors);
  const res = await preflight(plain.base, APP);
  t.not(res.status, 204);
  t.is(res.headers.get('access-control-allow-origin'), null);
  t.is((await plain.fhir('Patient', { headers: { origin: APP } })).headers.get('access-control-allow-origin'), null);
});

test('HUREN_CORS_ORIGINS: a comma list of origins or *; a URL with a path or an unknown scheme stops the start with a message naming it', (t) => {
  t.deepEqual(loadConfig({ HUREN_CORS_ORIGINS: ' https://a.example , http://localhost:3000/,https://a.example' }).corsOrigins, ['https://a.example', 'http://localhost:3000']);
  t.deepEqual(loadConfig({}).corsOrigins, []);
  t.deepEqual(loadConfig({ HUREN_CORS_ORIGINS: '*' }).corsOrigins, ['*']);
  t.throws(() => loadConfig({ HUREN_CORS_ORIGINS: 'https://a.example/app' }), { message: /HUREN_CORS_ORIGINS: 'https:\/\/a\.example\/app'/ });
  t.throws(() => loadConfig({ HUREN_CORS_ORIGINS: 'ftp://a.example' }), { message: /ftp:\/\/a\.example/ });
  t.throws(() => loadConfig({ HUREN_CORS_ORIGINS: 'a.example' }), { message: /a\.example/ });
});

test('with * any origin is answered *, still without credentials', async (t) => {
  const any = await startTestServer({ corsOrigins: ['*'] });
  try {
    const res = await preflight(any.base, 'https://anyone.example');
    t.is(res.status, 204);
    t.is(res.headers.get('access-control-allow-origin'), '*');
    t.is(res.headers.get('access-control-allow-credentials'), null);
  } finally {
    await any.close();
  }
});
