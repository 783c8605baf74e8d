/**
 * A read-only JSON-RPC endpoint for the embedded chain (docs/ledger.md): the ganache chain runs inside the
 * server process and has no network face, so that the integration kit and any outside verifier can still
 * look anchors up on a default install, this serves the Ethereum JSON-RPC *read* methods on loopback
 * (`HUREN_EMBEDDED_RPC`, default 127.0.0.1:8546; `off` to disable). Anything that could change the chain
 * (sending transactions, signing, mining, ganache's `evm_*` controls) is refused with JSON-RPC error -32601.
 * `huren_ledger` answers the ledger's name, the HurenAnchor contract address and the chain id.
 *
 * The chain is opened on the first request (it costs seconds), not when the server starts.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RpcNode } from './evm/rpc.ts';

export const READ_METHODS: ReadonlySet<string> = new Set([
  'web3_clientVersion',
  'net_version',
  'eth_chainId',
  'eth_blockNumber',
  'eth_call',
  'eth_getLogs',
  'eth_getCode',
  'eth_getBalance',
  'eth_getTransactionCount',
  'eth_getTransactionByHash',
  'eth_getTransactionReceipt',
  'eth_getBlockByNumber',
  'eth_getBlockByHash',
  'eth_getBlockTransactionCountByNumber',
]);

export interface ReadRpcTarget {
  node: RpcNode;
  name: string;
  contract: string;
  chainId: number;
}

export interface ReadRpcServer {
  url: string;
  close(): Promise<void>;
}

const MAX_BODY = 256 * 1024;
const MAX_BATCH = 100;
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** `off`, `<port>` or `<host>:<port>` (a loopback host) → where to listen, or undefined. */
export function parseReadRpcAddress(value: string | undefined): { host: string; port: number } | undefined {
  const v = (value ?? '127.0.0.1:8546').trim();
  if (v === 'off' || v === '') return undefined;
  const m = /^(?:(.+):)?(\d{1,5})$/.exec(v);
  const host = m?.[1]?.replace(/^\[|\]$/g, '') ?? '127.0.0.1';
  const port = Number(m?.[2]);
  if (!m || port > 65535) throw new Error(`HUREN_EMBEDDED_RPC: '${v.slice(0, 60)}' is not off, <port> or <host>:<port>`);
  if (!LOOPBACK.has(host)) throw new Error(`HUREN_EMBEDDED_RPC: the read-only chain endpoint listens on loopback only (127.0.0.1, ::1 or localhost), not ${host.slice(0, 60)}`);
  return { host, port };
}

export async function startReadRpc(address: { host: string; port: number }, open: () => Promise<ReadRpcTarget>): Promise<ReadRpcServer> {
  let target: Promise<ReadRpcTarget> | undefined;
  const get = () => (target ??= open().catch((e: unknown) => {
    target = undefined;
    throw e;
  }));
  const one = async (req: unknown): Promise<unknown> => {
    const r = req as { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: unknown };
    const id = r && typeof r === 'object' && (typeof r.id === 'string' || typeof r.id === 'number' || r.id === null) ? r.id : null;
    const error = (code: number, message: string) => ({ jsonrpc: '2.0', id, error: { code, message } });
    if (!r || typeof r !== 'object' || r.jsonrpc !== '2.0' || typeof r.method !== 'string') return error(-32600, 'invalid request (JSON-RPC 2.0)');
    if (r.params !== undefined && !Array.isArray(r.params)) return error(-32602, 'params must be an array');
    try {
      const t = await get();
      if (r.method === 'huren_ledger') return { jsonrpc: '2.0', id, result: { name: t.name, contract: t.contract, chainId: t.chainId, readOnly: true } };
      if (!READ_METHODS.has(r.method)) return error(-32601, `method ${r.method.slice(0, 60)} is not available: this endpoint of the embedded chain is read-only`);
      return { jsonrpc: '2.0', id, result: await t.node.request(r.method, (r.params as unknown[]) ?? []) };
    } catch (e) {
      return error(-32603, ((e as Error).message ?? 'internal error').slice(0, 200));
    }
  };
  const server: Server = createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST') return send(405, { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'POST a JSON-RPC 2.0 request' } });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return send(400, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } });
      }
      if (Array.isArray(body)) {
        if (body.length === 0 || body.length > MAX_BATCH) return send(400, { jsonrpc: '2.0', id: null, error: { code: -32600, message: `a batch holds 1 to ${MAX_BATCH} requests` } });
        void Promise.all(body.map(one)).then((out) => send(200, out));
      } else void one(body).then((out) => send(200, out));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
