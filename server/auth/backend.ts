/**
 * SMART Backend Services (client credentials with a signed JWT assertion) for hospital systems: a registered
 * HIS client — bound to its institution and granted system scopes (HUREN_CLIENTS) — asks `POST /auth/token`
 * for a short-lived access token by sending a JWT signed with its own key; with that token it calls the FHIR
 * API as its institution (the default requester of the recognition checks) within its scopes.
 *
 *   client_assertion: iss = sub = client_id (the form's client_id, when sent, too), aud = the token endpoint URL
 *                     of HUREN_PUBLIC_URL (never the request's Host), exp (≤ 5 min), iat (if sent) not in the
 *                     future, jti (once: kept in the database), ES384/RS384, kid picks the key; no jku/x5u
 *                     but the registered key URL
 *   access token:     a JWT (HS256 under the platform's own signing key, server/auth/signing.ts, by kid), 300 s,
 *                     re-checked on every use against the registration (a removed client or scope stops working
 *                     at once) and the revocation list (POST /auth/revoke: every token of a client so far)
 */
import { randomUUID } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT, type JSONWebKeySet } from 'jose';
import type { Database } from '../db/database.ts';
import { isSupportedResourceType } from '../fhir/definitions.ts';
import {
  checkOrganization,
  CLIENT_ALGORITHMS,
  CLOCK_TOLERANCE_SECONDS,
  keyResolver,
  loadRegistrations,
  MAX_AGE_SECONDS,
  refusal,
  ReplayGuard,
  verifyClientJwt,
  type KeySource,
} from './keys.ts';
import { LAUNCH_SCOPE } from './launch.ts';
import { parseScope } from './scopes.ts';
import type { TokenKeys } from './signing.ts';

export interface BackendClient {
  clientId: string;
  /** The institution the client speaks for: "Organization/[id]" or "Organization?identifier=system|value". */
  organization: string;
  /** The system scopes it may be granted, space-separated (e.g. "system/*.rs system/DiagnosticReport.c"). */
  scope: string;
  jwks?: JSONWebKeySet;
  jwksUrl?: string;
}

/** An OAuth 2.0 error response (RFC 6749 §5.2). */
export class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unsupported_grant_type' | 'invalid_scope',
    description: string
  ) {
    super(description);
  }
}

export interface TokenResponse {
  access_token: string;
  token_type: 'bearer';
  expires_in: number;
  scope: string;
}

export interface ClientPrincipal {
  clientId: string;
  organization: string;
  scopes: string[];
}

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const TOKEN_ISSUER = 'huren-auth';
const TOKEN_AUDIENCE = 'huren-fhir';
export const TOKEN_LIFETIME_SECONDS = 300;

export interface BackendOptions {
  db: Database;
  /** The platform's token signing keys. */
  keys: TokenKeys;
  /** Production mode: key URLs must be https. */
  production?: boolean;
}

export class BackendAuth {
  private readonly clients = new Map<string, { client: BackendClient; keys: KeySource; scopes: string[] }>();
  private readonly replays: ReplayGuard;
  private readonly db: Database;
  private readonly keys: TokenKeys;

  constructor(clients: BackendClient[], options: BackendOptions) {
    this.db = options.db;
    this.keys = options.keys;
    this.replays = new ReplayGuard(options.db, 'client-assertion');
    for (const client of clients) {
      if (!client || typeof client.clientId !== 'string' || client.clientId === '') throw new Error('HUREN_CLIENTS: every client needs a clientId');
      const what = `HUREN_CLIENTS: client '${client.clientId}'`;
      checkOrganization(client.organization, what);
      const scopes = typeof client.scope === 'string' ? client.scope.split(/\s+/).filter(Boolean) : [];
      const bad = scopes.find((s) => !knownScope(s));
      if (scopes.length === 0 || bad) throw new Error(`${what}: scope must list SMART system scopes (system/<Type|*>.<cruds|read|write>) of FHIR R4 resource types, or ${LAUNCH_SCOPE}${bad ? `, not '${bad}'` : ''}`);
      if (this.clients.has(client.clientId)) throw new Error(`HUREN_CLIENTS: '${client.clientId}' is listed twice`);
      this.clients.set(client.clientId, { client, keys: keyResolver(client, what, options.production), scopes });
    }
  }

  get size(): number {
    return this.clients.size;
  }

