/** The committed contract artifact is what solc-js makes of the source, for the paris EVM. */
import test from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ANCHOR_ARTIFACT, anchorInterface } from '../server/ledger/index.ts';
import { SOURCE_PATH, compileAnchorContract } from '../server/ledger/evm/compile.ts';

test('recompiling the source gives the committed artifact (run scripts/compile-contracts.ts after editing the contract)', (t) => {
  const source = readFileSync(SOURCE_PATH, 'utf8');
  t.is(ANCHOR_ARTIFACT.sourceSha256, createHash('sha256').update(source).digest('hex'), 'the artifact was compiled from this source');
  const fresh = compileAnchorContract(source);
  t.is(fresh.bytecode, ANCHOR_ARTIFACT.bytecode);
  t.is(fresh.deployedBytecode, ANCHOR_ARTIFACT.deployedBytecode);
  t.deepEqual(fresh.abi, ANCHOR_ARTIFACT.abi);
  t.deepEqual(fresh.compiler, ANCHOR_ARTIFACT.compiler);
  t.is(ANCHOR_ARTIFACT.compiler.settings.evmVersion, 'paris');
  t.true(ANCHOR_ARTIFACT.compiler.settings.optimizer.enabled);
  t.regex(ANCHOR_ARTIFACT.compiler.version, /^0\.8\.30\+/);
});

/** Opcodes of runtime code, skipping PUSH data and the trailing CBOR metadata. */
function opcodes(hex: string): number[] {
  const code = Buffer.from(hex.replace(/^0x/, ''), 'hex');
  const metadataLength = code.readUInt16BE(code.length - 2) + 2;
  const ops: number[] = [];
  for (let i = 0; i < code.length - metadataLength; i++) {
    const op = code[i]!;
    ops.push(op);
    if (op >= 0x60 && op <= 0x7f) i += op - 0x5f;
  }
  return ops;
}

test('the runtime code uses no post-paris opcode (PUSH0, MCOPY, TLOAD/TSTORE), so FISCO BCOS / ChainMaker EVMs run it', (t) => {
  const ops = opcodes(ANCHOR_ARTIFACT.deployedBytecode);
  t.true(ops.length > 100);
  for (const forbidden of [0x5f, 0x5e, 0x5c, 0x5d]) t.false(ops.includes(forbidden), `opcode 0x${forbidden.toString(16)}`);
});

test('the interface: registry, anchor(root, count, batchId), anchorOf, events', (t) => {
  const sig = (name: string) => anchorInterface.getFunction(name)!.format('sighash');
  t.is(sig('anchor'), 'anchor(bytes32,uint32,bytes32)');
  t.is(sig('anchorOf'), 'anchorOf(bytes32)');
  t.is(sig('register'), 'register(address,bytes32)');
  t.is(sig('deregister'), 'deregister(address)');
  t.is(sig('isRegistered'), 'isRegistered(address)');
  t.is(anchorInterface.getEvent('Anchored')!.format('sighash'), 'Anchored(bytes32,uint32,bytes32,address)');
  t.deepEqual(
    anchorInterface.getFunction('anchorOf')!.outputs.map((o) => `${o.type} ${o.name}`),
    ['uint64 blockNumber', 'uint64 timestamp', 'uint32 count', 'address submitter', 'bytes32 batchId'],
  );
});
