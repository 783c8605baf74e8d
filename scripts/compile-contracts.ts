/**
 * `npx tsx scripts/compile-contracts.ts` — compiles server/ledger/evm/contracts/HurenAnchor.sol with solc-js
 * (evmVersion paris, optimizer on) and writes the ABI + bytecode artifact HurenAnchor.json beside it. Run it
 * after changing the contract; test/ledger-contract.test.ts fails while the artifact is stale.
 */
import { writeFileSync } from 'node:fs';
import { ARTIFACT_PATH, compileAnchorContract } from '../server/ledger/evm/compile.ts';

const artifact = compileAnchorContract();
writeFileSync(ARTIFACT_PATH, JSON.stringify(artifact, null, 2) + '\n');
console.log(`wrote ${ARTIFACT_PATH} (solc ${artifact.compiler.version}, ${(artifact.deployedBytecode.length - 2) / 2} bytes deployed)`);
