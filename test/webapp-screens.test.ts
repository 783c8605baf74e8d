/**
 * The monitoring app's big screen (大屏) and data-quality pages (数据质控) in a real Chromium against a real
 * server with generated data: the numbers shown equal those the API returns, a new upload moves the big screen's
 * counter through the live stream, improvement requests are sent and closed from the institution's page, the
 * district map's GeoJSON carries the platform's district codes, and no page logs a console error. Screenshots go
 * to docs/screenshots/ for docs/app.md.
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import type { Browser } from 'playwright-core';
import { launch, openPage, screenshot, type WatchedPage } from './helpers/browser.ts';
import { ORG_ID, reportEntries, seedScenario, transaction, CATALOGUE, ITEM, type Seeded } from './helpers/recognition-data.ts';
import { startTestServer, storeKind, type TestServer } from './helpers/server.ts';
import { signInWithToken } from './helpers/webapp.ts';
import { loadProvenanceConfig } from '../server/provenance/config.ts';

let s: TestServer;
let browser: Browser;
let seeded: Seeded;
const shots = storeKind() === 'pglite';

const GUANGZHOU: Record<string, string> = {
  '440103': '荔湾区',
  '440104': '越秀区',
  '440105': '海珠区',
  '440106': '天河区',
  '440111': '白云区',
  '440112': '黄埔区',
  '440113': '番禺区',
  '440114': '花都区',
  '440115': '南沙区',
  '440117': '从化区',
  '440118': '增城区',
};

const day = (offset = 0) => new Date(Date.now() + 8 * 3_600_000 + offset * 86_400_000).toISOString().slice(0, 10);

test.before(async () => {
  // no schedules: the figures the page shows and those the test reads afterwards come from the same data
  const provenance = { ...loadProvenanceConfig({}), anchorCron: undefined, sweepCron: undefined, deepSweepCron: undefined, statisticsCron: undefined };
  process.env.HUREN_MONITORING_CRON = 'off'; // the monitoring module reads its settings from the environment
  s = await startTestServer({ provenance });
  seeded = await seedScenario(s);
  // recognition activity: a check by a Guangzhou requester with a recognised decision, one by the Foshan requester
  for (const requester of ['req-gz', 'req-fs']) {
    const res = await s.fhir(`Patient/${seeded.patient}/$recognition-check?requester=Organization/${seeded.org[requester]}&code=${ITEM.potassium}`);
    const body = await res.json();
    if (res.status !== 200) throw new Error(`check ${res.status} ${JSON.stringify(body)}`);
    const reminder = body.parameter.find((p: any) => p.name === 'reminder')?.valueReference?.reference;
    if (reminder && requester === 'req-gz') {
      const decided = await s.fhir(`${reminder}/$decide`, {
        method: 'POST',
        json: { resourceType: 'Parameters', parameter: [{ name: 'decision', valueCode: 'recognised' }, { name: 'report', valueReference: { reference: `DiagnosticReport/${seeded.report.fresh}` } }] },
      });
      if (decided.status !== 200) throw new Error(`decide ${decided.status} ${await decided.text()}`);
    }
  }
  // alerts: judged two hours from now (the seeded reports were issued days before they were received: late)
  const evaluated = await s.fhir(`Measure/$evaluate-monitoring?at=${encodeURIComponent(new Date(Date.now() + 2 * 3_600_000).toISOString())}`);
  if (evaluated.status !== 200) throw new Error(`evaluate ${evaluated.status} ${await evaluated.text()}`);
  browser = await launch();
});
test.after.always(async () => {
  await browser?.close();
  await s?.close();
});

const app = (path: string) => `${s.huren.url}/app${path}`;
async function api<T = any>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(`${s.huren.url}/api/${path}`, { ...init, headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json', ...(init.headers as Record<string, string>) } });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** The operator's platform token (the sign-in page's second tab): these pages' figures, not the accounts. */
const signIn = (w: WatchedPage, next: string) => signInWithToken(w, s, next);

const text = async (w: WatchedPage, selector: string) => ((await w.page.textContent(selector)) ?? '').trim();
const pct = (part: number, whole: number) => (whole ? `${Math.round((part / whole) * 1000) / 10}%` : '—');

