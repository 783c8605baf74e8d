/**
 * Human accounts through the HTTP API (issue 11, must-show 4): password + TOTP sign-in with enrolment on the
 * first login, the forced password change, lockout, idle and absolute session expiry, 三权分立, the roles'
 * scopes governing FHIR, and the bootstrap token's new life. The server's account clock is the test's own
 * (config.accounts.now), so expiry and lockout are reached by moving it, not by sleeping.
 */
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { generate } from 'otplib';
import { start } from '../server/app.ts';
import { loadConfig } from '../server/config.ts';
import { loadAccountsConfig } from '../server/accounts/config.ts';
import { resolveBootstrapToken } from '../server/http/auth.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { accountsApi } from './helpers/webapp.ts';

let clock = Date.parse('2026-12-03T08:00:00Z');
const MINUTE = 60_000;
const advance = (ms: number) => (clock += ms);
const accountsConfig = () => ({ ...loadAccountsConfig({}), now: () => clock });

let s: TestServer;
const ORG = 'acct-hospital-a';
const PASSWORD = 'Initial-Passw0rd!';

test.before(async () => {
  s = await startTestServer({ accounts: accountsConfig() });
  const put = await s.fhir(`Organization/${ORG}`, { method: 'PUT', json: { resourceType: 'Organization', id: ORG, name: '账户测试医院' } });
  if (put.status >= 300) throw new Error(`Organization: ${put.status}`);
});
test.after.always(async () => {
  await s?.close();
});

const api = accountsApi;

const code = (secret: string) => generate({ secret, epoch: Math.floor(clock / 1000) });

let counter = 0;
async function createAccount(roles: string[], institution?: string, server = s): Promise<{ id: string; login: string }> {
  const login = `user${++counter}.${roles[0]}`;
  const r = await api(server, '/api/accounts', { json: { login, password: PASSWORD, roles, ...(institution ? { institution } : {}) } });
  if (r.status !== 201) throw new Error(`create ${login}: ${r.status} ${JSON.stringify(r.body)}`);
  return { id: r.body.id, login };
}

/** Password, then the second factor (enrolling on the first sign-in); the clock moves one TOTP step after. */
async function signIn(login: string, password: string, secret?: string): Promise<{ token: string; secret: string; grant: any }> {
  const first = await api(s, '/api/session/login', { token: null, json: { login, password } });
  if (first.status !== 200) throw new Error(`login ${login}: ${first.status} ${JSON.stringify(first.body)}`);
  const totpSecret = secret ?? first.body.secret;
  const second = await api(s, '/api/session/second-factor', { token: null, json: { challenge: first.body.challenge, code: await code(totpSecret) } });
  if (second.status !== 200) throw new Error(`second factor ${login}: ${second.status} ${JSON.stringify(second.body)}`);
  advance(30_000);
  return { token: second.body.token, secret: totpSecret, grant: second.body };
}

/** A signed-in account whose first password change is done. */
async function ready(roles: string[], institution?: string) {
  const account = await createAccount(roles, institution);
  const session = await signIn(account.login, PASSWORD);
  const newPassword = `Changed-Pw-${counter}-9x`;
  const changed = await api(s, '/api/session/password', { token: session.token, json: { currentPassword: PASSWORD, newPassword } });
  if (changed.status !== 200) throw new Error(`password change: ${changed.status} ${JSON.stringify(changed.body)}`);
  return { ...account, ...session, password: newPassword };
}

const fhirAs = (token: string, path: string, init: RequestInit & { json?: unknown } = {}) => s.fhir(path, { ...init, headers: { authorization: `Bearer ${token}` } });

