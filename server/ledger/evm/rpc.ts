/**
 * Minimal Ethereum JSON-RPC access to one node: over HTTP (with a timeout, so a dead node answers "down"
 * quickly instead of hanging) or over an in-process EIP-1193 provider (the embedded ganache chain).
 */

export interface RpcNode {
  /** The node's name in lookups, comparisons and health reports. */
  readonly name: string;
  request<T = unknown>(method: string, params?: unknown[]): Promise<T>;
}

/** The node could not be reached (connection refused, timeout, HTTP error): treat it as down. */
export class RpcTransportError extends Error {
  constructor(readonly node: string, message: string, options?: { cause?: unknown }) {
    super(`${node}: ${message}`, options);
    this.name = 'RpcTransportError';
  }
}

/** The node answered with a JSON-RPC error (e.g. a reverted call). */
export class RpcResponseError extends Error {
  constructor(readonly node: string, readonly code: number, message: string, readonly data?: unknown) {
    super(`${node}: ${message}`);
    this.name = 'RpcResponseError';
  }
}

let nextId = 1;

export class HttpRpcNode implements RpcNode {
  constructor(
    readonly name: string,
    readonly url: string,
    readonly timeoutMs = 5000,
  ) {}

  async request<T = unknown>(method: string, params: unknown[] = []): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      const why = (e as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : cause?.code ?? cause?.message ?? (e as Error).message;
      throw new RpcTransportError(this.name, `${method}: ${why}`, { cause: e });
    }
    let body: { result?: T; error?: { code: number; message: string; data?: unknown } };
    try {
      const text = await res.text();
      if (!res.ok) throw new Error(`HTTP ${res.status} ${text.slice(0, 200)}`);
      body = JSON.parse(text);
    } catch (e) {
      throw new RpcTransportError(this.name, `${method}: ${(e as Error).message}`, { cause: e });
    }
    if (body.error) throw new RpcResponseError(this.name, body.error.code, body.error.message, body.error.data);
    return body.result as T;
  }
}

/** An EIP-1193 provider (e.g. `ganache.provider()`), in process. */
export interface Eip1193Provider {
  request(args: { method: string; params?: unknown[] }): Promise<unknown>;
}

export class Eip1193RpcNode implements RpcNode {
  constructor(
    readonly name: string,
    readonly provider: Eip1193Provider,
  ) {}

  async request<T = unknown>(method: string, params: unknown[] = []): Promise<T> {
    try {
      return (await this.provider.request({ method, params })) as T;
    } catch (e) {
      const err = e as { code?: number; message?: string; data?: unknown };
      if (typeof err.code === 'number' || err.data !== undefined) {
        throw new RpcResponseError(this.name, err.code ?? -32000, err.message ?? String(e), err.data);
      }
      throw new RpcTransportError(this.name, `${method}: ${err.message ?? String(e)}`, { cause: e });
    }
  }
}

/** Finds revert data (0x + selector…) in the various shapes nodes put it in a JSON-RPC error. */
export function revertData(error: unknown): string | undefined {
  const seen = new Set<unknown>();
  const walk = (x: unknown): string | undefined => {
    if (typeof x === 'string') return /^0x[0-9a-fA-F]{8}([0-9a-fA-F]{64})*$/.test(x) ? x : undefined;
    if (x === null || typeof x !== 'object' || seen.has(x)) return undefined;
    seen.add(x);
    for (const key of ['data', 'result', 'returnData', 'error']) {
      const found = walk((x as Record<string, unknown>)[key]);
      if (found) return found;
    }
    for (const v of Object.values(x as Record<string, unknown>)) {
      const found = walk(v);
      if (found) return found;
    }
    return undefined;
  };
  return walk(error instanceof RpcResponseError ? error.data : error);
}