  /** Whether `clientId` is registered. */
  has(clientId: string): boolean {
    return this.clients.has(clientId);
  }

  /** Whether `clientId` is registered with the scope to launch SMART apps (server/auth/launch.ts). */
  mayLaunch(clientId: string): boolean {
    return this.clients.get(clientId)?.scopes.includes(LAUNCH_SCOPE) === true;
  }

  /** `POST /auth/token` with the form fields; `tokenUrl` is the endpoint's own URL (the assertion's audience). */
  async token(form: URLSearchParams, tokenUrl: string, now = new Date()): Promise<TokenResponse> {
    const grant = form.get('grant_type');
    if (!grant) throw new OAuthError(400, 'invalid_request', 'grant_type is required');
    if (grant !== 'client_credentials') throw new OAuthError(400, 'unsupported_grant_type', 'only grant_type=client_credentials is supported');
    if (form.get('client_assertion_type') !== ASSERTION_TYPE) throw new OAuthError(400, 'invalid_request', `client_assertion_type must be ${ASSERTION_TYPE}`);
    const assertion = form.get('client_assertion');
    if (!assertion) throw new OAuthError(400, 'invalid_request', 'client_assertion is required');
    let iss: string | undefined;
    try {
      iss = decodeJwt(assertion).iss;
    } catch {
      throw new OAuthError(400, 'invalid_request', 'client_assertion is not a JWT');
    }
    const entry = iss !== undefined ? this.clients.get(iss) : undefined;
    if (!entry) throw new OAuthError(401, 'invalid_client', 'the client (iss) is not registered with the platform');
    const formClient = form.get('client_id');
    if (formClient !== null && formClient !== entry.client.clientId) {
      throw new OAuthError(401, 'invalid_client', 'client_id must be the client assertion’s iss and sub');
    }
    let payload;
    try {
      payload = await verifyClientJwt(assertion, entry.keys, {
        issuer: entry.client.clientId,
        subject: entry.client.clientId,
        audience: tokenUrl,
        requiredClaims: ['iss', 'sub', 'aud', 'exp', 'jti'],
        currentDate: now,
      });
    } catch (err) {
      throw new OAuthError(401, 'invalid_client', refusal(err));
    }
    if (Number(payload.exp) > now.getTime() / 1000 + MAX_AGE_SECONDS + CLOCK_TOLERANCE_SECONDS) {
      throw new OAuthError(401, 'invalid_client', 'the client assertion must expire within 5 minutes (exp)');
    }
    // the scopes are checked before the assertion is spent (its jti), so that a refused request can be corrected
    const requested = (form.get('scope') ?? '').split(/\s+/).filter(Boolean);
    if (requested.length === 0) throw new OAuthError(400, 'invalid_scope', 'scope is required (e.g. "system/*.rs")');
    const unknown = requested.find((s) => !knownScope(s));
    if (unknown) throw new OAuthError(400, 'invalid_scope', `'${unknown.slice(0, 80)}' is not a SMART system scope of a FHIR R4 resource type`);
    const granted = requested.filter((s) => covered(s, entry.scopes));
    if (granted.length === 0) throw new OAuthError(400, 'invalid_scope', 'none of the requested scopes is granted to this client');
    if (!(await this.replays.accept(entry.client.clientId, String(payload.jti), Number(payload.exp), now.getTime()))) {
      throw new OAuthError(401, 'invalid_client', 'the client assertion was already used (jti replayed)');
    }
    const signing = this.keys.current();
    const accessToken = await new SignJWT({ scope: granted.join(' ') })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: signing.kid })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject(entry.client.clientId)
      .setJti(randomUUID())
      .setIssuedAt(Math.floor(now.getTime() / 1000))
      .setExpirationTime(Math.floor(now.getTime() / 1000) + TOKEN_LIFETIME_SECONDS)
      .sign(signing.secret);
    return { access_token: accessToken, token_type: 'bearer', expires_in: TOKEN_LIFETIME_SECONDS, scope: granted.join(' ') };
  }

  /** The caller an access token stands for, or undefined when it is not a valid one of ours. */
  async principal(accessToken: string, now = new Date()): Promise<ClientPrincipal | undefined> {
    let payload;
    try {
      const { kid } = decodeProtectedHeader(accessToken);
      const secret = typeof kid === 'string' ? this.keys.verifying(kid, now) : undefined;
      if (!secret) return undefined;
      ({ payload } = await jwtVerify(accessToken, secret, {
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        algorithms: ['HS256'],
        requiredClaims: ['sub', 'iat', 'exp'],
        currentDate: now,
      }));
    } catch {
      return undefined;
    }
    // never longer-lived than the platform issues them
    if (Number(payload.exp) - Number(payload.iat) > TOKEN_LIFETIME_SECONDS) return undefined;
    const entry = this.clients.get(String(payload.sub));
    if (!entry) return undefined;
    const [revoked] = await this.db.query<{ before: string | Date }>('SELECT revoked_before AS before FROM auth_revocation WHERE client_id = $1', [entry.client.clientId]);
    if (revoked && Number(payload.iat) * 1000 < new Date(revoked.before).getTime()) return undefined;
    const scopes = String(payload.scope ?? '')
      .split(' ')
      .filter((s) => covered(s, entry.scopes));
    return { clientId: entry.client.clientId, organization: entry.client.organization, scopes };
  }

  /**
   * Revokes every access token issued to `clientId` so far (checked on each use, on every server of the
   * database). Tokens it asks for afterwards work. `by`: the principal id of the administrator.
   */
  async revoke(clientId: string, by: string, now = new Date()): Promise<{ revokedBefore: string }> {
    if (!this.clients.has(clientId)) throw new OAuthError(400, 'invalid_request', 'client_id is not a registered client');
    // whole seconds, like a token's iat: every token of this second so far is covered
    const before = new Date((Math.floor(now.getTime() / 1000) + 1) * 1000).toISOString();
    await this.db.query(
      `INSERT INTO auth_revocation (client_id, revoked_before, revoked_at, revoked_by) VALUES ($1, $2, $3, $4)
       ON CONFLICT (client_id) DO UPDATE SET revoked_before = EXCLUDED.revoked_before, revoked_at = EXCLUDED.revoked_at, revoked_by = EXCLUDED.revoked_by`,
      [clientId, before, now.toISOString(), by]
    );
    return { revokedBefore: before };
  }
}

