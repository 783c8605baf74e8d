/**
 * The app's calls to the platform: FHIR (`/fhir`) and the JSON APIs (`/api`), with the signed-in user's bearer
 * token (a session token from the accounts sign-in, or the operator's platform token). Every failure becomes an
 * ApiError with a Chinese message the pages show as it is. A 401 on a call that carried a token means the
 * session ended (idle or absolute expiry, sign-out elsewhere, account disabled): the session is dropped and the
 * `onSessionLost` handler (the router: back to the sign-in page with a message) runs. The session's idle
 * timeout is also kept here: the server restarts its idle clock on every request, so does the app, and when it
 * runs out the app signs out before the next call would be refused.
 */
const TOKEN_KEY = 'huren.token';
const EXPIRY_KEY = 'huren.session';
/** The launch context of a session opened from the HIS (SMART EHR launch, launch.ts): its patient. */
const LAUNCH_KEY = 'huren.launch';

/** Why a session ended by itself; `launch-ended`: a session opened from the HIS (its token expired or was revoked). */
export type LostReason = 'expired' | 'idle' | 'launch-ended';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The accounts API's English refusal code (`account-locked`, `invalid-totp` …), when it gave one. */
    readonly code?: string
  ) {
    super(message);
  }
}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export interface LaunchContext {
  patient: string;
}

/** The launch context when the session was opened from the HIS (a SMART app token), else null. */
export function launchContext(): LaunchContext | null {
  try {
    const value = JSON.parse(sessionStorage.getItem(LAUNCH_KEY) ?? 'null') as LaunchContext | null;
    return value && typeof value.patient === 'string' && token() ? value : null;
  } catch {
    return null;
  }
}

export function setLaunch(context: LaunchContext): void {
  sessionStorage.setItem(LAUNCH_KEY, JSON.stringify(context));
}

/** A session token from the accounts sign-in (the platform token and a launch's token are anything else). */
export const isSessionToken = (t: string | null): boolean => !!t && t.startsWith('hus_');

interface Expiry {
  /** The absolute end of the session (ISO instant). */
  expiresAt?: string;
  idleTimeoutSeconds?: number;
}

let idleTimer: ReturnType<typeof setTimeout> | undefined;
let absoluteTimer: ReturnType<typeof setTimeout> | undefined;
let lostHandler: ((reason: LostReason) => void) | undefined;

/** Who to tell when the session ends by itself (set once by the router). */
export function onSessionLost(handler: (reason: LostReason) => void): void {
  lostHandler = handler;
}

function expiry(): Expiry {
  try {
    return JSON.parse(sessionStorage.getItem(EXPIRY_KEY) ?? '{}') as Expiry;
  } catch {
    return {};
  }
}

function clearTimers(): void {
  clearTimeout(idleTimer);
  clearTimeout(absoluteTimer);
  idleTimer = absoluteTimer = undefined;
}

function lost(reason: LostReason): void {
  if (launchContext()) reason = 'launch-ended';
  setToken(null);
  lostHandler?.(reason);
}

/** Restarts the idle clock (after every answered call) and sets the absolute one. */
function armTimers(): void {
  clearTimers();
  // a session of the accounts sign-in has both clocks; a launch from the HIS its token's absolute end
  if (!isSessionToken(token()) && !launchContext()) return;
  const e = expiry();
  if (e.idleTimeoutSeconds && isSessionToken(token())) idleTimer = setTimeout(() => lost('idle'), e.idleTimeoutSeconds * 1000);
  if (e.expiresAt) {
    const left = Date.parse(e.expiresAt) - Date.now();
    // setTimeout takes at most ~24.8 days; a session is hours long
    if (left <= 0) lost('expired');
    else absoluteTimer = setTimeout(() => lost('expired'), Math.min(left, 2 ** 31 - 1));
  }
}

export function setToken(value: string | null, session?: Expiry): void {
  if (value) {
    sessionStorage.setItem(TOKEN_KEY, value);
    if (session) sessionStorage.setItem(EXPIRY_KEY, JSON.stringify({ expiresAt: session.expiresAt, idleTimeoutSeconds: session.idleTimeoutSeconds }));
    armTimers();
  } else {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(EXPIRY_KEY);
    sessionStorage.removeItem(LAUNCH_KEY);
    clearTimers();
  }
}

const STATUS_ZH: Record<number, string> = {
  400: '请求有误',
  401: '登录已失效，请重新登录',
  403: '当前账号无权查看此内容',
  404: '未找到相关记录',
  409: '数据已被他人修改，请刷新后重试',
  422: '数据不符合业务规则',
  423: '账户已锁定',
  429: '请求过于频繁，请稍后再试',
  503: '服务暂不可用，请稍后再试',
};

