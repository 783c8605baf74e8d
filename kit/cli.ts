/**
 * `huren-submit`: the hospital on-chain integration kit (上链联调工具), docs/integration-kit.md.
 *
 *   huren-submit fingerprint <bundle.json> [--alg sm3|sha256] [--canonical]
 *   huren-submit account     --rpc <url> --contract <addr> --key <k>
 *   huren-submit anchor      <bundle.json>… --rpc --contract --key --ledger [--alg] [--report <ref>] [--out <file>] [--bundle-out <file>]
 *   huren-submit upload      <bundle.json> --base --token [--provenance <file> | --anchor-inline --rpc --contract --key --ledger] [--wait <s>]
 *   huren-submit provenance  <provenance.json> --report <DiagnosticReport/id[/_history/v]> --base --token [--wait <s>]
 *   huren-submit status      <report id> --base --token [--version <n>]
 *   huren-submit sample      [--org <code>] [--out <file>]
 *   huren-submit conformance --base --token --rpc [--contract --key --ledger] [--alg] [--bundle <file>] [--org <code>] [--wait <s>] [--sign-key <k>]
 *   huren-submit keygen      [--org <code>]
 *
 * Secrets (`--token`, `--key`, `--sign-key`) are best given as `env:NAME` or `file:PATH` rather than on the command line.
 * Exit codes: 0 success, 1 refused / failed / a conformance step failed, 2 wrong command line or input file.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { canonicalString, DuplicateMemberError, isChainEntry, isHashAlg, parseUniqueJson, readChainAnchor, type HashAlg } from '../server/fingerprint/index.ts';
import { fingerprintOf, performer, readBundleFile, reportFullUrl, sampleReport, signBundle, signProvenance, withChainProvenance, type Json } from './bundle.ts';
import { generateSm2KeyPair, sm2PublicKey } from '../server/fingerprint/signature.ts';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, KitError, usageError } from './errors.ts';

const HELP = `huren-submit — Huren on-chain integration kit (上链联调工具)

Usage 用法:
  huren-submit fingerprint <bundle.json> [--alg sm3|sha256] [--canonical]
      Print the report fingerprint (报告指纹) H(JCS(B)) of a transaction Bundle (docs/fingerprint.md);
      --canonical also prints the canonical JSON text that is hashed.
  huren-submit account --rpc <url> --contract <addr> --key <key>
      Print the institution account (机构账户) of the key and whether HurenAnchor has it registered.
  huren-submit anchor <bundle.json>… --rpc <url> --contract <addr> --key <key> --ledger <name>
                      [--alg sm3|sha256] [--report DiagnosticReport/<id>[/_history/<v>]]
                      [--out <provenance.json>] [--bundle-out <bundle.json>]
      Anchor the fingerprint on the chain (上链) and write the chain Provenance (存证) — to stdout, or --out;
      --bundle-out also writes the Bundle with the Provenance entry inside. --report: the Provenance is for a
      report already uploaded (late Provenance) instead of the Bundle's own DiagnosticReport entry.
      Several Bundles: one transaction anchors the Merkle root of their fingerprints (批量上链); each
      Provenance, with its inclusion proof, is written to <name>.provenance.json beside its Bundle.
  huren-submit upload <bundle.json> --base <fhir base> --token <token>
                      [--provenance <provenance.json> | --anchor-inline --rpc … --contract … --key … --ledger …]
                      [--wait <seconds>]
      Upload the transaction Bundle (上传报告), optionally with a chain Provenance put inside, and print the
      report id, version and the platform's hash status ($verify). Exit 1 when the platform says inconsistent.
  huren-submit provenance <provenance.json> --report <DiagnosticReport/<id>[/_history/<v>]> --base … --token …
      Send a chain Provenance for a report uploaded earlier (后补存证, late Provenance) and print the status.
  huren-submit status <report id> --base <fhir base> --token <token> [--version <n>]
      The platform's hash status of a report now ($verify): consistent | inconsistent | pending | unanchored.
  huren-submit sample [--org <institution code>] [--out <bundle.json>]
      Write a synthetic sample report Bundle (no personal data) to start from.
  huren-submit conformance --base … --token … --rpc … [--contract … --key … --ledger …] [--alg sm3|sha256]
                      [--bundle <bundle.json>] [--org <institution code>] [--wait <seconds>] [--sign-key <key>]
      The conformance run (一致性测试): preflight, anchored upload, idempotent retry, correction, tampered
      Bundle, late Provenance — PASS/FAIL per step; exit 0 only when every step passes. Without --contract and
      --key (no institution account, e.g. the default install's embedded chain through its read-only
      JSON-RPC): the platform anchors, and the kit checks the platform's anchor itself; with --sign-key the
      last step checks that a Bundle signed with another key is refused.
  huren-submit keygen [--org <institution code>]
      Make an SM2 key pair (签名密钥) for the institution's signatures and print the line to register its
      public key with the platform (HUREN_INSTITUTION_KEYS).

--sign-key <key> (anchor, upload, conformance): sign each fingerprint with the institution's SM2 private key
(64 hex digits; GB/T 32918) — in the chain Provenance (Provenance.signature), or in Bundle.signature when the
platform anchors. The platform refuses a signature that does not verify with the key registered for the
report's performer (422).

Options from the environment when not given: --base HUREN_FHIR_BASE, --token HUREN_TOKEN, --rpc HUREN_EVM_URLS,
--contract HUREN_EVM_CONTRACT, --key HUREN_KIT_KEY, --ledger HUREN_LEDGER_NAME, --sign-key HUREN_KIT_SIGN_KEY.
Secrets: give --token / --key / --sign-key as env:NAME (read that variable) or file:PATH (read that file), not in clear.
Exit codes 退出码: 0 success 成功; 1 refused or failed 失败; 2 wrong command line or input file 参数或文件有误.
Guide 说明: docs/integration-kit.md`;

const OPTIONS = {
  alg: { type: 'string' },
  canonical: { type: 'boolean' },
  rpc: { type: 'string' },
  contract: { type: 'string' },
  key: { type: 'string' },
  ledger: { type: 'string' },
  report: { type: 'string' },
  out: { type: 'string' },
  'bundle-out': { type: 'string' },
  base: { type: 'string' },
  token: { type: 'string' },
  provenance: { type: 'string' },
  'anchor-inline': { type: 'boolean' },
  wait: { type: 'string' },
  version: { type: 'string' },
  bundle: { type: 'string' },
  org: { type: 'string' },
  'sign-key': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Opts = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

/** Which options each command takes (anything else is a usage error). */
const COMMANDS: Record<string, { args: 0 | 1 | 'many'; options: Array<keyof Opts> }> = {
  fingerprint: { args: 1, options: ['alg', 'canonical'] },
  account: { args: 0, options: ['rpc', 'contract', 'key'] },
  anchor: { args: 'many', options: ['rpc', 'contract', 'key', 'ledger', 'alg', 'report', 'out', 'bundle-out', 'sign-key'] },
  upload: { args: 1, options: ['base', 'token', 'provenance', 'anchor-inline', 'rpc', 'contract', 'key', 'ledger', 'alg', 'wait', 'sign-key'] },
  provenance: { args: 1, options: ['base', 'token', 'report', 'wait'] },
  status: { args: 1, options: ['base', 'token', 'version'] },
  sample: { args: 0, options: ['org', 'out'] },
  conformance: { args: 0, options: ['base', 'token', 'rpc', 'contract', 'key', 'ledger', 'alg', 'bundle', 'org', 'wait', 'sign-key'] },
  keygen: { args: 0, options: ['org'] },
};

