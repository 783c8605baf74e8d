/**
 * `HUREN_EVM_URLS=http://node:8545 HUREN_EVM_KEY=0x… npx tsx scripts/evm-deploy.ts [--register <account> <institution-code>]…`
 *
 * Deploys the HurenAnchor contract (the committed artifact) through the first node of HUREN_EVM_URLS with the
 * platform key HUREN_EVM_KEY (which becomes the contract's owner), prints the address to put in
 * HUREN_EVM_CONTRACT, and registers institution accounts if asked. With HUREN_EVM_CONTRACT already set it
 * only registers. An institution code is 32 bytes of hex or a short text (stored as its SM3 hash).
 */
import { createHash } from 'node:crypto';
import { EvmLedger, HttpRpcNode, deployAnchorContract, parseNodeUrls } from '../server/ledger/index.ts';

function institutionCode(text: string): string {
  return /^(0x)?[0-9a-fA-F]{64}$/.test(text) ? text : '0x' + createHash('sm3').update(text).digest('hex');
}

async function main(): Promise<void> {
  const nodes = parseNodeUrls(process.env.HUREN_EVM_URLS ?? '');
  const key = process.env.HUREN_EVM_KEY;
  if (nodes.length === 0 || !key) throw new Error('set HUREN_EVM_URLS and HUREN_EVM_KEY');
  const node = new HttpRpcNode(nodes[0]!.name, nodes[0]!.url, 10_000);
  let contract = process.env.HUREN_EVM_CONTRACT;
  if (!contract) {
    const d = await deployAnchorContract(node, key);
    contract = d.address;
    console.log(`HurenAnchor deployed at ${d.address} (transaction ${d.txId}, block ${d.height})`);
    console.log(`HUREN_EVM_CONTRACT=${d.address}`);
  }
  const args = process.argv.slice(2);
  const ledger = new EvmLedger({ name: 'deploy', nodes: [node], contract, privateKey: key });
  for (let i = 0; i < args.length; i++) {
    if (args[i] !== '--register') throw new Error(`unknown argument ${args[i]}`);
    const account = args[++i];
    const code = args[++i];
    if (!account || !code) throw new Error('--register <account> <institution-code>');
    const r = await ledger.registerInstitution(account, institutionCode(code));
    console.log(`registered ${account} as ${institutionCode(code)} (transaction ${r.txId})`);
  }
  await ledger.close();
}

main().catch((e) => {
  console.error((e as Error).message);
  process.exit(1);
});
