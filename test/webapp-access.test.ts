/**
 * The monitoring app's sign-in and administration pages in a real Chromium (issue 14): sign-in with password
 * and a TOTP code (enrolment on the first sign-in, generated here with otplib), the forced password change,
 * the lockout message, idle expiry and sign-out back to the sign-in page with a message; the menu and the
 * pages by role, and the server refusing the data to a role without the right; the 用户与权限, 审计日志, 设置
 * and 字典质控 pages showing what the API holds. No console errors on any of them. Screenshots at 1920×1080
 * go to docs/screenshots/ for docs/app.md.
 */
import test from 'ava';
import type { Browser } from 'playwright-core';
import { launch, openPage, screenshot, type WatchedPage } from './helpers/browser.ts';
import { AccountClock, accountsApi, createAccount, INITIAL_PASSWORD, openAs, ready } from './helpers/webapp.ts';
import { startTestServer, storeKind, type TestServer } from './helpers/server.ts';
import { loadAccountsConfig } from '../server/accounts/config.ts';
import { platformCode } from '../server/terminology/catalogue-source.ts';

let s: TestServer;
let browser: Browser;
const clock = new AccountClock();
const shots = storeKind() === 'pglite';
const ORG = 'web-hospital-a';
const MAP = 'web-hospital-a-items';
const OTHER = 'web-hospital-b';
const CATALOGUE = 'https://fhir.huren.gz.cn/CodeSystem/recognition-catalogue';
const LOCAL = 'http://lis.web-hospital-a.example/items';

test.before(async () => {
  s = await startTestServer({ accounts: { ...loadAccountsConfig({}), now: clock.now } });
  const put = async (resource: any) => {
    const res = await s.fhir(`${resource.resourceType}/${resource.id}`, { method: 'PUT', json: resource });
    if (res.status >= 300) throw new Error(`PUT ${resource.resourceType}: ${res.status} ${await res.text()}`);
  };
  await put({ resourceType: 'Organization', id: ORG, name: '网页测试医院' });
  await put({ resourceType: 'Organization', id: OTHER, name: '另一家医院' });
  await put({
    resourceType: 'ConceptMap',
    id: MAP,
    url: 'http://lis.web-hospital-a.example/ConceptMap/items',
    status: 'active',
    useContext: [{ code: { system: 'http://terminology.hl7.org/CodeSystem/usage-context-type', code: 'venue' }, valueReference: { reference: `Organization/${ORG}` } }],
    group: [
      {
        source: LOCAL,
        target: CATALOGUE,
        element: [
          { code: 'LIS001', display: '血常规', target: [{ code: platformCode('检验', '血细胞分析'), equivalence: 'equivalent' }] },
          { code: 'LIS002', display: '谷丙转氨酶', target: [{ code: platformCode('检验', '丙氨酸氨基转移酶'), equivalence: 'equivalent' }] },
        ],
      },
    ],
  });
  browser = await launch();
});
test.after.always(async () => {
  await browser?.close();
  await s?.close();
});

const app = (path: string) => `${s.huren.url}/app${path}`;
const menu = (w: WatchedPage) => w.page.$$eval('[data-test=menu] .el-menu-item', (items) => items.map((i) => i.textContent?.trim()));
const asUser = (token: string, path: string, init: { method?: string; json?: unknown } = {}) => accountsApi(s, path, { ...init, token });