test.serial('sign-in is password then TOTP: the first one enrols the secret (otpauth URI) and forces a password change before any access', async (t) => {
  const { login } = await createAccount(['doctor'], `Organization/${ORG}`);
  const first = await api(s, '/api/session/login', { token: null, json: { login, password: PASSWORD } });
  t.is(first.status, 200);
  t.is(first.body.step, 'totp-enrolment');
  t.regex(first.body.secret, /^[A-Z2-7]{32}$/);
  t.true(first.body.otpauthUri.startsWith('otpauth://totp/'), first.body.otpauthUri);
  t.true(first.body.otpauthUri.includes(`secret=${first.body.secret}`));
  t.is((await fhirAs(first.body.challenge, 'Patient')).status, 401, 'a challenge is no session');

  const second = await api(s, '/api/session/second-factor', { token: null, json: { challenge: first.body.challenge, code: await code(first.body.secret) } });
  t.is(second.status, 200);
  t.true(second.body.token.startsWith('hus_'));
  t.true(second.body.mustChangePassword);
  t.is(second.body.idleTimeoutSeconds, 900);
  const token = second.body.token as string;
  const stored = await s.huren.db.query<{ token_hash: string }>('SELECT token_hash FROM account_session');
  t.false(stored.some((r) => r.token_hash.includes(token) || token.includes(r.token_hash)), 'only a hash of the token is stored');

  // until the password is changed the session may do nothing else
  t.is((await fhirAs(token, 'Patient')).status, 403);
  const me = await api(s, '/api/session/me', { token });
  t.is(me.status, 200);
  t.true(me.body.mustChangePassword);
  t.deepEqual(me.body.scopes, []);
  t.true(me.body.totpEnrolled);
  t.is(me.body.institution, `Organization/${ORG}`);
  t.regex(me.body.practitionerRole, /^PractitionerRole\//);

  const weak = await api(s, '/api/session/password', { token, json: { currentPassword: PASSWORD, newPassword: 'short1A!' } });
  t.is(weak.status, 422);
  t.is(weak.body.code, 'weak-password');
  t.is(weak.body.field, 'newPassword');
  t.regex(weak.body.message, /12 个字符/);
  const twoClasses = await api(s, '/api/session/password', { token, json: { currentPassword: PASSWORD, newPassword: 'onlylowercaseand1234' } });
  t.is(twoClasses.body.code, 'weak-password');
  t.regex(twoClasses.body.message, /至少三类/);
  const withLogin = await api(s, '/api/session/password', { token, json: { currentPassword: PASSWORD, newPassword: `X-${login.toUpperCase()}-2026` } });
  t.is(withLogin.body.code, 'weak-password');
  t.regex(withLogin.body.message, /登录名/);
  const same = await api(s, '/api/session/password', { token, json: { currentPassword: PASSWORD, newPassword: PASSWORD } });
  t.is(same.status, 422);
  t.is(same.body.code, 'password-reused');
  const wrongCurrent = await api(s, '/api/session/password', { token, json: { currentPassword: 'Not-the-passw0rd', newPassword: 'Brand-New-Passw0rd' } });
  t.is(wrongCurrent.status, 401);
  t.is(wrongCurrent.body.code, 'invalid-credentials');

  const changed = await api(s, '/api/session/password', { token, json: { currentPassword: PASSWORD, newPassword: 'Brand-New-Passw0rd' } });
  t.is(changed.status, 200);
  t.false(changed.body.mustChangePassword);
  // now the doctor's scopes govern FHIR: a viewer reads, and writes nothing
  t.is((await fhirAs(token, 'Patient')).status, 200);
  t.is((await fhirAs(token, 'Patient', { method: 'POST', json: { resourceType: 'Patient' } })).status, 403);
  t.is((await fhirAs(token, 'AuditEvent')).status, 403);

  t.is((await api(s, '/api/session/logout', { token, method: 'POST' })).status, 200);
  t.is((await fhirAs(token, 'Patient')).status, 401, 'a logged-out session is gone');
  advance(30_000);
  const again = await api(s, '/api/session/login', { token: null, json: { login, password: 'Brand-New-Passw0rd' } });
  t.is(again.body.step, 'totp', 'the second sign-in asks for the enrolled code and shows no secret');
  t.is(again.body.secret, undefined);
  t.is((await api(s, '/api/session/login', { token: null, json: { login, password: PASSWORD } })).status, 401, 'the old password is gone');
});

test.serial('a wrong TOTP code and a replayed one are refused', async (t) => {
  const { login, secret, password } = await ready(['doctor'], `Organization/${ORG}`);
  const first = await api(s, '/api/session/login', { token: null, json: { login, password } });
  const good = await code(secret);
  const wrong = String((Number(good) + 1) % 1_000_000).padStart(6, '0');
  const bad = await api(s, '/api/session/second-factor', { token: null, json: { challenge: first.body.challenge, code: wrong } });
  t.is(bad.status, 401);
  t.is(bad.body.code, 'invalid-totp');
  t.is(bad.body.message, '动态口令错误');
  const format = await api(s, '/api/session/second-factor', { token: null, json: { challenge: first.body.challenge, code: '12ab56' } });
  t.is(format.status, 400);
  t.is(format.body.field, 'code');
  const ok = await api(s, '/api/session/second-factor', { token: null, json: { challenge: first.body.challenge, code: good } });
  t.is(ok.status, 200);
  t.is((await api(s, '/api/session/second-factor', { token: null, json: { challenge: first.body.challenge, code: good } })).body.code, 'challenge-expired', 'a challenge serves once');

  // the same code on a fresh challenge, within its 30 s: replayed
  const next = await api(s, '/api/session/login', { token: null, json: { login, password } });
  const replay = await api(s, '/api/session/second-factor', { token: null, json: { challenge: next.body.challenge, code: good } });
  t.is(replay.status, 401);
  t.is(replay.body.code, 'totp-replayed');
  advance(30_000);
  const fresh = await api(s, '/api/session/second-factor', { token: null, json: { challenge: next.body.challenge, code: await code(secret) } });
  t.is(fresh.status, 200, 'the next time step’s code works');
  advance(30_000);
  // a challenge left too long expires
  const late = await api(s, '/api/session/login', { token: null, json: { login, password } });
  advance(6 * MINUTE);
  const expired = await api(s, '/api/session/second-factor', { token: null, json: { challenge: late.body.challenge, code: await code(secret) } });
  t.is(expired.status, 401);
  t.is(expired.body.code, 'challenge-expired');
});

test.serial('five failed attempts lock the account for 15 minutes, even with the right password; wrong TOTP codes count too', async (t) => {
  const { login, password, secret } = await ready(['doctor'], `Organization/${ORG}`);
  for (let i = 1; i <= 4; i++) {
    const r = await api(s, '/api/session/login', { token: null, json: { login, password: `Wrong-Passw0rd-${i}` } });
    t.is(r.status, 401, `attempt ${i}`);
    t.is(r.body.code, 'invalid-credentials');
  }
  const fifth = await api(s, '/api/session/login', { token: null, json: { login, password: 'Wrong-Passw0rd-5' } });
  t.is(fifth.status, 423);
  t.is(fifth.body.code, 'account-locked');
  t.regex(fifth.body.message, /15 分钟/);
  const right = await api(s, '/api/session/login', { token: null, json: { login, password } });
  t.is(right.status, 423, 'locked: the right password does not help');
  advance(14 * MINUTE);
  t.is((await api(s, '/api/session/login', { token: null, json: { login, password } })).status, 423);
  advance(1 * MINUTE + 1000);
  const after = await api(s, '/api/session/login', { token: null, json: { login, password } });
  t.is(after.status, 200, 'unlocked after 15 minutes');

  const good = await code(secret);
  const wrong = String((Number(good) + 7) % 1_000_000).padStart(6, '0');
  const statuses = [];
  for (let i = 0; i < 5; i++) statuses.push((await api(s, '/api/session/second-factor', { token: null, json: { challenge: after.body.challenge, code: wrong } })).status);
  t.deepEqual(statuses, [401, 401, 401, 401, 423]);
  t.is((await api(s, '/api/session/login', { token: null, json: { login, password } })).status, 423);
  const view = await api(s, `/api/accounts/${(await api(s, '/api/accounts')).body.accounts.find((a: any) => a.login === login).id}`);
  t.truthy(view.body.lockedUntil, 'the security administrator sees the lockout');
});

test.serial('a session ends after 15 idle minutes and after 8 hours whatever happens', async (t) => {
  const { token } = await ready(['doctor'], `Organization/${ORG}`);
  advance(14 * MINUTE);
  t.is((await fhirAs(token, 'Patient')).status, 200, 'within the idle time');
  advance(14 * MINUTE);
  t.is((await api(s, '/api/session/me', { token })).status, 200, 'each request restarts the idle time');
  advance(15 * MINUTE);
  const idle = await fhirAs(token, 'Patient');
  t.is(idle.status, 401);
  t.is((await api(s, '/api/session/me', { token })).status, 401, 'an expired session stays expired');

  const busy = await ready(['doctor'], `Organization/${ORG}`);
  let last = 200;
  let minutes = 0;
  while (last === 200 && minutes < 9 * 60) {
    advance(10 * MINUTE);
    minutes += 10;
    last = (await api(s, '/api/session/me', { token: busy.token })).status;
  }
  t.is(last, 401);
  t.true(minutes >= 8 * 60 - 10 && minutes <= 8 * 60 + 10, `ended after ${minutes} minutes of activity`);
});

test.serial('a password older than 90 days must be changed before anything else', async (t) => {
  const { login, password, secret } = await ready(['doctor'], `Organization/${ORG}`);
  advance(91 * 24 * 60 * MINUTE);
  const { token } = await signIn(login, password, secret);
  const me = await api(s, '/api/session/me', { token });
  t.true(me.body.mustChangePassword);
  t.is((await fhirAs(token, 'Patient')).status, 403);
  t.is((await api(s, '/api/session/password', { token, json: { currentPassword: password, newPassword: 'Ninety-One-Days-0k' } })).status, 200);
  t.is((await fhirAs(token, 'Patient')).status, 200);
});

test.serial('三权分立: no account holds two of the system, security and audit administrator roles (API and database)', async (t) => {
  const both = await api(s, '/api/accounts', { json: { login: 'sysaudit', password: PASSWORD, roles: ['system-admin', 'audit-admin'] } });
  t.is(both.status, 409);
  t.is(both.body.code, 'separation-of-duties');
  t.regex(both.body.message, /系统管理员、审计管理员/);
  t.is((await api(s, '/api/accounts')).body.accounts.filter((a: any) => a.login === 'sysaudit').length, 0, 'nothing half-written');

  const security = await createAccount(['security-admin']);
  const add = await api(s, `/api/accounts/${security.id}/roles`, { method: 'PUT', json: { roles: ['security-admin', 'audit-admin'] } });
  t.is(add.status, 409);
  t.is(add.body.code, 'separation-of-duties');
  t.deepEqual((await api(s, `/api/accounts/${security.id}`)).body.roles, ['security-admin']);
  // the database refuses it too
  await t.throwsAsync(s.huren.db.query(`UPDATE account SET roles = ARRAY['security-admin', 'system-admin'] WHERE id = $1`, [security.id]));
  // moving to another single administrator role is fine
  const moved = await api(s, `/api/accounts/${security.id}/roles`, { method: 'PUT', json: { roles: ['audit-admin'] } });
  t.is(moved.status, 200);
  t.deepEqual(moved.body.roles, ['audit-admin']);
});

test.serial('each administrator role sees only its own part; only a security administrator manages accounts', async (t) => {
  const security = await ready(['security-admin']);
  const audit = await ready(['audit-admin']);
  const system = await ready(['system-admin']);
  const doctor = await ready(['doctor'], `Organization/${ORG}`);

  t.is((await fhirAs(audit.token, 'AuditEvent')).status, 200);
  t.is((await fhirAs(audit.token, 'Patient')).status, 403, 'the auditor reads the audit trail, nothing else');
  t.is((await api(s, '/api/accounts', { token: audit.token })).status, 403);
  t.is((await fhirAs(security.token, 'Patient')).status, 403, 'the security administrator sees no clinical data');
  t.is((await fhirAs(security.token, 'AuditEvent')).status, 403);
  t.is((await fhirAs(system.token, 'CodeSystem?_count=1')).status, 200);
  t.is((await fhirAs(system.token, 'AuditEvent')).status, 403);
  t.is((await api(s, '/api/accounts', { token: system.token })).status, 403);

  const byDoctor = await api(s, '/api/accounts', { token: doctor.token, json: { login: 'made.by.doctor', password: PASSWORD, roles: ['doctor'], institution: `Organization/${ORG}` } });
  t.is(byDoctor.status, 403);
  t.is(byDoctor.body.code, 'forbidden');
  t.regex(byDoctor.body.message, /安全管理员/);

  const made = await api(s, '/api/accounts', { token: security.token, json: { login: 'made.by.security', password: PASSWORD, roles: ['institution-admin'], institution: `Organization/${ORG}` } });
  t.is(made.status, 201);
  t.true(made.body.mustChangePassword);
  const practitionerRole = await s.fhir(made.body.practitionerRole);
  t.is(practitionerRole.status, 200);
  const pr = await practitionerRole.json();
  t.is(pr.organization.reference, `Organization/${ORG}`);
  t.is(pr.code[0].coding[0].code, 'institution-admin');

  const self = await api(s, `/api/accounts/${security.id}/roles`, { token: security.token, method: 'PUT', json: { roles: ['system-admin'] } });
  t.is(self.status, 403);
  t.is(self.body.code, 'own-account');

  // disabling ends the account's sessions and its sign-in
  const disabled = await api(s, `/api/accounts/${doctor.id}/disable`, { token: security.token, method: 'POST' });
  t.is(disabled.status, 200);
  t.is(disabled.body.status, 'disabled');
  t.is((await fhirAs(doctor.token, 'Patient')).status, 401);
  const login = await api(s, '/api/session/login', { token: null, json: { login: doctor.login, password: doctor.password } });
  t.is(login.status, 403);
  t.is(login.body.code, 'account-disabled');
  const practitioner = await (await s.fhir((await api(s, `/api/accounts/${doctor.id}`)).body.practitioner)).json();
  t.is(practitioner.active, false, 'its Practitioner is marked inactive');
  t.is((await api(s, `/api/accounts/${doctor.id}/enable`, { token: security.token, method: 'POST' })).body.status, 'active');
});

test.serial('bad account requests get a 4xx with an English code and a Chinese message', async (t) => {
  const cases: [unknown, number, string, string?][] = [
    [{ login: 'weak.one', password: 'Sh0rt!', roles: ['doctor'], institution: `Organization/${ORG}` }, 422, 'weak-password', 'password'],
    [{ login: 'weak.two', password: 'alllowercaseletters', roles: ['doctor'], institution: `Organization/${ORG}` }, 422, 'weak-password', 'password'],
    [{ login: 'weak.three', password: 'Weak.Three-2026', roles: ['doctor'], institution: `Organization/${ORG}` }, 422, 'weak-password', 'password'],
    [{ login: 'x', password: PASSWORD, roles: ['doctor'], institution: `Organization/${ORG}` }, 400, 'invalid-login', 'login'],
    [{ login: 'no.roles', password: PASSWORD, roles: [] }, 400, 'roles-required', 'roles'],
    [{ login: 'bad.role', password: PASSWORD, roles: ['superuser'] }, 400, 'unknown-role', 'roles'],
    [{ login: 'no.institution', password: PASSWORD, roles: ['doctor'] }, 400, 'institution-required', 'institution'],
    [{ login: 'bad.institution', password: PASSWORD, roles: ['doctor'], institution: 'Hospital/1' }, 400, 'invalid-institution', 'institution'],
    [{ login: 'gone.institution', password: PASSWORD, roles: ['doctor'], institution: 'Organization/does-not-exist' }, 422, 'unknown-institution', 'institution'],
    [{ login: 'admin.with.org', password: PASSWORD, roles: ['audit-admin'], institution: `Organization/${ORG}` }, 400, 'institution-not-allowed', 'institution'],
    [[1, 2], 400, 'invalid-body'],
  ];
  for (const [json, status, errorCode, field] of cases) {
    const r = await api(s, '/api/accounts', { json });
    t.is(r.status, status, JSON.stringify(json));
    t.is(r.body.code, errorCode, JSON.stringify(json));
    t.regex(r.body.message, /[\u4e00-\u9fff]/, 'a Chinese message');
    if (field) t.is(r.body.field, field);
  }
  const taken = await createAccount(['doctor'], `Organization/${ORG}`);
  const dup = await api(s, '/api/accounts', { json: { login: taken.login.toUpperCase(), password: PASSWORD, roles: ['doctor'], institution: `Organization/${ORG}` } });
  t.is(dup.status, 409);
  t.is(dup.body.code, 'login-taken');
  const unknown = await api(s, '/api/session/login', { token: null, json: { login: 'nobody.here', password: PASSWORD } });
  const wrong = await api(s, '/api/session/login', { token: null, json: { login: taken.login, password: 'Wrong-Passw0rd!' } });
  t.is(unknown.status, 401);
  t.deepEqual(unknown.body, wrong.body, 'an unknown login and a wrong password look the same');
  const notJson = await fetch(`${s.huren.url}/api/session/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"login":' });
  t.is(notJson.status, 400);
  t.is((await notJson.json()).code, 'invalid-body');
  t.is((await api(s, '/api/session/me')).body.code, 'not-a-session', 'the bootstrap token has no session');
  t.is((await api(s, '/api/accounts/not-an-id')).status, 404);
});

test('production mode refuses an operator-set bootstrap token at start; outside it the server warns while it is on', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'huren-prod-'));
  try {
    t.throws(() => resolveBootstrapToken('operator-token', dataDir, 'production'), { message: /refused in production mode/ });
    await t.throwsAsync(start(loadConfig({}, { port: 0, host: '127.0.0.1', dataDir, inMemory: true, bootstrapToken: 'operator-token', mode: 'production', publicUrl: 'https://huren.example', logLevel: 'warn' })), {
      message: /HUREN_BOOTSTRAP_TOKEN is refused/,
    });
    t.is(loadConfig({ HUREN_MODE: 'production' }).mode, 'production');
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
  let log = '';
  const logStream = new Writable({
    write(chunk, _enc, done) {
      log += chunk.toString();
      done();
    },
  });
  const dev = await startTestServer({}, { logStream });
  try {
    t.regex(log, /HUREN_BOOTSTRAP_TOKEN\) is on/);
    t.false(log.includes(dev.token), 'the warning does not show the token');
  } finally {
    await dev.close();
  }
});

test('a generated bootstrap token only creates the first security administrator and is then disabled for good', async (t) => {
  const first = await startTestServer({ bootstrapToken: undefined }, { persistent: true });
  let second: TestServer | undefined;
  try {
    t.true(first.huren.generatedToken);
    const token = first.huren.bootstrapToken;
    const file = join(first.store.dataDir, 'bootstrap-token');
    t.is(readFileSync(file, 'utf8').trim(), token);
    const doctor = await api(first, '/api/accounts', { token, json: { login: 'first.doctor', password: PASSWORD, roles: ['doctor'], institution: 'Organization/x' } });
    t.is(doctor.status, 403);
    t.is(doctor.body.code, 'bootstrap-limited');
    t.is((await api(first, '/api/accounts', { token })).status, 403, 'it does not list accounts');
    const admin = await api(first, '/api/accounts', { token, json: { login: 'first.security', password: PASSWORD, roles: ['security-admin'] } });
    t.is(admin.status, 201);
    t.false(existsSync(file));
    t.false(readFileSync(`${file}.used`, 'utf8').includes(token), 'the used marker does not keep the token');
    t.is((await api(first, '/api/accounts', { token, json: { login: 'second.security', password: PASSWORD, roles: ['security-admin'] } })).status, 401);
    t.is((await fetch(`${first.base}/Patient`, { headers: { authorization: `Bearer ${token}` } })).status, 401);
    await first.close({ keepStore: true });
    second = await startTestServer({ bootstrapToken: undefined }, { store: first.store });
    t.false(second.huren.generatedToken, 'no new token is generated on that data directory');
    t.is(second.huren.bootstrapToken, '');
    t.is((await fetch(`${second.base}/Patient`, { headers: { authorization: `Bearer ${token}` } })).status, 401);
  } finally {
    if (second) await second.close();
    else await first.close().catch(() => undefined);
  }
});
