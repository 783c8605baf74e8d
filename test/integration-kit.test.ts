/**
 * The hospital on-chain integration kit (issue 5, must-show 4): `huren-submit` run as a real child process
 * through its bin shim, against a real server whose ledger is a real ganache node, with the institution's
 * registered account:
 * - `conformance` passes every step and exits 0;
 * - a bad token fails the preflight with a clear reason and a non-zero exit;
 * - `fingerprint` prints the published vectors (docs/fingerprint-vectors.json);
 * - a malformed Bundle file is a clear error with exit code 2;
 * - `anchor` + `upload --provenance`, `upload` + `provenance` (late) and `status` work one by one.
 */
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { generateSm2KeyPair } from '../server/fingerprint/signature.ts';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { deployContract, institution, ledgerConfig, LEDGER_NAME, Node, testProvenanceConfig } from './helpers/chain.ts';

const SHIM = new URL('../bin/huren-submit.mjs', import.meta.url).pathname;
const node = new Node('node-1', {});
let contract = '';
let s: TestServer;
let dir = '';
/** The institution's SM2 signing key, registered with the platform for urn:huren:org|kit-test. */
const signKey = generateSm2KeyPair();

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'huren-kit-'));
  await node.start();
  contract = await deployContract(node);
  const institutionKeys = JSON.stringify([{ organization: 'urn:huren:org|kit-test', kid: 'kit-test-1', publicKey: signKey.publicKey }]);
  s = await startTestServer({ ledger: ledgerConfig([node], contract), provenance: testProvenanceConfig({ institutionKeys }) });
});

