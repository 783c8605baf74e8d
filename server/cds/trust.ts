/**
 * Trusting CDS clients (CDS Hooks 2.0, "Trusting CDS Clients"): a hospital's CDS client signs a short-lived
 * JWT for every call — `iss` its identifier, `aud` the CDS service endpoint it calls, `exp`, `iat`, `jti` — with
 * a key it publishes as a JWK Set. The platform trusts the clients it is configured with (HUREN_CDS_CLIENTS),
 * each bound to its institution: a verified call is made on behalf of that institution, which becomes the
 * default requester of the check.
 *
 * Checks: signature (ES384 or RS384, the algorithms the specification names; never `none` or HMAC), issuer
 * known, audience = this endpoint, expiry and issue time (at most 5 minutes old, 60 s clock skew), and a
 * `jti` that was not seen before (replays are refused until the token expires).
 */
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';

export interface CdsClient {
  /** The client's `iss`. */
  iss: string;
  /** The institution the client speaks for: "Organization/[id]" or "Organization?identifier=system|value". */
  organization: string;
  /** The client's public keys, inline … */
  jwks?: JSONWebKeySet;
  /** … or where it publishes them (fetched and cached; https in production). */
  jwksUrl?: string;
}

export class CdsTrustError extends Error {}

export interface CdsCaller {
  iss: string;
  organization: string;
  /** The client's `tenant` claim, if any. */
  tenant?: string;
}

const ALGORITHMS = ['ES384', 'RS384'];
const MAX_AGE_SECONDS = 300;
const CLOCK_TOLERANCE_SECONDS = 60;

export class CdsTrust {
  private readonly clients = new Map<string, { client: CdsClient; keys: JWTVerifyGetKey }>();
  /** jti → when it may be forgotten (ms). */
  private readonly seen = new Map<string, number>();

  constructor(clients: CdsClient[]) {
    for (const client of clients) {
      validateClient(client);
      if (this.clients.has(client.iss)) throw new Error(`HUREN_CDS_CLIENTS: '${client.iss}' is listed twice`);
      const keys = client.jwks ? createLocalJWKSet(client.jwks) : createRemoteJWKSet(new URL(client.jwksUrl!), { cooldownDuration: 30_000, cacheMaxAge: 600_000 });
      this.clients.set(client.iss, { client, keys });
    }
  }

  get size(): number {
    return this.clients.size;
  }

  /** Verifies a CDS client's JWT for a call to one of `audiences` (the endpoint URL as the client may name it). */
  async verify(token: string, audiences: string[], now = new Date()): Promise<CdsCaller> {
    let iss: string | undefined;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      throw new CdsTrustError('the bearer token is not a JWT');
    }
    const entry = iss !== undefined ? this.clients.get(iss) : undefined;
    if (!entry) throw new CdsTrustError('the JWT issuer (iss) is not a CDS client registered with the platform');
    let payload;
    try {
      ({ payload } = await jwtVerify(token, entry.keys, {
        issuer: entry.client.iss,
        audience: audiences,
        algorithms: ALGORITHMS,
        requiredClaims: ['iss', 'aud', 'exp', 'iat', 'jti'],
        maxTokenAge: MAX_AGE_SECONDS,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        currentDate: now,
      }));
    } catch (err) {
      throw new CdsTrustError(reason(err));
    }
    const jti = String(payload.jti);
    const key = `${entry.client.iss}\u0000${jti}`;
    this.forgetExpired(now.getTime());
    if (this.seen.has(key)) throw new CdsTrustError('the JWT was already used (jti replayed)');
    this.seen.set(key, (Number(payload.exp) + CLOCK_TOLERANCE_SECONDS) * 1000);
    return { iss: entry.client.iss, organization: entry.client.organization, ...(typeof payload.tenant === 'string' ? { tenant: payload.tenant } : {}) };
  }

  private forgetExpired(now: number): void {
    if (this.seen.size < 1024) return;
    for (const [key, until] of this.seen) if (until < now) this.seen.delete(key);
  }
}

/** Why jose refused a token, in words that name the claim but never echo its content. */
function reason(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return err.claim === 'iat' ? 'the JWT is too old (iat more than 5 minutes ago)' : 'the JWT has expired (exp)';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return 'the JWT audience (aud) is not this CDS service endpoint';
    if (err.claim === 'iat') return 'the JWT is too old or issued in the future (iat)';
    return `the JWT claim '${err.claim}' is missing or invalid`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'the JWT algorithm is not accepted (use ES384 or RS384)';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return "no key of the client's JWK Set matches the JWT (kid)";
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'the JWT signature does not verify';
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JOSEError) return `the JWT could not be verified (${(err as joseErrors.JOSEError).code})`;
  return 'the JWT could not be verified';
}

function validateClient(c: CdsClient): void {
  if (!c || typeof c.iss !== 'string' || c.iss === '') throw new Error('HUREN_CDS_CLIENTS: every client needs an iss');
  if (typeof c.organization !== 'string' || !/^Organization[/?]/.test(c.organization)) {
    throw new Error(`HUREN_CDS_CLIENTS: client '${c.iss}' needs organization "Organization/[id]" or "Organization?identifier=system|value"`);
  }
  if (!c.jwks === !c.jwksUrl) throw new Error(`HUREN_CDS_CLIENTS: client '${c.iss}' needs exactly one of jwks and jwksUrl`);
  if (c.jwksUrl && !/^https?:\/\//.test(c.jwksUrl)) throw new Error(`HUREN_CDS_CLIENTS: client '${c.iss}' jwksUrl must be an http(s) URL`);
}

/** HUREN_CDS_CLIENTS: a JSON array of clients, or the path of a file holding one. */
export function loadCdsClients(value: string | undefined): CdsClient[] {
  if (!value || value.trim() === '') return [];
  const text = value.trim().startsWith('[') ? value : readFileSync(value, 'utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error('HUREN_CDS_CLIENTS is not valid JSON (an array of { iss, organization, jwks | jwksUrl })');
  }
  if (!Array.isArray(parsed)) throw new Error('HUREN_CDS_CLIENTS must be a JSON array of { iss, organization, jwks | jwksUrl }');
  return parsed as CdsClient[];
}