async function call<T>(path: string, init: RequestInit = {}, full = false): Promise<T> {
  const headers = new Headers(init.headers);
  const t = token();
  if (t) headers.set('Authorization', `Bearer ${t}`);
  if (!headers.has('Accept')) headers.set('Accept', path.startsWith('/fhir') ? 'application/fhir+json' : 'application/json');
  if (init.body && typeof init.body === 'string' && !headers.has('Content-Type')) {
    headers.set('Content-Type', path.startsWith('/fhir') ? 'application/fhir+json' : 'application/json');
  }
  let res: Response;
  try {
    res = await fetch(path, { ...init, headers });
  } catch {
    throw new ApiError(0, '无法连接到平台，请检查网络');
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? (JSON.parse(text) as unknown) : undefined;
  } catch {
    body = undefined;
  }
  // a 401 for the token itself ends the session; the accounts API's own 401s (a wrong current password) do not
  const refusedToken = res.status === 401 && !(body as { code?: unknown } | undefined)?.code;
  if (refusedToken && t) lost('expired');
  else if (t && t === token()) armTimers();
  if (!res.ok) {
    const detail = body as { issue?: { details?: { text?: string }; diagnostics?: string }[]; message?: string; code?: string } | undefined;
    // the accounts API answers { code, message } with a Chinese message: shown as it is
    if (detail?.code && detail.message) throw new ApiError(res.status, detail.message, detail.code);
    const reason = detail?.message ?? detail?.issue?.[0]?.details?.text ?? detail?.issue?.[0]?.diagnostics;
    throw new ApiError(res.status, `${STATUS_ZH[res.status] ?? `请求失败（${res.status}）`}${reason ? `：${reason}` : ''}`);
  }
  return (full ? { status: res.status, headers: res.headers, body } : body) as T;
}

export interface FullAnswer<T> {
  status: number;
  headers: Headers;
  body: T;
}

export const fhir = <T = any>(path: string, init?: RequestInit) => call<T>(`/fhir/${path}`, init);
export const api = <T = any>(path: string, init?: RequestInit) => call<T>(`/api/${path}`, init);
/** A FHIR call whose status and headers matter (the async request pattern: 202 + Content-Location, X-Progress). */
export const fhirFull = <T = any>(path: string, init?: RequestInit) => call<FullAnswer<T>>(path.startsWith('/') ? path : `/fhir/${path}`, init, true);

/**
 * A file the platform serves behind the bearer token (a briefing's HTML or PDF): fetched with the token, as a
 * Blob, with the file name of its Content-Disposition. Failures are ApiErrors like any call's.
 */
export async function file(path: string): Promise<{ blob: Blob; filename?: string; type: string }> {
  const t = token();
  let res: Response;
  try {
    res = await fetch(path, { headers: t ? { Authorization: `Bearer ${t}` } : {} });
  } catch {
    throw new ApiError(0, '无法连接到平台，请检查网络');
  }
  if (!res.ok) {
    // the refusal is JSON (an OperationOutcome or { code, message }): the same messages as call()'s
    const text = await res.text();
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (res.status === 401 && t && !body?.code) lost('expired');
    const reason = body?.message ?? body?.issue?.[0]?.details?.text ?? body?.issue?.[0]?.diagnostics;
    throw new ApiError(res.status, `${STATUS_ZH[res.status] ?? `请求失败（${res.status}）`}${reason ? `：${reason}` : ''}`);
  }
  if (t && t === token()) armTimers();
  const filename = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1];
  return { blob: await res.blob(), filename, type: res.headers.get('content-type') ?? '' };
}

/** Saves a Blob as a download under the given name (a temporary object URL, revoked after). */
export function saveAs(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** A JSON body for `api()` / `fhir()`. */
export const json = (method: string, body: unknown): RequestInit => ({ method, body: JSON.stringify(body) });

/** The message of any failure, for the pages. */
export const messageOf = (e: unknown, fallback: string): string => (e instanceof ApiError ? e.message : fallback);

/** A FHIR Parameters answer's parameters by name. */
export function params(body: { parameter?: any[] } | undefined, name: string): any[] {
  return (body?.parameter ?? []).filter((p) => p.name === name);
}

export function part(p: { part?: any[] } | undefined, name: string): any {
  return (p?.part ?? []).find((x) => x.name === name);
}
