/**
 * Ledger configuration from the environment (the lead wires it into server/config.ts):
 *
 *   HUREN_LEDGER                 embedded (default) | evm | gov-gateway
 *   HUREN_LEDGER_NAME            the ledger's name in receipts and chain Provenance
 *                                (default huren-embedded / evm-<chain id or first host> / gz-gov-gateway)
 *   HUREN_DATA_DIR               embedded: the chain lives in $HUREN_DATA_DIR/chain (default ./data)
 *   HUREN_EMBEDDED_RPC           embedded: read-only JSON-RPC on loopback, <port> or <host>:<port> (default
 *                                127.0.0.1:8546) or off (read-rpc.ts)
 *   HUREN_EVM_URLS               evm: comma-separated node URLs, each `url` or `name=url`; transactions go to
 *                                the first node that answers, lookups and comparisons ask all of them
 *   HUREN_EVM_CONTRACT           evm: the HurenAnchor contract address
 *   HUREN_EVM_KEY                evm: the signing key (0x + 64 hex); or HUREN_EVM_KEY_FILE, a file holding it.
 *                                Without a key the ledger is read-only (lookup, compare, health).
 *   HUREN_EVM_CHAIN_ID           evm: the expected chain id (optional; checked against the nodes)
 *   HUREN_EVM_TIMEOUT_MS         evm: per-request timeout (default 5000)
 *   HUREN_EVM_RECEIPT_TIMEOUT_MS evm: how long to wait for a transaction to be mined (default 120000)
 *   HUREN_GOV_GATEWAY_URL        gov-gateway: the gateway's base URL (the adapter is a boundary only)
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { LedgerKind } from './port.ts';
import { parseReadRpcAddress } from './read-rpc.ts';

export interface EvmNodeConfig {
  name: string;
  url: string;
}

export interface LedgerConfig {
  kind: LedgerKind;
  name: string;
  dataDir: string;
  evm?: {
    nodes: EvmNodeConfig[];
    contract: string;
    privateKey?: string;
    chainId?: number;
    timeoutMs: number;
    receiptTimeoutMs: number;
  };
  govGateway?: { url?: string };
  /** embedded: the read-only JSON-RPC on loopback (HUREN_EMBEDDED_RPC, default 127.0.0.1:8546; off). read-rpc.ts */
  embeddedRpc?: { host: string; port: number };
}

export class LedgerConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LedgerConfigError';
  }
}

export function loadLedgerConfig(env: NodeJS.ProcessEnv = process.env, overrides: { dataDir?: string } = {}): LedgerConfig {
  const kind = (env.HUREN_LEDGER || 'embedded').trim();
  const dataDir = resolve(overrides.dataDir ?? env.HUREN_DATA_DIR ?? './data');
  const name = env.HUREN_LEDGER_NAME?.trim() || undefined;
  switch (kind) {
    case 'embedded':
      return { kind, name: name ?? 'huren-embedded', dataDir, embeddedRpc: parseReadRpcAddress(env.HUREN_EMBEDDED_RPC) };
    case 'gov-gateway':
      return { kind, name: name ?? 'gz-gov-gateway', dataDir, govGateway: { url: env.HUREN_GOV_GATEWAY_URL || undefined } };
    case 'evm': {
      const nodes = parseNodeUrls(env.HUREN_EVM_URLS ?? '');
      if (nodes.length === 0) throw new LedgerConfigError('HUREN_LEDGER=evm needs HUREN_EVM_URLS (comma-separated node URLs)');
      const contract = env.HUREN_EVM_CONTRACT?.trim();
      if (!contract || !/^0x[0-9a-fA-F]{40}$/.test(contract)) {
        throw new LedgerConfigError('HUREN_LEDGER=evm needs HUREN_EVM_CONTRACT (the HurenAnchor address, 0x + 40 hex)');
      }
      let privateKey = env.HUREN_EVM_KEY?.trim() || undefined;
      if (!privateKey && env.HUREN_EVM_KEY_FILE) {
        try {
          privateKey = readFileSync(env.HUREN_EVM_KEY_FILE, 'utf8').trim();
        } catch (e) {
          throw new LedgerConfigError(`HUREN_EVM_KEY_FILE: ${(e as Error).message}`);
        }
      }
      if (privateKey !== undefined) {
        if (/^[0-9a-fA-F]{64}$/.test(privateKey)) privateKey = `0x${privateKey}`;
        if (!/^0x[0-9a-fA-F]{64}$/.test(privateKey)) throw new LedgerConfigError('HUREN_EVM_KEY is not a 32-byte hex private key');
      }
      const chainId = optionalInt(env.HUREN_EVM_CHAIN_ID, 'HUREN_EVM_CHAIN_ID');
      return {
        kind,
        name: name ?? `evm-${chainId ?? new URL(nodes[0]!.url).host}`,
        dataDir,
        evm: {
          nodes,
          contract,
          privateKey,
          chainId,
          timeoutMs: optionalInt(env.HUREN_EVM_TIMEOUT_MS, 'HUREN_EVM_TIMEOUT_MS') ?? 5000,
          receiptTimeoutMs: optionalInt(env.HUREN_EVM_RECEIPT_TIMEOUT_MS, 'HUREN_EVM_RECEIPT_TIMEOUT_MS') ?? 120_000,
        },
      };
    }
    default:
      throw new LedgerConfigError(`HUREN_LEDGER must be embedded, evm or gov-gateway, not '${kind}'`);
  }
}

/** `http://a:8545,b=http://b:8545` → [{name: 'a:8545', url}, {name: 'b', url}]. */
export function parseNodeUrls(value: string): EvmNodeConfig[] {
  const nodes: EvmNodeConfig[] = [];
  for (const raw of value.split(',')) {
    const item = raw.trim();
    if (!item) continue;
    const m = /^([A-Za-z0-9_.-]+)=(.+)$/.exec(item);
    const url = (m ? m[2]! : item).trim();
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new LedgerConfigError(`HUREN_EVM_URLS: '${url}' is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new LedgerConfigError(`HUREN_EVM_URLS: '${url}' is not http(s)`);
    const name = m ? m[1]! : parsed.host;
    if (nodes.some((n) => n.name === name)) throw new LedgerConfigError(`HUREN_EVM_URLS: node name '${name}' appears twice`);
    nodes.push({ name, url });
  }
  return nodes;
}

function optionalInt(value: string | undefined, what: string): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new LedgerConfigError(`${what} must be a non-negative integer, got '${value}'`);
  return n;
}

/** The configuration with the signing key hidden (for logs and status pages). */
export function describeLedgerConfig(config: LedgerConfig): Record<string, unknown> {
  return {
    kind: config.kind,
    name: config.name,
    ...(config.kind === 'embedded' ? { chainDir: resolve(config.dataDir, 'chain') } : {}),
    ...(config.evm
      ? {
          nodes: config.evm.nodes.map((n) => ({ name: n.name, url: redactUrl(n.url) })),
          contract: config.evm.contract,
          chainId: config.evm.chainId,
          signingKey: config.evm.privateKey ? 'configured' : 'none (read-only)',
        }
      : {}),
    ...(config.govGateway ? { url: config.govGateway.url } : {}),
  };
}

function redactUrl(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}
