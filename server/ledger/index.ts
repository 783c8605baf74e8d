/**
 * The ledger module: the port (port.ts), its adapters and `createLedger(config)`.
 *
 *   const ledger = await createLedger(loadLedgerConfig(process.env));
 *   const receipt = await ledger.anchor({ records: ['sm3:…', 'sm3:…'] });
 *   const held = await ledger.lookup(receipt.root);      // what every node holds
 *   const cmp = await ledger.compare();                  // first divergence between nodes
 *   await ledger.close();
 */
import type { LedgerConfig } from './config.ts';
import { openEmbeddedLedger } from './embedded.ts';
import { EvmLedger } from './evm/adapter.ts';
import { HttpRpcNode } from './evm/rpc.ts';
import { GovGatewayLedger } from './gov-gateway.ts';
import type { LedgerPort } from './port.ts';

export * from './port.ts';
export * from './config.ts';
export { EvmLedger, toBytes32, type EvmLedgerOptions, type TxResult } from './evm/adapter.ts';
export { HttpRpcNode, Eip1193RpcNode, RpcTransportError, RpcResponseError, type RpcNode } from './evm/rpc.ts';
export { ANCHOR_ARTIFACT, anchorInterface, deployAnchorContract, sendTransaction, sendRawTransaction } from './evm/contract.ts';
export { openEmbeddedLedger, EMBEDDED_CHAIN_ID, EMBEDDED_LEDGER_NAME } from './embedded.ts';
export { GovGatewayLedger, GOV_GATEWAY_NOT_CONFIGURED } from './gov-gateway.ts';

export async function createLedger(config: LedgerConfig): Promise<LedgerPort> {
  switch (config.kind) {
    case 'embedded':
      return openEmbeddedLedger({ dataDir: config.dataDir, name: config.name });
    case 'gov-gateway':
      return new GovGatewayLedger({ name: config.name, url: config.govGateway?.url });
    case 'evm': {
      const evm = config.evm!;
      return new EvmLedger({
        name: config.name,
        kind: 'evm',
        nodes: evm.nodes.map((n) => new HttpRpcNode(n.name, n.url, evm.timeoutMs)),
        contract: evm.contract,
        privateKey: evm.privateKey,
        chainId: evm.chainId,
        receiptTimeoutMs: evm.receiptTimeoutMs,
      });
    }
  }
}
