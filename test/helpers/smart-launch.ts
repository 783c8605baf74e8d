/**
 * The EHR launch as a HIS and a SMART app make it, for tests: the HIS creates a launch context with its
 * backend-services token (POST /auth/launch); the app asks /auth/authorize (PKCE S256) and exchanges the code at
 * /auth/token. Each step is its own function, so the tests can break any of them.
 */
import { createHash, randomBytes } from 'node:crypto';

export const VIEWER = 'huren-viewer';

export interface Pkce {
  verifier: string;
  challenge: string;
}

export function pkce(): Pkce {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export async function createLaunch(url: string, hisToken: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/auth/launch`, {
    method: 'POST',
    headers: { authorization: `Bearer ${hisToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text.startsWith('{') ? JSON.parse(text) : text };
}

export const redirectUri = (url: string) => `${url}/app/launch/callback`;

export function authorizeParams(url: string, launch: string, p: Pkce, overrides: Record<string, string | undefined> = {}): URLSearchParams {
  const all: Record<string, string | undefined> = {
    response_type: 'code',
    client_id: VIEWER,
    redirect_uri: redirectUri(url),
    scope: 'launch patient/*.rs',
    state: 'st-' + randomBytes(6).toString('hex'),
    aud: `${url}/fhir`,
    launch,
    code_challenge: p.challenge,
    code_challenge_method: 'S256',
    ...overrides,
  };
  return new URLSearchParams(Object.entries(all).filter((e): e is [string, string] => e[1] !== undefined));
}

/** GET /auth/authorize without following the redirect: the status, the redirect's query (if any) and the body. */
export async function authorize(url: string, params: URLSearchParams): Promise<{ status: number; redirect?: URL; body: string }> {
  const res = await fetch(`${url}/auth/authorize?${params}`, { redirect: 'manual' });
  const location = res.headers.get('location');
  return { status: res.status, ...(location ? { redirect: new URL(location) } : {}), body: await res.text() };
}

export async function exchange(url: string, form: Record<string, string>): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, body: await res.json() };
}

/** The whole launch: an app access token response for `patient`, with the code it came from. */
export async function launchToken(url: string, hisToken: string, launchBody: unknown): Promise<{ token: any; code: string; verifier: string }> {
  const launch = await createLaunch(url, hisToken, launchBody);
  if (launch.status !== 201) throw new Error(`launch: ${launch.status} ${JSON.stringify(launch.body)}`);
  const p = pkce();
  const answer = await authorize(url, authorizeParams(url, launch.body.launch, p));
  const code = answer.redirect?.searchParams.get('code');
  if (!code) throw new Error(`authorize: ${answer.status} ${answer.redirect ?? answer.body}`);
  const token = await exchange(url, { grant_type: 'authorization_code', code, client_id: VIEWER, redirect_uri: redirectUri(url), code_verifier: p.verifier });
  if (token.status !== 200) throw new Error(`token: ${token.status} ${JSON.stringify(token.body)}`);
  return { token: token.body, code, verifier: p.verifier };
}