test.serial('sign-in with two factors: password, then TOTP enrolment with the shown secret, the forced password change, then the role’s own page', async (t) => {
  const { login } = await createAccount(s, ['security-admin']);
  const w = await openPage(browser);
  await w.page.goto(app('/users'));
  await w.page.waitForURL(/\/app\/login/);
  await w.page.waitForSelector('[data-test=login]');
  if (shots) await screenshot(w.page, 'login');
  // a wrong password: the Chinese message, still on the password step
  await w.page.fill('input[data-test=login]', login);
  await w.page.fill('input[data-test=password]', 'Wrong-Passw0rd!');
  await w.page.click('[data-test=submit-password]');
  t.regex((await (await w.page.waitForSelector('[data-test=error]')).textContent()) ?? '', /用户名或密码错误/);
  await w.page.fill('input[data-test=password]', INITIAL_PASSWORD);
  const [answer] = await Promise.all([
    w.page.waitForResponse((r) => r.url().endsWith('/api/session/login') && r.status() === 200),
    w.page.click('[data-test=submit-password]'),
  ]);
  const enrolment = (await answer.json()) as { step: string; secret: string; otpauthUri: string };
  t.is(enrolment.step, 'totp-enrolment');
  const secret = ((await (await w.page.waitForSelector('[data-test=secret]')).textContent()) ?? '').replace(/\s+/g, '');
  t.regex(secret, /^[A-Z2-7]{32}$/, 'the enrolment step shows the new secret');
  t.is(secret, enrolment.secret, 'the secret shown is the API’s');
  // the QR code: an image drawn in the page (a data: URL, nothing fetched) of the API's otpauth URI
  const qr = await w.page.waitForSelector('img[data-test=qr]');
  t.is(await qr.getAttribute('data-uri'), enrolment.otpauthUri, 'the QR code is drawn from the API’s otpauth URI');
  t.is(await w.page.textContent('[data-test=uri]'), enrolment.otpauthUri);
  t.is(new URL(enrolment.otpauthUri).searchParams.get('secret'), secret, 'the URI carries the secret shown beside it');
  t.regex((await qr.getAttribute('src')) ?? '', /^data:image\/png;base64,/);
  const drawn = await qr.evaluate((img: HTMLImageElement) => ({ width: img.naturalWidth, height: img.naturalHeight, complete: img.complete }));
  t.true(drawn.complete && drawn.width >= 100 && drawn.width === drawn.height, `a square QR image is shown (${drawn.width}×${drawn.height})`);
  if (shots) await screenshot(w.page, 'login-totp');
  // a wrong code first
  await w.page.fill('input[data-test=code]', '000000');
  await w.page.click('[data-test=submit-code]');
  await w.page.waitForFunction(() => /动态口令错误/.test(document.querySelector('[data-test=error]')?.textContent ?? ''));
  await w.page.fill('input[data-test=code]', await clock.code(secret));
  await w.page.click('[data-test=submit-code]');
  await w.page.waitForURL(/\/app\/password/);
  await w.page.waitForSelector('[data-test=forced]');
  if (shots) await screenshot(w.page, 'password');
  // a wrong current password: the message, and the session stays
  await w.page.fill('input[data-test=current-password]', 'Not-The-Passw0rd!');
  await w.page.fill('input[data-test=new-password]', 'Brand-New-Pw-42!');
  await w.page.fill('input[data-test=confirm-password]', 'Brand-New-Pw-42!');
  await w.page.click('[data-test=submit-new-password]');
  t.regex((await (await w.page.waitForSelector('[data-test=error]')).textContent()) ?? '', /当前密码错误/);
  t.regex(w.page.url(), /\/app\/password/);
  await w.page.fill('input[data-test=current-password]', INITIAL_PASSWORD);
  await w.page.fill('input[data-test=new-password]', 'Brand-New-Pw-42!');
  await w.page.fill('input[data-test=confirm-password]', 'Brand-New-Pw-4');
  await w.page.click('[data-test=submit-new-password]');
  await w.page.waitForFunction(() => /两次输入的新密码不一致/.test(document.querySelector('[data-test=error]')?.textContent ?? ''));
  await w.page.fill('input[data-test=confirm-password]', 'Brand-New-Pw-42!');
  await w.page.click('[data-test=submit-new-password]');
  await w.page.waitForURL(/\/app\/users/);
  await w.page.waitForSelector('[data-test=accounts] tbody tr');
  t.deepEqual(await menu(w), ['用户与权限'], 'the security administrator’s menu has its own page only');
  t.is(await w.page.textContent('[data-test=user]'), login);
  clock.step();
  // sign-out: back to the sign-in page with a message, and the session is gone on the server
  const token = await w.page.evaluate(() => sessionStorage.getItem('huren.token'));
  await w.page.click('[data-test=logout]');
  await w.page.waitForURL(/\/app\/login/);
  t.regex((await w.page.textContent('[data-test=notice]')) ?? '', /已退出登录/);
  t.is((await asUser(token!, '/api/session/me')).status, 401);
  t.deepEqual(w.errors.filter((e) => !/401/.test(e)), [], 'no console errors (the refused attempts log their 401)');
  await w.page.context().close();
});

