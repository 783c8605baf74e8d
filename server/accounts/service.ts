/**
 * Human accounts, their sign-in and their sessions, over the tables of migrations 060–061.
 *
 * Sign-in is two steps: the password (→ a short-lived challenge) and then the TOTP code (→ a session); an account
 * without a TOTP secret enrols one in the second step (the challenge carries the new secret). Wrong passwords and
 * wrong codes both count towards the lockout. A session is an opaque random token stored as its SHA-256, ended by
 * idle and absolute expiry. Until the first password change, or once the password is older than the maximum age,
 * a session may only change the password: it resolves to a principal without roles or scopes.
 * Every account has its FHIR face, a Practitioner and a PractitionerRole (DESIGN.md §3), written with it.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Database, Sql } from '../db/database.ts';
import type { Repository } from '../fhir/repository.ts';
import type { Principal } from '../fhir/principal.ts';
import type { AccountsConfig } from './config.ts';
import { AccountError } from './errors.ts';
import { checkStrength, dummyHash, hashPassword, passwordMatches } from './password.ts';
import { INSTITUTION_ROLES, isRole, ROLE_NAMES, scopesOf, separationBreach, type Role } from './roles.ts';
import { newTotpSecret, otpauthUri, totpStep } from './totp.ts';

export const SESSION_PREFIX = 'hus_';
const CHALLENGE_PREFIX = 'huc_';
const LOGIN_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$/;
const INSTITUTION_RE = /^Organization\/([A-Za-z0-9\-.]{1,64})$/;
export const ROLE_SYSTEM = 'https://huren.gz.cn/fhir/CodeSystem/account-role';
export const ACCOUNT_SYSTEM = 'https://huren.gz.cn/fhir/sid/account';

interface AccountRow {
  id: string;
  login: string;
  password_hash: string;
  password_set_at: Date;
  must_change_password: boolean;
  failed_attempts: number;
  locked_until: Date | null;
  totp_secret: string | null;
  totp_last_step: string | number | null;
  status: 'active' | 'disabled';
  roles: Role[];
  institution: string | null;
  practitioner: string | null;
  practitioner_role: string | null;
}

/** What the API shows of an account (never a hash or a secret). */
export interface AccountView {
  id: string;
  login: string;
  status: 'active' | 'disabled';
  roles: Role[];
  institution?: string;
  practitioner?: string;
  practitionerRole?: string;
  totpEnrolled: boolean;
  mustChangePassword: boolean;
  passwordExpiresAt: string;
  lockedUntil?: string;
}

export type LoginStep =
  | { step: 'totp'; challenge: string; expiresAt: string }
  | { step: 'totp-enrolment'; challenge: string; expiresAt: string; secret: string; otpauthUri: string };

export interface SessionGrant {
  token: string;
  expiresAt: string;
  idleTimeoutSeconds: number;
  mustChangePassword: boolean;
}

export interface NewAccount {
  login: unknown;
  password: unknown;
  roles: unknown;
  institution?: unknown;
}

const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
const ACCOUNT_COLUMNS =
  'a.id, a.login, a.password_hash, a.password_set_at, a.must_change_password, a.failed_attempts, a.locked_until, a.totp_secret, a.totp_last_step, a.status, a.roles, a.institution, a.practitioner, a.practitioner_role';

export class Accounts {
  constructor(
    private readonly db: Database,
    private readonly repo: Repository,
    readonly config: AccountsConfig
  ) {}

  private now(): Date {
    return new Date(this.config.now());
  }

  private passwordExpired(row: AccountRow, now: Date): boolean {
    return row.must_change_password || new Date(row.password_set_at).getTime() + this.config.passwordMaxAgeDays * 86_400_000 <= now.getTime();
  }

