/**
 * The on-chain integration conformance run (上链联调): a hospital checks, against a running platform and the
 * chain it reads, that its anchoring and uploads are understood — one step at a time, each PASS or FAIL with
 * a one-line reason (docs/integration-kit.md):
 *
 *   0 preflight         the platform answers and accepts the token; a chain node is up, the contract is
 *                       there, the institution account is registered
 *   1 anchored upload   anchor, upload with the chain Provenance inside → consistent, same fingerprint
 *   2 idempotent retry  the same Bundle again → same report, no new version, still consistent
 *   3 correction        a new version (new fingerprint, new anchor) → version 2, history keeps 1 and 2,
 *                       both consistent; a late duplicate of the version-1 Bundle leaves version 2 consistent
 *   4 tampered          one value changed after anchoring, the old anchor kept → inconsistent
 *   5 late Provenance   upload without Provenance → pending/unanchored; anchor, POST the Provenance →
 *                       consistent
 *
 * Each run uses a synthetic report (or the hospital's --bundle) with business identifiers unique to the run.
 */
import { randomBytes } from 'node:crypto';
import type { HashAlg } from '../server/fingerprint/index.ts';
import { changeOneValue, correctionOf, fingerprintOf, performer, reportFullUrl, sampleReport, signBundle, signProvenance, uniquify, withChainProvenance, type Json } from './bundle.ts';
import { anchorFingerprint, chainProvenance, checkChain, checkReadChain, type Account, type ReadChain } from './chain.ts';
import { fingerprint as fingerprintOfText, parseUniqueJson } from '../server/fingerprint/index.ts';
import { generateSm2KeyPair } from '../server/fingerprint/signature.ts';
import { verifyAnchorProof } from '../server/merkle/index.ts';
import { KitError } from './errors.ts';
import type { Platform, Upload, Verdict } from './platform.ts';

export interface ConformanceOptions {
  platform: Platform;
  account: Account;
  /** The institution's SM2 key: every chain Provenance is signed and $verify must say the performer signed. */
  signKey?: string;
  alg: HashAlg;
  /** A hospital Bundle to use as the template (its report identifiers are made unique per run). */
  template?: Json;
  /** The institution code of the synthetic sample's performer. */
  org: string;
  /** How long to wait for the chain lookup of one report (ms). */
  waitMs: number;
  out: (line: string) => void;
}

export type StepResult = 'PASS' | 'FAIL' | 'SKIP';

export interface Step {
  n: number;
  name: string;
  result: StepResult;
  detail: string;
}

interface Anchored {
  bundle: Json;
  text: string;
  fingerprint: string;
  upload: Upload;
  verdict: Verdict;
}

const STEPS = [
  'preflight 预检',
  'anchored upload 上链后上传',
  'idempotent retry 重复提交',
  'correction 更正(新版本)',
  'tampered bundle 篡改检测',
  'late Provenance 后补存证',
];