/** What the big screen should show, computed here from the API's own answers. */
async function expectedScreen() {
  const to = day();
  const monthStart = `${to.slice(0, 8)}01`;
  const from = [day(-29), monthStart].sort()[0];
  const city = await api(`monitoring/usage?scope=city&from=${from}&to=${to}`);
  const district = await api(`monitoring/usage?scope=district&from=${day(-29)}&to=${to}`);
  const overview = await api('monitoring/overview');
  const chain = await api(`statistics/chain?from=${day(-29)}&to=${to}`);
  const sum = (rows: any[]) => ({
    uploads: rows.reduce((n, r) => n + r.usage['lab-reports'] + r.usage['exam-reports'], 0),
    checks: rows.reduce((n, r) => n + r.usage.checks, 0),
    recognitions: rows.reduce((n, r) => n + r.usage.recognised, 0),
  });
  const cityRows = city.rows.filter((r: any) => r.key === '440100');
  const rates: Record<string, string> = {};
  const levels: Record<string, number | null> = {};
  for (const code of Object.keys(GUANGZHOU)) {
    const rows = district.rows.filter((r: any) => r.key === code);
    const rec = rows.reduce((n: number, r: any) => n + r.usage.recognised, 0);
    const not = rows.reduce((n: number, r: any) => n + r.usage['not-recognised'], 0);
    rates[code] = pct(rec, rec + not);
    const here = overview.institutions.filter((i: any) => i.district === code);
    levels[code] = here.length ? Math.max(...here.map((i: any) => i.level)) : null;
  }
  return {
    today: sum(cityRows.filter((r: any) => r.day === to)),
    month: sum(cityRows.filter((r: any) => r.day >= monthStart)),
    onChain: pct(chain.totals['anchored-institution'] + chain.totals['anchored-platform'], chain.totals.received),
    consistency: pct(chain.totals.consistent, chain.totals.received),
    alerting: overview.institutions.filter((i: any) => i.level > 0).map((i: any) => i.institution).sort(),
    foshan: sum(district.rows.filter((r: any) => r.key.startsWith('4406'))),
    rates,
    levels,
  };
}

async function shownScreen(w: WatchedPage) {
  const n = async (name: string) => Number(await text(w, `[data-test=${name}]`));
  return {
    today: { uploads: await n('today-uploads'), checks: await n('today-checks'), recognitions: await n('today-recognitions') },
    month: { uploads: await n('month-uploads'), checks: await n('month-checks'), recognitions: await n('month-recognitions') },
    onChain: await text(w, '[data-test=onchain-share]'),
    consistency: await text(w, '[data-test=consistency-rate]'),
    alerting: (await w.page.$$eval('[data-test=alerts] li[data-institution]', (li) => li.map((l) => l.getAttribute('data-institution') ?? ''))).sort(),
  };
}

test('the district map ships Guangzhou’s 11 districts with the GB/T 2260 codes the platform stores', (t) => {
  const geo = JSON.parse(readFileSync(new URL('../web/src/assets/guangzhou-districts.json', import.meta.url), 'utf8'));
  t.is(geo.type, 'FeatureCollection');
  t.deepEqual(Object.fromEntries(geo.features.map((f: any) => [f.properties.adcode, f.properties.name])), GUANGZHOU);
  for (const f of geo.features) {
    t.true(['Polygon', 'MultiPolygon'].includes(f.geometry.type));
    const points = JSON.stringify(f.geometry.coordinates).match(/\[1\d\d\.\d+,2\d\.\d+\]/g) ?? [];
    t.true(points.length > 100, `${f.properties.name} is a real outline, not a box`);
    for (const p of points) {
      const [lon, lat] = JSON.parse(p) as number[];
      t.true(lon > 112.9 && lon < 114.1 && lat > 22.5 && lat < 23.95, `${f.properties.name} lies in Guangzhou`);
    }
  }
  // the app's district names are those of the map
  const source = readFileSync(new URL('../web/src/monitoring.ts', import.meta.url), 'utf8');
  for (const [code, name] of Object.entries(GUANGZHOU)) t.regex(source, new RegExp(`'${code}': '${name}'`));
});