  view(row: AccountRow): AccountView {
    const now = this.now();
    return {
      id: row.id,
      login: row.login,
      status: row.status,
      roles: row.roles,
      ...(row.institution ? { institution: row.institution } : {}),
      ...(row.practitioner ? { practitioner: row.practitioner } : {}),
      ...(row.practitioner_role ? { practitionerRole: row.practitioner_role } : {}),
      totpEnrolled: row.totp_secret !== null,
      mustChangePassword: this.passwordExpired(row, now),
      passwordExpiresAt: new Date(new Date(row.password_set_at).getTime() + this.config.passwordMaxAgeDays * 86_400_000).toISOString(),
      ...(row.locked_until && new Date(row.locked_until) > now ? { lockedUntil: new Date(row.locked_until).toISOString() } : {}),
    };
  }

  private async row(sql: Sql, where: string, param: unknown): Promise<AccountRow | undefined> {
    const [row] = await sql.query<AccountRow>(`SELECT ${ACCOUNT_COLUMNS} FROM account a WHERE ${where}`, [param]);
    return row;
  }

  async get(id: string): Promise<AccountRow> {
    const row = await this.row(this.db, 'a.id = $1', id);
    if (!row) throw new AccountError(404, 'account-not-found', '账户不存在');
    return row;
  }

  /** The id of the account with this login name (case-insensitive, as the sign-in matches it), for the audit search. */
  async idOfLogin(login: unknown): Promise<{ id: string; login: string }> {
    if (typeof login !== 'string' || !LOGIN_RE.test(login)) throw new AccountError(400, 'invalid-login', '登录名应为 3–64 位字母、数字、点、下划线或连字符，并以字母或数字开头', 'login');
    const row = await this.row(this.db, 'lower(a.login) = lower($1)', login);
    if (!row) throw new AccountError(404, 'account-not-found', '没有该登录名的账户');
    return { id: row.id, login: row.login };
  }

  async list(): Promise<AccountView[]> {
    const rows = await this.db.query<AccountRow>(`SELECT ${ACCOUNT_COLUMNS} FROM account a ORDER BY a.login`);
    return rows.map((r) => this.view(r));
  }

  async hasSecurityAdmin(): Promise<boolean> {
    const rows = await this.db.query(`SELECT 1 FROM account WHERE 'security-admin' = ANY (roles) AND status = 'active' LIMIT 1`);
    return rows.length > 0;
  }

  /** Checks roles and institution together: known roles, 三权分立, an existing institution for the roles that need one. */
  private async checkRoles(roles: unknown, institution: unknown): Promise<{ roles: Role[]; institution?: string }> {
    if (!Array.isArray(roles) || roles.length === 0) throw new AccountError(400, 'roles-required', '请至少指定一个角色', 'roles');
    const unknown = roles.find((r) => !isRole(r));
    if (unknown !== undefined) throw new AccountError(400, 'unknown-role', `未知角色：${String(unknown).slice(0, 40)}`, 'roles');
    const unique = [...new Set(roles as Role[])];
    const breach = separationBreach(unique);
    if (breach) {
      throw new AccountError(409, 'separation-of-duties', `三权分立：${breach.map((r) => ROLE_NAMES[r]).join('、')}不能由同一账户兼任`, 'roles');
    }
    const needsInstitution = unique.some((r) => INSTITUTION_ROLES.includes(r));
    if (institution === undefined || institution === null) {
      if (needsInstitution) throw new AccountError(400, 'institution-required', '机构管理员和医生账户必须指定所属机构', 'institution');
      return { roles: unique };
    }
    if (!needsInstitution) throw new AccountError(400, 'institution-not-allowed', '只有机构管理员和医生账户属于某个机构', 'institution');
    const m = typeof institution === 'string' ? INSTITUTION_RE.exec(institution) : null;
    if (!m) throw new AccountError(400, 'invalid-institution', '所属机构应写作 Organization/[id]', 'institution');
    try {
      await this.repo.read('Organization', m[1]);
    } catch {
      throw new AccountError(422, 'unknown-institution', '所属机构不存在', 'institution');
    }
    return { roles: unique, institution: institution as string };
  }

  private practitionerRole(id: string | undefined, practitionerId: string, roles: Role[], institution: string | undefined, active: boolean) {
    return {
      resourceType: 'PractitionerRole' as const,
      ...(id ? { id } : {}),
      active,
      practitioner: { reference: `Practitioner/${practitionerId}` },
      ...(institution ? { organization: { reference: institution } } : {}),
      code: roles.map((r) => ({ coding: [{ system: ROLE_SYSTEM, code: r, display: ROLE_NAMES[r] }] })),
    };
  }