test.after.always(async () => {
  await s?.close();
  await node.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/huren-submit.mjs …` with the institution's key in HUREN_KIT_KEY. */
function kit(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [SHIM, ...args],
      { env: { PATH: process.env.PATH, HOME: process.env.HOME, HUREN_KIT_KEY: institution.privateKey, ...env }, timeout: 120_000 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr })
    );
  });
}

const chainArgs = () => ['--rpc', node.url, '--contract', contract, '--key', 'env:HUREN_KIT_KEY', '--ledger', LEDGER_NAME];
const platformArgs = (token = s.token) => ['--base', s.base, '--token', token];

test.serial('conformance: every step passes against a real platform and chain, exit code 0; signed, the platform says the performer signed', async (t) => {
  const r = await kit(['conformance', ...platformArgs(), ...chainArgs(), '--wait', '20', '--sign-key', 'env:SIGN'], { SIGN: signKey.privateKey });
  t.log(r.stdout);
  t.is(r.code, 0, r.stdout + r.stderr);
  const lines = r.stdout.split('\n').filter((l) => /^\[(PASS|FAIL|SKIP)\]/.test(l));
  t.deepEqual(
    lines.map((l) => l.split(':')[0]),
    ['[PASS] 0 preflight 预检', '[PASS] 1 anchored upload 上链后上传', '[PASS] 2 idempotent retry 重复提交', '[PASS] 3 correction 更正(新版本)', '[PASS] 4 tampered bundle 篡改检测', '[PASS] 5 late Provenance 后补存证']
  );
  t.regex(r.stdout, /result 结果: 6\/6 PASS/);
  t.regex(lines[4]!, /inconsistent .*is not the anchored fingerprint/);
  t.regex(lines[1]!, /signed 已签名 by urn:huren:org\|kit-test/);
  t.is(r.stderr, '');
});

test.serial('conformance with a bad token: the preflight fails with a clear reason, the rest is skipped, exit code 1', async (t) => {
  const r = await kit(['conformance', ...platformArgs('not-the-token'), ...chainArgs()]);
  t.is(r.code, 1);
  t.regex(r.stdout, /\[FAIL\] 0 preflight 预检: token check: 401 the token was refused \(令牌无效或已过期\): Invalid or expired bearer token/);
  t.is((r.stdout.match(/\[SKIP\]/g) ?? []).length, 5);
  t.regex(r.stdout, /result 结果: 0\/6 PASS/);
});

test.serial('an unregistered institution account: the preflight says so; `account` tells registered from not', async (t) => {
  const [r, acct] = await Promise.all([
    kit(['conformance', ...platformArgs(), ...chainArgs()], { HUREN_KIT_KEY: '0x' + '42'.repeat(32) }),
    kit(['account', '--rpc', node.url, '--contract', contract, '--key', 'env:HUREN_KIT_KEY']),
  ]);
  t.is(r.code, 1);
  t.regex(r.stdout, /\[FAIL\] 0 preflight 预检: account 0x[0-9a-fA-F]{40} is not registered in HurenAnchor/);
  t.is(acct.code, 0, 'the registered account');
  t.regex(acct.stdout, new RegExp(`account 机构账户: ${institution.address}\\nok: chain 31337 at height \\d+, contract present, account ${institution.address} registered`));
});

test.serial('fingerprint prints the published vectors (docs/fingerprint-vectors.json)', async (t) => {
  const vectors = JSON.parse(readFileSync(new URL('../docs/fingerprint-vectors.json', import.meta.url), 'utf8')).vectors as Array<{ name: string; submitted: string; canonical: string; sm3: string; sha256: string }>;
  const file = (name: string) => {
    const v = vectors.find((x) => x.name === name)!;
    writeFileSync(join(dir, `${name}.json`), v.submitted);
    return { v, path: join(dir, `${name}.json`) };
  };
  const lab = file('lab-report');
  const exam = file('exam-report-unicode-numbers');
  const [sm3, sha] = await Promise.all([kit(['fingerprint', lab.path]), kit(['fingerprint', exam.path, '--alg', 'sha256', '--canonical'])]);
  t.is(sm3.code, 0, sm3.stderr);
  t.is(sm3.stdout, `${lab.v.sm3}\n`);
  t.is(sha.code, 0, sha.stderr);
  t.is(sha.stdout, `${exam.v.sha256}\n${exam.v.canonical}\n`);
});

test.serial('a malformed Bundle file, a missing file or a wrong option: a clear error and exit code 2, nothing sent', async (t) => {
  const bad = join(dir, 'malformed.json');
  writeFileSync(bad, '{"resourceType": "Bundle", "type": "transaction", "entry": [');
  const notReport = join(dir, 'no-report.json');
  writeFileSync(notReport, JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: [] }));
  const dup = join(dir, 'duplicate.json');
  const refused = JSON.parse(readFileSync(new URL('../docs/fingerprint-vectors.json', import.meta.url), 'utf8')).refused[0];
  writeFileSync(dup, refused.submitted);
  const [fp, up, noReport, missing, badAlg, help, dupFp, dupUp] = await Promise.all([
    kit(['fingerprint', bad]),
    kit(['upload', bad, ...platformArgs()]),
    kit(['conformance', '--bundle', notReport, ...platformArgs(), ...chainArgs()]),
    kit(['fingerprint', join(dir, 'nope.json'), '--alg', 'sha256']),
    kit(['fingerprint', notReport, '--alg', 'md5']),
    kit(['--help']),
    kit(['fingerprint', dup]),
    kit(['upload', dup, ...platformArgs()]),
  ]);
  for (const r of [dupFp, dupUp]) {
    t.is(r.code, 2, 'a Bundle with a duplicate member name has no fingerprint: refused, nothing sent');
    t.regex(r.stderr, /duplicate\.json: Duplicate member name 'status' at Bundle\.entry\[0\]\.resource\.status/);
    t.is(r.stdout, '');
  }
  for (const r of [fp, up]) {
    t.is(r.code, 2);
    t.regex(r.stderr, /malformed\.json is not valid JSON \(文件不是合法的 JSON\)/);
    t.is(r.stdout, '');
  }
  t.is(noReport.code, 2);
  t.regex(noReport.stderr, /exactly one DiagnosticReport entry \(found 0\)/);
  t.is(noReport.stdout, '', 'nothing was run');
  t.is(missing.code, 2);
  t.regex(missing.stderr, /cannot read .*nope\.json: ENOENT/);
  t.is(badAlg.code, 2);
  t.regex(badAlg.stderr, /--alg must be sm3 or sha256/);
  t.is(help.code, 0);
  t.regex(help.stdout, /huren-submit conformance --base/);
});

test.serial('one step at a time: sample, anchor two reports in one transaction, upload --provenance; upload, then anchor and send a late provenance, status', async (t) => {
  const [a, b, late] = ['sample-a.json', 'sample-b.json', 'late.json'].map((f) => join(dir, f));
  const samples = await Promise.all([a, b, late].map((f) => kit(['sample', '--org', 'kit-hosp', '--out', f!])));
  t.deepEqual(samples.map((r) => r.code), [0, 0, 0]);
  // two reports in one transaction: their Merkle root is anchored, each Provenance carries its inclusion proof
  const anchored = await kit(['anchor', a!, b!, ...chainArgs()]);
  t.is(anchored.code, 0, anchored.stderr);
  t.regex(anchored.stderr, /anchored 已上链: the Merkle root sm3:[0-9a-f]{64} of 2 fingerprints, ledger gz-test-chain, transaction 0x[0-9a-f]{64}, block \d+/);
  const provOf = (f: string) => f.replace(/\.json$/, '.provenance.json');
  const parts = JSON.parse(readFileSync(provOf(b!), 'utf8')).extension[0].extension as Array<{ url: string; valueUnsignedInt?: number }>;
  t.is(parts.find((x) => x.url === 'leafIndex')?.valueUnsignedInt, 1);
  t.is(parts.filter((x) => x.url === 'path').length, 1);
  const ups = await Promise.all([a!, b!].map((f) => kit(['upload', f, ...platformArgs(), '--provenance', provOf(f)])));
  for (const up of ups) {
    t.is(up.code, 0, up.stdout + up.stderr);
    t.regex(up.stdout, /report 报告: DiagnosticReport\/\S+ version 1 \(created 新建, HTTP 201\)/);
    t.regex(up.stdout, /hash status 哈希一致性: consistent 一致/);
    t.regex(up.stdout, /anchor 存证: by institution, ledger gz-test-chain, transaction 0x[0-9a-f]{64}/);
  }

  // late: upload without a Provenance (meanwhile: the status of the first report, version 1)
  const idA = /DiagnosticReport\/(\S+) version/.exec(ups[0]!.stdout)![1]!;
  const [up2, st] = await Promise.all([kit(['upload', late!, ...platformArgs()]), kit(['status', `DiagnosticReport/${idA}`, ...platformArgs(), '--version', '1'])]);
  t.is(st.code, 0);
  t.regex(st.stdout, /consistent .* anchor 存证: by institution, ledger gz-test-chain/s);
  t.is(up2.code, 0);
  t.regex(up2.stdout, /hash status 哈希一致性: pending 待核验/);
  const id2 = /DiagnosticReport\/(\S+) version/.exec(up2.stdout)![1]!;
  const lateProv = join(dir, 'late.provenance.json');
  t.is((await kit(['anchor', late!, ...chainArgs(), '--report', `DiagnosticReport/${id2}`, '--out', lateProv])).code, 0);
  const sent = await kit(['provenance', lateProv, '--report', id2, ...platformArgs()]);
  t.is(sent.code, 0, sent.stdout + sent.stderr);
  t.regex(sent.stdout, /hash status 哈希一致性: consistent 一致/);
});

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

test.serial('conformance with signing against the platform as `npm start` gives it (embedded chain, read-only JSON-RPC on loopback)', async (t) => {
  const data = mkdtempSync(join(tmpdir(), 'huren-npm-start-'));
  const [port, rpcPort] = [await freePort(), await freePort()];
  const token = 'npm-start-token-0123456789abcdef';
  const key = generateSm2KeyPair();
  // npm start is `tsx server/main.ts`: the same entry point, the default configuration (PGlite in the data
  // directory, the embedded chain), with the platform's anchoring period shortened so the run takes seconds
  const server = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: new URL('..', import.meta.url).pathname,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      HUREN_DATA_DIR: data,
      PORT: String(port),
      HOST: '127.0.0.1',
      HUREN_BOOTSTRAP_TOKEN: token,
      HUREN_EMBEDDED_RPC: `127.0.0.1:${rpcPort}`,
      HUREN_INSTITUTION_KEYS: JSON.stringify([{ organization: 'urn:huren:org|kit-npm', kid: 'kit-npm-1', publicKey: key.publicKey }]),
      HUREN_PLATFORM_ANCHOR_DELAY_SECONDS: '0',
      HUREN_ANCHOR_CRON: '*/2 * * * * *',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  server.stdout.on('data', (c) => (out += c));
  server.stderr.on('data', (c) => (out += c));
  try {
    const t0 = Date.now();
    // the read-only JSON-RPC binds its port after the server listens (server/provenance/service.ts): wait for both
    while (!out.includes('Huren FHIR server listening') || !out.includes('read-only JSON-RPC listening')) {
      if (Date.now() - t0 > 120_000 || server.exitCode !== null) throw new Error(`the server did not start: ${out.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const rpc = `http://127.0.0.1:${rpcPort}`;
    const call = async (method: string, params: unknown[] = []) =>
      (await (await fetch(rpc, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })).json()) as any;
    const info = await call('huren_ledger');
    t.is(info.result.name, 'huren-embedded');
    t.regex(info.result.contract, /^0x[0-9a-fA-F]{40}$/);
    t.is(info.result.readOnly, true);
    for (const m of ['eth_sendRawTransaction', 'eth_sendTransaction', 'evm_mine', 'personal_unlockAccount']) {
      const refused = await call(m, []);
      t.is(refused.error?.code, -32601, `${m} is refused`);
    }
    t.regex((await call('eth_blockNumber')).result, /^0x[0-9a-f]+$/);

    const r = await kit(
      ['conformance', '--base', `http://127.0.0.1:${port}/fhir`, '--token', 'env:TOKEN', '--rpc', rpc, '--sign-key', 'env:HUREN_KIT_SIGN_KEY', '--org', 'kit-npm', '--wait', '60'],
      { HUREN_KIT_KEY: '', TOKEN: token, HUREN_KIT_SIGN_KEY: key.privateKey }
    );
    t.log(r.stdout);
    t.is(r.code, 0, r.stdout + r.stderr);
    t.regex(r.stdout, /result 结果: 6\/6 PASS/);
    t.regex(r.stdout, /\[PASS\] 1 signed upload, platform anchoring .*root sm3:[0-9a-f]{64} found on the chain in 0x[0-9a-f]{64}.*signed 已签名 by urn:huren:org\|kit-npm/);
    t.regex(r.stdout, /\[PASS\] 5 signature check 签名核验: .*another key → refused on intake \(422 .*Bundle\.signature/);
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    rmSync(data, { recursive: true, force: true });
  }
});
