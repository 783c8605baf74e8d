/**
 * Signing in to the monitoring app in the browser tests: with the operator's platform token (the "平台令牌"
 * tab), or as a person with the platform's accounts (password, then the TOTP code generated here with otplib).
 * Accounts are created through /api/accounts with the operator token; `ready` also completes the first
 * password change, so the session has its roles.
 */
import { generate } from 'otplib';
import type { TestServer } from './server.ts';
import type { WatchedPage } from './browser.ts';

export const INITIAL_PASSWORD = 'Initial-Passw0rd!';

/** The platform token sign-in (other pages' tests): the second tab of the sign-in page. */
export async function signInWithToken(w: WatchedPage, s: TestServer, next = '/'): Promise<void> {
  await w.page.goto(`${s.huren.url}/app/login?next=${encodeURIComponent(next)}`);
  await w.page.click('.el-tabs__item:has-text("平台令牌")');
  await w.page.fill('input[data-test=token]', s.token);
  await w.page.click('[data-test=submit]');
  await w.page.waitForURL((u) => !u.pathname.endsWith('/login'));
}

export interface AccountAnswer {
  status: number;
  body: any;
}

export async function accountsApi(s: TestServer, path: string, init: { method?: string; token?: string | null; json?: unknown } = {}): Promise<AccountAnswer> {
  const token = init.token === undefined ? s.token : init.token;
  const res = await fetch(`${s.huren.url}${path}`, {
    method: init.method ?? (init.json !== undefined ? 'POST' : 'GET'),
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.json !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: init.json !== undefined ? JSON.stringify(init.json) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** The accounts' clock for the test server (config.accounts.now): real time plus an offset the test moves. */
export class AccountClock {
  offset = 0;
  now = () => Date.now() + this.offset;
  /** The current TOTP code of a secret, at the server's account time. */
  code = (secret: string) => generate({ secret, epoch: Math.floor(this.now() / 1000) });
  /** One TOTP step on, so the next sign-in of the same account gets a fresh code. */
  step = () => (this.offset += 30_000);
}

let counter = 0;

export async function createAccount(s: TestServer, roles: string[], institution?: string): Promise<{ id: string; login: string }> {
  const login = `web${++counter}.${roles[0]}`;
  const r = await accountsApi(s, '/api/accounts', { json: { login, password: INITIAL_PASSWORD, roles, ...(institution ? { institution } : {}) } });
  if (r.status !== 201) throw new Error(`create ${login}: ${r.status} ${JSON.stringify(r.body)}`);
  return { id: r.body.id, login };
}

/** An account through the API: created, signed in with both factors, its first password changed. */
export async function ready(s: TestServer, clock: AccountClock, roles: string[], institution?: string) {
  const account = await createAccount(s, roles, institution);
  const first = await accountsApi(s, '/api/session/login', { token: null, json: { login: account.login, password: INITIAL_PASSWORD } });
  if (first.status !== 200) throw new Error(`login: ${first.status} ${JSON.stringify(first.body)}`);
  const second = await accountsApi(s, '/api/session/second-factor', { token: null, json: { challenge: first.body.challenge, code: await clock.code(first.body.secret) } });
  if (second.status !== 200) throw new Error(`second factor: ${second.status} ${JSON.stringify(second.body)}`);
  clock.step();
  const password = `Changed-Pw-${counter}-9x!`;
  const changed = await accountsApi(s, '/api/session/password', { token: second.body.token, json: { currentPassword: INITIAL_PASSWORD, newPassword: password } });
  if (changed.status !== 200) throw new Error(`password change: ${changed.status} ${JSON.stringify(changed.body)}`);
  return { ...account, token: second.body.token as string, secret: first.body.secret as string, password, grant: second.body };
}

/** Opens the app with an account's session already signed in (the token in sessionStorage, as the sign-in page leaves it). */
export async function openAs(w: WatchedPage, s: TestServer, session: { token: string; grant: { expiresAt: string; idleTimeoutSeconds: number } }, path: string): Promise<void> {
  await w.page.addInitScript(
    ([token, expiry]) => {
      if (!sessionStorage.getItem('huren.token')) {
        sessionStorage.setItem('huren.token', token);
        sessionStorage.setItem('huren.session', expiry);
      }
    },
    [session.token, JSON.stringify({ expiresAt: session.grant.expiresAt, idleTimeoutSeconds: session.grant.idleTimeoutSeconds })]
  );
  await w.page.goto(`${s.huren.url}/app${path}`);
}