/** A SMART system scope naming a FHIR R4 resource type (or `*`), or the scope to create launch contexts. */
function knownScope(scope: string): boolean {
  if (scope === LAUNCH_SCOPE) return true;
  const grant = parseScope(scope);
  return !!grant && (grant.type === '*' || isSupportedResourceType(grant.type));
}

/** Whether a requested scope asks for no more than one registered scope gives (same or wider type, superset of letters). */
function covered(scope: string, registered: string[]): boolean {
  if (scope === LAUNCH_SCOPE) return registered.includes(LAUNCH_SCOPE);
  const want = parseScope(scope);
  if (!want) return false;
  return registered.some((r) => {
    const have = parseScope(r);
    return !!have && (have.type === '*' || have.type === want.type) && [...want.actions].every((a) => have.actions.has(a));
  });
}

/** HUREN_CLIENTS: a JSON array of backend clients, or the path of a file holding one. */
export function loadBackendClients(value: string | undefined): BackendClient[] {
  return loadRegistrations<BackendClient>(value, 'HUREN_CLIENTS', '{ clientId, organization, scope, jwks | jwksUrl }');
}

/**
 * `/.well-known/smart-configuration` (SMART App Launch 2.x): backend services for the hospital systems, and the
 * EHR launch of the platform's registered apps (server/auth/app-auth.ts).
 */
export function smartConfiguration(base: string): Record<string, unknown> {
  return {
    authorization_endpoint: `${base}/auth/authorize`,
    token_endpoint: `${base}/auth/token`,
    grant_types_supported: ['client_credentials', 'authorization_code'],
    response_types_supported: ['code'],
    token_endpoint_auth_methods_supported: ['private_key_jwt', 'none'],
    token_endpoint_auth_signing_alg_values_supported: CLIENT_ALGORITHMS,
    code_challenge_methods_supported: ['S256'],
    scopes_supported: ['system/*.rs', 'system/*.cruds', 'system/*.read', 'system/*.write', 'system/*.*', LAUNCH_SCOPE, 'launch', 'patient/*.rs', 'patient/*.read'],
    capabilities: [
      'client-confidential-asymmetric',
      'launch-ehr',
      'context-ehr-patient',
      'context-ehr-encounter',
      'client-public',
      'permission-patient',
      'permission-v1',
      'permission-v2',
    ],
  };
}