  async create(input: NewAccount): Promise<AccountView> {
    if (typeof input.login !== 'string' || !LOGIN_RE.test(input.login)) {
      throw new AccountError(400, 'invalid-login', '登录名应为 3–64 位字母、数字、点、下划线或连字符，并以字母或数字开头', 'login');
    }
    const login = input.login;
    const { roles, institution } = await this.checkRoles(input.roles, input.institution);
    const password = checkStrength(input.password, login, 'password');
    const passwordHash = await hashPassword(password);
    const id = randomUUID();
    const now = this.now();
    try {
      await this.repo.transaction(async (repo) => {
        const practitioner = await repo.create({ resourceType: 'Practitioner', active: true, identifier: [{ system: ACCOUNT_SYSTEM, value: id }] });
        const role = await repo.create(this.practitionerRole(undefined, practitioner.resource.id!, roles, institution, true) as never, {});
        await repo.connection.query(
          `INSERT INTO account (id, login, password_hash, password_set_at, must_change_password, roles, institution, practitioner, practitioner_role, created_at, updated_at)
           VALUES ($1, $2, $3, $4, true, $5, $6, $7, $8, $4, $4)`,
          [id, login, passwordHash, now, roles, institution ?? null, `Practitioner/${practitioner.resource.id}`, `PractitionerRole/${role.resource.id}`]
        );
      });
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw new AccountError(409, 'login-taken', '该登录名已被使用', 'login');
      if ((err as { code?: string }).code === '23514') throw new AccountError(409, 'separation-of-duties', '三权分立：系统管理员、安全管理员、审计管理员不能由同一账户兼任', 'roles');
      throw err;
    }
    return this.view(await this.get(id));
  }

  async setRoles(id: string, roles: unknown, institution: unknown): Promise<AccountView> {
    const row = await this.get(id);
    const checked = await this.checkRoles(roles, institution);
    try {
      await this.repo.transaction(async (repo) => {
        await repo.connection.query('UPDATE account SET roles = $2, institution = $3, updated_at = $4 WHERE id = $1', [id, checked.roles, checked.institution ?? null, this.now()]);
        await this.updateFace(repo, row, checked.roles, checked.institution, row.status === 'active');
      });
    } catch (err) {
      if ((err as { code?: string }).code === '23514') throw new AccountError(409, 'separation-of-duties', '三权分立：系统管理员、安全管理员、审计管理员不能由同一账户兼任', 'roles');
      throw err;
    }
    return this.view(await this.get(id));
  }

  /** Disables (ending its sessions) or re-enables an account; enabling also lifts a lockout. */
  async setStatus(id: string, status: 'active' | 'disabled'): Promise<AccountView> {
    const row = await this.get(id);
    await this.repo.transaction(async (repo) => {
      await repo.connection.query('UPDATE account SET status = $2, failed_attempts = 0, locked_until = NULL, updated_at = $3 WHERE id = $1', [id, status, this.now()]);
      if (status === 'disabled') await repo.connection.query('DELETE FROM account_session WHERE account_id = $1', [id]);
      await this.updateFace(repo, row, row.roles, row.institution ?? undefined, status === 'active');
    });
    return this.view(await this.get(id));
  }

  /**
   * The security administrator's resets: a new initial password (to be changed at the next sign-in), a new
   * second factor (the next sign-in enrols one), or the lifting of a lockout. A password or TOTP reset ends the
   * account's sessions and lifts its lockout.
   */
  async resetPassword(id: string, password: unknown): Promise<AccountView> {
    const row = await this.get(id);
    const checked = checkStrength(password, row.login, 'password');
    const passwordHash = await hashPassword(checked);
    const now = this.now();
    await this.db.transaction(async (sql) => {
      await sql.query('INSERT INTO account_password_history (account_id, password_hash, set_at) VALUES ($1, $2, $3)', [id, row.password_hash, row.password_set_at]);
      await sql.query(
        'UPDATE account SET password_hash = $2, password_set_at = $3, must_change_password = true, failed_attempts = 0, locked_until = NULL, updated_at = $3 WHERE id = $1',
        [id, passwordHash, now]
      );
      await sql.query('DELETE FROM account_session WHERE account_id = $1', [id]);
    });
    return this.view(await this.get(id));
  }

