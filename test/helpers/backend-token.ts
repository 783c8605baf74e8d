/**
 * SMART Backend Services clients for tests: `backendToken` gets an access token for a registered client with
 * its private key (client_credentials with a signed JWT assertion, ES384, kid `k1`), as a hospital's system
 * does; `backendClients` makes a key pair, the `clients` entries to start a test server with, and tokens.
 */
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';

export async function backendToken(tokenUrl: string, clientId: string, privateKey: CryptoKey, scope: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES384', kid: 'k1', typ: 'JWT' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(tokenUrl)
    .setExpirationTime(now + 240)
    .setJti(crypto.randomUUID())
    .sign(privateKey);
  const res = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      scope,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: jwt,
    }).toString(),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`token: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export interface BackendClients {
  /** The `clients` configuration entries (each speaks for `organization` within `scope`). */
  clients: Array<{ clientId: string; organization: string; scope: string; jwks: unknown }>;
  /** An access token of a client, for `scope` (a subset of its own). */
  tokenFor(serverUrl: string, clientId: string, scope: string): Promise<string>;
}

export async function backendClients(entries: Array<{ clientId: string; organization: string; scope: string }>): Promise<BackendClients> {
  const key = await generateKeyPair('ES384', { extractable: true });
  const jwks = { keys: [{ ...(await exportJWK(key.publicKey)), kid: 'k1', alg: 'ES384' }] };
  return {
    clients: entries.map((e) => ({ ...e, jwks })),
    async tokenFor(serverUrl, clientId, scope) {
      const tokenUrl = `${serverUrl}/auth/token`;
      const assertion = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES384', kid: 'k1', typ: 'JWT' })
        .setIssuer(clientId)
        .setSubject(clientId)
        .setAudience(tokenUrl)
        .setExpirationTime(Math.floor(Date.now() / 1000) + 240)
        .setJti(crypto.randomUUID())
        .sign(key.privateKey);
      const res = await fetch(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope, client_assertion_type: ASSERTION_TYPE, client_assertion: assertion }).toString(),
      });
      const body = (await res.json()) as { access_token?: string };
      if (res.status !== 200 || !body.access_token) throw new Error(`token: ${res.status} ${JSON.stringify(body)}`);
      return body.access_token;
    },
  };
}
