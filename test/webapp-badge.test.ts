/**
 * The report viewer's hash-consistent badge (哈希一致, issue 14) in a real Chromium: shown on a report whose
 * version is anchored and consistent while the setting is on, hidden when the setting is off (and on a report
 * that is not consistent). Uses the viewer's own data-test attributes (badge, days). Its own server: the
 * setting is the platform's, and the anchoring changes the chain figures other tests compare.
 */
import test from 'ava';
import type { Browser } from 'playwright-core';
import { launch, openPage } from './helpers/browser.ts';
import { testProvenanceConfig } from './helpers/chain.ts';
import { seedScenario, type Seeded } from './helpers/recognition-data.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { signInWithToken } from './helpers/webapp.ts';

let s: TestServer;
let browser: Browser;
let seeded: Seeded;

test.before(async () => {
  s = await startTestServer({ provenance: testProvenanceConfig() });
  seeded = await seedScenario(s);
  const run = await s.huren.provenance.anchorNow();
  if (run.failed !== 0) throw new Error(`anchoring failed for ${run.failed} reports`);
  browser = await launch();
});
test.after.always(async () => {
  await browser?.close();
  await s?.close();
});

async function setting(change?: { enabled: boolean; statuses?: string[] }): Promise<any> {
  const res = await fetch(`${s.huren.url}/api/settings/hash-badge`, {
    method: change ? 'PUT' : 'GET',
    headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
    ...(change ? { body: JSON.stringify(change) } : {}),
  });
  if (res.status !== 200) throw new Error(`hash-badge ${res.status} ${await res.text()}`);
  return res.json();
}

const status = async (report: string) =>
  (await s.huren.db.query<{ status: string }>('SELECT status FROM report_version WHERE report_id = $1 AND current', [report]))[0]?.status;

test.serial('the badge shows on a consistent report while the setting is on, and not when it is off', async (t) => {
  t.is(await status(seeded.report.fresh!), 'consistent');
  t.not(await status(seeded.report.amended!), 'consistent');
  t.like(await setting(), { enabled: true, statuses: ['consistent'] });
  const w = await openPage(browser);
  const requester = `requester=Organization/${seeded.org['req-gz']}`;
  await signInWithToken(w, s, `/reports/${seeded.report.fresh}?${requester}`);
  await w.page.waitForSelector('[data-test=days]');
  t.is((await (await w.page.waitForSelector('[data-test=badge]')).textContent())?.trim(), '哈希一致');
  // a report that is not consistent: no badge with the setting on
  await w.page.goto(`${s.huren.url}/app/reports/${seeded.report.amended}?${requester}`);
  await w.page.waitForSelector('[data-test=days]');
  t.is(await w.page.$('[data-test=badge]'), null);
  // off: the consistent report shows no badge
  t.like(await setting({ enabled: false }), { enabled: false });
  await w.page.goto(`${s.huren.url}/app/reports/${seeded.report.fresh}?${requester}`);
  await w.page.waitForSelector('[data-test=days]');
  await w.page.waitForSelector('[data-test=title]');
  t.is(await w.page.$('[data-test=badge]'), null, 'no badge with the setting off');
  // on again: back
  await setting({ enabled: true, statuses: ['consistent'] });
  await w.page.reload();
  await w.page.waitForSelector('[data-test=badge]');
  t.deepEqual(w.errors, []);
  await w.page.context().close();
});