  async resetTotp(id: string): Promise<AccountView> {
    await this.get(id);
    await this.db.transaction(async (sql) => {
      await sql.query('UPDATE account SET totp_secret = NULL, totp_last_step = NULL, failed_attempts = 0, locked_until = NULL, updated_at = $2 WHERE id = $1', [id, this.now()]);
      await sql.query('DELETE FROM account_session WHERE account_id = $1', [id]);
    });
    return this.view(await this.get(id));
  }

  async unlock(id: string): Promise<AccountView> {
    await this.get(id);
    await this.db.query('UPDATE account SET failed_attempts = 0, locked_until = NULL, updated_at = $2 WHERE id = $1', [id, this.now()]);
    return this.view(await this.get(id));
  }

  private async updateFace(repo: Repository, row: AccountRow, roles: Role[], institution: string | undefined, active: boolean): Promise<void> {
    if (!row.practitioner || !row.practitioner_role) return;
    const practitionerId = row.practitioner.split('/')[1];
    await repo.update({ resourceType: 'Practitioner', id: practitionerId, active, identifier: [{ system: ACCOUNT_SYSTEM, value: row.id }] });
    await repo.update(this.practitionerRole(row.practitioner_role.split('/')[1], practitionerId, roles, institution, active) as never);
  }

  /** Counts a failed attempt; returns whether the account is now locked. */
  private async failure(sql: Sql, id: string): Promise<boolean> {
    const now = this.now();
    const until = new Date(now.getTime() + this.config.lockoutSeconds * 1000);
    const [r] = await sql.query<{ locked_until: Date | null }>(
      `UPDATE account SET
         locked_until = CASE WHEN failed_attempts + 1 >= $2 THEN $3 ELSE locked_until END,
         failed_attempts = CASE WHEN failed_attempts + 1 >= $2 THEN 0 ELSE failed_attempts + 1 END
       WHERE id = $1 RETURNING locked_until`,
      [id, this.config.lockoutAttempts, until]
    );
    return !!r?.locked_until && new Date(r.locked_until) > now;
  }

  private lockedError(until: Date): AccountError {
    const minutes = Math.max(1, Math.ceil((until.getTime() - this.now().getTime()) / 60_000));
    return new AccountError(423, 'account-locked', `连续登录失败次数过多，账户已锁定，请 ${minutes} 分钟后再试`);
  }

  private checkUsable(row: AccountRow): void {
    if (row.locked_until && new Date(row.locked_until) > this.now()) throw this.lockedError(new Date(row.locked_until));
  }

  /** The password step. */
  async login(login: unknown, password: unknown): Promise<{ account: string; next: LoginStep }> {
    if (typeof login !== 'string' || login === '' || login.length > 64) throw new AccountError(400, 'login-required', '请输入登录名', 'login');
    if (typeof password !== 'string' || password === '' || password.length > 1024) throw new AccountError(400, 'password-required', '请输入密码', 'password');
    const row = await this.row(this.db, 'lower(a.login) = lower($1)', login);
    if (!row) {
      await passwordMatches(await dummyHash(), password);
      throw new AccountError(401, 'invalid-credentials', '用户名或密码错误');
    }
    this.checkUsable(row);
    if (!(await passwordMatches(row.password_hash, password))) {
      if (await this.failure(this.db, row.id)) throw this.lockedError(new Date(this.now().getTime() + this.config.lockoutSeconds * 1000));
      throw new AccountError(401, 'invalid-credentials', '用户名或密码错误');
    }
    if (row.status !== 'active') throw new AccountError(403, 'account-disabled', '账户已停用，请联系安全管理员');
    const challenge = CHALLENGE_PREFIX + randomBytes(32).toString('base64url');
    const now = this.now();
    const expires = new Date(now.getTime() + this.config.challengeSeconds * 1000);
    const secret = row.totp_secret ? undefined : newTotpSecret();
    await this.db.query(
      `INSERT INTO account_session (token_hash, account_id, stage, pending_secret, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $5, $6)`,
      [hashToken(challenge), row.id, secret ? 'enrolment' : 'totp', secret ?? null, now, expires]
    );
    const next: LoginStep = secret
      ? { step: 'totp-enrolment', challenge, expiresAt: expires.toISOString(), secret, otpauthUri: otpauthUri(secret, this.config.totpIssuer, row.login) }
      : { step: 'totp', challenge, expiresAt: expires.toISOString() };
    return { account: row.id, next };
  }

