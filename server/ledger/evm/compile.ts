/**
 * Compiles the anchor contract with solc-js (the `solc` package's own compiler version), evmVersion `paris`,
 * optimizer on. The result is committed as HurenAnchor.json (scripts/compile-contracts.ts writes it) so the
 * server never loads the compiler; test/ledger-contract.test.ts recompiles and checks the bytecode is the same.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CONTRACT_NAME = 'HurenAnchor';
export const SOURCE_NAME = 'HurenAnchor.sol';
export const CONTRACTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'contracts');
export const SOURCE_PATH = join(CONTRACTS_DIR, SOURCE_NAME);
export const ARTIFACT_PATH = join(CONTRACTS_DIR, `${CONTRACT_NAME}.json`);

export const COMPILER_SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'paris',
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
} as const;

export interface ContractArtifact {
  contractName: string;
  sourceName: string;
  sourceSha256: string;
  compiler: { version: string; settings: { optimizer: { enabled: boolean; runs: number }; evmVersion: string } };
  abi: unknown[];
  bytecode: string;
  deployedBytecode: string;
}

export function compileAnchorContract(source = readFileSync(SOURCE_PATH, 'utf8')): ContractArtifact {
  const require = createRequire(import.meta.url);
  const solc = require('solc') as { compile(input: string): string; version(): string };
  const output = JSON.parse(
    solc.compile(JSON.stringify({ language: 'Solidity', sources: { [SOURCE_NAME]: { content: source } }, settings: COMPILER_SETTINGS })),
  ) as {
    errors?: Array<{ severity: string; formattedMessage: string }>;
    contracts: Record<string, Record<string, { abi: unknown[]; evm: { bytecode: { object: string }; deployedBytecode: { object: string } } }>>;
  };
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length) throw new Error(`solc: ${errors.map((e) => e.formattedMessage).join('\n')}`);
  const c = output.contracts[SOURCE_NAME]![CONTRACT_NAME]!;
  return {
    contractName: CONTRACT_NAME,
    sourceName: SOURCE_NAME,
    sourceSha256: createHash('sha256').update(source).digest('hex'),
    compiler: {
      version: solc.version(),
      settings: { optimizer: { ...COMPILER_SETTINGS.optimizer }, evmVersion: COMPILER_SETTINGS.evmVersion },
    },
    abi: c.abi,
    bytecode: '0x' + c.evm.bytecode.object,
    deployedBytecode: '0x' + c.evm.deployedBytecode.object,
  };
}
