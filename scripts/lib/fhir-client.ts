/**
 * The administrators' commands talking to a running server: one FHIR operation, sent with
 * `Prefer: respond-async`, polled until done (the poll's X-Progress drives the progress bar).
 */
import { parseProgress, type Progress } from './progress.ts';

export interface Remote {
  /** The FHIR base, e.g. http://127.0.0.1:8080/fhir (a bare server URL gets /fhir appended). */
  base: string;
  token: string;
}

export function remote(server: string, token: string | undefined): Remote {
  if (!token) throw new UsageError('--server needs a bearer token: --token T (or HUREN_TOKEN)');
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new UsageError(`--server '${server}' is not a URL`);
  }
  const path = url.pathname.replace(/\/+$/, '');
  return { base: `${url.origin}${path === '' ? '/fhir' : path}`, token };
}

export class UsageError extends Error {}

export interface Answer {
  status: number;
  body: any;
}

/** POSTs a Parameters body to `path` (below the base) asynchronously and waits for the answer. */
export async function runOperation(r: Remote, path: string, parameters: unknown[], progress?: Progress, phase = 'server'): Promise<Answer> {
  const headers = { authorization: `Bearer ${r.token}`, accept: 'application/fhir+json', 'content-type': 'application/fhir+json', prefer: 'respond-async' };
  const kick = await fetch(`${r.base}/${path}`, { method: 'POST', headers, body: JSON.stringify({ resourceType: 'Parameters', parameter: parameters }) });
  if (kick.status !== 202) return { status: kick.status, body: await kick.json().catch(() => undefined) };
  const poll = kick.headers.get('content-location');
  if (!poll) throw new Error('the server accepted the request but gave no Content-Location to poll');
  for (;;) {
    const res = await fetch(poll, { headers: { authorization: `Bearer ${r.token}`, accept: 'application/fhir+json' } });
    if (res.status === 202) {
      const p = parseProgress(res.headers.get('x-progress'));
      if (p) progress?.update(p.phase, p.done, p.total);
      else progress?.update(phase, 0, 1);
      const wait = Math.min(5, Math.max(0.2, Number(res.headers.get('retry-after') ?? '1')));
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      continue;
    }
    const bundle = (await res.json().catch(() => undefined)) as any;
    if (res.status !== 200 || bundle?.resourceType !== 'Bundle') return { status: res.status, body: bundle };
    const entry = bundle.entry?.[0];
    return { status: Number(entry?.response?.status ?? 500), body: entry?.resource };
  }
}

/** The text of an OperationOutcome's issues, one per line. */
export function issuesOf(outcome: any): string[] {
  return (outcome?.issue ?? []).map((i: any) => i.details?.text ?? i.diagnostics ?? i.code);
}

/** Parameters → a map of name → values. */
export function paramsOf(body: any): Map<string, any[]> {
  const m = new Map<string, any[]>();
  for (const p of body?.parameter ?? []) m.set(p.name, [...(m.get(p.name) ?? []), p]);
  return m;
}

export function valueOf(p: any): unknown {
  if (!p) return undefined;
  for (const [k, v] of Object.entries(p)) if (k.startsWith('value')) return v;
  return undefined;
}
