/**
 * Who is signed in: the account's login, roles and institution (GET /api/session/me), kept for the router's
 * guard and the navigation menu. The operator's platform token (development and tests only; refused in
 * production mode) is not a person: it stands for every role.
 */
import { reactive } from 'vue';
import { ROLE_NAMES, ROLES, type Role } from '../../server/accounts/roles.ts';
import { api, ApiError, fhir, isSessionToken, launchContext, setToken, token } from './api.ts';

export { ROLE_NAMES, ROLES, SEPARATED, INSTITUTION_ROLES, type Role } from '../../server/accounts/roles.ts';

export interface Me {
  login: string;
  roles: Role[];
  institution?: string;
  mustChangePassword: boolean;
  /** The platform token, not a person. */
  operator?: boolean;
  /** Opened from the HIS (SMART EHR launch): the doctor the HIS vouches for, for this patient only. */
  launched?: { patient: string };
}

export const session = reactive<{ me: Me | null }>({ me: null });

/** The signed-in user, loaded once per page load (null: nobody, or the token no longer works). */
export async function currentUser(): Promise<Me | null> {
  const t = token();
  if (!t) return (session.me = null);
  if (session.me) return session.me;
  const launched = launchContext();
  // opened from the HIS: the HIS signed the doctor in; the token reads this patient's reports only
  if (launched) return (session.me = { login: 'HIS 医生', roles: ['doctor'], mustChangePassword: false, launched });
  try {
    if (isSessionToken(t)) {
      const me = await api<Me>('session/me');
      session.me = { login: me.login, roles: me.roles, institution: me.institution, mustChangePassword: me.mustChangePassword };
    } else {
      // the platform token: any call that needs a valid token tells whether it is one
      await fhir('Organization?_summary=count');
      session.me = { login: '平台令牌', roles: [...ROLES], mustChangePassword: false, operator: true };
    }
  } catch (e) {
    if (!(e instanceof ApiError) || e.status === 401) setToken(null);
    session.me = null;
    if (e instanceof ApiError && e.status !== 401) throw e;
  }
  return session.me;
}

/** Forget the loaded user (after sign-in, password change or sign-out). */
export function resetUser(): void {
  session.me = null;
}

export const roleNames = (roles: readonly Role[]) => roles.map((r) => ROLE_NAMES[r] ?? r).join('、');
