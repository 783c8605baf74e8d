/**
 * The monitoring app's 数据分析简报 page and the security administrator's 接入客户端 page (issue 14), in a real
 * Chromium and through their APIs: the briefings the platform made (DocumentReference/$monitoring-briefing) are
 * listed as GET /api/monitoring/briefings has them, a PDF downloads with the bytes the API serves and the HTML
 * opens; the registered HIS and CDS clients (GET /api/clients) show with their institution, scopes and key ids,
 * never a secret, to the security administrator only. Screenshots at 1920×1080 go to docs/screenshots/.
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import { exportJWK, generateKeyPair } from 'jose';
import type { Browser } from 'playwright-core';
import { loadAccountsConfig } from '../server/accounts/config.ts';
import { launch, openPage, screenshot } from './helpers/browser.ts';
import { startTestServer, storeKind, type TestServer } from './helpers/server.ts';
import { AccountClock, accountsApi, openAs, ready } from './helpers/webapp.ts';

let s: TestServer;
let browser: Browser;
const clock = new AccountClock();
const shots = storeKind() === 'pglite';
const ORG = 'web-clients-hospital';
const ORG_BY_IDENTIFIER = 'web-clients-clinic';
const IDENTIFIER = 'https://fhir.huren.gz.cn/NamingSystem/uscc|12440100WEBCLINIC';
/** The private part of a key wrongly registered with it: must never appear in an answer. */
let privateD = '';

test.before(async () => {
  process.env.HUREN_MONITORING_CRON = 'off';
  const a = await generateKeyPair('ES384', { extractable: true });
  const b = await generateKeyPair('ES384', { extractable: true });
  const wrong = await exportJWK(b.privateKey);
  privateD = wrong.d!;
  s = await startTestServer({
    accounts: { ...loadAccountsConfig({}), now: clock.now },
    clients: [
      {
        clientId: 'his-web-a',
        organization: `Organization/${ORG}`,
        scope: 'system/DiagnosticReport.cruds system/Observation.cruds system/Patient.rs',
        jwks: { keys: [{ ...(await exportJWK(a.publicKey)), kid: 'his-web-a-2026', alg: 'ES384' }, { ...wrong, kid: 'his-web-a-old', alg: 'ES384' }] },
      },
      { clientId: 'his-web-b', organization: `Organization?identifier=${IDENTIFIER}`, scope: 'system/*.rs', jwksUrl: 'https://his-b.example/.well-known/jwks.json' },
    ],
    cdsClients: [{ iss: 'https://cds.unknown-hospital.example', organization: 'Organization/not-registered-here', jwks: { keys: [{ ...(await exportJWK(a.publicKey)), kid: 'cds-1' }] } }],
  });
  const put = async (resource: any) => {
    const res = await s.fhir(`${resource.resourceType}/${resource.id}`, { method: 'PUT', json: resource });
    if (res.status >= 300) throw new Error(`PUT ${resource.resourceType}: ${res.status} ${await res.text()}`);
  };
  await put({ resourceType: 'Organization', id: ORG, name: '客户端测试医院' });
  const [system, value] = IDENTIFIER.split('|');
  await put({ resourceType: 'Organization', id: ORG_BY_IDENTIFIER, name: '客户端测试诊所', identifier: [{ system, value }] });
  // two briefings: the city's last complete month, a district's last complete week
  for (const query of ['kind=month', 'kind=week&area=440106']) {
    const res = await s.fhir(`DocumentReference/$monitoring-briefing?${query}`);
    if (res.status !== 200) throw new Error(`$monitoring-briefing ${query}: ${res.status} ${await res.text()}`);
  }
  browser = await launch();
});
test.after.always(async () => {
  await browser?.close();
  await s?.close();
});

const asUser = (token: string | null, path: string) => accountsApi(s, path, { token });

const EXPECTED_CLIENTS = [
  {
    kind: 'backend',
    clientId: 'his-web-a',
    institution: { reference: `Organization/${ORG}`, organization: `Organization/${ORG}`, name: '客户端测试医院' },
    scopes: ['system/DiagnosticReport.cruds', 'system/Observation.cruds', 'system/Patient.rs'],
    keys: [
      { kid: 'his-web-a-2026', kty: 'EC', alg: 'ES384', crv: 'P-384' },
      { kid: 'his-web-a-old', kty: 'EC', alg: 'ES384', crv: 'P-384', privatePartRegistered: true },
    ],
  },
  {
    kind: 'backend',
    clientId: 'his-web-b',
    institution: { reference: `Organization?identifier=${IDENTIFIER}`, organization: `Organization/${ORG_BY_IDENTIFIER}`, name: '客户端测试诊所' },
    scopes: ['system/*.rs'],
    keys: [],
    jwksUrl: 'https://his-b.example/.well-known/jwks.json',
  },
  { kind: 'cds', clientId: 'https://cds.unknown-hospital.example', institution: { reference: 'Organization/not-registered-here' }, scopes: ['cds-hooks'], keys: [{ kid: 'cds-1', kty: 'EC', crv: 'P-384' }] },
];