test.serial('lockout: repeated wrong passwords lock the account with a Chinese message naming the wait', async (t) => {
  const { login } = await createAccount(s, ['doctor'], `Organization/${ORG}`);
  const w = await openPage(browser);
  await w.page.goto(app('/login'));
  await w.page.fill('input[data-test=login]', login);
  const attempts = loadAccountsConfig({}).lockoutAttempts;
  for (let i = 0; i < attempts; i++) {
    await w.page.fill('input[data-test=password]', `Wrong-Passw0rd-${i}`);
    await w.page.click('[data-test=submit-password]');
    await w.page.waitForFunction((n) => (document.querySelector('[data-test=error]')?.textContent ?? '') !== '' && (window as any).__n !== n, i);
    await w.page.evaluate((n) => ((window as any).__n = n), i);
  }
  await w.page.waitForFunction(() => /账户已锁定/.test(document.querySelector('[data-test=error]')?.textContent ?? ''));
  t.regex((await w.page.textContent('[data-test=error]')) ?? '', /连续登录失败次数过多，账户已锁定，请 \d+ 分钟后再试/);
  // the right password does not open a locked account
  await w.page.fill('input[data-test=password]', INITIAL_PASSWORD);
  await w.page.click('[data-test=submit-password]');
  await w.page.waitForTimeout(300);
  t.regex((await w.page.textContent('[data-test=error]')) ?? '', /账户已锁定/);
  t.is(await w.page.$('[data-test=code]'), null, 'no second-factor step');
  if (shots) await screenshot(w.page, 'login-locked');
  t.deepEqual(w.errors.filter((e) => !/40[13]|423/.test(e)), []);
  await w.page.context().close();
});

test.serial('an idle session ends: the next page goes back to the sign-in page with a message', async (t) => {
  const doctor = await ready(s, clock, ['doctor'], `Organization/${ORG}`);
  const w = await openPage(browser);
  await openAs(w, s, doctor, '/forbidden');
  await w.page.waitForSelector('[data-test=forbidden]');
  t.deepEqual(await menu(w), [], 'a doctor has no menu page (the viewer is opened with a patient)');
  clock.offset += (loadAccountsConfig({}).sessionIdleSeconds + 60) * 1000;
  await w.page.goto(app(`/reports/some-report`));
  await w.page.waitForURL(/\/app\/login/);
  t.regex((await w.page.textContent('[data-test=notice]')) ?? '', /登录已失效或已超时/);
  t.is((await asUser(doctor.token, '/api/session/me')).status, 401);
  t.deepEqual(w.errors.filter((e) => !/401/.test(e)), []);
  await w.page.context().close();
});

test.serial('a role without the right gets no page and no data: the guard shows 无权访问 and the API answers 403', async (t) => {
  const auditor = await ready(s, clock, ['audit-admin']);
  const commission = await ready(s, clock, ['commission-admin']);
  const doctor = await ready(s, clock, ['doctor'], `Organization/${ORG}`);
  const w = await openPage(browser);
  await openAs(w, s, auditor, '/users');
  await w.page.waitForSelector('[data-test=forbidden]');
  t.regex((await w.page.textContent('[data-test=forbidden]')) ?? '', /无权访问/);
  t.deepEqual(await menu(w), ['审计日志']);
  t.is(await w.page.$('[data-test=accounts]'), null, 'no accounts table');
  if (shots) await screenshot(w.page, 'forbidden');
  for (const path of ['/settings', '/dictionary', '/chain', '/briefings', '/users/clients']) {
    await w.page.goto(app(path));
    await w.page.waitForURL(/\/app\/forbidden/);
  }
  await w.page.context().close();
  // the server refuses the same data to the same sessions
  t.is((await asUser(auditor.token, '/api/accounts')).status, 403);
  t.is((await asUser(auditor.token, '/api/clients')).status, 403);
  t.is((await asUser(auditor.token, '/api/monitoring/briefings')).status, 403);
  t.is((await asUser(commission.token, '/api/clients')).status, 403);
  t.is((await asUser(doctor.token, '/api/monitoring/briefings')).status, 403);
  t.is((await asUser(auditor.token, '/api/settings/hash-badge', { method: 'PUT', json: { enabled: false } })).status, 403);
  t.is((await asUser(auditor.token, `/api/dictionary/organizations/${ORG}/qc`)).status, 403);
  t.is((await asUser(commission.token, '/api/accounts')).status, 403);
  t.is((await asUser(commission.token, '/fhir/AuditEvent?_count=1')).status, 403);
  t.is((await asUser(commission.token, '/api/settings/hash-badge', { method: 'PUT', json: { enabled: false } })).status, 403);
  t.is((await asUser(doctor.token, '/fhir/AuditEvent?_count=1')).status, 403);
  t.is((await asUser(doctor.token, '/api/accounts')).status, 403);
  const w2 = await openPage(browser);
  await openAs(w2, s, commission, '/audit');
  await w2.page.waitForSelector('[data-test=forbidden]');
  t.deepEqual(await menu(w2), ['大屏', '数据质控', '上链统计', '数据分析简报', '字典质控']);
  for (const path of ['/users', '/users/clients']) {
    await w2.page.goto(app(path));
    await w2.page.waitForURL(/\/app\/forbidden/);
  }
  t.deepEqual([...w.errors, ...w2.errors], []);
  await w2.page.context().close();
});

