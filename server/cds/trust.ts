/**
 * Trusting CDS clients (CDS Hooks 2.0, "Trusting CDS Clients"): a hospital's CDS client signs a short-lived
 * JWT for every call — `iss` its identifier, `aud` the CDS service endpoint it calls, `exp`, `iat`, `jti` — with
 * a key it publishes as a JWK Set. The platform trusts the clients it is configured with (HUREN_CDS_CLIENTS),
 * each bound to its institution: a verified call is made on behalf of that institution, which becomes the
 * default requester of the check.
 *
 * Checks: signature (ES384 or RS384, the algorithms the specification names; never `none` or HMAC), issuer
 * known, audience = this endpoint under HUREN_PUBLIC_URL (never the request's Host), expiry and issue time (at
 * most 5 minutes old, not in the future, 60 s clock skew), the key picked by `kid` (no `jku`/`x5u` but the
 * registered key URL), and a `jti` that was not seen before (kept in the database until the token expires,
 * so a replay is refused after a restart and on every server of the database).
 */
import { decodeJwt, type JSONWebKeySet } from 'jose';
import type { Database } from '../db/database.ts';
import { checkOrganization, keyResolver, loadRegistrations, MAX_AGE_SECONDS, refusal, ReplayGuard, verifyClientJwt, type KeySource } from '../auth/keys.ts';

export interface CdsClient {
  /** The client's `iss`. */
  iss: string;
  /** The institution the client speaks for: "Organization/[id]" or "Organization?identifier=system|value". */
  organization: string;
  /** The client's public keys, inline … */
  jwks?: JSONWebKeySet;
  /** … or where it publishes them (fetched and cached; https — plain http only on loopback outside production). */
  jwksUrl?: string;
}

export class CdsTrustError extends Error {}

export interface CdsCaller {
  iss: string;
  organization: string;
  /** The client's `tenant` claim, if any. */
  tenant?: string;
}

export class CdsTrust {
  private readonly clients = new Map<string, { client: CdsClient; keys: KeySource }>();
  private readonly replays: ReplayGuard | undefined;

  /** `db` keeps the replay record; without it (checking a register only) nothing can be verified. */
  constructor(clients: CdsClient[], options: { db?: Database; production?: boolean } = {}) {
    this.replays = options.db ? new ReplayGuard(options.db, 'cds-jwt') : undefined;
    for (const client of clients) {
      if (!client || typeof client.iss !== 'string' || client.iss === '') throw new Error('HUREN_CDS_CLIENTS: every client needs an iss');
      const what = `HUREN_CDS_CLIENTS: client '${client.iss}'`;
      checkOrganization(client.organization, what);
      if (this.clients.has(client.iss)) throw new Error(`HUREN_CDS_CLIENTS: '${client.iss}' is listed twice`);
      this.clients.set(client.iss, { client, keys: keyResolver(client, what, options.production) });
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
      payload = await verifyClientJwt(token, entry.keys, {
        issuer: entry.client.iss,
        audience: audiences,
        requiredClaims: ['iss', 'aud', 'exp', 'iat', 'jti'],
        maxTokenAge: MAX_AGE_SECONDS,
        currentDate: now,
      });
    } catch (err) {
      throw new CdsTrustError(refusal(err));
    }
    if (!this.replays) throw new Error('CdsTrust was built without a database');
    if (!(await this.replays.accept(entry.client.iss, String(payload.jti), Number(payload.exp), now.getTime()))) {
      throw new CdsTrustError('the JWT was already used (jti replayed)');
    }
    return { iss: entry.client.iss, organization: entry.client.organization, ...(typeof payload.tenant === 'string' ? { tenant: payload.tenant } : {}) };
  }
}

/** HUREN_CDS_CLIENTS: a JSON array of clients, or the path of a file holding one. */
export function loadCdsClients(value: string | undefined): CdsClient[] {
  return loadRegistrations<CdsClient>(value, 'HUREN_CDS_CLIENTS', '{ iss, organization, jwks | jwksUrl }');
}
