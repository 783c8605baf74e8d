/**
 * SMART App Launch 2.x, EHR launch — the platform as authorization server for its registered SMART apps (the
 * report viewer, a public client): GET /auth/authorize spends a launch context (launch.ts) and issues an
 * authorization code without a second sign-in — the HIS that created the launch vouches for its user —, and
 * POST /auth/token (grant_type=authorization_code, PKCE S256) exchanges the code for an access token whose
 * context names the patient and whose scopes are patient read scopes (v1 `patient/*.read` or v2
 * `patient/*.rs`). The token reads only that patient's data, as the HIS's institution, for treatment (TREAT),
 * and every read records the HIS-asserted user (server/audit/). It is re-checked on every use: the HIS client
 * must still be registered with `system/launch`, none of its tokens revoked since (POST /auth/revoke), and
 * the code it came from not presented a second time (a replayed code revokes its token).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import type { Database } from '../db/database.ts';
import { isSupportedResourceType } from '../fhir/definitions.ts';
import type { Principal } from '../fhir/principal.ts';
import { personalTypes } from './care.ts';
import { OAuthError } from './backend.ts';
import { contextOf, digestOf, type LaunchContext, type LaunchContexts, type LaunchRow } from './launch.ts';
import type { TokenKeys } from './signing.ts';

export const VIEWER_CLIENT_ID = 'huren-viewer';
/** The viewer's launch page and its registered redirect URI, under the server's own base URL. */
export const VIEWER_LAUNCH_PATH = '/app/launch';
export const VIEWER_REDIRECT_PATH = '/app/launch/callback';
export const CODE_LIFETIME_SECONDS = 60;
export const APP_TOKEN_LIFETIME_SECONDS = 3600;
const TOKEN_ISSUER = 'huren-auth';
const APP_AUDIENCE = 'huren-smart-app';

export interface SmartApp {
  clientId: string;
  redirectUris: string[];
}

/** What the authorize endpoint answers: a redirect to the app, or (no valid redirect URI to use) a page. */
export type AuthorizeAnswer = { redirect: string } | { status: number; page: string };

export interface AppAuthOptions {
  db: Database;
  keys: TokenKeys;
  launches: LaunchContexts;
  /** The server's own base URL (HUREN_PUBLIC_URL, else the listen address). */
  base: () => string;
  /** Whether a HIS client is (still) registered with the launch scope. */
  mayLaunch: (clientId: string) => boolean;
}

export class AppAuth {
  constructor(private readonly options: AppAuthOptions) {}

  /** The registered SMART apps: the report viewer (its redirect URI under /app of this server). */
  apps(): SmartApp[] {
    return [{ clientId: VIEWER_CLIENT_ID, redirectUris: [`${this.options.base()}${VIEWER_REDIRECT_PATH}`] }];
  }

  fhirBase(): string {
    return `${this.options.base()}/fhir`;
  }