test.serial('用户与权限: create an account with the form (三权分立 greys out the other administrator roles), reset its password, unlock it', async (t) => {
  const admin = await ready(s, clock, ['security-admin']);
  const w = await openPage(browser);
  await openAs(w, s, admin, '/users');
  await w.page.waitForSelector('[data-test=accounts] tbody tr');
  const listed = await asUser(admin.token, '/api/accounts');
  t.is(await w.page.locator('[data-test=accounts] tbody tr').count(), listed.body.accounts.length, 'every account the API lists');
  await w.page.click('[data-test=create]');
  await w.page.fill('input[data-test=new-login]', 'web.newauditor');
  await w.page.fill('input[data-test=new-password]', INITIAL_PASSWORD);
  await w.page.click('[data-test=role-audit-admin]');
  t.true(await w.page.locator('[data-test=role-system-admin]').evaluate((e) => e.classList.contains('is-disabled')), '系统管理员 is greyed out');
  t.true(await w.page.locator('[data-test=role-security-admin]').evaluate((e) => e.classList.contains('is-disabled')), '安全管理员 is greyed out');
  await w.page.click('[data-test=save]');
  await w.page.waitForSelector('[data-test=accounts] tbody tr:has-text("web.newauditor")');
  const created = (await asUser(admin.token, '/api/accounts')).body.accounts.find((a: any) => a.login === 'web.newauditor');
  t.deepEqual(created.roles, ['audit-admin']);
  t.true(created.mustChangePassword);
  // the server holds 三权分立 too, whatever the form does
  const breach = await asUser(admin.token, `/api/accounts/${created.id}/roles`, { method: 'PUT', json: { roles: ['audit-admin', 'system-admin'] } });
  t.is(breach.status, 409);
  t.regex(breach.body.message, /三权分立/);
  // an institution role without its institution: the server's Chinese message in the form
  await w.page.click('[data-test=create]');
  await w.page.fill('input[data-test=new-login]', 'web.nodoctor');
  await w.page.fill('input[data-test=new-password]', INITIAL_PASSWORD);
  await w.page.click('[data-test=role-doctor]');
  await w.page.click('[data-test=save]');
  t.regex((await (await w.page.waitForSelector('[data-test=editor-error]')).textContent()) ?? '', /必须指定所属机构/);
  await w.page.click('.el-dialog__footer button:has-text("取消")');
  // lock the new account with wrong passwords, then unlock it on the page
  for (let i = 0; i < loadAccountsConfig({}).lockoutAttempts; i++) await accountsApi(s, '/api/session/login', { token: null, json: { login: 'web.newauditor', password: `Wrong-${i}-Passw0rd` } });
  await w.page.reload();
  await w.page.waitForSelector('[data-test="locked-web.newauditor"]');
  if (shots) await screenshot(w.page, 'users');
  await w.page.click('[data-test="unlock-web.newauditor"]');
  await w.page.waitForSelector('[data-test="locked-web.newauditor"]', { state: 'detached' });
  t.is((await accountsApi(s, '/api/session/login', { token: null, json: { login: 'web.newauditor', password: INITIAL_PASSWORD } })).status, 200, 'unlocked: the password step passes again');
  // reset its password through the dialog: the new initial password works, the old one not
  await w.page.click('[data-test="reset-password-web.newauditor"]');
  await w.page.fill('.el-message-box input', 'Reset-Passw0rd-77');
  await w.page.click('.el-message-box__btns button:has-text("重置")');
  await w.page.waitForSelector('.el-message--success:has-text("已重置 web.newauditor 的密码")');
  t.is((await accountsApi(s, '/api/session/login', { token: null, json: { login: 'web.newauditor', password: INITIAL_PASSWORD } })).status, 401);
  t.is((await accountsApi(s, '/api/session/login', { token: null, json: { login: 'web.newauditor', password: 'Reset-Passw0rd-77' } })).status, 200);
  // one's own account is changed by another security administrator
  const self = await asUser(admin.token, `/api/accounts/${admin.id}/reset-totp`, { method: 'POST' });
  t.is(self.status, 403);
  t.deepEqual(w.errors.filter((e) => !/400/.test(e)), [], 'no console errors (the refused account logs its 400)');
  await w.page.context().close();
});

