/**
 * The accounts API for the app and for automation. Answers are JSON; every refusal is a 4xx
 * `{ code, message, field? }` with an English code and a Chinese message for the app. Each account event sets
 * `ctx.state.audit` ({ action, outcome, detail }) for the audit trail — never a password, a code or a name.
 *
 *   POST /api/session/login          { login, password }          → { step: 'totp' | 'totp-enrolment', challenge, … }
 *   POST /api/session/second-factor  { challenge, code }          → { token, expiresAt, idleTimeoutSeconds, mustChangePassword }
 *   POST /api/session/logout                                       the session ends
 *   GET  /api/session/me                                           the signed-in account, its roles and scopes
 *   POST /api/session/password       { currentPassword, newPassword }
 *   GET  /api/accounts · GET /api/accounts/:id                     (security administrator)
 *   POST /api/accounts               { login, password, roles, institution? }
 *   PUT  /api/accounts/:id/roles     { roles, institution? }
 *   POST /api/accounts/:id/disable · POST /api/accounts/:id/enable
 *   POST /api/accounts/:id/reset-password { password }             a new initial password, changed at the next sign-in
 *   POST /api/accounts/:id/reset-totp                              the next sign-in enrols a new second factor
 *   POST /api/accounts/:id/unlock                                  lifts a lockout
 *   GET  /api/accounts/by-login/:login                             { id, login } (security and audit administrators: the audit search by login)
 *   GET  /api/clients                                              the registered HIS and CDS clients (read only; clients.ts)
 *
 * The security administrator manages accounts; the operator-set bootstrap token may too (automation, tests);
 * a generated bootstrap token may only create the first security administrator, and is disabled by doing so.
 */
import Router from '@koa/router';
import type Koa from 'koa';
import { OperationOutcomeError } from '@medplum/core';
import type { BootstrapToken, Principal } from '../http/auth.ts';
import { readBody, type BodyLimits } from '../http/body.ts';
import { AccountError } from './errors.ts';
import { registeredClients } from './clients.ts';
import { scopesOf } from './roles.ts';
import type { Accounts, NewAccount } from './service.ts';

type AuditAction = 'login' | 'login-failed' | 'logout' | 'password-change' | 'account-change' | 'role-change';

const audit = (ctx: Koa.Context, action: AuditAction, outcome: 'success' | 'failure', detail?: string) => {
  ctx.state.audit = { action, outcome, ...(detail ? { detail } : {}) };
};

const ID = /^[0-9a-f-]{36}$/;

/** What the security administrator's read-only view of the registered clients reads. */
export type ClientSource = () => ReturnType<typeof registeredClients>;

