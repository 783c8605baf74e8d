/**
 * A registered client's public keys (a JWK Set given inline, or fetched from its URL and cached), and the
 * algorithms the platform accepts for client-signed JWTs: ES384 and RS384, as CDS Hooks 2.0 and SMART
 * Backend Services name them — never `none` or a shared-secret HMAC.
 */
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';

export const CLIENT_ALGORITHMS = ['ES384', 'RS384'];
/** Longest accepted age of a client-signed JWT, and the clock skew allowed. */
export const MAX_AGE_SECONDS = 300;
export const CLOCK_TOLERANCE_SECONDS = 60;

export interface ClientKeys {
  /** The client's public keys, inline … */
  jwks?: JSONWebKeySet;
  /** … or where it publishes them (fetched and cached; https in production). */
  jwksUrl?: string;
}

/** Checks the key source of a registration and builds its key resolver. `what` names it in errors. */
export function keyResolver(keys: ClientKeys, what: string): JWTVerifyGetKey {
  if (!keys.jwks === !keys.jwksUrl) throw new Error(`${what} needs exactly one of jwks and jwksUrl`);
  if (keys.jwksUrl && !/^https?:\/\//.test(keys.jwksUrl)) throw new Error(`${what}: jwksUrl must be an http(s) URL`);
  return keys.jwks ? createLocalJWKSet(keys.jwks) : createRemoteJWKSet(new URL(keys.jwksUrl!), { cooldownDuration: 30_000, cacheMaxAge: 600_000 });
}

/** An organization as a client registration names it: "Organization/[id]" or "Organization?identifier=system|value". */
export function checkOrganization(value: unknown, what: string): void {
  if (typeof value !== 'string' || !/^Organization[/?]/.test(value)) {
    throw new Error(`${what} needs organization "Organization/[id]" or "Organization?identifier=system|value"`);
  }
}

/** A JSON array of registrations from an environment variable: the JSON itself, or the path of a file holding it. */
export function loadRegistrations<T>(value: string | undefined, variable: string, shape: string): T[] {
  if (!value || value.trim() === '') return [];
  const text = value.trim().startsWith('[') ? value : readFileSync(value, 'utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${variable} is not valid JSON (an array of ${shape})`);
  }
  if (!Array.isArray(parsed)) throw new Error(`${variable} must be a JSON array of ${shape}`);
  return parsed as T[];
}

/** Remembers the `jti` of accepted JWTs until they expire, to refuse replays. */
export class ReplayGuard {
  private readonly seen = new Map<string, number>();

  /** False when this (issuer, jti) was seen before; otherwise remembers it until `exp` (seconds). */
  accept(issuer: string, jti: string, exp: number, now: number): boolean {
    if (this.seen.size >= 1024) for (const [key, until] of this.seen) if (until < now) this.seen.delete(key);
    const key = `${issuer}\u0000${jti}`;
    if (this.seen.has(key)) return false;
    this.seen.set(key, (exp + CLOCK_TOLERANCE_SECONDS) * 1000);
    return true;
  }
}

/** Why jose refused a client's JWT, in words that name the claim but never echo its content. */
export function refusal(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return err.claim === 'iat' ? 'the JWT is too old (iat more than 5 minutes ago)' : 'the JWT has expired (exp)';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return 'the JWT audience (aud) is not this endpoint';
    if (err.claim === 'iat') return 'the JWT is too old or issued in the future (iat)';
    return `the JWT claim '${err.claim}' is missing or invalid`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'the JWT algorithm is not accepted (use ES384 or RS384)';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return "no key of the client's JWK Set matches the JWT (kid)";
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'the JWT signature does not verify';
  if (err instanceof joseErrors.JOSEError) return `the JWT could not be verified (${err.code})`;
  return 'the JWT could not be verified';
}
