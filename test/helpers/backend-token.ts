/**
 * An access token for a registered SMART Backend Services client (client_credentials with a signed JWT
 * assertion, ES384, kid `k1`), as a hospital's system gets one.
 */
import { SignJWT, type CryptoKey } from 'jose';

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