export function accountsApi(accounts: Accounts, bootstrap: BootstrapToken, limits: BodyLimits, clients: ClientSource): Koa.Middleware<any, any>[] {
  const router = new Router();

  const body = async (ctx: Koa.Context): Promise<Record<string, unknown>> => {
    let value: unknown;
    try {
      value = await readBody(ctx, limits);
    } catch (err) {
      if (err instanceof OperationOutcomeError) throw new AccountError(400, 'invalid-body', '请求内容不是有效的 JSON');
      throw err;
    }
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new AccountError(400, 'invalid-body', '请求内容应为 JSON 对象');
    return value as Record<string, unknown>;
  };
  const principal = (ctx: Koa.Context) => ctx.state.principal as Principal;
  /** The signed-in person's account id (sessions only). */
  const person = (ctx: Koa.Context): string => {
    const p = principal(ctx);
    if (p.kind !== 'user') throw new AccountError(403, 'not-a-session', '此操作需要以个人账户登录');
    return p.id.slice('user:'.length);
  };
  /** Who manages accounts: a security administrator whose password is current, or the operator's bootstrap token. */
  const securityAdmin = async (ctx: Koa.Context): Promise<string | undefined> => {
    const p = principal(ctx);
    if (p.kind === 'bootstrap' && p.id === 'bootstrap') return undefined;
    if (p.kind === 'bootstrap') throw new AccountError(403, 'bootstrap-limited', '初始令牌只能用于创建第一个安全管理员');
    if (p.kind === 'user') {
      if (p.roles?.includes('security-admin')) return person(ctx);
      const self = accounts.view(await accounts.get(person(ctx)));
      if (self.roles.includes('security-admin') && self.mustChangePassword) throw new AccountError(403, 'password-change-required', '请先修改密码');
    }
    throw new AccountError(403, 'forbidden', '只有安全管理员可以管理账户');
  };
  const notSelf = (actor: string | undefined, id: string) => {
    if (actor === id) throw new AccountError(403, 'own-account', '不能修改自己账户的角色或状态，请由另一位安全管理员操作');
  };
  const accountId = (ctx: Koa.Context): string => {
    if (!ID.test(ctx.params.id)) throw new AccountError(404, 'account-not-found', '账户不存在');
    return ctx.params.id;
  };

  router.post('/api/session/login', async (ctx) => {
    const b = await body(ctx);
    try {
      const { next } = await accounts.login(b.login, b.password);
      audit(ctx, 'login', 'success', `password accepted, ${next.step} pending`);
      ctx.body = next;
    } catch (err) {
      if (err instanceof AccountError) audit(ctx, 'login-failed', 'failure', err.code);
      throw err;
    }
  });

  router.post('/api/session/second-factor', async (ctx) => {
    const b = await body(ctx);
    try {
      const { grant } = await accounts.secondFactor(b.challenge, b.code);
      audit(ctx, 'login', 'success', 'second factor accepted, session started');
      ctx.body = grant;
    } catch (err) {
      if (err instanceof AccountError) audit(ctx, 'login-failed', 'failure', err.code);
      throw err;
    }
  });

  router.post('/api/session/logout', async (ctx) => {
    person(ctx);
    await accounts.logout(/^Bearer\s+(\S+)$/i.exec(ctx.get('authorization'))![1]);
    audit(ctx, 'logout', 'success');
    ctx.body = { loggedOut: true };
  });

  router.get('/api/session/me', async (ctx) => {
    const view = accounts.view(await accounts.get(person(ctx)));
    ctx.body = { ...view, scopes: view.mustChangePassword ? [] : scopesOf(view.roles) };
  });

  router.post('/api/session/password', async (ctx) => {
    const id = person(ctx);
    const b = await body(ctx);
    try {
      ctx.body = await accounts.changePassword(id, b.currentPassword, b.newPassword);
      audit(ctx, 'password-change', 'success');
    } catch (err) {
      if (err instanceof AccountError) audit(ctx, 'password-change', 'failure', err.code);
      throw err;
    }
  });

  router.get('/api/accounts', async (ctx) => {
    await securityAdmin(ctx);
    ctx.body = { accounts: await accounts.list() };
  });

  // the audit trail names accounts by id (never by name): the audit administrator searches by login through this
  router.get('/api/accounts/by-login/:login', async (ctx) => {
    const p = principal(ctx);
    const auditor = p.kind === 'user' && !!p.roles?.includes('audit-admin');
    if (!auditor) await securityAdmin(ctx);
    ctx.body = await accounts.idOfLogin(ctx.params.login);
  });

  router.get('/api/clients', async (ctx) => {
    await securityAdmin(ctx);
    const list = await clients();
    ctx.body = { total: list.length, clients: list };
  });

  router.get('/api/accounts/:id', async (ctx) => {
    await securityAdmin(ctx);
    ctx.body = accounts.view(await accounts.get(accountId(ctx)));
  });

  router.post('/api/accounts', async (ctx) => {
    const b = await body(ctx);
    const p = principal(ctx);
    // a generated bootstrap token creates the first security administrator, and nothing else
    const first = p.kind === 'bootstrap' && p.id === 'bootstrap:generated';
    try {
      if (first) {
        if (await accounts.hasSecurityAdmin()) throw new AccountError(403, 'bootstrap-limited', '已有安全管理员，初始令牌已停用');
        if (!Array.isArray(b.roles) || b.roles.length !== 1 || b.roles[0] !== 'security-admin') {
          throw new AccountError(403, 'bootstrap-limited', '初始令牌只能用于创建第一个安全管理员', 'roles');
        }
      } else {
        await securityAdmin(ctx);
      }
      const created = await accounts.create(b as unknown as NewAccount);
      if (first) bootstrap.disable();
      audit(ctx, 'account-change', 'success', `account ${created.id} created with roles ${created.roles.join(',')}${first ? ' (bootstrap token now disabled)' : ''}`);
      ctx.status = 201;
      ctx.set('Location', `/api/accounts/${created.id}`);
      ctx.body = created;
    } catch (err) {
      if (err instanceof AccountError) audit(ctx, 'account-change', 'failure', `create refused: ${err.code}`);
      throw err;
    }
  });

  router.put('/api/accounts/:id/roles', async (ctx) => {
    try {
      const actor = await securityAdmin(ctx);
      const id = accountId(ctx);
      notSelf(actor, id);
      const b = await body(ctx);
      const changed = await accounts.setRoles(id, b.roles, b.institution);
      audit(ctx, 'role-change', 'success', `account ${id} roles ${changed.roles.join(',')}`);
      ctx.body = changed;
    } catch (err) {
      if (err instanceof AccountError) audit(ctx, 'role-change', 'failure', err.code);
      throw err;
    }
  });

  for (const [action, status] of [
    ['disable', 'disabled'],
    ['enable', 'active'],
  ] as const) {
    router.post(`/api/accounts/:id/${action}`, async (ctx) => {
      try {
        const actor = await securityAdmin(ctx);
        const id = accountId(ctx);
        notSelf(actor, id);
        ctx.body = await accounts.setStatus(id, status);
        audit(ctx, 'account-change', 'success', `account ${id} ${status}`);
      } catch (err) {
        if (err instanceof AccountError) audit(ctx, 'account-change', 'failure', `${action} refused: ${err.code}`);
        throw err;
      }
    });
  }

  const resets = {
    'reset-password': async (id: string, ctx: Koa.Context) => accounts.resetPassword(id, (await body(ctx)).password),
    'reset-totp': (id: string) => accounts.resetTotp(id),
    unlock: (id: string) => accounts.unlock(id),
  } as const;
  for (const [action, run] of Object.entries(resets)) {
    router.post(`/api/accounts/:id/${action}`, async (ctx) => {
      try {
        const actor = await securityAdmin(ctx);
        const id = accountId(ctx);
        notSelf(actor, id);
        ctx.body = await run(id, ctx);
        audit(ctx, 'account-change', 'success', `account ${id} ${action}`);
      } catch (err) {
        if (err instanceof AccountError) audit(ctx, 'account-change', 'failure', `${action} refused: ${err.code}`);
        throw err;
      }
    });
  }

  /** Refusals as `{ code, message, field? }` JSON. */
  const errors: Koa.Middleware = async (ctx, next) => {
    if (!ctx.path.startsWith('/api/accounts') && !ctx.path.startsWith('/api/session') && ctx.path !== '/api/clients') return next();
    try {
      await next();
    } catch (err) {
      if (!(err instanceof AccountError)) throw err;
      ctx.status = err.status;
      ctx.type = 'application/json; charset=utf-8';
      ctx.body = { code: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) };
    }
  };
  return [errors, router.routes(), router.allowedMethods()];
}