test.serial('the account resets through the API: a TOTP reset makes the next sign-in enrol again and ends the sessions; only a security administrator may', async (t) => {
  const admin = await ready(s, clock, ['security-admin']);
  const user = await ready(s, clock, ['commission-admin']);
  t.is((await asUser(user.token, `/api/accounts/${admin.id}/reset-totp`, { method: 'POST' })).status, 403);
  t.is((await asUser(user.token, `/api/accounts/${admin.id}/unlock`, { method: 'POST' })).status, 403);
  const reset = await asUser(admin.token, `/api/accounts/${user.id}/reset-totp`, { method: 'POST' });
  t.is(reset.status, 200);
  t.false(reset.body.totpEnrolled);
  t.is((await asUser(user.token, '/api/session/me')).status, 401, 'its sessions ended');
  const again = await accountsApi(s, '/api/session/login', { token: null, json: { login: user.login, password: user.password } });
  t.is(again.body.step, 'totp-enrolment');
  const weak = await asUser(admin.token, `/api/accounts/${user.id}/reset-password`, { json: { password: 'short' } });
  t.is(weak.status, 422);
  t.is(weak.body.field, 'password');
  t.is((await asUser(admin.token, '/api/accounts/00000000-0000-0000-0000-000000000000/unlock', { method: 'POST' })).status, 404);
});

test.serial('审计日志: the search by outcome and by user shows what the API finds; the chain check is shown', async (t) => {
  const auditor = await ready(s, clock, ['audit-admin']);
  const commission = await ready(s, clock, ['commission-admin']);
  // a refused request of the commission account, to be found by its user id
  t.is((await asUser(commission.token, '/api/accounts')).status, 403);
  const w = await openPage(browser);
  await openAs(w, s, auditor, '/audit');
  await w.page.waitForSelector('[data-test=audit-table] tbody tr');
  await w.page.click('[data-test=verify-chain]');
  const chain = await w.page.waitForSelector('[data-test=chain-result]');
  t.regex((await chain.textContent()) ?? '', /审计链完整/);
  await w.page.waitForSelector('[data-test=chain-result] .el-tag');
  if (shots) await screenshot(w.page, 'audit');
  await w.page.click('[data-test=outcome]');
  await w.page.click('.el-select-dropdown__item:has-text("失败（被拒绝或请求有误）")');
  await w.page.fill('input[data-test=user]', `user:${commission.id}`);
  const api = await asUser(auditor.token, `/fhir/AuditEvent?altid=${commission.id}&outcome=4&_total=accurate&_count=50`);
  t.true(api.body.total >= 1);
  await w.page.click('[data-test=search]');
  await w.page.waitForFunction((n) => document.querySelector('[data-test=total]')?.textContent === `共 ${n} 条`, api.body.total);
  t.is(await w.page.locator('[data-test=audit-table] tbody tr').count(), Math.min(50, api.body.total));
  t.is(await w.page.locator('[data-test=audit-table] [data-test=outcome-0]').count(), 0, 'only failures');
  t.regex((await w.page.textContent('[data-test=audit-table] tbody')) ?? '', new RegExp(commission.id));
  // by login name (as the administrator knows the person): the accounts module gives the id, the same records show
  await w.page.fill('input[data-test=user]', commission.login.toUpperCase());
  await w.page.click('[data-test=search]');
  await w.page.waitForFunction((id) => document.querySelector('[data-test=user-note]')?.textContent?.includes(id), commission.id);
  await w.page.waitForFunction((n) => document.querySelector('[data-test=total]')?.textContent === `共 ${n} 条`, api.body.total);
  t.regex((await w.page.textContent('[data-test=user-note]')) ?? '', new RegExp(`登录名 ${commission.login.replace(/\./g, '\\.')} 对应账户`));
  t.regex((await w.page.textContent('[data-test=audit-table] tbody')) ?? '', new RegExp(commission.id));
  // a name that is no account's: searched as a client id, and nothing of the commission account shows
  await w.page.fill('input[data-test=user]', 'no.such.login');
  await w.page.click('[data-test=search]');
  await w.page.waitForFunction(() => /按客户端 ID 查询/.test(document.querySelector('[data-test=user-note]')?.textContent ?? ''));
  await w.page.waitForFunction(() => /没有符合条件的审计记录/.test(document.querySelector('[data-test=audit-table]')?.textContent ?? ''));
  t.is(await w.page.locator('[data-test=audit-table] tbody tr').count(), 0);
  t.deepEqual(w.errors.filter((e) => !/404/.test(e)), [], 'no console errors (the unknown login logs its 404)');
  await w.page.context().close();
});

