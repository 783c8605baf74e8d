/**
 * 从 HIS 打开报告调阅 in a real Chromium: a HIS client with system/launch creates a launch context for the patient;
 * the browser opens the launch URL the platform returned; the viewer (SMART app huren-viewer) goes through
 * /auth/authorize with PKCE and lands on the patient's report list — no sign-in page — with the same reports
 * the API gives; opening a report writes the access record naming the HIS's user. A used launch, and a launch
 * URL naming another platform, end on a Chinese error page; the launched session opens no other patient's data,
 * and a revoked one sends the doctor back to the HIS, not to a sign-in page.
 */
import test from 'ava';
import type { Browser } from 'playwright-core';
import { backendClients, type BackendClients } from './helpers/backend-token.ts';
import { launch, openPage, screenshot } from './helpers/browser.ts';
import { ORG_ID, seedScenario, type Seeded } from './helpers/recognition-data.ts';
import { createLaunch } from './helpers/smart-launch.ts';
import { startTestServer, storeKind, type TestServer } from './helpers/server.ts';

const TAG = 'wl';
let s: TestServer;
let d: Seeded;
let browser: Browser;
let his: BackendClients;
let hisToken = '';
const shots = storeKind() === 'pglite';

test.before(async () => {
  his = await backendClients([
    { clientId: 'his-web', organization: `Organization?identifier=${ORG_ID}|req-gz-${TAG}`, scope: 'system/launch' },
    // its sessions are revoked in a test
    { clientId: 'his-revoked', organization: `Organization?identifier=${ORG_ID}|req-gz-${TAG}`, scope: 'system/launch' },
  ]);
  s = await startTestServer({ clients: his.clients as any });
  d = await seedScenario(s, TAG);
  hisToken = await his.tokenFor(s.huren.url, 'his-web', 'system/launch');
  browser = await launch();
});
test.after.always(async () => {
  await browser?.close();
  await s?.close();
});

const newLaunch = async (token = hisToken) => {
  const r = await createLaunch(s.huren.url, token, { patient: `Patient/${d.patient}`, user: 'dr.zhao' });
  if (r.status !== 201) throw new Error(`launch: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as { launch: string; launch_url: string };
};

test.serial('opened from the HIS: the patient\'s reports without a sign-in, and a report view recorded with the HIS user', async (t) => {
  const { launch_url } = await newLaunch();
  const w = await openPage(browser, { width: 1366, height: 768 });
  const visited: string[] = [];
  w.page.on('framenavigated', (f) => {
    if (f === w.page.mainFrame()) visited.push(new URL(f.url()).pathname);
  });
  await w.page.goto(launch_url);
  await w.page.waitForURL(new RegExp(`/app/patients/${d.patient}/reports`));
  t.false(visited.includes('/app/login'), 'no sign-in page on the way');
  await w.page.waitForSelector('[data-test=reports] tbody tr');
  const api = (await (await s.fhir(`Patient/${d.patient}/$reports?_count=200&requester=Organization/${d.org['req-gz']}`)).json()) as { parameter: any[] };
  const total = api.parameter.find((p) => p.name === 'total').valueInteger;
  t.true(total >= 10);
  t.is(await w.page.locator('[data-test=reports] tbody tr').count(), total);
  t.regex((await w.page.textContent('[data-test=reports]')) ?? '', /可互认/, 'judged for the HIS institution');
  t.regex((await w.page.textContent('.who')) ?? '', /从 HIS 打开/);
  if (shots) await screenshot(w.page, 'launch-reports');
  await w.page.click('[data-test=reports] tbody tr:first-child a');
  await w.page.waitForURL(/\/app\/reports\//);
  await w.page.waitForSelector('[data-test=title]');
  const reportId = new URL(w.page.url()).pathname.split('/').pop();
  const records = (await (await s.fhir(`AuditEvent?entity=DiagnosticReport/${reportId}&_count=50`)).json()) as { entry?: { resource: any }[] };
  const access = (records.entry ?? []).map((e) => e.resource).find((e) => e.entity?.[0]?.detail?.[0]?.valueString === '$view');
  t.truthy(access, 'the access record of the view');
  t.true(access.agent.some((a: any) => a.altId === 'dr.zhao'), 'names the HIS user');
  t.deepEqual(w.errors, []);
  await w.page.context().close();
});

test.serial('a used launch and a launch naming another platform end on a Chinese error page; the session reads nothing else', async (t) => {
  const l = await newLaunch(await his.tokenFor(s.huren.url, 'his-revoked', 'system/launch'));
  const w = await openPage(browser);
  await w.page.goto(l.launch_url);
  await w.page.waitForURL(/\/reports$/);
  // the launched session: another patient's reports are refused by the server
  await w.page.goto(`${s.huren.url}/app/patients/${d.emptyPatient}/reports`);
  const refused = await w.page.waitForSelector('[data-test=error]');
  t.regex((await refused.textContent()) ?? '', /无权/);
  // the token revoked (the HIS client's tokens, POST /auth/revoke): the next call ends the session, back to the HIS, no sign-in page
  const revoke = await fetch(`${s.huren.url}/auth/revoke`, { method: 'POST', headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'client_id=his-revoked' });
  t.is(revoke.status, 200);
  await w.page.goto(`${s.huren.url}/app/patients/${d.patient}/reports`);
  const ended = await w.page.waitForSelector('[data-test=launch-error]');
  t.regex((await ended.textContent()) ?? '', /会话已结束/);
  t.false(w.page.url().includes('/login'));
  await w.page.context().close();

  const again = await openPage(browser);
  await again.page.goto(l.launch_url);
  const used = await again.page.waitForSelector('[data-test=launch-error]');
  t.regex((await used.textContent()) ?? '', /启动请求无效或已过期/);
  if (shots) await screenshot(again.page, 'launch-error');
  await again.page.context().close();

  const fresh = await newLaunch();
  const other = await openPage(browser);
  await other.page.goto(`${s.huren.url}/app/launch?iss=${encodeURIComponent('https://evil.example/fhir')}&launch=${encodeURIComponent(fresh.launch)}`);
  const foreign = await other.page.waitForSelector('[data-test=launch-error]');
  t.regex((await foreign.textContent()) ?? '', /不是本平台/);
  t.is(new URL(other.page.url()).host, new URL(s.huren.url).host, 'the app never went to the other platform');
  await other.page.context().close();
});