test.serial('the big screen shows the figures the API returns: today, this month, the chain, the districts, the alerts, Foshan', async (t) => {
  const w = await openPage(browser);
  await signIn(w, '/screen');
  await w.page.waitForSelector('[data-test=big-screen][data-loaded=yes]');
  await w.page.waitForSelector('[data-test=live].on');
  const expected = await expectedScreen();
  const shown = await shownScreen(w);
  t.deepEqual(shown, { today: expected.today, month: expected.month, onChain: expected.onChain, consistency: expected.consistency, alerting: expected.alerting });
  t.true(expected.today.uploads > 0 && expected.today.checks > 0 && expected.today.recognitions > 0, 'the generated data gives non-zero figures');
  t.true(expected.alerting.length > 0, 'some institutions have active alerts');
  const rates = Object.fromEntries(await w.page.$$eval('[data-test=districts] li', (li) => li.map((l) => [l.getAttribute('data-code'), l.querySelector('b')?.textContent?.trim()])));
  t.deepEqual(rates, expected.rates);
  t.true(Object.values(expected.rates).some((r) => r !== '—'), 'a district has a recognition rate');
  t.deepEqual({ uploads: Number(await text(w, '[data-test=foshan-uploads]')), checks: Number(await text(w, '[data-test=foshan-checks]')) }, { uploads: expected.foshan.uploads, checks: expected.foshan.checks });
  t.true(expected.foshan.checks > 0, 'the Foshan requester’s check is counted');
  t.regex(await text(w, '[data-test=month-saving]'), /未计算/);
  t.true(await w.page.locator('[data-test=map] canvas').count() > 0, 'the map is drawn');
  if (shots) await screenshot(w.page, 'big-screen');
  await w.page.click('[data-test=colour-by] label:nth-child(2)');
  await w.page.waitForSelector('[data-test=district-level]');
  const levels = Object.fromEntries(await w.page.$$eval('[data-test=districts] li', (li) => li.map((l) => [l.getAttribute('data-code'), l.querySelector('b')?.textContent?.trim()])));
  const NAMES = ['正常', '一级', '二级', '三级', '四级'];
  t.deepEqual(levels, Object.fromEntries(Object.entries(expected.levels).map(([c, l]) => [c, l === null ? '—' : NAMES[l]])));
  t.true(Object.values(expected.levels).includes(null) && Object.values(expected.levels).some((l) => l !== null && l > 0), 'districts without institutions and with alerts');
  await w.page.waitForTimeout(500); // the switch's transition, for the picture
  if (shots) await screenshot(w.page, 'big-screen-alerts');
  t.deepEqual(w.errors, []);
  await w.page.context().close();
});

test.serial('a new upload moves the big screen’s counter through the live stream within 2 s', async (t) => {
  const w = await openPage(browser);
  await signIn(w, '/screen');
  await w.page.waitForSelector('[data-test=big-screen][data-loaded=yes]');
  await w.page.waitForSelector('[data-test=live].on');
  const before = Number(await text(w, '[data-test=today-uploads]'));
  const monthBefore = Number(await text(w, '[data-test=month-uploads]'));
  await transaction(
    s,
    reportEntries(`Patient/${seeded.patient}`, { key: `live-${Date.now()}`, org: (await orgKey(seeded.org.city)) ?? '', code: { system: CATALOGUE, code: ITEM.sodium, display: '钠' }, issued: new Date().toISOString() })
  );
  // the 60 s poll cannot be what moves it: only the stream's event (the settling reload follows 1.5 s later)
  await w.page.waitForFunction((n) => Number(document.querySelector('[data-test=today-uploads]')?.textContent) === n + 1, before, { timeout: 2_000 });
  t.is(Number(await text(w, '[data-test=month-uploads]')), monthBefore + 1);
  // and once the reload has settled, the figure is the API's
  await w.page.waitForTimeout(2_500);
  await w.page.waitForSelector('[data-test=big-screen][data-loaded=yes]');
  t.is(Number(await text(w, '[data-test=today-uploads]')), (await expectedScreen()).today.uploads);
  t.deepEqual(w.errors, []);
  await w.page.context().close();
});

/** The identifier value of an Organization (reportEntries names the performer by identifier). */
async function orgKey(id: string): Promise<string | undefined> {
  const org = await (await s.fhir(`Organization/${id}`)).json();
  return org.identifier?.find((i: any) => i.system === ORG_ID)?.value;
}