test.serial('the login lookup for the audit search: the audit and security administrators only; a bad or unknown login is a 4xx', async (t) => {
  const auditor = await ready(s, clock, ['audit-admin']);
  const security = await ready(s, clock, ['security-admin']);
  const doctor = await ready(s, clock, ['commission-admin']);
  for (const who of [auditor, security]) {
    const found = await asUser(who.token, `/api/accounts/by-login/${doctor.login.toUpperCase()}`);
    t.is(found.status, 200);
    t.deepEqual(found.body, { id: doctor.id, login: doctor.login });
  }
  const refused = await asUser(doctor.token, `/api/accounts/by-login/${auditor.login}`);
  t.is(refused.status, 403);
  t.is(refused.body.code, 'forbidden');
  t.is((await accountsApi(s, `/api/accounts/by-login/${auditor.login}`, { token: null })).status, 401);
  const unknown = await asUser(auditor.token, '/api/accounts/by-login/nobody.here');
  t.is(unknown.status, 404);
  t.is(unknown.body.code, 'account-not-found');
  const bad = await asUser(auditor.token, `/api/accounts/by-login/${encodeURIComponent('x y')}`);
  t.is(bad.status, 400);
  t.is(bad.body.field, 'login');
});

test.serial('设置: the badge setting is saved through the page; the thresholds are the API’s; the code upgrade runs as a job with its progress', async (t) => {
  const sysadmin = await ready(s, clock, ['system-admin']);
  const w = await openPage(browser);
  await openAs(w, s, sysadmin, '/settings');
  await w.page.waitForSelector('[data-test=thresholds] .el-descriptions');
  const thresholds = (await asUser(sysadmin.token, '/api/monitoring/thresholds')).body;
  t.regex((await w.page.textContent('[data-test=thresholds]')) ?? '', new RegExp(`迟报判定（分钟）\\s*${thresholds.lateMinutes}`));
  t.regex((await w.page.textContent('[data-test=thresholds]')) ?? '', new RegExp(thresholds.interruptionMinutes.join(' / ')));
  const before = (await asUser(sysadmin.token, '/api/settings/hash-badge')).body;
  await w.page.click('[data-test=badge-pending]');
  await w.page.click('[data-test=badge-save]');
  await w.page.waitForSelector('.el-message--success');
  const after = (await asUser(sysadmin.token, '/api/settings/hash-badge')).body;
  t.deepEqual([...after.statuses].sort(), [...new Set([...before.statuses, 'pending'])].sort());
  await w.page.click('[data-test=upgrade-start]');
  await w.page.waitForSelector('[data-test=upgrade-result], [data-test=upgrade-error]', { timeout: 60_000 });
  t.is(await w.page.$('[data-test=upgrade-error]'), null, (await w.page.textContent('[data-test=upgrade-progress]')) ?? '');
  t.regex((await w.page.textContent('[data-test=upgrade-status]')) ?? '', /已完成/);
  t.regex((await w.page.textContent('[data-test=upgrade-result]')) ?? '', /已升级/);
  await w.page.waitForSelector('[data-test=editions-table] tbody tr');
  if (shots) await screenshot(w.page, 'settings');
  t.deepEqual(w.errors, []);
  await w.page.context().close();
});