const ENV: Partial<Record<keyof Opts, string>> = {
  base: 'HUREN_FHIR_BASE',
  token: 'HUREN_TOKEN',
  rpc: 'HUREN_EVM_URLS',
  contract: 'HUREN_EVM_CONTRACT',
  key: 'HUREN_KIT_KEY',
  ledger: 'HUREN_LEDGER_NAME',
  'sign-key': 'HUREN_KIT_SIGN_KEY',
};

const say = (line: string) => process.stdout.write(line + '\n');
const note = (line: string) => process.stderr.write(line + '\n');

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw usageError(`${(e as Error).message} (huren-submit --help)`);
  }
  const [command, ...args] = parsed.positionals;
  const opts = parsed.values as Opts;
  if (opts.help || command === 'help') {
    say(HELP);
    return EXIT_OK;
  }
  if (command === undefined) {
    note(HELP);
    return EXIT_USAGE;
  }
  const spec = COMMANDS[command];
  if (!spec) throw usageError(`unknown command '${command}' (commands: ${Object.keys(COMMANDS).join(', ')}; huren-submit --help)`);
  for (const name of Object.keys(opts) as Array<keyof Opts>) {
    if (!spec.options.includes(name)) throw usageError(`${command} takes no --${name} (huren-submit --help)`);
  }
  const fits = spec.args === 'many' ? args.length >= 1 : args.length === spec.args;
  if (!fits) throw usageError(`${command} takes ${spec.args === 0 ? 'no file or id' : spec.args === 'many' ? 'one or more files' : 'one file or id'}, got ${args.length} (huren-submit --help)`);
  for (const [name, env] of Object.entries(ENV) as Array<[keyof Opts, string]>) {
    if (opts[name] === undefined && spec.options.includes(name) && process.env[env]) (opts as Record<string, unknown>)[name] = process.env[env];
  }
  return COMMAND_RUN[command]!(args[0]!, opts, args);
}