test.serial('the QC page lists every institution with the levels the API returns, filters by district and level, sorts', async (t) => {
  const w = await openPage(browser);
  await signIn(w, '/quality');
  await w.page.waitForSelector('[data-test=quality-table] tbody tr');
  const overview = await api('monitoring/overview');
  const levelOf = (i: any, m: string) => Math.max(0, ...i.alerts.filter((a: any) => a.monitor === m).map((a: any) => a.level));
  const expected = Object.fromEntries(overview.institutions.map((i: any) => [i.institution, [levelOf(i, 'interruption'), levelOf(i, 'recognition-disabled'), levelOf(i, 'timeliness'), i.level]]));
  const shown = async () =>
    Object.fromEntries(
      await w.page.$$eval('[data-test=quality-table] tbody tr', (rows) =>
        rows.map((r) => [
          r.querySelector('a[data-institution]')?.getAttribute('data-institution'),
          ['interruption', 'disabled', 'timeliness', 'level'].map((k) => Number(r.querySelector(`[data-test=${k}]`)?.getAttribute('data-level'))),
        ])
      )
    );
  t.deepEqual(await shown(), expected);
  t.true(Object.values(expected).some((l: any) => l[3] > 0), 'the generated data raised alerts');
  t.true(Object.values(expected).some((l: any) => l[2] > 0), 'a timeliness alert is among them');
  await w.page.waitForFunction(() => !document.querySelector('.el-loading-mask'));
  if (shots) await screenshot(w.page, 'quality');

  // filter by district (越秀区 holds the first hospital)
  await w.page.click('[data-test=filter-district]');
  await w.page.click('.el-select-dropdown__item:has-text("越秀区")');
  await w.page.waitForFunction(() => document.querySelectorAll('[data-test=quality-table] tbody tr').length > 0);
  const inYuexiu = overview.institutions.filter((i: any) => i.district === '440104').map((i: any) => i.institution).sort();
  t.deepEqual(Object.keys(await shown()).sort(), inYuexiu);
  // afresh, filter by the highest level present
  await w.page.reload();
  await w.page.waitForSelector('[data-test=quality-table] tbody tr');
  const top = Math.max(...overview.institutions.map((i: any) => i.level));
  await w.page.click('[data-test=filter-level]');
  await w.page.click(`.el-select-dropdown__item:has-text("${['正常', '一级', '二级', '三级', '四级'][top]}") >> visible=true`);
  await w.page.waitForFunction((n) => document.querySelectorAll('[data-test=quality-table] tbody tr').length === n, overview.institutions.filter((i: any) => i.level === top).length);
  t.deepEqual(Object.keys(await shown()).sort(), overview.institutions.filter((i: any) => i.level === top).map((i: any) => i.institution).sort());
  await w.page.reload();
  await w.page.waitForFunction((n) => document.querySelectorAll('[data-test=quality-table] tbody tr').length === n, overview.institutions.length);
  // sort by timeliness, ascending
  await w.page.click('[data-test=quality-table] th:has-text("及时性") .sort-caret.ascending');
  const order = (await shown()) as Record<string, number[]>;
  const timeliness = Object.values(order).map((l) => l[2]);
  t.deepEqual(timeliness, [...timeliness].sort((a, b) => a - b));
  t.deepEqual(w.errors, []);
  await w.page.context().close();
});

test.serial('an institution’s page: its alerts, charts and late reports as the API has them; an improvement request sent, followed and closed', async (t) => {
  const overview = await api('monitoring/overview');
  const target = overview.institutions.filter((i: any) => i.level > 0).sort((a: any, b: any) => b.alerts.length - a.alerts.length)[0];
  const id = target.institution.replace('Organization/', '');
  const w = await openPage(browser);
  await signIn(w, `/quality/${id}`);
  await w.page.waitForSelector('[data-test=alerts] tbody tr');
  t.is(await text(w, '[data-test=institution-name]'), target.name);
  t.is(await w.page.locator('[data-test=alerts] tbody tr').count(), target.alerts.length);
  const late = await api(`monitoring/late?from=${day(-29)}&to=${day()}&institution=${encodeURIComponent(target.institution)}`);
  t.true(late.reports.length > 0, 'the seeded reports were received days after they were issued');
  t.is(await w.page.locator('[data-test=late] tbody tr').count(), late.reports.length);
  t.true((await w.page.locator('[data-test=level-history] canvas').count()) > 0 && (await w.page.locator('[data-test=usage-history] canvas').count()) > 0, 'the history charts are drawn');

  // send an improvement request for the first alert
  await w.page.click('[data-test=ask] >> nth=0');
  await w.page.fill('textarea[data-test=request-description]', '请于一周内核查上传接口并补传');
  await w.page.click('[data-test=send]');
  await w.page.waitForSelector('[data-test=requests] [data-task]');
  const requests = (await api('monitoring/requests')).requests.filter((r: any) => r.institution === target.institution);
  t.is(requests.length, 1);
  t.is(requests[0].description, '请于一周内核查上传接口并补传');
  t.is(requests[0].status, 'requested');
  t.is(requests[0].alert, target.alerts[0].flag);
  t.is(await text(w, `[data-task="${requests[0].task}"] [data-test=request-status]`), '已下发');
  await w.page.waitForFunction(() => !document.querySelector('.el-loading-mask'));
  if (shots) await screenshot(w.page, 'institution');

  // the platform closes it (cancels the open request)
  const task = requests[0].task.replace('Task/', '');
  await w.page.click(`[data-task="${requests[0].task}"] [data-test=close]`);
  await w.page.waitForFunction((t) => document.querySelector(`[data-task="${t}"] [data-test=request-status]`)?.textContent?.trim() === '已撤销', requests[0].task);
  t.is((await api('monitoring/requests')).requests.find((r: any) => r.task === `Task/${task}`).status, 'cancelled');
  t.falsy(await w.page.$(`[data-task="${requests[0].task}"] [data-test=close]`), 'a closed request offers no close');
  t.deepEqual(w.errors, []);
  await w.page.context().close();
});