test.serial('字典质控: the institution’s map entries with their status; approving one moves it along the workflow; its trace lists every change', async (t) => {
  const commission = await ready(s, clock, ['system-admin']);
  const w = await openPage(browser);
  await openAs(w, s, commission, '/dictionary');
  await w.page.click('[data-test=org]');
  await w.page.click('.el-select-dropdown__item:has-text("网页测试医院")');
  await w.page.waitForSelector('[data-test=entries] tbody tr');
  const entries = (await asUser(commission.token, `/api/dictionary/maps/${MAP}/entries`)).body;
  t.is(await w.page.locator('[data-test=entries] tbody tr').count(), entries.total);
  t.is(await w.page.textContent('[data-test=status-LIS002]'), '待审核');
  await w.page.click('[data-test=set-approved-LIS002]');
  await w.page.fill('.el-message-box input', '核对无误');
  await w.page.click('.el-message-box__btns button:has-text("确定")');
  await w.page.waitForFunction(() => document.querySelector('[data-test=status-LIS002]')?.textContent === '已通过');
  const history = (await asUser(commission.token, `/api/dictionary/maps/${MAP}/entries/LIS002/history?system=${encodeURIComponent(LOCAL)}`)).body;
  t.is(history.entry.status, 'approved');
  await w.page.click('[data-test=trace-LIS002]');
  await w.page.waitForSelector('[data-test=trace] .el-timeline-item');
  t.is(await w.page.locator('[data-test=trace] .el-timeline-item').count(), history.changes.length);
  t.regex((await w.page.textContent('[data-test=trace]')) ?? '', /待审核 → 已通过；说明：核对无误/);
  if (shots) await screenshot(w.page, 'dictionary');
  t.deepEqual(w.errors, []);
  await w.page.context().close();
});

test.serial('字典质控 for an institution administrator: its own institution only, on the page and from the API', async (t) => {
  const mine = await ready(s, clock, ['institution-admin'], `Organization/${ORG}`);
  const other = await ready(s, clock, ['institution-admin'], `Organization/${OTHER}`);
  const commission = await ready(s, clock, ['commission-admin']);
  t.is((await asUser(other.token, `/api/dictionary/organizations/${ORG}/qc`)).status, 403);
  t.is((await asUser(other.token, `/api/dictionary/maps/${MAP}/entries`)).status, 403);
  t.is((await asUser(other.token, `/api/dictionary/maps/${MAP}/entries/LIS001/history`)).status, 403);
  t.is((await asUser(other.token, `/api/dictionary/maps/${MAP}/entries/LIS001/status`, { json: { status: 'approved' } })).status, 403);
  t.is((await asUser(mine.token, `/api/dictionary/maps/${MAP}/entries`)).status, 200);
  t.is((await asUser(commission.token, `/api/dictionary/maps/${MAP}/entries/LIS001/status`, { json: { status: 'rejected' } })).status, 403, 'the commission reads, it does not review');
  const w = await openPage(browser);
  await openAs(w, s, mine, '/dictionary');
  await w.page.waitForSelector('[data-test=entries] tbody tr');
  t.deepEqual(await menu(w), ['数据质控', '上链统计', '字典质控']);
  await w.page.click('[data-test=org]');
  await w.page.locator('.el-select-dropdown:visible .el-select-dropdown__item').first().waitFor();
  t.deepEqual(await w.page.$$eval('.el-select-dropdown:visible .el-select-dropdown__item', (items) => items.map((i) => i.textContent?.trim())), [ORG], 'no other institution to choose');
  t.truthy(await w.page.$('[data-test=set-rejected-LIS001]'), 'the institution administrator reviews');
  await w.page.context().close();
  const w2 = await openPage(browser);
  await openAs(w2, s, commission, '/dictionary');
  await w2.page.click('[data-test=org]');
  await w2.page.click('.el-select-dropdown__item:has-text("网页测试医院")');
  await w2.page.waitForSelector('[data-test=entries] tbody tr');
  t.is(await w2.page.$('[data-test=set-rejected-LIS001]'), null, 'no review buttons for the commission');
  t.deepEqual([...w.errors, ...w2.errors], []);
  await w2.page.context().close();
});