const COMMAND_RUN: Record<string, (arg: string, o: Opts, args: string[]) => Promise<number>> = {
  async fingerprint(file, o) {
    const { bundle } = readBundleFile(file, { report: false });
    say(fingerprintOf(bundle, alg(o)));
    if (o.canonical) say(canonicalString(bundle));
    return EXIT_OK;
  },

  async account(_arg, o) {
    const { checkChain } = await import('./chain.ts');
    const account = await chain(o);
    try {
      const check = await checkChain(account);
      say(`account 机构账户: ${account.address}`);
      say(check.ok ? `ok: ${check.summary}` : `not ready: ${check.summary}`);
      return check.ok ? EXIT_OK : EXIT_FAILED;
    } finally {
      await account.ledger.close();
    }
  },

  async anchor(_first, o, files) {
    const { anchorFingerprints, chainProvenance } = await import('./chain.ts');
    const bundles = files.map((f) => readBundleFile(f).bundle);
    if (files.length > 1 && (o.out || o['bundle-out'] || o.report)) {
      throw usageError('with several Bundles, each chain Provenance is written next to its Bundle (<name>.provenance.json): --out, --bundle-out and --report take one Bundle');
    }
    const targets = bundles.map((b) => (o.report ? reportRef(o.report) : reportFullUrl(b)));
    const signKey = signingKey(o);
    const account = await chain(o);
    try {
      const fps = bundles.map((b) => fingerprintOf(b, alg(o)));
      const { anchors, receipt } = await anchorFingerprints(account, fps);
      note(`anchored 已上链: ${fps.length === 1 ? 'the fingerprint itself' : `the Merkle root ${receipt.root} of ${fps.length} fingerprints`}, ledger ${receipt.ledger}, transaction ${receipt.txId}, block ${receipt.height}${receipt.existing ? ' (already anchored earlier: that anchoring is reused)' : ''}`);
      bundles.forEach((b, i) => {
        let prov = chainProvenance(anchors[i]!, targets[i]!, o.report ? undefined : performer(b), account.address);
        if (signKey) prov = signProvenance(prov, fps[i]!, signKey, b);
        note(`fingerprint 指纹 ${files[i]}: ${fps[i]}${anchors[i]!.proof ? ` (leaf ${anchors[i]!.proof!.leafIndex} of ${anchors[i]!.proof!.treeSize})` : ''}`);
        writeJson(files.length > 1 ? files[i]!.replace(/(\.json)?$/i, '.provenance.json') : o.out, prov, 'chain Provenance 存证');
        if (o['bundle-out']) writeJson(o['bundle-out'], withChainProvenance(b, prov), 'Bundle with the chain Provenance');
      });
      return EXIT_OK;
    } finally {
      await account.ledger.close();
    }
  },

  async upload(file, o) {
    const { Platform } = await import('./platform.ts');
    const platform = new Platform(required(o, 'base'), secret(o.token, '--token'));
    const f = readBundleFile(file);
    let bundle = f.bundle;
    let text = f.text;
    if (o.provenance && o['anchor-inline']) throw usageError('give --provenance or --anchor-inline, not both');
    const signKey = signingKey(o);
    if (o.provenance) {
      let prov = readProvenance(o.provenance);
      if (signKey) prov = signProvenance(prov, readChainAnchor(prov).fingerprint, signKey, bundle);
      if (prov.target?.[0]?.reference !== reportFullUrl(bundle)) {
        throw usageError(`${o.provenance} targets ${prov.target?.[0]?.reference}, not this Bundle's report (${reportFullUrl(bundle)}): for a report already uploaded use 'huren-submit provenance'`);
      }
      bundle = withChainProvenance(bundle, prov);
      text = JSON.stringify(bundle, null, 2);
    } else if (o['anchor-inline']) {
      const { anchorFingerprint, chainProvenance } = await import('./chain.ts');
      const account = await chain(o);
      try {
        const { anchor } = await anchorFingerprint(account, fingerprintOf(bundle, alg(o)));
        say(`anchored 已上链: ledger ${anchor.ledger}, transaction ${anchor.transaction}, block ${anchor.height}`);
        let prov = chainProvenance(anchor, reportFullUrl(bundle), performer(bundle), account.address);
        if (signKey) prov = signProvenance(prov, anchor.fingerprint, signKey, bundle);
        bundle = withChainProvenance(bundle, prov);
        text = JSON.stringify(bundle, null, 2);
      } finally {
        await account.ledger.close();
      }
    }
    else if (signKey) {
      // no chain Provenance: the platform anchors, the signature travels in Bundle.signature
      bundle = signBundle(bundle, fingerprintOf(bundle, alg(o)), signKey);
      text = JSON.stringify(bundle, null, 2);
    }
    // the fingerprint in the algorithm the platform uses for this Bundle: its chain Provenance's, else --alg
    const anchored = bundle.entry.find((e: Json) => isChainEntry(e));
    say(`fingerprint 指纹: ${fingerprintOf(bundle, anchored ? readChainAnchor(anchored.resource).alg : alg(o))}`);
    const up = await platform.upload(text, bundle);
    const how = up.entryStatus === 201 ? 'created 新建' : 'already there or updated 已存在/已更新';
    say(`report 报告: DiagnosticReport/${up.reportId} version ${up.version} (${how}, HTTP ${up.entryStatus})`);
    return printVerdict(await platform.settle(up.reportId, up.version, waitMs(o)));
  },

  async provenance(file, o) {
    const { Platform } = await import('./platform.ts');
    const platform = new Platform(required(o, 'base'), secret(o.token, '--token'));
    const prov = readProvenance(file);
    const target = reportRef(required(o, 'report'));
    const m = /^DiagnosticReport\/([^/]+)(?:\/_history\/(\d+))?$/.exec(target)!;
    const report = await platform.report(m[1]!);
    const version = m[2] ? Number(m[2]) : Number(report.meta?.versionId);
    prov.target = [{ reference: `DiagnosticReport/${m[1]}/_history/${version}` }];
    const agent = prov.agent?.[0]?.who?.reference;
    if (!agent || /^urn:|\?/.test(agent)) prov.agent = report.performer?.[0] ? [{ who: { reference: report.performer[0].reference } }] : prov.agent;
    const id = await platform.postProvenance(prov);
    say(`provenance 存证: Provenance/${id} for DiagnosticReport/${m[1]} version ${version}`);
    return printVerdict(await platform.settle(m[1]!, version, waitMs(o)));
  },

  async status(id, o) {
    const { Platform } = await import('./platform.ts');
    const platform = new Platform(required(o, 'base'), secret(o.token, '--token'));
    const version = o.version === undefined ? undefined : positiveInt(o.version, '--version');
    return printVerdict(await platform.verify(id.replace(/^DiagnosticReport\//, ''), version));
  },

  async keygen(_arg, o) {
    const k = generateSm2KeyPair();
    say(`private key 私钥 (keep it secret; give it to huren-submit as --sign-key file:PATH): ${k.privateKey}`);
    say(`public key 公钥: ${k.publicKey}`);
    say(`register it with the platform (HUREN_INSTITUTION_KEYS): ${JSON.stringify({ organization: `urn:huren:org|${o.org ?? '<institution code>'}`, kid: `${o.org ?? 'kid'}-${new Date().getUTCFullYear()}`, publicKey: k.publicKey })}`);
    return EXIT_OK;
  },

  async sample(_arg, o) {
    const key = `${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}-sample-${randomBytes(3).toString('hex')}`;
    writeJson(o.out, sampleReport(key, o.org ?? 'kit-test'), 'sample report Bundle 示例报告');
    return EXIT_OK;
  },

  async conformance(_arg, o) {
    const { Platform } = await import('./platform.ts');
    const { runConformance } = await import('./conformance.ts');
    const platform = new Platform(required(o, 'base'), secret(o.token, '--token'));
    const template = o.bundle ? readBundleFile(o.bundle).bundle : undefined;
    const signKey = signingKey(o);
    if (o.key === undefined) {
      // no institution account: the platform anchors, the kit reads the chain (the embedded chain's read-only endpoint)
      const { openReadChain } = await import('./chain.ts');
      const { runPlatformConformance } = await import('./conformance.ts');
      const readChain = await openReadChain({ rpc: required(o, 'rpc'), contract: o.contract, ledger: o.ledger });
      try {
        say('Huren on-chain integration conformance 上链联调一致性测试 (platform anchoring 平台上链)');
        say(`platform 平台: ${platform.base}; chain 链: ${o.rpc!.replace(/\/\/[^/@]+@/g, '//***@')}; contract 合约: ${readChain.contract}; ledger 账本: ${readChain.name}${signKey ? `; signing key 签名公钥: ${sm2PublicKey(signKey)}` : ''}`);
        const steps = await runPlatformConformance({ platform, chain: readChain, signKey, alg: alg(o), template, org: o.org ?? 'kit-test', waitMs: waitMs(o), out: say });
        return steps.every((s) => s.result === 'PASS') ? EXIT_OK : EXIT_FAILED;
      } finally {
        await readChain.ledger.close();
      }
    }
    const account = await chain(o);
    if (!account.named) throw usageError((await import('./chain.ts')).LEDGER_HELP);
    try {
      say('Huren on-chain integration conformance 上链联调一致性测试');
      const redact = (url: string) => url.replace(/\/\/[^/@]+@/g, '//***@'); // no password from a node URL in the output
      say(`platform 平台: ${redact(platform.base)}; chain 链: ${redact(o.rpc!)}; contract 合约: ${o.contract}; ledger 账本: ${o.ledger}; account 机构账户: ${account.address}`);
      const steps = await runConformance({ platform, account, signKey, alg: alg(o), template, org: o.org ?? 'kit-test', waitMs: waitMs(o), out: say });
      return steps.every((s) => s.result === 'PASS') ? EXIT_OK : EXIT_FAILED;
    } finally {
      await account.ledger.close();
    }
  },
};

// ------------------------------------------------------------------ helpers

async function chain(o: Opts) {
  const { openChain } = await import('./chain.ts');
  return openChain({ rpc: required(o, 'rpc'), contract: required(o, 'contract'), key: secret(o.key, '--key'), ledger: o.ledger });
}

function required(o: Opts, name: keyof Opts): string {
  const v = o[name];
  if (typeof v !== 'string' || v === '') throw usageError(`--${name} is required${ENV[name] ? ` (or set ${ENV[name]})` : ''} (huren-submit --help)`);
  return v;
}

/** A secret given as `env:NAME`, `file:PATH` or in clear. */
export function secret(value: string | undefined, what: string): string {
  if (value === undefined || value === '') throw usageError(`${what} is required (give it as env:NAME or file:PATH)`);
  if (value.startsWith('env:')) {
    const v = process.env[value.slice(4)];
    if (!v) throw usageError(`${what}: the environment variable ${value.slice(4)} is not set`);
    return v.trim();
  }
  if (value.startsWith('file:')) {
    try {
      return readFileSync(value.slice(5), 'utf8').trim();
    } catch (e) {
      throw usageError(`${what}: cannot read ${value.slice(5)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  return value;
}

/** The institution's SM2 signing key (--sign-key, 64 hex digits, best as env:NAME or file:PATH), if given. */
function signingKey(o: Opts): string | undefined {
  if (o['sign-key'] === undefined) return undefined;
  const k = secret(o['sign-key'], '--sign-key').replace(/^0x/, '');
  if (!/^[0-9a-fA-F]{64}$/.test(k)) throw usageError('--sign-key: the SM2 private key is 64 hex digits (huren-submit keygen makes one)');
  return k;
}

function alg(o: Opts): HashAlg {
  const a = o.alg ?? 'sm3';
  if (!isHashAlg(a)) throw usageError(`--alg must be sm3 or sha256, not '${a}'`);
  return a;
}

function waitMs(o: Opts): number {
  return o.wait === undefined ? 30_000 : positiveInt(o.wait, '--wait') * 1000;
}

function positiveInt(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw usageError(`${what} must be a whole number, not '${v}'`);
  return n;
}

/** `DiagnosticReport/<id>[/_history/<v>]` or a bare id. */
function reportRef(v: string): string {
  const ref = v.includes('/') ? v : `DiagnosticReport/${v}`;
  if (!/^DiagnosticReport\/[A-Za-z0-9\-.]{1,64}(\/_history\/\d{1,9})?$/.test(ref)) {
    throw usageError(`--report: '${v.slice(0, 80)}' is not DiagnosticReport/<id>[/_history/<version>]`);
  }
  return ref;
}

function readJson(file: string): Json {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw usageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return parseUniqueJson(text) as Json;
  } catch (e) {
    if (e instanceof DuplicateMemberError) throw usageError(`${file}: ${e.message} (同一对象中成员名重复)`);
    throw usageError(`${file} is not valid JSON (文件不是合法的 JSON): ${(e as Error).message.slice(0, 160)}`);
  }
}

/** A chain Provenance file, its anchor checked as the platform checks it (a malformed one is exit 2). */
function readProvenance(file: string): Json {
  const prov = readJson(file);
  try {
    readChainAnchor(prov);
  } catch (e) {
    throw usageError(`${file}: ${(e as Error).message}`);
  }
  return prov;
}

function writeJson(file: string | undefined, value: unknown, what: string): void {
  const text = JSON.stringify(value, null, 2) + '\n';
  if (!file || file === '-') return void process.stdout.write(text);
  writeFileSync(file, text);
  note(`${what} written to ${file}`);
}

function printVerdict(v: import('./platform.ts').Verdict): number {
  const label: Record<string, string> = { consistent: '一致', inconsistent: '不一致', pending: '待核验', unanchored: '未上链' };
  say(`hash status 哈希一致性: ${v.status} ${label[v.status] ?? ''} (DiagnosticReport/${v.reportId} version ${v.version})`);
  if (v.fingerprint) say(`  fingerprint on the platform 平台指纹: ${v.fingerprint}${v.recomputed && v.recomputed !== v.fingerprint ? ` (recomputed now: ${v.recomputed})` : ''}`);
  if (v.txId) say(`  anchor 存证: by ${v.anchoredBy}, ledger ${v.ledger}, transaction ${v.txId}, block ${v.height}`);
  for (const r of v.reasons) say(`  reason 原因: ${r}`);
  return v.status === 'inconsistent' ? EXIT_FAILED : EXIT_OK;
}

export async function runCli(argv: string[]): Promise<void> {
  let code: number;
  try {
    code = await main(argv);
  } catch (e) {
    if (e instanceof KitError) {
      note(`huren-submit: ${e.message}`);
      code = e.exitCode;
    } else {
      note(`huren-submit: unexpected error: ${(e as Error).stack ?? e}`);
      code = EXIT_FAILED;
    }
  }
  process.exitCode = code;
}
