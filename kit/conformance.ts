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
import { changeOneValue, correctionOf, fingerprintOf, performer, reportFullUrl, sampleReport, uniquify, withChainProvenance, type Json } from './bundle.ts';
import { anchorFingerprint, chainProvenance, checkChain, type Account } from './chain.ts';
import { KitError } from './errors.ts';
import type { Platform, Upload, Verdict } from './platform.ts';

export interface ConformanceOptions {
  platform: Platform;
  account: Account;
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
  const step = async (n: number, needs: number[], fn: () => Promise<string>): Promise<void> => {
    const missing = needs.find((m) => steps[m]?.result !== 'PASS');
    let s: Step;
    if (missing !== undefined) s = { n, name: STEPS[n]!, result: 'SKIP', detail: `needs step ${missing}` };
    else {
      try {
        s = { n, name: STEPS[n]!, result: 'PASS', detail: await fn() };
      } catch (e) {
        s = { n, name: STEPS[n]!, result: 'FAIL', detail: e instanceof Failed || e instanceof KitError ? e.message : `unexpected error: ${(e as Error).message}` };
      }
    }
    steps.push(s);
    o.out(`[${s.result}] ${s.n} ${s.name}: ${s.detail}`);
  };

  const anchoredUpload = async (bundle: Json, text?: string): Promise<Anchored> => {
    const fp = fingerprintOf(bundle, o.alg);
    const { anchor } = await anchorFingerprint(o.account, fp);
    const full = withChainProvenance(bundle, chainProvenance(anchor, reportFullUrl(bundle), performer(bundle), o.account.address));
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
    return `${ref(upload)} ${verdict.status} 一致, fingerprint ${first.fingerprint}, tx ${verdict.txId} block ${verdict.height}`;
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

  const passed = steps.filter((s) => s.result === 'PASS').length;
  o.out(`result 结果: ${passed}/${steps.length} PASS${passed === steps.length ? ' — 联调通过' : ' — 联调未通过, see the FAIL lines (docs/integration-kit.md explains each)'}`);
  return steps;
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
