/**
 * The app's calls to the platform: FHIR (`/fhir`) and the JSON APIs (`/api`), with the signed-in user's bearer
 * token. Every failure becomes an ApiError with a Chinese message the pages show as it is.
 */
const TOKEN_KEY = 'huren.token';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string | null): void {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

const STATUS_ZH: Record<number, string> = {
  400: '请求有误',
  401: '登录已失效，请重新登录',
  403: '当前账号无权查看此内容',
  404: '未找到相关记录',
  409: '数据已被他人修改，请刷新后重试',
  422: '数据不符合业务规则',
  429: '请求过于频繁，请稍后再试',
  503: '服务暂不可用，请稍后再试',
};

async function call<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  const t = token();
  if (t) headers.set('Authorization', `Bearer ${t}`);
  if (!headers.has('Accept')) headers.set('Accept', path.startsWith('/fhir') ? 'application/fhir+json' : 'application/json');
  let res: Response;
  try {
    res = await fetch(path, { ...init, headers });
  } catch {
    throw new ApiError(0, '无法连接到平台，请检查网络');
  }
  if (res.status === 401) setToken(null);
  const text = await res.text();
  const body = text ? (JSON.parse(text) as unknown) : undefined;
  if (!res.ok) {
    const detail = (body as { issue?: { details?: { text?: string } }[]; message?: string } | undefined);
    const reason = detail?.message ?? detail?.issue?.[0]?.details?.text;
    throw new ApiError(res.status, `${STATUS_ZH[res.status] ?? `请求失败（${res.status}）`}${reason ? `：${reason}` : ''}`);
  }
  return body as T;
}

export const fhir = <T = any>(path: string, init?: RequestInit) => call<T>(`/fhir/${path}`, init);
export const api = <T = any>(path: string, init?: RequestInit) => call<T>(`/api/${path}`, init);

/** A FHIR Parameters answer's parameters by name. */
export function params(body: { parameter?: any[] } | undefined, name: string): any[] {
  return (body?.parameter ?? []).filter((p) => p.name === name);
}

export function part(p: { part?: any[] } | undefined, name: string): any {
  return (p?.part ?? []).find((x) => x.name === name);
}
