/**
 * `huren-verify <bundle.json>`: a third party checks a shared result (docs/foshan-exchange.md) offline, with
 * the same steps as the receiving platform (server/exchange/shared-bundle.ts): the sending platform's
 * credential, the fingerprint recomputed from the submitted Bundle, the exact bytes, the chain Provenance, the
 * performing hospital's SM2 signature, the Merkle inclusion proof and — with `--rpc` — the anchor transaction
 * on the sending platform's chain. Prints each step; exit code 0 verified, 1 refused (the failing step is
 * named), 2 wrong command line or file.
 *
 *   huren-verify <bundle.json> [--identity <identity.json> | --issuer-key <z6Mk…> [--issuer <urn:huren:platform:…>]]
 *                [--rpc <chain node URL>] [--contract <0x…>] [--json]
 *
 * The issuer's key should come from somewhere other than the file (--identity: the platform's
 * /api/exchange/identity; --issuer-key: its Multikey); without either, the key the file names is used and a
 * warning says that this proves integrity, not origin.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { namedIssuer, verifySharedBundle, type SharedVerification } from '../server/exchange/shared-bundle.ts';
import type { IssuerKey } from '../server/exchange/credential.ts';
import { openReadChain } from './chain.ts';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, KitError, usageError } from './errors.ts';

const HELP = `huren-verify — check a shared result offline (跨市共享结果核验)

Usage 用法:
  huren-verify <bundle.json> [--identity <identity.json> | --issuer-key <z6Mk…> [--issuer <urn:huren:platform:…>]]
               [--rpc <chain node URL>] [--contract <0x…>] [--json]

  --identity    the sending platform's identity (GET /api/exchange/identity): its credential key and chain
  --issuer-key  the sending platform's credential key (Ed25519 Multikey, z6Mk…)
  --rpc         a node of the sending platform's chain: the anchor transaction is looked up (else skipped)
  --json        print the result as JSON
Exit codes: 0 verified 核验通过, 1 refused 核验失败 (the step is named), 2 wrong command line or file.`;

export interface VerifyCliResult extends SharedVerification {
  warnings: string[];
}

export async function verifyFile(file: string, o: { identity?: string; issuerKey?: string; issuer?: string; rpc?: string; contract?: string }): Promise<VerifyCliResult> {
  let bundle: unknown;
  try {
    bundle = JSON.parse(readFileSync(file, 'utf8').replace(/^\uFEFF/, ''));
  } catch (e) {
    throw usageError(`${file}: cannot be read as JSON (${(e as Error).message.slice(0, 100)})`);
  }
  const named = namedIssuer(bundle);
  const warnings: string[] = [];
  let issuer: IssuerKey | undefined;
  let chain: { ledger?: string; contract?: string } = { ledger: named?.ledger, contract: named?.contract };
  if (o.identity) {
    let id: any;
    try {
      id = JSON.parse(readFileSync(o.identity, 'utf8'));
    } catch (e) {
      throw usageError(`--identity ${o.identity}: cannot be read as JSON (${(e as Error).message.slice(0, 100)})`);
    }
    if (!id?.vcKey?.id || !id.vcKey.controller || !id.vcKey.publicKeyMultibase) throw usageError('--identity: the file has no vcKey { controller, id, publicKeyMultibase } (GET /api/exchange/identity)');
    issuer = { controller: id.vcKey.controller, id: id.vcKey.id, publicKeyMultibase: id.vcKey.publicKeyMultibase };
    if (id.chain) chain = { ledger: id.chain.ledger, contract: id.chain.contract };
  } else if (o.issuerKey) {
    const controller = o.issuer ?? named?.controller;
    if (!controller) throw usageError('--issuer: the file names no issuer; give the platform id (urn:huren:platform:<code>)');
    issuer = { controller, id: `${controller}#vc`, publicKeyMultibase: o.issuerKey };
  } else if (named) {
    issuer = named;
    warnings.push("no --identity or --issuer-key: the issuer key named in the file itself was used — this shows the file is intact, not who issued it (文件自带公钥，仅证明完整性)");
  } else {
    throw usageError('the file names no issuer key: give --identity or --issuer-key');
  }
  let ledger;
  if (o.rpc) {
    const contract = o.contract ?? chain.contract;
    ledger = (await openReadChain({ rpc: o.rpc, ...(contract ? { contract } : {}), ...(chain.ledger ? { ledger: chain.ledger } : {}), timeoutMs: 5000 })).ledger;
  }
  try {
    return { ...(await verifySharedBundle(bundle, { issuer, ...(ledger ? { ledger } : {}) })), warnings };
  } finally {
    await ledger?.close().catch(() => undefined);
  }
}

export async function main(argv: string[], out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { identity: { type: 'string' }, 'issuer-key': { type: 'string' }, issuer: { type: 'string' }, rpc: { type: 'string' }, contract: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (e) {
    throw usageError(`${(e as Error).message}\n\n${HELP}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    out(HELP);
    return EXIT_OK;
  }
  if (positionals.length !== 1) throw usageError(`give one shared result file\n\n${HELP}`);
  const r = await verifyFile(positionals[0]!, { identity: values.identity, issuerKey: values['issuer-key'], issuer: values.issuer, rpc: values.rpc, contract: values.contract });
  if (values.json) {
    out(JSON.stringify({ verified: r.verified, failed: r.failed, steps: r.steps, warnings: r.warnings }, null, 2));
  } else {
    for (const w of r.warnings) out(`! ${w}`);
    for (const s of r.steps) out(`${s.status === 'ok' ? '✔' : s.status === 'failed' ? '✘' : '–'} ${s.step}: ${s.detail}`);
    out(r.verified ? `verified 核验通过${r.claims ? `: ${r.claims.id}` : ''}` : `refused 核验失败: the ${r.failed} step failed`);
  }
  return r.verified ? EXIT_OK : EXIT_FAILED;
}

export async function runVerifyCli(argv: string[]): Promise<void> {
  let code: number;
  try {
    code = await main(argv);
  } catch (e) {
    if (e instanceof KitError) {
      process.stderr.write(`huren-verify: ${e.message}\n`);
      code = e.exitCode;
    } else {
      process.stderr.write(`huren-verify: unexpected error: ${(e as Error).stack ?? e}\n`);
      code = EXIT_FAILED;
    }
  }
  process.exitCode = code;
}

export { EXIT_FAILED, EXIT_USAGE };