  /** The second step: the TOTP code for a challenge (enrolling the secret it carries, if any) → a session. */
  async secondFactor(challenge: unknown, code: unknown): Promise<{ account: string; grant: SessionGrant }> {
    if (typeof challenge !== 'string' || !challenge.startsWith(CHALLENGE_PREFIX) || challenge.length > 200) {
      throw new AccountError(400, 'challenge-required', '缺少登录凭据，请重新输入密码', 'challenge');
    }
    if (typeof code !== 'string' || !/^\d{6}$/.test(code)) throw new AccountError(400, 'invalid-totp-format', '动态口令应为 6 位数字', 'code');
    const [s] = await this.db.query<AccountRow & { stage: string; pending_secret: string | null; expires_at: Date }>(
      `SELECT ${ACCOUNT_COLUMNS}, s.stage, s.pending_secret, s.expires_at FROM account_session s JOIN account a ON a.id = s.account_id
       WHERE s.token_hash = $1 AND s.stage IN ('totp', 'enrolment')`,
      [hashToken(challenge)]
    );
    const now = this.now();
    if (!s || new Date(s.expires_at) <= now) {
      if (s) await this.db.query('DELETE FROM account_session WHERE token_hash = $1', [hashToken(challenge)]);
      throw new AccountError(401, 'challenge-expired', '登录已超时，请重新输入密码', 'challenge');
    }
    this.checkUsable(s);
    if (s.status !== 'active') throw new AccountError(403, 'account-disabled', '账户已停用，请联系安全管理员');
    const secret = (s.stage === 'enrolment' ? s.pending_secret : s.totp_secret)!;
    const step = await totpStep(secret, code, now.getTime());
    const last = s.totp_last_step === null ? undefined : Number(s.totp_last_step);
    if (step === undefined || (last !== undefined && step <= last)) {
      const locked = await this.failure(this.db, s.id);
      if (locked) {
        await this.db.query('DELETE FROM account_session WHERE token_hash = $1', [hashToken(challenge)]);
        throw this.lockedError(new Date(now.getTime() + this.config.lockoutSeconds * 1000));
      }
      if (step === undefined) throw new AccountError(401, 'invalid-totp', '动态口令错误', 'code');
      throw new AccountError(401, 'totp-replayed', '该动态口令已使用过，请等待下一个口令', 'code');
    }
    const token = SESSION_PREFIX + randomBytes(32).toString('base64url');
    const expires = new Date(now.getTime() + this.config.sessionMaxSeconds * 1000);
    await this.db.transaction(async (sql) => {
      // the code's time step is claimed once: a concurrent use of the same code finds it taken
      const claimed = await sql.query(
        `UPDATE account SET totp_secret = $2, totp_last_step = $3, failed_attempts = 0, updated_at = $4
         WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $3) RETURNING id`,
        [s.id, secret, step, now]
      );
      if (claimed.length === 0) throw new AccountError(401, 'totp-replayed', '该动态口令已使用过，请等待下一个口令', 'code');
      await sql.query('DELETE FROM account_session WHERE token_hash = $1', [hashToken(challenge)]);
      await sql.query(
        `INSERT INTO account_session (token_hash, account_id, stage, created_at, last_seen_at, expires_at) VALUES ($1, $2, 'active', $3, $3, $4)`,
        [hashToken(token), s.id, now, expires]
      );
    });
    return {
      account: s.id,
      grant: { token, expiresAt: expires.toISOString(), idleTimeoutSeconds: this.config.sessionIdleSeconds, mustChangePassword: this.passwordExpired(s, now) },
    };
  }