/** Runs every step; returns them (exit code 0 only when all passed). */
export async function runConformance(o: ConformanceOptions): Promise<Step[]> {
  const run = `${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}-${randomBytes(3).toString('hex')}`;
  const report = (suffix: string): Json => (o.template ? uniquify(o.template, `${run}${suffix}`) : sampleReport(`${run}${suffix}`, o.org));
  o.out(`run 运行编号: ${run} (${o.template ? 'your Bundle, report identifiers suffixed' : 'synthetic sample report, no personal data'}; alg ${o.alg})`);
  const steps: Step[] = [];
  const step = stepper(STEPS, steps, o.out);

  const anchoredUpload = async (bundle: Json, text?: string): Promise<Anchored> => {
    const fp = fingerprintOf(bundle, o.alg);
    const { anchor } = await anchorFingerprint(o.account, fp);
    let prov = chainProvenance(anchor, reportFullUrl(bundle), performer(bundle), o.account.address);
    if (o.signKey) prov = signProvenance(prov, fp, o.signKey, bundle);
    const full = withChainProvenance(bundle, prov);
    const body = text ?? JSON.stringify(full, null, 2);
    const upload = await o.platform.upload(body, full);
    return { bundle: full, text: body, fingerprint: fp, upload, verdict: await o.platform.settle(upload.reportId, upload.version, o.waitMs) };
  };

  let first: Anchored | undefined;

  await step(0, [], async () => {
    const fhir = await o.platform.preflight();
    const chain = await checkChain(o.account);
    if (!chain.ok) throw new Failed(chain.summary);
    return `platform ${o.platform.base} (FHIR ${fhir}) accepts the token; ${chain.summary}`;
  });

  await step(1, [0], async () => {
    first = await anchoredUpload(report('a'));
    const { upload, verdict } = first;
    expect(upload.entryStatus === 201, `the report already existed (entry status ${upload.entryStatus}): its identifiers are not new`);
    expectStatus(verdict, 'consistent');
    expect(verdict.recomputed === first.fingerprint, `the platform recomputed ${verdict.recomputed}, the kit computed ${first.fingerprint} (指纹不一致: check your canonicalisation)`);
    if (o.signKey) expectSigned(verdict);
    return `${ref(upload)} ${verdict.status} 一致, fingerprint ${first.fingerprint}, tx ${verdict.txId} block ${verdict.height}${signedNote(verdict)}`;
  });

  await step(2, [1], async () => {
    const again = await o.platform.upload(first!.text, first!.bundle);
    expect(again.reportId === first!.upload.reportId, `the retry created another report (${again.reportId}, first ${first!.upload.reportId})`);
    expect(again.entryStatus === 200 && again.version === first!.upload.version, `the retry answered ${again.entryStatus} version ${again.version}: expected 200 and version ${first!.upload.version}`);
    const versions = await o.platform.versions(again.reportId);
    expect(versions.length === 1, `the report has ${versions.length} versions after the retry, expected 1`);
    const verdict = await o.platform.settle(again.reportId, undefined, o.waitMs);
    expectStatus(verdict, 'consistent');
    return `same report ${ref(again)}, no new version (entry ${again.entryStatus}), still ${verdict.status}`;
  });

  await step(3, [1], async () => {
    const { bundle, what } = correctionOf(first!.bundle);
    const corrected = await anchoredUpload(bundle);
    const id = first!.upload.reportId;
    expect(corrected.upload.reportId === id, `the correction was stored as another report (${corrected.upload.reportId}), not as a new version of ${id}`);
    expect(corrected.upload.version === first!.upload.version + 1, `the correction is version ${corrected.upload.version}, expected ${first!.upload.version + 1}`);
    expect(corrected.fingerprint !== first!.fingerprint, 'the correction has the same fingerprint as the original');
    expectStatus(corrected.verdict, 'consistent');
    const versions = await o.platform.versions(id);
    expect(versions.join(',') === '1,2', `the history holds versions ${versions.join(',') || 'none'}, expected 1,2`);
    const old = await o.platform.settle(id, 1, o.waitMs);
    expect(old.status === 'consistent' && old.fingerprint === first!.fingerprint, `version 1 is now ${old.status} (${old.fingerprint}): ${old.reasons.join('; ')}`);
    // a late duplicate of the version-1 Bundle (a retry queue delivering it again) changes nothing
    const stale = await o.platform.upload(first!.text, first!.bundle);
    expect(stale.version === 2, `a late retry of the version-1 Bundle answered version ${stale.version}, expected the current version 2`);
    const still = await o.platform.settle(id, 2, o.waitMs);
    expect(still.status === 'consistent', `after a late retry of the version-1 Bundle, version 2 is ${still.status}: ${still.reasons.join('; ')}`);
    return `DiagnosticReport/${id} v2 ${corrected.verdict.status} (${what} changed, new fingerprint ${corrected.fingerprint}); history keeps v1 and v2, both consistent, also after a late retry of v1`;
  });

  await step(4, [0], async () => {
    const original = report('b');
    const fp = fingerprintOf(original, o.alg);
    const { anchor } = await anchorFingerprint(o.account, fp);
    const { bundle: tampered, what } = changeOneValue(original);
    const full = withChainProvenance(tampered, chainProvenance(anchor, reportFullUrl(tampered), performer(tampered), o.account.address));
    const upload = await o.platform.upload(JSON.stringify(full, null, 2), full);
    const verdict = await o.platform.settle(upload.reportId, upload.version, o.waitMs);
    expectStatus(verdict, 'inconsistent');
    return `${ref(upload)} ${verdict.status} 不一致 as expected (${what} changed after anchoring): ${verdict.reasons[0] ?? 'no reason given'}`;
  });

  await step(5, [0], async () => {
    const bundle = report('c');
    const upload = await o.platform.upload(JSON.stringify(bundle, null, 2), bundle);
    const before = await o.platform.verify(upload.reportId, upload.version);
    expect(before.status === 'pending' || before.status === 'unanchored', `before its Provenance the report is ${before.status}, expected pending or unanchored: ${before.reasons.join('; ')}`);
    const fp = fingerprintOf(bundle, o.alg);
    const { anchor } = await anchorFingerprint(o.account, fp);
    const stored = upload.report ?? (await o.platform.report(upload.reportId));
    const target = `DiagnosticReport/${upload.reportId}/_history/${upload.version}`;
    const provId = await o.platform.postProvenance(chainProvenance(anchor, target, stored.performer?.[0]?.reference, o.account.address));
    const after = await o.platform.settle(upload.reportId, upload.version, o.waitMs);
    expectStatus(after, 'consistent');
    expect(after.anchoredBy === 'institution', `the deciding anchor is the ${after.anchoredBy}'s, expected the institution's`);
    return `${ref(upload)} was ${before.status}, Provenance/${provId} posted later → ${after.status}`;
  });

  summarise(steps, o.out);
  return steps;
}

