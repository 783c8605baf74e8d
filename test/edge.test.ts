/**
 * The edge (docs/security.md 入侵防范): security headers on every answer — FHIR, token, login API, app, CDS
 * Hooks, errors — HSTS on https; rate limits answered 429 with Retry-After and an OperationOutcome, sign-in
 * counted across processes in the database; /metrics behind its token.
 */
import test from 'ava';
import type Koa from 'koa';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { apiLimit, SharedWindow } from '../server/http/rate-limit.ts';
import { securityHeaders } from '../server/http/headers.ts';
import { loadConfig } from '../server/config.ts';
import type { Principal } from '../server/fhir/principal.ts';

let s: TestServer;
const METRICS_TOKEN = 'metrics-scraper-token-0123456789';
const defaults = loadConfig({}).rateLimits;

test.before(async () => {
  s = await startTestServer({ rateLimits: { ...defaults, loginPerSource: 4 }, edge: { hstsMaxAge: 31_536_000, metricsToken: METRICS_TOKEN } });
});
test.after.always(async () => {
  await s?.close();
});

const url = (path: string) => `${s.huren.url}${path}`;

function checkHeaders(t: any, res: Response, what: string): void {
  t.is(res.headers.get('x-content-type-options'), 'nosniff', what);
  t.is(res.headers.get('x-frame-options'), 'DENY', what);
  t.is(res.headers.get('referrer-policy'), 'no-referrer', what);
  t.regex(res.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/, what);
  t.is(res.headers.get('strict-transport-security'), null, `${what}: no HSTS over plain http`);
}

// serial, and before the sign-in limit test: its own login call must not land after that test used up the source's sign-in budget
test.serial('every answer carries the security headers: FHIR, errors, token, login, app, CDS Hooks, refusals', async (t) => {
  const auth = { authorization: `Bearer ${s.token}` };
  const cases: [string, RequestInit, number][] = [
    ['/fhir/metadata', {}, 200],
    ['/fhir/Patient', { headers: auth }, 200],
    ['/fhir/Patient/does-not-exist', { headers: auth }, 404],
    ['/fhir/Patient', {}, 401],
    ['/fhir/Patient', { headers: { authorization: 'Bearer wrong' } }, 401],
    ['/fhir/Patient', { method: 'POST', headers: { ...auth, 'content-type': 'application/fhir+json' }, body: '{"resourceType":"Patient","gender":1}' }, 400],
    ['/auth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' }, 400],
    ['/api/session/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }, 400],
    ['/cds-services', {}, 200],
    ['/healthz', {}, 200],
    ['/nowhere', { headers: auth }, 404],
  ];
  for (const [path, init, status] of cases) {
    const res = await fetch(url(path), init);
    t.is(res.status, status, path);
    checkHeaders(t, res, `${init.method ?? 'GET'} ${path}`);
    t.is(res.headers.get('cache-control'), 'no-store', path);
    t.regex(res.headers.get('content-security-policy')!, /default-src 'none'/, path);
  }
  // the app keeps its own policy (its scripts and styles), still never framed
  const app = await fetch(url('/app/'));
  t.is(res200or503(app.status), true);
  checkHeaders(t, app, '/app/');
  t.regex(app.headers.get('content-security-policy')!, /script-src 'self'/);
});

const res200or503 = (status: number) => status === 200 || status === 503;

test('HSTS on https (HUREN_PUBLIC_URL, or TLS seen through the proxy), with its configured max-age; 0 turns it off', async (t) => {
  const https = await startTestServer({ publicUrl: 'https://huren.example.gov.cn', edge: { hstsMaxAge: 600 } });
  try {
    const res = await fetch(`${https.huren.url}/fhir/metadata`);
    t.is(res.headers.get('strict-transport-security'), 'max-age=600; includeSubDomains');
    const err = await fetch(`${https.huren.url}/fhir/Patient`);
    t.is(err.status, 401);
    t.is(err.headers.get('strict-transport-security'), 'max-age=600; includeSubDomains', 'refusals too');
  } finally {
    await https.close();
  }
  const hsts = async (options: { hstsMaxAge: number; publicUrl?: string }, secure: boolean) => {
    const headers: Record<string, string> = {};
    const ctx = { secure, set: (k: string, v: string) => (headers[k] = v) } as unknown as Koa.Context;
    await securityHeaders(options)(ctx, async () => undefined);
    return headers['Strict-Transport-Security'] as string | undefined;
  };
  t.is(await hsts({ hstsMaxAge: 0, publicUrl: 'https://huren.example.gov.cn' }, true), undefined, '0: never');
  t.is(await hsts({ hstsMaxAge: 60 }, true), 'max-age=60; includeSubDomains', 'TLS seen (X-Forwarded-Proto through the trusted proxy)');
  t.is(await hsts({ hstsMaxAge: 60, publicUrl: 'http://127.0.0.1:8080' }, false), undefined, 'plain http');
});

