/**
 * The platform's FHIR API as the kit uses it — exactly the calls a hospital system makes
 * (docs/submitting-reports.md, docs/chain-provenance.md): POST the transaction Bundle to the FHIR base,
 * POST a late chain Provenance, `DiagnosticReport/[id]/$verify`, the report's `_history`.
 */
import { KitError, usageError } from './errors.ts';
import { reportEntry, type Json } from './bundle.ts';

export type HashStatus = 'consistent' | 'inconsistent' | 'pending' | 'unanchored';

export interface Verdict {
  status: HashStatus;
  reportId: string;
  version: number;
  fingerprint?: string;
  recomputed?: string;
  anchoredBy?: string;
  ledger?: string;
  txId?: string;
  height?: number;
  reasons: string[];
  /** The institution's signature: valid | invalid | absent | no-key; and whether it is the performer's. */
  signature?: string;
  signedByPerformer?: boolean;
  signedBy?: string;
  signatureReason?: string;
}

/** What `$original` answers: the submitted bytes and what anchors them (response headers). */
export interface Original {
  text: string;
  fingerprint?: string;
  anchor: Record<string, string>;
  proof?: { leafIndex: number; treeSize: number; path: string[] };
  signature?: string;
}

export interface Upload {
  reportId: string;
  version: number;
  /** The HTTP status of the report's entry: 201 created, 200 already there (a retry) or updated. */
  entryStatus: number;
  /** The stored report (its performer is the Provenance's agent). */
  report?: Json;
}

export class Platform {
  readonly base: string;