function expectSigned(v: Verdict): void {
  expect(v.signedByPerformer === true, `the platform says the report is not signed by its performing institution (signature ${v.signature ?? 'not reported'}${v.signatureReason ? `: ${v.signatureReason}` : ''}) — is your public key registered (HUREN_INSTITUTION_KEYS)?`);
}

function signedNote(v: Verdict): string {
  return v.signedByPerformer ? `, signed 已签名 by ${v.signedBy}` : '';
}

/** Runs one step after the ones it needs passed: PASS with its detail, FAIL with the reason, or SKIP. */
function stepper(names: readonly string[], steps: Step[], out: (line: string) => void) {
  return async (n: number, needs: number[], fn: () => Promise<string>): Promise<void> => {
    const missing = needs.find((m) => steps[m]?.result !== 'PASS');
    let s: Step;
    if (missing !== undefined) s = { n, name: names[n]!, result: 'SKIP', detail: `needs step ${missing}` };
    else {
      try {
        s = { n, name: names[n]!, result: 'PASS', detail: await fn() };
      } catch (e) {
        s = { n, name: names[n]!, result: 'FAIL', detail: e instanceof Failed || e instanceof KitError ? e.message : `unexpected error: ${(e as Error).message}` };
      }
    }
    steps.push(s);
    out(`[${s.result}] ${s.n} ${s.name}: ${s.detail}`);
  };
}

function summarise(steps: Step[], out: (line: string) => void): void {
  const passed = steps.filter((s) => s.result === 'PASS').length;
  out(`result 结果: ${passed}/${steps.length} PASS${passed === steps.length ? ' — 联调通过' : ' — 联调未通过, see the FAIL lines (docs/integration-kit.md explains each)'}`);
}

/** A failed expectation: the step's one-line reason. */
class Failed extends Error {}

function expect(ok: boolean, reason: string): void {
  if (!ok) throw new Failed(reason);
}

function expectStatus(v: Verdict, want: string): void {
  if (v.status !== want) {
    throw new Failed(`DiagnosticReport/${v.reportId} v${v.version} is ${v.status}, expected ${want}${v.reasons.length ? `: ${v.reasons.join('; ')}` : ''}`);
  }
}

function ref(u: Upload): string {
  return `DiagnosticReport/${u.reportId} v${u.version}`;
}

export interface PlatformConformanceOptions extends Omit<ConformanceOptions, 'account'> {
  chain: ReadChain;
}