  /** The principal of a live session token (its idle time restarts), or undefined for anything else. */
  async principal(token: string): Promise<Principal | undefined> {
    if (!token.startsWith(SESSION_PREFIX) || token.length > 200) return undefined;
    const h = hashToken(token);
    const [s] = await this.db.query<AccountRow & { last_seen_at: Date; expires_at: Date }>(
      `SELECT ${ACCOUNT_COLUMNS}, s.last_seen_at, s.expires_at FROM account_session s JOIN account a ON a.id = s.account_id WHERE s.token_hash = $1 AND s.stage = 'active'`,
      [h]
    );
    if (!s) return undefined;
    const now = this.now();
    if (new Date(s.expires_at) <= now || new Date(s.last_seen_at).getTime() + this.config.sessionIdleSeconds * 1000 <= now.getTime() || s.status !== 'active') {
      await this.db.query('DELETE FROM account_session WHERE token_hash = $1', [h]);
      return undefined;
    }
    await this.db.query('UPDATE account_session SET last_seen_at = $2 WHERE token_hash = $1', [h, now]);
    const roles = this.passwordExpired(s, now) ? [] : s.roles;
    return { kind: 'user', id: `user:${s.id}`, roles, scopes: scopesOf(roles), ...(s.institution ? { institution: s.institution } : {}) };
  }

  /** Removes ended sessions and challenges (they are refused anyway; this keeps the table small). */
  async prune(): Promise<void> {
    const now = this.now();
    await this.db.query(`DELETE FROM account_session WHERE expires_at <= $1 OR (stage = 'active' AND last_seen_at <= $2)`, [
      now,
      new Date(now.getTime() - this.config.sessionIdleSeconds * 1000),
    ]);
  }

  async logout(token: string): Promise<void> {
    await this.db.query('DELETE FROM account_session WHERE token_hash = $1', [hashToken(token)]);
  }

  async changePassword(id: string, current: unknown, next: unknown): Promise<AccountView> {
    const row = await this.get(id);
    this.checkUsable(row);
    if (typeof current !== 'string' || current === '') throw new AccountError(400, 'password-required', '请输入当前密码', 'currentPassword');
    if (!(await passwordMatches(row.password_hash, current))) {
      if (await this.failure(this.db, id)) throw this.lockedError(new Date(this.now().getTime() + this.config.lockoutSeconds * 1000));
      throw new AccountError(401, 'invalid-credentials', '当前密码错误', 'currentPassword');
    }
    const password = checkStrength(next, row.login, 'newPassword');
    const history = await this.db.query<{ password_hash: string }>(
      'SELECT password_hash FROM account_password_history WHERE account_id = $1 ORDER BY set_at DESC LIMIT $2',
      [id, this.config.passwordHistory - 1]
    );
    for (const old of [row.password_hash, ...history.map((h) => h.password_hash)]) {
      if (await passwordMatches(old, password)) {
        throw new AccountError(422, 'password-reused', `新密码不能与最近 ${this.config.passwordHistory} 次使用过的密码相同`, 'newPassword');
      }
    }
    const passwordHash = await hashPassword(password);
    const now = this.now();
    await this.db.transaction(async (sql) => {
      await sql.query('INSERT INTO account_password_history (account_id, password_hash, set_at) VALUES ($1, $2, $3)', [id, row.password_hash, row.password_set_at]);
      await sql.query(
        `DELETE FROM account_password_history WHERE account_id = $1 AND set_at NOT IN
           (SELECT set_at FROM account_password_history WHERE account_id = $1 ORDER BY set_at DESC LIMIT $2)`,
        [id, this.config.passwordHistory]
      );
      await sql.query('UPDATE account SET password_hash = $2, password_set_at = $3, must_change_password = false, failed_attempts = 0, updated_at = $3 WHERE id = $1', [id, passwordHash, now]);
    });
    return this.view(await this.get(id));
  }
}