test.serial('sign-in attempts per source address: 429 with Retry-After and an OperationOutcome after the limit', async (t) => {
  const attempt = () => fetch(url('/api/session/login'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: 'nobody', password: 'wrong-password-1A' }) });
  const statuses: number[] = [];
  let last: Response | undefined;
  for (let i = 0; i < 6; i++) {
    last = await attempt();
    statuses.push(last.status);
  }
  t.true(statuses.slice(0, 3).every((x) => x !== 429), statuses.join(','));
  t.is(statuses[5], 429);
  t.regex(last!.headers.get('retry-after') ?? '', /^\d+$/);
  t.true(Number(last!.headers.get('retry-after')) >= 1);
  const outcome = (await last!.json()) as any;
  t.is(outcome.resourceType, 'OperationOutcome');
  t.is(outcome.issue[0].code, 'throttled');
  t.is(last!.headers.get('x-frame-options'), 'DENY');
  // counted in the database: another process (another limiter on the same database) sees the same hits
  const [row] = await s.huren.db.query<{ hits: number }>("SELECT sum(hits)::int AS hits FROM rate_window WHERE key LIKE 'login:%'");
  t.true(Number(row!.hits) >= 6);
});

test('the shared window counts across limiters of one database and slides over the window edge', async (t) => {
  const a = new SharedWindow(s.huren.db, 60);
  const b = new SharedWindow(s.huren.db, 60);
  const key = `test:${Date.now()}`;
  const start = Math.floor(Date.now() / 60_000) * 60_000;
  const at = start + 59_000; // late in a window
  t.is(await a.take(key, 3, at), 0);
  t.is(await b.take(key, 3, at), 0);
  t.is(await a.take(key, 3, at), 0);
  const wait = await b.take(key, 3, at);
  t.true(wait >= 1 && wait <= 60, String(wait));
  // one second into the next window the previous one still weighs almost fully
  t.true((await a.take(key, 3, start + 61_000)) > 0);
  // two windows later it is forgotten
  t.is(await a.take(key, 3, start + 180_000), 0);
});

test('every request per source and per caller: 429 with Retry-After; the platform token only per source', async (t) => {
  const limits = { ...defaults, apiPerSource: 5, apiPerClient: 2 };
  const mw = apiLimit(limits);
  const run = async (ip: string, principal?: Principal) => {
    const headers: Record<string, string> = {};
    const ctx = { ip, state: { principal }, set: (k: string, v: string) => (headers[k] = v) } as unknown as Koa.Context;
    try {
      await mw(ctx, async () => undefined);
      return { status: 200, headers };
    } catch (e: any) {
      return { status: e.outcome ? 429 : 500, headers, text: e.outcome?.issue?.[0]?.details?.text };
    }
  };
  const client: Principal = { kind: 'client', id: 'client:his-a', scopes: [] };
  t.is((await run('10.0.0.1', client)).status, 200);
  t.is((await run('10.0.0.2', client)).status, 200);
  const third = await run('10.0.0.3', client);
  t.is(third.status, 429, 'the client is limited whatever its address');
  t.regex(third.text, /Too many requests from this client/);
  t.regex(third.headers['Retry-After']!, /^\d+$/);
  const platform: Principal = { kind: 'bootstrap', id: 'bootstrap', scopes: [] };
  for (let i = 0; i < 4; i++) t.is((await run('10.0.0.9', platform)).status, 200);
  const fromSource = await run('10.0.0.9', platform);
  t.is((await run('10.0.0.9', platform)).status, 429, 'the address is limited');
  t.is(fromSource.status, 200);
  t.is((await run('10.0.0.8')).status, 200, 'another address is not');
});

test('/metrics: the metrics token or the platform token; nothing else', async (t) => {
  const get = (token?: string) => fetch(url('/metrics'), { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const scraped = await get(METRICS_TOKEN);
  t.is(scraped.status, 200);
  t.regex(await scraped.text(), /huren_/);
  t.is((await get(s.token)).status, 200);
  t.is((await get()).status, 401);
  t.is((await get(`${METRICS_TOKEN}x`)).status, 401);
});