test.serial('GET /api/clients: the registered HIS and CDS clients with institution, scopes and key ids — no secret — for the security administrator only', async (t) => {
  const security = await ready(s, clock, ['security-admin']);
  const answer = await asUser(security.token, '/api/clients');
  t.is(answer.status, 200);
  t.deepEqual(answer.body, { total: 3, clients: EXPECTED_CLIENTS });
  const text = JSON.stringify(answer.body);
  t.false(text.includes(privateD), 'the private part registered by mistake is not in the answer');
  t.false(/"(d|x|y|n|e|k)"\s*:/.test(text), 'no key material at all, only its ids');
  // the platform token (the operator) may read it too; every other role, an institution client, nobody: refused
  t.is((await asUser(s.token, '/api/clients')).status, 200);
  for (const roles of [['audit-admin'], ['commission-admin'], ['system-admin']]) {
    const other = await ready(s, clock, roles);
    const refused = await asUser(other.token, '/api/clients');
    t.is(refused.status, 403, roles[0]);
    t.is(refused.body.code, 'forbidden');
    t.false(JSON.stringify(refused.body).includes('his-web-a'));
  }
  const doctor = await ready(s, clock, ['doctor'], `Organization/${ORG}`);
  t.is((await asUser(doctor.token, '/api/clients')).status, 403);
  t.is((await asUser(null, '/api/clients')).status, 401);
  t.true([404, 405].includes((await accountsApi(s, '/api/clients', { token: security.token, method: 'POST', json: {} })).status), 'read only: no write');
});

test.serial('接入客户端: the security administrator’s page under 用户与权限 shows the clients as the API lists them', async (t) => {
  const security = await ready(s, clock, ['security-admin']);
  const api = (await asUser(security.token, '/api/clients')).body;
  const w = await openPage(browser);
  await openAs(w, s, security, '/users');
  await w.page.waitForSelector('[data-test=accounts] tbody tr');
  await w.page.click('[data-test=to-clients]');
  await w.page.waitForURL(/\/app\/users\/clients/);
  await w.page.waitForSelector('[data-test=clients] tbody tr');
  t.regex((await w.page.textContent('.el-menu-item.is-active')) ?? '', /用户与权限/, 'the menu keeps 用户与权限');
  const rows = await w.page.$$eval('[data-test=clients] tbody tr', (trs) =>
    trs.map((tr) => ({
      id: tr.querySelector('[data-test=client-id]')?.textContent?.trim(),
      institution: tr.querySelector('[data-test=institution]')?.textContent?.trim(),
      scopes: [...tr.querySelectorAll('[data-test=scope]')].map((x) => x.textContent?.trim()),
      keys: [...tr.querySelectorAll('[data-test=key]')].map((x) => x.textContent?.trim()),
      url: tr.querySelector('[data-test=jwks-url]')?.textContent?.trim(),
    }))
  );
  t.deepEqual(
    rows.map((r) => r.id),
    api.clients.map((c: any) => c.clientId)
  );
  for (const [i, c] of (api.clients as any[]).entries()) {
    t.is(rows[i].institution, c.institution.name ?? '（平台未登记该机构）');
    t.deepEqual(rows[i].scopes, c.kind === 'cds' ? ['CDS Hooks 调用（互认检查）'] : c.scopes);
    t.deepEqual(
      rows[i].keys.map((k) => k?.split(' · ')[0]),
      c.keys.map((k: any) => k.kid)
    );
    t.is(rows[i].url, c.jwksUrl ? `公钥地址：${c.jwksUrl}` : undefined);
  }
  t.regex(rows[0].keys[1] ?? '', /登记中含私钥部分/, 'the key registered with its private part is flagged');
  t.false(((await w.page.textContent('body')) ?? '').includes(privateD));
  if (shots) await screenshot(w.page, 'clients');
  await w.page.click('[data-test=to-accounts]');
  await w.page.waitForURL(/\/app\/users$/);
  t.deepEqual(w.errors, []);
  await w.page.context().close();
});