  /** GET /auth/authorize with its query. */
  async authorize(q: URLSearchParams, now = new Date()): Promise<AuthorizeAnswer> {
    const clientId = q.get('client_id');
    const app = this.apps().find((a) => a.clientId === clientId);
    if (!app) return { status: 400, page: '发起调阅的应用未在平台登记（client_id 无效），请联系 HIS 厂商。' };
    const redirectUri = q.get('redirect_uri');
    if (!redirectUri || !app.redirectUris.includes(redirectUri)) return { status: 400, page: '应用的回调地址（redirect_uri）与平台登记的不一致，无法继续，请联系 HIS 厂商。' };
    const state = q.get('state');
    const back = (params: Record<string, string>) => {
      const url = new URL(redirectUri);
      for (const [k, v] of Object.entries({ ...params, ...(state ? { state } : {}) })) url.searchParams.set(k, v);
      return { redirect: url.toString() };
    };
    const error = (code: string, description: string) => back({ error: code, error_description: description });
    if (q.get('response_type') !== 'code') return error('unsupported_response_type', 'response_type must be code');
    if (!state) return error('invalid_request', 'state is required');
    if (q.get('aud') !== this.fhirBase()) return error('invalid_request', `aud must be this server's FHIR base URL, ${this.fhirBase()}`);
    if (q.get('code_challenge_method') !== 'S256') return error('invalid_request', 'PKCE is required: code_challenge_method=S256');
    const challenge = q.get('code_challenge') ?? '';
    if (!/^[A-Za-z0-9_-]{43,128}$/.test(challenge)) return error('invalid_request', 'code_challenge must be the base64url SHA-256 of the code_verifier');
    const requested = (q.get('scope') ?? '').split(/\s+/).filter(Boolean);
    if (!requested.includes('launch')) return error('invalid_scope', 'an EHR launch asks for the scope launch');
    const granted = grantedScopes(requested);
    if (granted.length === 0) return error('invalid_scope', 'ask for patient read scopes, e.g. patient/*.rs (or patient/*.read)');
    const launch = q.get('launch');
    if (!launch) return error('invalid_request', 'launch is required (the HIS names it when it opens the app)');
    const spent = await this.options.launches.consume(launch, now);
    if (!spent) return error('invalid_request', 'the launch is unknown, expired or used already: open the app from the HIS again');
    if (!this.options.mayLaunch(spent.context.clientId)) return error('access_denied', 'the HIS client that created the launch may no longer launch apps');
    const code = randomBytes(32).toString('base64url');
    await this.options.db.query(
      `INSERT INTO smart_code (code_hash, launch_hash, app_id, redirect_uri, code_challenge, scope, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [digestOf(code), spent.hash, app.clientId, redirectUri, challenge, ['launch', ...granted].join(' '), new Date(now.getTime() + CODE_LIFETIME_SECONDS * 1000).toISOString()]
    );
    return back({ code });
  }

  /** POST /auth/token with grant_type=authorization_code. */
  async exchange(form: URLSearchParams, now = new Date()): Promise<Record<string, unknown>> {
    const clientId = form.get('client_id');
    const app = this.apps().find((a) => a.clientId === clientId);
    if (!app) throw new OAuthError(401, 'invalid_client', 'client_id is not a registered SMART app');
    const code = form.get('code');
    const verifier = form.get('code_verifier');
    if (!code) throw new OAuthError(400, 'invalid_request', 'code is required');
    if (!verifier || !/^[A-Za-z0-9\-._~]{43,128}$/.test(verifier)) throw new OAuthError(400, 'invalid_request', 'code_verifier (43–128 characters) is required: PKCE');
    const hash = digestOf(code);
    const [row] = await this.options.db.query<CodeRow>(
      `SELECT c.app_id, c.redirect_uri, c.code_challenge, c.scope, c.expires_at, c.used_at, l.client_id, l.organization, l.patient_id, l.encounter_id, l.his_user
         FROM smart_code c JOIN smart_launch l ON l.launch_hash = c.launch_hash WHERE c.code_hash = $1`,
      [hash]
    );
    if (!row) throw new OAuthError(400, 'invalid_grant', 'the code is unknown');
    if (row.used_at) {
      // a code presented twice: the token issued for it stops working (RFC 6749 §4.1.2)
      await this.options.db.query('UPDATE smart_code SET replayed_at = $2 WHERE code_hash = $1', [hash, now.toISOString()]);
      throw new OAuthError(400, 'invalid_grant', 'the code was used already');
    }
    if (new Date(row.expires_at).getTime() <= now.getTime()) throw new OAuthError(400, 'invalid_grant', 'the code has expired');
    if (row.app_id !== app.clientId) throw new OAuthError(400, 'invalid_grant', 'the code was issued to another client');
    if (form.get('redirect_uri') !== row.redirect_uri) throw new OAuthError(400, 'invalid_grant', 'redirect_uri must be the one of the authorization request');
    if (createHash('sha256').update(verifier).digest('base64url') !== row.code_challenge) throw new OAuthError(400, 'invalid_grant', 'the code_verifier does not match the code_challenge (PKCE)');
    const [spent] = await this.options.db.query('UPDATE smart_code SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL RETURNING code_hash', [hash, now.toISOString()]);
    if (!spent) throw new OAuthError(400, 'invalid_grant', 'the code was used already');
    const context = contextOf(row);
    if (!this.options.mayLaunch(context.clientId)) throw new OAuthError(400, 'invalid_grant', 'the HIS client that created the launch may no longer launch apps');
    const signing = this.options.keys.current();
    const iat = Math.floor(now.getTime() / 1000);
    const patientScopes = row.scope.split(' ').filter((s) => s !== 'launch');
    const accessToken = await new SignJWT({ scope: patientScopes.join(' '), patient: context.patient, ...(context.encounter ? { encounter: context.encounter } : {}), his: context.clientId, org: context.organization, usr: context.user, cid: hash })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: signing.kid })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(APP_AUDIENCE)
      .setSubject(app.clientId)
      .setJti(randomUUID())
      .setIssuedAt(iat)
      .setExpirationTime(iat + APP_TOKEN_LIFETIME_SECONDS)
      .sign(signing.secret);
    return {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: APP_TOKEN_LIFETIME_SECONDS,
      scope: row.scope,
      patient: context.patient,
      ...(context.encounter ? { encounter: context.encounter } : {}),
      // the HIS shows who the patient is; the viewer needs no banner of its own
      need_patient_banner: false,
    };
  }

  /** The caller an app's access token stands for, or undefined when it is none (or no longer valid). */
  async principal(token: string, now = new Date()): Promise<Principal | undefined> {
    if (token.split('.').length !== 3) return undefined;
    let payload;
    try {
      const { kid } = decodeProtectedHeader(token);
      const secret = typeof kid === 'string' ? this.options.keys.verifying(kid, now) : undefined;
      if (!secret) return undefined;
      ({ payload } = await jwtVerify(token, secret, { issuer: TOKEN_ISSUER, audience: APP_AUDIENCE, algorithms: ['HS256'], requiredClaims: ['sub', 'iat', 'exp', 'patient', 'his', 'org', 'cid'], currentDate: now }));
    } catch {
      return undefined;
    }
    if (Number(payload.exp) - Number(payload.iat) > APP_TOKEN_LIFETIME_SECONDS) return undefined;
    const his = String(payload.his);
    if (!this.apps().some((a) => a.clientId === payload.sub) || !this.options.mayLaunch(his)) return undefined;
    const [state] = await this.options.db.query<{ replayed: string | Date | null; revoked: string | Date | null }>(
      `SELECT (SELECT replayed_at FROM smart_code WHERE code_hash = $1) AS replayed, (SELECT revoked_before FROM auth_revocation WHERE client_id = $2) AS revoked`,
      [String(payload.cid), his]
    );
    if (state?.replayed || (state?.revoked && Number(payload.iat) * 1000 < new Date(state.revoked).getTime())) return undefined;
    const user = (payload.usr ?? {}) as LaunchContext['user'];
    return {
      kind: 'app',
      // one id per launch (its code), so that nothing kept for one session (an asynchronous result) is another's
      id: `app:${String(payload.sub)}@${his}/${String(payload.cid).slice(0, 16)}`,
      scopes: engineScopes(String(payload.scope ?? '').split(' ')),
      institution: String(payload.org),
      patient: String(payload.patient),
      purposeOfUse: 'TREAT',
      actingFor: { ...user, assertedBy: his },
    };
  }
}

type CodeRow = LaunchRow & { app_id: string; redirect_uri: string; code_challenge: string; scope: string; expires_at: string | Date; used_at: string | Date | null };

const PATIENT_SCOPE = /^patient\/([A-Z][A-Za-z]+|\*)\.([a-z*]+)$/;

/**
 * The patient scopes granted of those asked: read only (v1 `read`, also for `*`; v2 the letters r and s of
 * those asked), on a FHIR R4 type or `*`, never the audit trail. Other scopes (openid, fhirUser,
 * offline_access, user/…) are not granted.
 */
export function grantedScopes(requested: readonly string[]): string[] {
  const out: string[] = [];
  for (const scope of requested) {
    const m = PATIENT_SCOPE.exec(scope);
    if (!m) continue;
    const [, type, perms] = m;
    if (type !== '*' && (!isSupportedResourceType(type) || type === 'AuditEvent')) continue;
    let granted: string | undefined;
    if (perms === 'read' || perms === '*') granted = 'read';
    else if (/^c?r?u?d?s?$/.test(perms)) granted = [perms.includes('r') ? 'r' : '', perms.includes('s') ? 's' : ''].join('') || undefined;
    if (granted) out.push(`patient/${type}.${granted}`);
  }
  return [...new Set(out)];
}

/**
 * What a patient's record refers to and a viewer shows with it: who issued it, and the terminology. Nothing
 * else outside the patient compartment (no dictionaries, no conformance or platform records).
 */
const REFERENCED_TYPES = ['Organization', 'Practitioner', 'PractitionerRole', 'Location', 'Medication', 'Substance', 'CodeSystem', 'ValueSet'];

/**
 * The engine's view of patient scopes: system read scopes on the same types — `*` meaning the patient
 * compartment's types and what they refer to (REFERENCED_TYPES) —; the patient binding does the rest (care.ts).
 */
export function engineScopes(scopes: readonly string[]): string[] {
  return [
    ...new Set(
      scopes.flatMap((s) => {
        const m = PATIENT_SCOPE.exec(s);
        if (!m) return [];
        const letters = m[2] === 'read' ? 'rs' : m[2];
        const types = m[1] === '*' ? [...personalTypes(), ...REFERENCED_TYPES].filter((t) => t !== 'AuditEvent') : [m[1]];
        return types.map((t) => `system/${t}.${letters}`);
      })
    ),
  ];
}
