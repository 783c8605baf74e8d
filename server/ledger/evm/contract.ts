/** The committed HurenAnchor artifact (ABI + bytecode) and transaction helpers shared by the EVM adapter and tools. */
import { readFileSync } from 'node:fs';
import { Interface, Transaction, Wallet, getAddress, toQuantity } from 'ethers';
import { LedgerError } from '../port.ts';
import { ARTIFACT_PATH, type ContractArtifact } from './compile.ts';
import { RpcResponseError, RpcTransportError, revertData, type RpcNode } from './rpc.ts';

export const ANCHOR_ARTIFACT: ContractArtifact = JSON.parse(readFileSync(ARTIFACT_PATH, 'utf8'));
export const anchorInterface = new Interface(ANCHOR_ARTIFACT.abi as never);
export const ANCHORED_TOPIC = anchorInterface.getEvent('Anchored')!.topicHash;

export interface RpcReceipt {
  transactionHash: string;
  blockHash: string;
  blockNumber: string;
  status: string;
  contractAddress?: string | null;
  logs: Array<{ address: string; topics: string[]; data: string; blockHash: string; transactionHash: string; blockNumber: string }>;
}

export interface SendOptions {
  /** Wait this long for the receipt (default 120 s). */
  receiptTimeoutMs?: number;
  pollIntervalMs?: number;
  /** Expected chain id; read from the node when absent. */
  chainId?: number;
}

/** Explains a revert of the anchor contract in words (custom errors decoded). */
export function describeRevert(error: unknown): string {
  const data = revertData(error);
  if (data) {
    try {
      const parsed = anchorInterface.parseError(data);
      if (parsed) return `${parsed.name}(${parsed.args.map((a) => String(a)).join(', ')})`;
    } catch {
      // not one of ours
    }
  }
  return (error as Error).message;
}

function wrap(error: unknown, what: string): LedgerError {
  if (error instanceof LedgerError) return error;
  if (error instanceof RpcTransportError) return new LedgerError('unavailable', `${what}: ${error.message}`, { cause: error });
  if (error instanceof RpcResponseError) return new LedgerError('rejected', `${what}: ${describeRevert(error)}`, { cause: error });
  return new LedgerError('unavailable', `${what}: ${(error as Error).message}`, { cause: error });
}

/**
 * Signs (legacy, EIP-155 transaction: the widest EVM compatibility) and sends a transaction through `node`, then
 * waits for its receipt. A revert (in gas estimation or in the mined transaction) is a 'rejected' LedgerError.
 */
export async function sendTransaction(
  node: RpcNode,
  wallet: Wallet,
  tx: { to?: string; data: string; gasLimit?: bigint },
  opts: SendOptions = {},
): Promise<RpcReceipt> {
  let raw: string;
  try {
    const from = wallet.address;
    const [chainIdHex, nonceHex, gasPriceHex] = await Promise.all([
      node.request<string>('eth_chainId'),
      node.request<string>('eth_getTransactionCount', [from, 'pending']),
      node.request<string>('eth_gasPrice'),
    ]);
    const chainId = Number(chainIdHex);
    if (opts.chainId !== undefined && opts.chainId !== chainId) {
      throw new LedgerError('rejected', `${node.name} is on chain ${chainId}, configured chain is ${opts.chainId}`);
    }
    let gasLimit = tx.gasLimit;
    if (gasLimit === undefined) {
      const estimate = await node.request<string>('eth_estimateGas', [
        { from, ...(tx.to ? { to: tx.to } : {}), data: tx.data },
      ]);
      gasLimit = (BigInt(estimate) * 12n) / 10n + 10_000n;
    }
    raw = await wallet.signTransaction(
      Transaction.from({
        type: 0,
        chainId,
        nonce: Number(nonceHex),
        gasPrice: BigInt(gasPriceHex),
        gasLimit,
        to: tx.to ?? null,
        data: tx.data,
        value: 0n,
      }),
    );
  } catch (e) {
    throw wrap(e, 'preparing the transaction');
  }
  return sendRawTransaction(node, raw, opts);
}

/** Sends an already signed transaction and waits for its receipt. */
export async function sendRawTransaction(node: RpcNode, raw: string, opts: SendOptions = {}): Promise<RpcReceipt> {
  let txId: string;
  try {
    txId = await node.request<string>('eth_sendRawTransaction', [raw]);
  } catch (e) {
    throw wrap(e, 'sending the transaction');
  }
  const receipt = await waitForReceipt(node, txId, opts);
  if (BigInt(receipt.status) !== 1n) {
    throw new LedgerError('rejected', `transaction ${txId} reverted in block ${Number(receipt.blockNumber)}`);
  }
  return receipt;
}

export async function waitForReceipt(node: RpcNode, txId: string, opts: SendOptions = {}): Promise<RpcReceipt> {
  const deadline = Date.now() + (opts.receiptTimeoutMs ?? 120_000);
  const poll = opts.pollIntervalMs ?? 250;
  for (;;) {
    let receipt: RpcReceipt | null;
    try {
      receipt = await node.request<RpcReceipt | null>('eth_getTransactionReceipt', [txId]);
    } catch (e) {
      throw wrap(e, `waiting for ${txId}`);
    }
    if (receipt && receipt.blockNumber) return receipt;
    if (Date.now() > deadline) {
      throw new LedgerError('timeout', `transaction ${txId} was sent to ${node.name} but not mined within ${opts.receiptTimeoutMs ?? 120_000} ms`);
    }
    await new Promise((r) => setTimeout(r, poll));
  }
}

export interface Deployment {
  address: string;
  txId: string;
  height: number;
}

/** Deploys HurenAnchor; the deploying account becomes its owner (the platform account). */
export async function deployAnchorContract(node: RpcNode, privateKey: string, opts: SendOptions = {}): Promise<Deployment> {
  const wallet = new Wallet(privateKey);
  const receipt = await sendTransaction(node, wallet, { data: ANCHOR_ARTIFACT.bytecode }, opts);
  if (!receipt.contractAddress) throw new LedgerError('rejected', 'the deployment receipt names no contract address');
  return { address: getAddress(receipt.contractAddress), txId: receipt.transactionHash, height: Number(receipt.blockNumber) };
}

export { toQuantity };