test.serial('GET /api/monitoring/briefings: the commission administrator reads the briefings and their files; an institution’s roles may not', async (t) => {
  const commission = await ready(s, clock, ['commission-admin']);
  const list = await asUser(commission.token, '/api/monitoring/briefings');
  t.is(list.status, 200);
  t.deepEqual(list.body, (await asUser(s.token, '/api/monitoring/briefings')).body, 'the same list as the platform’s');
  t.is(list.body.total, 2);
  t.deepEqual(list.body.briefings.map((b: any) => [b.kind, b.area]).sort(), [['month', '440100'], ['week', '440106']]);
  const html = await fetch(`${s.huren.url}${list.body.briefings[0].files[0].url}`, { headers: { authorization: `Bearer ${commission.token}` } });
  t.is(html.status, 200);
  // the role reads the briefings through this API only: the FHIR DocumentReference type stays closed to it
  t.is((await asUser(commission.token, `/fhir/${list.body.briefings[0].document}`)).status, 403);
  const admin = await ready(s, clock, ['institution-admin'], `Organization/${ORG}`);
  t.is((await asUser(admin.token, '/api/monitoring/briefings')).status, 403);
  const auditor = await ready(s, clock, ['audit-admin']);
  t.is((await asUser(auditor.token, '/api/monitoring/briefings')).status, 403);
  t.is((await asUser(auditor.token, list.body.briefings[0].files[0].url)).status, 403);
  t.is((await asUser(null, '/api/monitoring/briefings')).status, 401);
});

test.serial('数据分析简报: the page lists the briefings the API returns; the PDF downloads with the API’s bytes; the HTML opens', async (t) => {
  const commission = await ready(s, clock, ['commission-admin']);
  const api = (await asUser(commission.token, '/api/monitoring/briefings')).body;
  const w = await openPage(browser);
  await openAs(w, s, commission, '/briefings');
  await w.page.waitForSelector('[data-test=briefings] tbody tr');
  const shown = await w.page.$$eval('[data-test=briefings] tbody tr', (trs) => trs.map((tr) => ({ title: tr.querySelector('td')?.textContent?.trim(), period: tr.querySelector('[data-test=period]')?.textContent?.trim() })));
  t.deepEqual(
    shown,
    api.briefings.map((b: any) => ({ title: b.title, period: b.period }))
  );
  if (shots) await screenshot(w.page, 'briefings');
  // the PDF of the first (newest period) briefing
  const pdf = api.briefings[0].files.find((f: any) => f.contentType === 'application/pdf');
  t.truthy(pdf, 'the server printed a PDF (Chromium is installed)');
  const [download] = await Promise.all([w.page.waitForEvent('download'), w.page.locator('[data-test=briefings] tbody tr').first().locator('[data-test=download-pdf]').click()]);
  t.is(download.suggestedFilename(), `${api.briefings[0].document.split('/')[1]}.pdf`);
  const bytes = readFileSync((await download.path())!);
  const served = Buffer.from(await (await fetch(`${s.huren.url}${pdf.url}`, { headers: { authorization: `Bearer ${commission.token}` } })).arrayBuffer());
  t.is(bytes.subarray(0, 5).toString('latin1'), '%PDF-');
  t.true(bytes.equals(served), 'the downloaded file is the API’s PDF');
  t.is(bytes.length, pdf.size);
  // the HTML opens in a new window with the briefing's title
  const [popup] = await Promise.all([w.page.context().waitForEvent('page'), w.page.locator('[data-test=briefings] tbody tr').first().locator('[data-test=open-html]').click()]);
  await popup.waitForURL(/^blob:/);
  await popup.waitForLoadState();
  t.true(((await popup.textContent('body')) ?? '').includes(api.briefings[0].title.split('（')[0].slice(0, 6)), 'the briefing’s HTML is shown');
  // the filter by kind keeps the weekly briefing only
  await w.page.click('[data-test=kind]');
  await w.page.click('.el-select-dropdown__item:has-text("周报")');
  await w.page.waitForFunction(() => document.querySelectorAll('[data-test=briefings] tbody tr').length === 1);
  t.is(await w.page.textContent('[data-test=briefings] tbody tr [data-test=period]'), api.briefings.find((b: any) => b.kind === 'week').period);
  t.deepEqual(w.errors, []);
  await w.page.context().close();
});
