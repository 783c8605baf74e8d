/** The human accounts' settings (HUREN_ACCOUNT_…, docs/running.md). */

export interface AccountsConfig {
  /** Failed sign-in attempts (password or second factor) that lock an account (HUREN_ACCOUNT_LOCKOUT_ATTEMPTS, default 5). */
  lockoutAttempts: number;
  /** How long a locked account stays locked, in seconds (HUREN_ACCOUNT_LOCKOUT_SECONDS, default 900). */
  lockoutSeconds: number;
  /** A session ends after this long without a request, in seconds (HUREN_SESSION_IDLE_SECONDS, default 900). */
  sessionIdleSeconds: number;
  /** A session ends this long after sign-in whatever happens, in seconds (HUREN_SESSION_MAX_SECONDS, default 8 h). */
  sessionMaxSeconds: number;
  /** A password must be changed after this many days (HUREN_PASSWORD_MAX_AGE_DAYS, default 90). */
  passwordMaxAgeDays: number;
  /** A new password may not be one of this many last ones (HUREN_PASSWORD_HISTORY, default 5). */
  passwordHistory: number;
  /** Seconds between the password step and its second factor (HUREN_LOGIN_CHALLENGE_SECONDS, default 300). */
  challengeSeconds: number;
  /** The issuer shown in authenticator apps (HUREN_TOTP_ISSUER, default 互认平台). */
  totpIssuer: string;
  /** The clock, in epoch milliseconds (tests move it instead of sleeping). */
  now: () => number;
}

export function loadAccountsConfig(env: NodeJS.ProcessEnv): AccountsConfig {
  return {
    lockoutAttempts: positive(env.HUREN_ACCOUNT_LOCKOUT_ATTEMPTS, 5),
    lockoutSeconds: positive(env.HUREN_ACCOUNT_LOCKOUT_SECONDS, 15 * 60),
    sessionIdleSeconds: positive(env.HUREN_SESSION_IDLE_SECONDS, 15 * 60),
    sessionMaxSeconds: positive(env.HUREN_SESSION_MAX_SECONDS, 8 * 3600),
    passwordMaxAgeDays: positive(env.HUREN_PASSWORD_MAX_AGE_DAYS, 90),
    passwordHistory: positive(env.HUREN_PASSWORD_HISTORY, 5),
    challengeSeconds: positive(env.HUREN_LOGIN_CHALLENGE_SECONDS, 300),
    totpIssuer: env.HUREN_TOTP_ISSUER || '互认平台',
    now: Date.now,
  };
}

function positive(value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`Expected a positive integer, got '${value}'`);
  return n;
}
