/**
 * SMART Backend Services (client credentials with a signed JWT assertion) for hospital systems: a registered
 * HIS client — bound to its institution and granted system scopes (HUREN_CLIENTS) — asks `POST /auth/token`
 * for a short-lived access token by sending a JWT signed with its own key; with that token it calls the FHIR
 * API as its institution (the default requester of the recognition checks) within its scopes.
 *
 *   client_assertion: iss = sub = client_id, aud = the token endpoint URL, exp (≤ 5 min), jti (once), ES384/RS384
 *   access token:     a JWT (HS256 under a key derived from the bootstrap token), 300 s, re-checked against the
 *                     registration on every use (a removed client or scope stops working at once)
 */
import { createHmac, randomUUID } from 'node:crypto';
import { decodeJwt, jwtVerify, SignJWT, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { checkOrganization, CLIENT_ALGORITHMS, CLOCK_TOLERANCE_SECONDS, keyResolver, loadRegistrations, MAX_AGE_SECONDS, refusal, ReplayGuard } from './keys.ts';
import { parseScope } from './scopes.ts';

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

export class BackendAuth {
  private readonly clients = new Map<string, { client: BackendClient; keys: JWTVerifyGetKey; scopes: string[] }>();
  private readonly replays = new ReplayGuard();
  private readonly key: Uint8Array;

  constructor(clients: BackendClient[], bootstrapToken: string) {
    this.key = createHmac('sha256', bootstrapToken).update('huren access token v1').digest();
    for (const client of clients) {
      if (!client || typeof client.clientId !== 'string' || client.clientId === '') throw new Error('HUREN_CLIENTS: every client needs a clientId');
      const what = `HUREN_CLIENTS: client '${client.clientId}'`;
      checkOrganization(client.organization, what);
      const scopes = typeof client.scope === 'string' ? client.scope.split(/\s+/).filter(Boolean) : [];
      const bad = scopes.find((s) => !parseScope(s));
      if (scopes.length === 0 || bad) throw new Error(`${what}: scope must list SMART system scopes (system/<Type|*>.<cruds|read|write>)${bad ? `, not '${bad}'` : ''}`);
      if (this.clients.has(client.clientId)) throw new Error(`HUREN_CLIENTS: '${client.clientId}' is listed twice`);
      this.clients.set(client.clientId, { client, keys: keyResolver(client, what), scopes });
    }
  }

  get size(): number {
    return this.clients.size;
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
    let payload;
    try {
      ({ payload } = await jwtVerify(assertion, entry.keys, {
        issuer: entry.client.clientId,
        subject: entry.client.clientId,
        audience: tokenUrl,
        algorithms: CLIENT_ALGORITHMS,
        requiredClaims: ['iss', 'sub', 'aud', 'exp', 'jti'],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        currentDate: now,
      }));
    } catch (err) {
      throw new OAuthError(401, 'invalid_client', refusal(err));
    }
    if (Number(payload.exp) > now.getTime() / 1000 + MAX_AGE_SECONDS + CLOCK_TOLERANCE_SECONDS) {
      throw new OAuthError(401, 'invalid_client', 'the client assertion must expire within 5 minutes (exp)');
    }
    if (!this.replays.accept(entry.client.clientId, String(payload.jti), Number(payload.exp), now.getTime())) {
      throw new OAuthError(401, 'invalid_client', 'the client assertion was already used (jti replayed)');
    }
    const requested = (form.get('scope') ?? '').split(/\s+/).filter(Boolean);
    if (requested.length === 0) throw new OAuthError(400, 'invalid_scope', 'scope is required (e.g. "system/*.rs")');
    const granted = requested.filter((s) => covered(s, entry.scopes));
    if (granted.length === 0) throw new OAuthError(400, 'invalid_scope', 'none of the requested scopes is granted to this client');
    const accessToken = await new SignJWT({ scope: granted.join(' ') })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject(entry.client.clientId)
      .setJti(randomUUID())
      .setIssuedAt(Math.floor(now.getTime() / 1000))
      .setExpirationTime(Math.floor(now.getTime() / 1000) + TOKEN_LIFETIME_SECONDS)
      .sign(this.key);
    return { access_token: accessToken, token_type: 'bearer', expires_in: TOKEN_LIFETIME_SECONDS, scope: granted.join(' ') };
  }

  /** The caller an access token stands for, or undefined when it is not a valid one of ours. */
  async principal(accessToken: string, now = new Date()): Promise<ClientPrincipal | undefined> {
    let payload;
    try {
      ({ payload } = await jwtVerify(accessToken, this.key, { issuer: TOKEN_ISSUER, audience: TOKEN_AUDIENCE, algorithms: ['HS256'], currentDate: now }));
    } catch {
      return undefined;
    }
    const entry = this.clients.get(String(payload.sub));
    if (!entry) return undefined;
    const scopes = String(payload.scope ?? '')
      .split(' ')
      .filter((s) => covered(s, entry.scopes));
    return { clientId: entry.client.clientId, organization: entry.client.organization, scopes };
  }
}

/** Whether a requested scope asks for no more than one registered scope gives (same or wider type, superset of letters). */
function covered(scope: string, registered: string[]): boolean {
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

/** `/.well-known/smart-configuration` (SMART App Launch 2.x, backend services part). */
export function smartConfiguration(tokenUrl: string): Record<string, unknown> {
  return {
    token_endpoint: tokenUrl,
    grant_types_supported: ['client_credentials'],
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: CLIENT_ALGORITHMS,
    scopes_supported: ['system/*.rs', 'system/*.cruds', 'system/*.read', 'system/*.write', 'system/*.*'],
    capabilities: ['client-confidential-asymmetric', 'permission-v1', 'permission-v2'],
  };
}
