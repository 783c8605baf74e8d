/**
 * The monitoring app in a real Chromium against a real server: sign-in, the report viewer (abnormal items
 * highlighted), the chain statistics page (the numbers the API returns), errors in Chinese, deep links, and no
 * console errors on any page. Screenshots go to docs/screenshots/ for docs/app.md.
 */
import test from 'ava';
import type { Browser } from 'playwright-core';
import { launch, openPage, screenshot, type WatchedPage } from './helpers/browser.ts';
import { seedScenario, type Seeded } from './helpers/recognition-data.ts';
import { startTestServer, storeKind, type TestServer } from './helpers/server.ts';

let s: TestServer;
let browser: Browser;
let seeded: Seeded;
/** Screenshots are written from one store's run only (the PGlite one), so the two runs do not race on the files. */
const shots = storeKind() === 'pglite';

test.before(async () => {
  s = await startTestServer();
  seeded = await seedScenario(s);
  browser = await launch();
});
test.after.always(async () => {
  await browser?.close();
  await s?.close();
});

const app = (path: string) => `${s.huren.url}/app${path}`;

async function signIn(w: WatchedPage, next = '/'): Promise<void> {
  await w.page.goto(app(`/login?next=${encodeURIComponent(next)}`));
  await w.page.fill('input[data-test=token]', s.token);
  await w.page.click('[data-test=submit]');
  await w.page.waitForURL((u) => !u.pathname.endsWith('/login'));
}

test('the app is served at /app with its security headers, deep links fall back to the page, assets are cached', async (t) => {
  const page = await fetch(app('/reports/anything'));
  t.is(page.status, 200);
  t.regex(page.headers.get('content-type') ?? '', /text\/html/);
  t.regex(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  t.is(page.headers.get('x-frame-options'), 'DENY');
  const html = await page.text();
  const asset = /src="(\/app\/assets\/[^"]+\.js)"/.exec(html)?.[1];
  t.truthy(asset, 'the page loads a bundled script (no CDN)');
  t.notRegex(html, /https?:\/\/(?!127\.0\.0\.1)/, 'nothing is loaded from another host');
  const js = await fetch(`${s.huren.url}${asset}`);
  t.is(js.status, 200);
  t.regex(js.headers.get('cache-control') ?? '', /immutable/);
  const outside = await fetch(app('/..%2f..%2fpackage.json'));
  t.is(outside.status, 200, 'a path outside the build answers the page, never a file');
  t.notRegex(await outside.text(), /"dependencies"/);
  t.is((await fetch(app('/'), { method: 'POST', headers: { authorization: `Bearer ${s.token}` } })).status, 405);
});

test('sign-in: a wrong token is refused with a Chinese message; the right one opens the app', async (t) => {
  const w = await openPage(browser);
  await w.page.goto(app('/chain'));
  await w.page.waitForURL(/\/app\/login/);
  if (shots) await screenshot(w.page, 'login');
  await w.page.fill('input[data-test=token]', 'not-the-token');
  await w.page.click('[data-test=submit]');
  const error = await w.page.waitForSelector('[data-test=error]');
  t.regex((await error.textContent()) ?? '', /登录已失效|令牌|无效/);
  await w.page.fill('input[data-test=token]', s.token);
  await w.page.click('[data-test=submit]');
  await w.page.waitForURL(/\/app\/chain/);
  t.deepEqual(w.errors.filter((e) => !/401/.test(e)), [], 'no console errors (the refused sign-in logs its 401)');
  await w.page.context().close();
});

test('the report viewer highlights the abnormal and critical items of a known report', async (t) => {
  const w = await openPage(browser);
  await signIn(w, `/reports/${seeded.report.cbc}?requester=Organization/${seeded.org['req-gz']}`);
  await w.page.waitForSelector('[data-test=observations] tbody tr');
  const view = (await (await s.fhir(`DiagnosticReport/${seeded.report.cbc}/$view`)).json()) as { parameter: any[] };
  const observations = view.parameter.filter((p) => p.name === 'observation').map((p) => p.resource);
  t.is(observations.length, 3);
  for (const o of observations) {
    const flag = await w.page.$(`[data-test=flag-${o.id}]`);
    const code = o.interpretation?.[0]?.coding?.[0]?.code as string | undefined;
    if (code) t.truthy(flag, `${o.code.coding[0].display} is flagged`);
    else t.is(flag, null, `${o.code.coding[0].display} is not flagged`);
  }
  t.is(await w.page.locator('[data-test=observations] tr.critical').count(), 1, 'the critical result (血红蛋白 LL) is marked critical');
  t.is(await w.page.locator('[data-test=observations] tr.abnormal').count(), 1, 'the other abnormal one (白细胞计数 L) is marked abnormal');
  t.regex((await w.page.textContent('[data-test=observations]')) ?? '', /危急偏低/);
  if (shots) await screenshot(w.page, 'report-viewer');
  await w.page.setViewportSize({ width: 1366, height: 768 });
  if (shots) await screenshot(w.page, 'report-viewer-1366');
  t.deepEqual(w.errors, []);
  await w.page.context().close();
});

test("the patient's report list shows every report of the patient, newest first, and opens one", async (t) => {
  const w = await openPage(browser);
  await signIn(w, `/patients/${seeded.patient}/reports`);
  await w.page.waitForSelector('[data-test=reports] tbody tr');
  const body = (await (await s.fhir(`Patient/${seeded.patient}/$reports?_count=200`)).json()) as { parameter: any[] };
  const total = body.parameter.find((p) => p.name === 'total').valueInteger as number;
  t.is(await w.page.locator('[data-test=reports] tbody tr').count(), total);
  if (shots) await screenshot(w.page, 'reports');
  await w.page.click('[data-test=reports] tbody tr:first-child a');
  await w.page.waitForURL(/\/app\/reports\//);
  await w.page.waitForSelector('[data-test=title]');
  t.deepEqual(w.errors, []);
  await w.page.context().close();
});

test('the chain statistics page shows what the API returns; $verify of a report shows its status; an unknown report a Chinese error', async (t) => {
  const w = await openPage(browser);
  await signIn(w, '/chain');
  await w.page.waitForSelector('[data-test=chain-table] tbody tr');
  const to = new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);
  const from = new Date(Date.now() + 8 * 3600_000 - 29 * 86400_000).toISOString().slice(0, 10);
  const api = (await (await fetch(`${s.huren.url}/api/statistics/chain?from=${from}&to=${to}`, { headers: { authorization: `Bearer ${s.token}` } })).json()) as { totals: { received: number } };
  const received = await w.page.$$eval('[data-test=chain-table] tbody tr', (rows) => rows.reduce((n, r) => n + Number(r.querySelectorAll('td')[1]?.textContent ?? 0), 0));
  t.is(received, api.totals.received);
  t.true(received > 0);
  await w.page.fill('input[data-test=report-id]', seeded.report.cbc);
  await w.page.click('[data-test=verify]');
  const result = await w.page.waitForSelector('[data-test=verify-result]');
  t.regex((await result.textContent()) ?? '', /哈希一致|待核验|未上链|哈希不一致/);
  if (shots) await screenshot(w.page, 'chain');
  await w.page.fill('input[data-test=report-id]', 'no-such-report');
  await w.page.click('[data-test=verify]');
  await w.page.waitForSelector('[data-test=error]');
  t.regex((await w.page.textContent('[data-test=error]')) ?? '', /未找到/);
  t.deepEqual(w.errors.filter((e) => !/404/.test(e)), []);
  await w.page.context().close();
});
