/**
 * The report viewer as a SMART app (SMART App Launch 2.x, EHR launch; docs/app.md 从 HIS 打开报告调阅): the HIS
 * opens `/app/launch?iss=<FHIR base>&launch=<value>`; the app reads the platform's smart-configuration, asks
 * the authorization endpoint for a code (client_id huren-viewer, scope `launch patient/*.rs`, PKCE S256, a
 * random state) and, back at `/app/launch/callback`, exchanges it for an access token whose context names the
 * patient. Only this platform is accepted as `iss`: the app never sends a code or a token elsewhere.
 */
import { setLaunch, setToken } from './api.ts';

export const CLIENT_ID = 'huren-viewer';
export const SCOPE = 'launch patient/*.rs';
const PENDING_KEY = 'huren.smart-pending';

interface Pending {
  state: string;
  verifier: string;
  tokenEndpoint: string;
  redirectUri: string;
}

/** A launch that cannot go on: its Chinese message for the page. */
export class LaunchError extends Error {}

const base64url = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const random = (n: number) => base64url(crypto.getRandomValues(new Uint8Array(n)));

export const redirectUri = () => `${location.origin}/app/launch/callback`;
export const ownFhirBase = () => `${location.origin}/fhir`;

/** Step 1, at /app/launch: the URL of the authorization request (the pending state kept for the callback). */
export async function authorizationUrl(iss: unknown, launch: unknown): Promise<string> {
  if (typeof iss !== 'string' || typeof launch !== 'string' || !iss || !launch) throw new LaunchError('缺少启动参数（iss、launch），请从 HIS 重新打开报告调阅');
  if (iss.replace(/\/$/, '') !== ownFhirBase()) throw new LaunchError('启动参数中的平台地址（iss）不是本平台，已拒绝打开');
  let config: { authorization_endpoint?: string; token_endpoint?: string; capabilities?: string[]; code_challenge_methods_supported?: string[] };
  try {
    const res = await fetch(`${ownFhirBase()}/.well-known/smart-configuration`, { headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(String(res.status));
    config = await res.json();
  } catch {
    throw new LaunchError('无法读取平台的授权配置，请稍后从 HIS 重新打开');
  }
  if (!config.authorization_endpoint || !config.token_endpoint || !config.capabilities?.includes('launch-ehr') || !config.code_challenge_methods_supported?.includes('S256')) {
    throw new LaunchError('平台未开放从 HIS 启动报告调阅');
  }
  const verifier = random(32);
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
  const pending: Pending = { state: random(16), verifier, tokenEndpoint: config.token_endpoint, redirectUri: redirectUri() };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: pending.redirectUri,
    scope: SCOPE,
    state: pending.state,
    aud: ownFhirBase(),
    launch,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  return `${config.authorization_endpoint}?${query}`;
}

const ERRORS: Record<string, string> = {
  invalid_request: '启动请求无效或已过期（每次启动只能使用一次，5 分钟内有效）',
  access_denied: 'HIS 无权启动报告调阅',
  invalid_scope: '申请的权限范围无效',
  unsupported_response_type: '启动请求无效',
};

/** Step 2, at /app/launch/callback: the token (kept as the session) and the patient of the launch. */
export async function completeLaunch(query: Record<string, unknown>): Promise<{ patient: string }> {
  const raw = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  const pending = raw ? (JSON.parse(raw) as Pending) : undefined;
  if (typeof query.error === 'string') throw new LaunchError(`${ERRORS[query.error] ?? '授权失败'}，请从 HIS 重新打开报告调阅`);
  if (!pending || typeof query.state !== 'string' || query.state !== pending.state) throw new LaunchError('启动状态不匹配（可能已在其他窗口打开），请从 HIS 重新打开报告调阅');
  if (typeof query.code !== 'string' || !query.code) throw new LaunchError('授权结果缺少授权码，请从 HIS 重新打开报告调阅');
  let res: Response;
  try {
    res = await fetch(pending.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: query.code, redirect_uri: pending.redirectUri, client_id: CLIENT_ID, code_verifier: pending.verifier }),
    });
  } catch {
    throw new LaunchError('无法连接到平台，请检查网络后从 HIS 重新打开');
  }
  const body = (await res.json().catch(() => ({}))) as { access_token?: string; expires_in?: number; patient?: string };
  if (!res.ok || !body.access_token || !body.patient) throw new LaunchError('授权码无效或已使用，请从 HIS 重新打开报告调阅');
  setToken(body.access_token, { expiresAt: new Date(Date.now() + (body.expires_in ?? 300) * 1000).toISOString() });
  setLaunch({ patient: body.patient });
  return { patient: body.patient };
}