  constructor(
    base: string,
    private readonly token: string,
    private readonly timeoutMs = 30_000
  ) {
    let url: URL;
    try {
      url = new URL(base);
    } catch {
      throw usageError(`--base: '${base.slice(0, 80)}' is not a URL (the FHIR base, e.g. https://huren.example/fhir)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw usageError('--base: the FHIR base is an http(s) URL');
    if (!token) throw usageError('--token: the platform bearer token is required (give it as env:NAME or file:PATH)');
    this.base = base.replace(/\/+$/, '');
  }

  /** One request; a non-2xx answer is a KitError naming the status and the OperationOutcome's text. */
  async request(method: string, path: string, body?: string | Json, what = `${method} ${path}`): Promise<{ status: number; json: Json }> {
    let res: Response;
    try {
      res = await fetch(`${this.base}/${path.replace(/^\//, '')}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          accept: 'application/fhir+json',
          ...(body !== undefined ? { 'content-type': 'application/fhir+json' } : {}),
        },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      const c = (e as { cause?: { code?: string; message?: string } }).cause;
      const cause = c?.code ?? c?.message ?? (e as Error).name;
      throw new KitError(`${what}: the platform at ${this.base} is not reachable (平台无法连接): ${cause}`);
    }
    const text = await res.text();
    let json: Json = {};
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      // not JSON: described below by status
    }
    if (res.status >= 300) throw new KitError(`${what}: ${res.status} ${describeFailure(res.status, json)}`);
    return { status: res.status, json };
  }

  /** Checks that the platform answers and accepts the token; returns the FHIR version it speaks. */
  async preflight(): Promise<string> {
    const meta = await this.request('GET', 'metadata', undefined, 'GET metadata');
    await this.request('GET', 'DiagnosticReport?_count=0', undefined, 'token check');
    return String(meta.json.fhirVersion ?? '?');
  }

  /** Uploads a transaction Bundle (the text exactly as given) and finds the report in the answer. */
  async upload(text: string, submitted: Json): Promise<Upload> {
    const { json } = await this.request('POST', '', text, 'upload');
    const { index } = reportEntry(submitted);
    const answer = json.entry?.[index];
    const m = /\/DiagnosticReport\/([^/]+)$/.exec(answer?.fullUrl ?? '');
    if (json.resourceType !== 'Bundle' || !m) throw new KitError('upload: the answer names no DiagnosticReport (not a transaction-response Bundle?)');
    return {
      reportId: m[1]!,
      version: versionOf(answer.response?.etag, answer.resource),
      entryStatus: Number.parseInt(String(answer.response?.status), 10),
      report: answer.resource,
    };
  }

  /** A late chain Provenance: POST /Provenance. Returns its id. */
  async postProvenance(provenance: Json): Promise<string> {
    const { json } = await this.request('POST', 'Provenance', provenance, 'POST Provenance');
    return String(json.id);
  }

  /** `$verify` of a report (version: the current one unless given). */
  async verify(reportId: string, version?: number): Promise<Verdict> {
    const q = version ? `?version=${version}` : '';
    const { json } = await this.request('GET', `DiagnosticReport/${encodeURIComponent(reportId)}/$verify${q}`, undefined, '$verify');
    const p = (name: string) => json.parameter?.find((x: Json) => x.name === name);
    const v = (name: string) => {
      const x = p(name);
      return x ? (x.valueCode ?? x.valueString ?? x.valueInteger) : undefined;
    };
    return {
      status: v('status'),
      reportId,
      version: Number(v('version')),
      fingerprint: v('fingerprint'),
      recomputed: v('recomputedFingerprint'),
      anchoredBy: v('anchoredBy'),
      ledger: v('ledger'),
      txId: v('txId'),
      height: v('height'),
      reasons: (json.parameter ?? []).filter((x: Json) => x.name === 'reason').map((x: Json) => String(x.valueString)),
      signature: v('signature'),
      signedByPerformer: p('signedByPerformer')?.valueBoolean,
      signedBy: v('signedBy'),
      signatureReason: v('signatureReason'),
    };
  }

  /** `$verify` again while the report is pending for any reason (the platform's own anchoring too), up to `waitMs`. */
  async settlePlatform(reportId: string, version: number | undefined, waitMs: number): Promise<Verdict> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const v = await this.verify(reportId, version);
      if (v.status !== 'pending' || Date.now() >= deadline) return v;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /** `$original`: the Bundle exactly as submitted, its fingerprint, anchor and proof (docs/chain-provenance.md). */
  async original(reportId: string, version?: number): Promise<Original> {
    const q = version ? `?version=${version}` : '';
    let res: Response;
    try {
      res = await fetch(`${this.base}/DiagnosticReport/${encodeURIComponent(reportId)}/$original${q}`, {
        headers: { authorization: `Bearer ${this.token}`, accept: 'application/fhir+json' },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      throw new KitError(`$original: the platform at ${this.base} is not reachable (平台无法连接): ${(e as Error).message}`);
    }
    const bytes = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200) throw new KitError(`$original: ${res.status}`);
    const fields = (h: string | null) => Object.fromEntries((h ?? '').split('; ').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const proof = fields(res.headers.get('huren-merkle-proof'));
    return {
      text: bytes.toString('utf8'),
      fingerprint: res.headers.get('huren-fingerprint') ?? undefined,
      anchor: fields(res.headers.get('huren-anchor')),
      ...(proof.path ? { proof: { leafIndex: Number(proof.leaf), treeSize: Number(proof.size), path: proof.path.split(',') } } : {}),
      signature: res.headers.get('huren-signature') ?? undefined,
    };
  }

  /**
   * `$verify` again until the status no longer waits for the chain lookup (or `waitMs` passed). A report
   * waiting for platform anchoring, or anchored on a ledger the platform does not read, is returned at once.
   */
  async settle(reportId: string, version: number | undefined, waitMs: number): Promise<Verdict> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const v = await this.verify(reportId, version);
      // pending for a reason waiting does not cure: the platform's own anchoring, or a ledger it does not read
      const waitingForChain = v.status === 'pending' && !v.reasons.some((r) => /platform anchoring|which this platform does not read/.test(r));
      if (!waitingForChain || Date.now() >= deadline) return v;
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** The versions of a report the platform keeps (`_history`), oldest first. */
  async versions(reportId: string): Promise<number[]> {
    const { json } = await this.request('GET', `DiagnosticReport/${encodeURIComponent(reportId)}/_history`, undefined, '_history');
    return (json.entry ?? []).map((e: Json) => Number(e.resource?.meta?.versionId)).sort((a: number, b: number) => a - b);
  }

  /** The current report. */
  async report(reportId: string): Promise<Json> {
    return (await this.request('GET', `DiagnosticReport/${encodeURIComponent(reportId)}`, undefined, 'read report')).json;
  }
}

function versionOf(etag: unknown, resource: Json | undefined): number {
  const m = /^W\/"(\d+)"$/.exec(String(etag ?? ''));
  return Number(m ? m[1] : resource?.meta?.versionId);
}

/** What a refusal means, in one line (the OperationOutcome's first issue, where it points). */
function describeFailure(status: number, json: Json): string {
  const issue = json?.resourceType === 'OperationOutcome' ? json.issue?.[0] : undefined;
  const text = String(issue?.details?.text ?? issue?.diagnostics ?? '').slice(0, 300);
  const where = issue?.expression?.[0] ? ` at ${issue.expression[0]}` : '';
  const meaning: Record<number, string> = {
    400: 'the platform refused the request (请求有误)',
    401: 'the token was refused (令牌无效或已过期)',
    403: 'the token may not do this (无权限)',
    404: 'not found (未找到)',
    412: 'a business identifier matched more than one resource (业务标识重复)',
    413: 'the Bundle is too large',
    422: 'the Bundle did not pass validation (校验未通过)',
  };
  return `${meaning[status] ?? (status >= 500 ? 'the platform failed (平台内部错误)' : 'refused')}${text ? `: ${text}` : ''}${where}`;
}