const PLATFORM_STEPS = [
  'preflight 预检',
  'signed upload, platform anchoring 签名上传(平台上链)',
  'idempotent retry 重复提交',
  'correction 更正(新版本)',
  'tampered bundle 篡改检测',
  'signature check 签名核验',
];

/**
 * The conformance run when the institution does not anchor itself (no chain account: the default install's
 * embedded chain is read-only to the outside): every report is anchored by the platform, and the kit checks
 * the platform's anchor on its own — `$original` bytes, the fingerprint recomputed here, the Merkle proof,
 * and the root looked up on the chain in the transaction the platform names. With a signing key, every
 * upload carries Bundle.signature and `$verify` must say the performer signed it; step 5 then shows that a
 * Bundle signed with another key is refused on intake (422 naming Bundle.signature).
 */
export async function runPlatformConformance(o: PlatformConformanceOptions): Promise<Step[]> {
  const run = `${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}-${randomBytes(3).toString('hex')}`;
  const report = (suffix: string): Json => (o.template ? uniquify(o.template, `${run}${suffix}`) : sampleReport(`${run}${suffix}`, o.org));
  o.out(`run 运行编号: ${run} (platform anchoring 平台上链; ${o.template ? 'your Bundle, report identifiers suffixed' : 'synthetic sample report, no personal data'}; alg sm3)`);
  const steps: Step[] = [];
  const step = stepper(PLATFORM_STEPS, steps, o.out);
  const upload = async (bundle: Json, key = o.signKey) => {
    const fp = fingerprintOf(bundle, 'sm3');
    const signed = key ? signBundle(bundle, fp, key) : bundle;
    const text = JSON.stringify(signed, null, 2);
    const up = await o.platform.upload(text, signed);
    return { bundle: signed, text, fp, upload: up, verdict: await o.platform.settlePlatform(up.reportId, up.version, o.waitMs) };
  };
  /** The platform's anchor checked by the kit itself: the original's bytes, the fingerprint, the proof, the chain. */
  const checkAnchor = async (reportId: string, version: number, text: string, fp: string): Promise<string> => {
    const orig = await o.platform.original(reportId, version);
    expect(orig.text === text, '$original does not return the uploaded Bundle byte for byte (原件不一致)');
    const again = fingerprintOfText(parseUniqueJson(orig.text), 'sm3');
    expect(again === fp && orig.fingerprint === fp, `the fingerprint of the original is ${again}, the platform says ${orig.fingerprint}, the kit computed ${fp}`);
    const root = orig.proof ? verifyAnchorProof(fp, { ...orig.proof, root: orig.anchor.root! }) : { ok: orig.anchor.root === fp, root: fp };
    expect(root.ok === true, `the Merkle proof of $original does not lead from ${fp} to the anchored root ${orig.anchor.root}`);
    const held = await o.chain.ledger.lookup(orig.anchor.root!);
    const node = held.nodes.find((n) => n.status === 'found');
    expect(!!node && node.txId?.toLowerCase() === orig.anchor.tx?.toLowerCase(), `the chain does not hold root ${orig.anchor.root} in transaction ${orig.anchor.tx} (${held.nodes.map((n) => `${n.node}: ${n.status}`).join(', ')})`);
    return `root ${orig.anchor.root} found on the chain in ${orig.anchor.tx} (block ${node!.height})`;
  };

  let first: Awaited<ReturnType<typeof upload>> | undefined;
  await step(0, [], async () => {
    const fhir = await o.platform.preflight();
    const chain = await checkReadChain(o.chain);
    if (!chain.ok) throw new Failed(chain.summary);
    return `platform ${o.platform.base} (FHIR ${fhir}) accepts the token; ${chain.summary}`;
  });

  await step(1, [0], async () => {
    first = await upload(report('a'));
    const { upload: up, verdict } = first;
    expect(up.entryStatus === 201, `the report already existed (entry status ${up.entryStatus}): its identifiers are not new`);
    expectStatus(verdict, 'consistent');
    expect(verdict.anchoredBy === 'platform', `the deciding anchor is the ${verdict.anchoredBy}'s, expected the platform's`);
    expect(verdict.recomputed === first.fp, `the platform recomputed ${verdict.recomputed}, the kit computed ${first.fp} (指纹不一致: check your canonicalisation)`);
    if (o.signKey) expectSigned(verdict);
    const onChain = await checkAnchor(up.reportId, up.version, first.text, first.fp);
    return `${ref(up)} ${verdict.status} 一致, fingerprint ${first.fp}; ${onChain}${signedNote(verdict)}`;
  });

  await step(2, [1], async () => {
    const again = await o.platform.upload(first!.text, first!.bundle);
    expect(again.reportId === first!.upload.reportId, `the retry created another report (${again.reportId}, first ${first!.upload.reportId})`);
    expect(again.entryStatus === 200 && again.version === first!.upload.version, `the retry answered ${again.entryStatus} version ${again.version}: expected 200 and version ${first!.upload.version}`);
    const verdict = await o.platform.settlePlatform(again.reportId, undefined, o.waitMs);
    expectStatus(verdict, 'consistent');
    return `same report ${ref(again)}, no new version (entry ${again.entryStatus}), still ${verdict.status}`;
  });

  await step(3, [1], async () => {
    const { bundle, what } = correctionOf(first!.bundle);
    delete bundle.signature;
    const corrected = await upload(bundle);
    expect(corrected.upload.reportId === first!.upload.reportId && corrected.upload.version === first!.upload.version + 1, `the correction is ${ref(corrected.upload)}, expected a new version of DiagnosticReport/${first!.upload.reportId}`);
    expectStatus(corrected.verdict, 'consistent');
    if (o.signKey) expectSigned(corrected.verdict);
    const onChain = await checkAnchor(corrected.upload.reportId, corrected.upload.version, corrected.text, corrected.fp);
    const old = await o.platform.verify(first!.upload.reportId, 1);
    expect(old.status === 'consistent', `version 1 is now ${old.status}: ${old.reasons.join('; ')}`);
    return `${ref(corrected.upload)} ${corrected.verdict.status} (${what} changed, new fingerprint ${corrected.fp}); ${onChain}; version 1 still consistent`;
  });

  await step(4, [1], async () => {
    // the platform's anchor of step 1, claimed for a Bundle changed after it was fingerprinted
    const orig = await o.platform.original(first!.upload.reportId, first!.upload.version);
    const { bundle: tampered, what } = changeOneValue(report('b'));
    const anchor = {
      alg: 'sm3' as const,
      fingerprint: first!.fp,
      ledger: orig.anchor.ledger!,
      transaction: orig.anchor.tx!,
      height: Number(orig.anchor.height),
      ...(orig.proof ? { proof: { ...orig.proof, root: orig.anchor.root! } } : {}),
    };
    const full = withChainProvenance(tampered, chainProvenance(anchor, reportFullUrl(tampered), performer(tampered), 'kit'));
    const up = await o.platform.upload(JSON.stringify(full, null, 2), full);
    const verdict = await o.platform.settle(up.reportId, up.version, o.waitMs);
    expectStatus(verdict, 'inconsistent');
    return `${ref(up)} ${verdict.status} 不一致 as expected (${what} differs from the anchored Bundle): ${verdict.reasons[0] ?? 'no reason given'}`;
  });

  await step(5, [1], async () => {
    if (!o.signKey) throw new Failed('no --sign-key given: the run did not sign (签名未测试); give the institution key registered with the platform');
    // a report signed with a key that is not the institution's: refused on intake (422 naming the signature)
    let refusal: string | undefined;
    try {
      await upload(report('c'), generateSm2KeyPair().privateKey);
    } catch (e) {
      if (!(e instanceof KitError) || !/^upload: 422 /.test(e.message)) throw e;
      refusal = e.message.replace(/^upload: /, '');
    }
    expect(refusal !== undefined, "a report signed with a key that is not the institution's was accepted; the platform must refuse it on intake with 422 (错误签名应被拒收)");
    expect(/Bundle\.signature/.test(refusal!), `the refusal does not name Bundle.signature: ${refusal}`);
    return `signed with the registered key → signed by ${first!.verdict.signedBy}; signed with another key → refused on intake (${refusal})`;
  });

  summarise(steps, o.out);
  return steps;
}