test('an institution id the API refuses shows a Chinese error on its page', async (t) => {
  const w = await openPage(browser);
  await signIn(w, '/quality/bad!id');
  await w.page.waitForSelector('[data-test=error]');
  t.regex(await text(w, '[data-test=error]'), /请求有误/);
  t.deepEqual(w.errors.filter((e) => !/400/.test(e)), []);
  await w.page.context().close();
});

test('the report viewer carries the patient’s health-record summary from the API', async (t) => {
  const w = await openPage(browser);
  const requester = `Organization/${seeded.org['req-gz']}`;
  await signIn(w, `/reports/${seeded.report.cbc}?requester=${encodeURIComponent(requester)}`);
  await w.page.waitForSelector('[data-test=summary-section]');
  // the platform offers Patient/$summary: the viewer shows its document's sections, as the API gives them
  const doc = await (await s.fhir(`Patient/${seeded.patient}/$summary?requester=${requester}`)).json();
  const composition = doc.entry[0].resource;
  const titles = composition.section.map((x: any) => x.title);
  t.true(titles.length > 0);
  t.deepEqual(await w.page.locator('[data-test=summary-section] strong').allTextContents(), titles);
  const withEntries = composition.section.filter((x: any) => (x.entry ?? []).length > 0);
  t.true(withEntries.length > 0, 'the patient has results in the summary');
  t.deepEqual(w.errors, []);
  await w.page.context().close();
});

test('the report viewer marks a high result, the HR mark and the days of validity left as $view gives them', async (t) => {
  const w = await openPage(browser);
  const requester = `Organization/${seeded.org['req-gz']}`;
  await signIn(w, `/reports/${seeded.report.fresh}?requester=${encodeURIComponent(requester)}`);
  await w.page.waitForSelector('[data-test=observations] tbody tr');
  const view = await (await s.fhir(`DiagnosticReport/${seeded.report.fresh}/$view?requester=${requester}`)).json();
  const value = (name: string) => view.parameter.find((p: any) => p.name === name);
  const [observation] = view.parameter.filter((p: any) => p.name === 'observation').map((p: any) => p.resource);
  t.is(await text(w, `[data-test=flag-${observation.id}]`), '偏高 ↑');
  t.is(await w.page.locator('[data-test=observations] tr.abnormal').count(), 1);
  t.is(await text(w, '[data-test=hr-mark]'), value('hrMark').valueString);
  t.true(value('recognisable').valueBoolean);
  t.is(await text(w, '[data-test=days]'), `可互认 · 剩余 ${value('daysRemaining').valueInteger} 天`);
  // without a requester the viewer says it did not judge
  await w.page.goto(app(`/reports/${seeded.report.fresh}`));
  await w.page.waitForSelector('[data-test=observations] tbody tr');
  t.regex(await text(w, '[data-test=days]'), /未判定互认/);
  t.deepEqual(w.errors, []);
  await w.page.context().close();
});

test('the app’s scripts are sent gzip-compressed to a client that accepts it, and plain to one that does not', async (t) => {
  const html = await (await fetch(app('/screen'))).text();
  const asset = /src="(\/app\/assets\/[^"]+\.js)"/.exec(html)?.[1] as string;
  const { request } = await import('node:http');
  const get = (encoding: string) =>
    new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      request(`${s.huren.url}${asset}`, { headers: { 'accept-encoding': encoding } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
      })
        .on('error', reject)
        .end();
    });
  const plain = await get('identity');
  const zipped = await get('gzip, deflate, br');
  t.is(plain.headers['content-encoding'], undefined);
  t.is(zipped.headers['content-encoding'], 'gzip');
  t.regex(String(zipped.headers.vary), /Accept-Encoding/i);
  const { gunzipSync } = await import('node:zlib');
  t.deepEqual(gunzipSync(zipped.body), plain.body);
  t.true(zipped.body.length < plain.body.length / 2);
  t.regex(String(zipped.headers['cache-control']), /immutable/);
});
