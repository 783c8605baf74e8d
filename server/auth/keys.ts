/**
 * A registered client's public keys (a JWK Set given inline, or fetched from its URL and cached), and the
 * algorithms the platform accepts for client-signed JWTs: ES384 and RS384, as CDS Hooks 2.0 and SMART
 * Backend Services name them — never `none` or a shared-secret HMAC.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from 'jose';
import type { Database } from '../db/database.ts';

export const CLIENT_ALGORITHMS = ['ES384', 'RS384'];
/** Longest accepted age of a client-signed JWT, and the clock skew allowed. */
export const MAX_AGE_SECONDS = 300;
export const CLOCK_TOLERANCE_SECONDS = 60;

export interface ClientKeys {
  /** The client's public keys, inline … */
  jwks?: JSONWebKeySet;
  /** … or where it publishes them (fetched and cached; https — plain http only on loopback outside production). */
  jwksUrl?: string;
}

/** A registration's keys: the resolver (a key is picked by the JWT's `kid`) and the key URL it may name as `jku`. */
export interface KeySource {
  keys: JWTVerifyGetKey;
  jwksUrl?: string;
}

/**
 * Checks the key source of a registration and builds its key resolver. `what` names it in errors. Keys are
 * picked by `kid`, so a client rotates by publishing its new key beside the old one.
 */
export function keyResolver(keys: ClientKeys, what: string, production = false): KeySource {
  if (!keys.jwks === !keys.jwksUrl) throw new Error(`${what} needs exactly one of jwks and jwksUrl`);
  if (keys.jwks) return { keys: createLocalJWKSet(keys.jwks) };
  let url: URL;
  try {
    url = new URL(keys.jwksUrl!);
  } catch {
    throw new Error(`${what}: jwksUrl must be an https URL`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && !production && isLoopback(url.hostname))) {
    throw new Error(`${what}: jwksUrl must be an https URL${production ? '' : ' (plain http only on loopback, outside production)'}`);
  }
  return { keys: createRemoteJWKSet(url, { cooldownDuration: 30_000, cacheMaxAge: 600_000 }), jwksUrl: url.href };
}

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** JOSE headers that point at keys elsewhere; `jku` is accepted only when it is the registered key URL. */
const KEY_LOCATION_HEADERS = ['jku', 'x5u', 'jwk', 'x5c'] as const;

/**
 * Verifies a client-signed JWT against its registration: no key-location header other than the registered
 * `jku`, the algorithms of CLIENT_ALGORITHMS, the claims of `options`, and an `iat` (when present) no
 * further in the future than the clock skew. Throws a jose error, or a JwtRefused with the reason.
 */
export async function verifyClientJwt(token: string, source: KeySource, options: JWTVerifyOptions & { currentDate: Date }): Promise<JWTPayload> {
  let header;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw new JwtRefused('the JWT header is not readable');
  }
  for (const name of KEY_LOCATION_HEADERS) {
    if (header[name] === undefined) continue;
    if (name === 'jku' && source.jwksUrl !== undefined && typeof header.jku === 'string' && sameUrl(header.jku, source.jwksUrl)) continue;
    throw new JwtRefused(`the JWT header '${name}' is not accepted${name === 'jku' ? ' (it must be the key URL registered for the client)' : ' (keys come from the registration only)'}`);
  }
  const { payload } = await jwtVerify(token, source.keys, { ...options, algorithms: CLIENT_ALGORITHMS, clockTolerance: CLOCK_TOLERANCE_SECONDS });
  if (payload.iat !== undefined && payload.iat > options.currentDate.getTime() / 1000 + CLOCK_TOLERANCE_SECONDS) {
    throw new JwtRefused(`the JWT is issued in the future (iat more than ${CLOCK_TOLERANCE_SECONDS} s ahead)`);
  }
  if (typeof payload.jti === 'string' && (payload.jti.length === 0 || payload.jti.length > MAX_JTI_LENGTH)) {
    throw new JwtRefused(`the JWT claim 'jti' must be 1 to ${MAX_JTI_LENGTH} characters`);
  }
  return payload;
}

const MAX_JTI_LENGTH = 256;

function sameUrl(a: string, b: string): boolean {
  try {
    return new URL(a).href === new URL(b).href;
  } catch {
    return false;
  }
}

/** A client JWT refused for a reason the platform words itself. */
export class JwtRefused extends Error {}

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

/**
 * Remembers the `jti` of accepted JWTs in the database (table auth_jti) until they expire, to refuse replays —
 * across restarts and across the servers sharing the database. `kind` keeps the client assertions and the
 * CDS client JWTs apart. Expired rows are deleted now and then by whichever server is accepting.
 */
export class ReplayGuard {
  private accepted = 0;

  constructor(
    private readonly db: Database,
    private readonly kind: 'client-assertion' | 'cds-jwt'
  ) {}

  /** False when this (issuer, jti) was accepted before and has not expired; otherwise remembers it until `exp` (seconds). */
  async accept(issuer: string, jti: string, exp: number, now: number): Promise<boolean> {
    const until = new Date((exp + CLOCK_TOLERANCE_SECONDS) * 1000).toISOString();
    // a row whose time is over may be taken again (its JWT could not be accepted any more anyway)
    const rows = await this.db.query(
      `INSERT INTO auth_jti (kind, issuer, jti, expires_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (kind, issuer, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE auth_jti.expires_at < $5
       RETURNING 1 AS ok`,
      [this.kind, issuer, jti, until, new Date(now).toISOString()]
    );
    if (rows.length === 0) return false;
    if (++this.accepted % 256 === 0) await this.db.query('DELETE FROM auth_jti WHERE expires_at < $1', [new Date(now).toISOString()]);
    return true;
  }
}

/** Why jose refused a client's JWT, in words that name the claim but never echo its content. */
export function refusal(err: unknown): string {
  if (err instanceof JwtRefused) return err.message;
  if (err instanceof joseErrors.JWTExpired) return err.claim === 'iat' ? 'the JWT is too old (iat more than 5 minutes ago)' : 'the JWT has expired (exp)';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return 'the JWT audience (aud) is not this endpoint';
    if (err.claim === 'iat') return 'the JWT is too old or issued in the future (iat)';
    return `the JWT claim '${err.claim}' is missing or invalid`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'the JWT algorithm is not accepted (use ES384 or RS384)';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return "no key of the client's JWK Set matches the JWT (kid)";
  if (err instanceof joseErrors.JWKSMultipleMatchingKeys) return "several keys of the client's JWK Set match the JWT: name the key (kid)";
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'the JWT signature does not verify';
  if (err instanceof joseErrors.JOSEError) return `the JWT could not be verified (${err.code})`;
  return 'the JWT could not be verified';
}
