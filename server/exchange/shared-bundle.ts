/**
 * A shared result (docs/foshan-exchange.md): a FHIR `collection` Bundle that anyone can verify offline, built
 * by the sending platform for each result it shares:
 *
 *   entry[0]  Binary      the report's transaction Bundle exactly as the hospital submitted it (base64 of the bytes)
 *   entry[1]  Provenance  its chain anchor (chain-anchor extension: fingerprint, ledger, transaction, height,
 *                         Merkle inclusion proof and root) with the performing hospital's SM2 signature
 *   entry[2]  Binary      a Verifiable Credential (application/vc+ld+json) the sending platform issued over all of
 *                         it: digests, the performer's registered key, the signature, the chain coordinates
 *
 * and `verifySharedBundle` — the receiver's checks, shared by the server and `huren-verify` — step by step:
 * credential → fingerprint → original → provenance → signature → inclusion-proof → anchor. The first step
 * that fails refuses the result and is named.
 */
import { createHash } from 'node:crypto';
import { buildChainProvenance, fingerprint as fingerprintOf, parseDigest, parseUniqueJson, readChainAnchor, type ChainAnchor, type HashAlg } from '../fingerprint/index.ts';
import { readSignature, verifyFingerprintSignature, type FhirSignature } from '../fingerprint/signature.ts';
import { verifyAnchorProof } from '../merkle/index.ts';
import { toBytes32, type LedgerPort } from '../ledger/index.ts';
import { issueCredential, verifySharedCredential, type IssuerKey, type SharedResultClaims } from './credential.ts';

export const VC_CONTENT_TYPE = 'application/vc+ld+json';
export const ISSUER_EXTENSION = 'https://fhir.huren.gz.cn/StructureDefinition/exchange-issuer';

export interface ShareInput {
  platform: string;
  reportId: string;
  version: number;
  /** The submitted text, exactly. */
  raw: string;
  alg: HashAlg;
  fingerprint: string;
  anchor: ChainAnchor;
  /** The anchored root (the fingerprint itself for a batch of one). */
  root: string;
  contract?: string;
  signature?: FhirSignature;
  performer?: string;
  performerKey?: { kid: string; publicKey: string };
}

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

export function claimsOf(s: ShareInput): SharedResultClaims {
  const report = `DiagnosticReport/${s.reportId}/_history/${s.version}`;
  const p = s.anchor.proof;
  return {
    id: `urn:huren:${s.platform}:${report}`,
    report,
    originalDigest: sha256(Buffer.from(s.raw, 'utf8')),
    fingerprint: s.fingerprint,
    ...(s.performer ? { performer: s.performer } : {}),
    ...(s.performerKey ? { performerKey: s.performerKey.publicKey, performerKeyId: s.performerKey.kid } : {}),
    ...(s.signature?.data ? { signature: s.signature.data } : {}),
    ledger: s.anchor.ledger,
    ...(s.contract ? { contract: s.contract } : {}),
    transaction: s.anchor.transaction,
    height: String(s.anchor.height),
    root: s.root,
    ...(p && p.treeSize > 1 ? { leafIndex: String(p.leafIndex), treeSize: String(p.treeSize), auditPath: p.path.join(',') } : {}),
  };
}

/** Builds the shared Bundle; `claims` may be given (tests forge with them), else they are the input's. */
export async function buildSharedBundle(s: ShareInput, key: IssuerKey & { secretKeyMultibase: string }, claims: SharedResultClaims = claimsOf(s)): Promise<Record<string, unknown>> {
  const credential = await issueCredential(key, claims);
  const provenance = buildChainProvenance({ target: claims.report, anchor: s.anchor, agent: claims.report, recorded: new Date().toISOString() }) as Record<string, unknown>;
  provenance.agent = [{ who: { display: s.performer ?? 'performing institution' } }];
  if (s.signature) provenance.signature = [s.signature];
  return {
    resourceType: 'Bundle',
    type: 'collection',
    identifier: { system: 'urn:huren:exchange', value: claims.id },
    timestamp: new Date().toISOString(),
    extension: [
      {
        url: ISSUER_EXTENSION,
        extension: [
          { url: 'platform', valueString: key.controller },
          { url: 'key', valueString: key.id },
          { url: 'publicKeyMultibase', valueString: key.publicKeyMultibase },
          { url: 'ledger', valueString: s.anchor.ledger },
          ...(s.contract ? [{ url: 'contract', valueString: s.contract }] : []),
        ],
      },
    ],
    entry: [
      { fullUrl: `${claims.id}/$original`, resource: { resourceType: 'Binary', contentType: 'application/fhir+json', data: Buffer.from(s.raw, 'utf8').toString('base64') } },
      { fullUrl: `${claims.id}/chain-provenance`, resource: provenance },
      { fullUrl: `${claims.id}/credential`, resource: { resourceType: 'Binary', contentType: VC_CONTENT_TYPE, data: Buffer.from(JSON.stringify(credential), 'utf8').toString('base64') } },
    ],
  };
}

export type StepName = 'structure' | 'credential' | 'fingerprint' | 'original' | 'provenance' | 'signature' | 'inclusion-proof' | 'anchor';
export const STEPS: readonly StepName[] = ['structure', 'credential', 'fingerprint', 'original', 'provenance', 'signature', 'inclusion-proof', 'anchor'];

export interface StepResult {
  step: StepName;
  status: 'ok' | 'failed' | 'skipped';
  detail: string;
}

export interface SharedVerification {
  verified: boolean;
  /** The first step that failed. */
  failed?: StepName;
  steps: StepResult[];
  claims?: SharedResultClaims;
  /** The submitted report Bundle (parsed), once its fingerprint held. */
  original?: Record<string, unknown>;
}

/** What the Bundle says about its issuer (not trusted: compare with a key from the registry or the operator). */
export function namedIssuer(bundle: unknown): (IssuerKey & { ledger?: string; contract?: string }) | undefined {
  const ext = ((bundle as { extension?: Array<{ url?: string; extension?: Array<{ url?: string; valueString?: string }> }> })?.extension ?? []).find((e) => e?.url === ISSUER_EXTENSION);
  const get = (url: string) => ext?.extension?.find((p) => p?.url === url)?.valueString;
  const controller = get('platform');
  const id = get('key');
  const publicKeyMultibase = get('publicKeyMultibase');
  if (!controller || !id || !publicKeyMultibase) return undefined;
  return { controller, id, publicKeyMultibase, ...(get('ledger') ? { ledger: get('ledger') } : {}), ...(get('contract') ? { contract: get('contract') } : {}) };
}

export interface VerifyOptions {
  issuer: IssuerKey;
  /** The partner's chain, read only; without it the anchor step is skipped. */
  ledger?: LedgerPort;
}

/** The receiver's checks of one shared Bundle, in order; stops at the first failure. */
export async function verifySharedBundle(bundle: unknown, options: VerifyOptions): Promise<SharedVerification> {
  const steps: StepResult[] = [];
  const out = (failed?: StepName, extra: Partial<SharedVerification> = {}): SharedVerification => ({ verified: !failed, ...(failed ? { failed } : {}), steps, ...extra });
  const fail = (step: StepName, detail: string, extra: Partial<SharedVerification> = {}) => {
    steps.push({ step, status: 'failed', detail });
    return out(step, extra);
  };
  const ok = (step: StepName, detail: string) => steps.push({ step, status: 'ok', detail });

  // structure
  const entries = (bundle as { resourceType?: string; type?: string; entry?: Array<{ resource?: any }> })?.entry;
  if ((bundle as { resourceType?: string })?.resourceType !== 'Bundle' || !Array.isArray(entries) || entries.length !== 3) {
    return fail('structure', 'not a shared result: a collection Bundle of three entries (original, chain Provenance, credential)');
  }
  const [originalBin, provenance, credentialBin] = entries.map((e) => e?.resource);
  if (originalBin?.resourceType !== 'Binary' || typeof originalBin.data !== 'string' || provenance?.resourceType !== 'Provenance' || credentialBin?.resourceType !== 'Binary' || credentialBin.contentType !== VC_CONTENT_TYPE || typeof credentialBin.data !== 'string') {
    return fail('structure', 'the entries must be Binary (original), Provenance (chain anchor), Binary (credential, application/vc+ld+json)');
  }
  ok('structure', 'original, chain Provenance and credential present');

  // credential
  let credential: unknown;
  try {
    credential = JSON.parse(Buffer.from(credentialBin.data, 'base64').toString('utf8'));
  } catch {
    return fail('credential', 'the credential is not JSON');
  }
  const vc = await verifySharedCredential(credential, options.issuer);
  if (!vc.ok) return fail('credential', vc.reason);
  const claims = vc.claims;
  ok('credential', `issued by ${options.issuer.controller}, signature verifies with ${options.issuer.id}`);

  // fingerprint: recomputed from the submitted bytes
  const bytes = Buffer.from(originalBin.data, 'base64');
  const raw = bytes.toString('utf8');
  let parsed: Record<string, unknown>;
  let alg: HashAlg;
  let recomputed: string;
  try {
    alg = parseDigest(claims.fingerprint).alg;
    parsed = parseUniqueJson(raw) as Record<string, unknown>;
    recomputed = fingerprintOf(parsed, alg);
  } catch (e) {
    return fail('fingerprint', `the fingerprint cannot be recomputed from the original: ${(e as Error).message.slice(0, 160)}`, { claims });
  }
  if (recomputed !== claims.fingerprint) return fail('fingerprint', `the fingerprint recomputed from the original (${recomputed}) is not the credential's (${claims.fingerprint})`, { claims });
  ok('fingerprint', `recomputed ${recomputed} from the original`);

  // original: the exact bytes
  const digest = sha256(bytes);
  if (digest !== claims.originalDigest) return fail('original', `the original's bytes (${digest}) are not the ones the credential names (${claims.originalDigest})`, { claims });
  ok('original', `the original's bytes are the ones submitted (${digest})`);

  // provenance: the chain Provenance carried says what the credential says
  let anchor: ChainAnchor;
  try {
    anchor = readChainAnchor(provenance);
  } catch (e) {
    return fail('provenance', `the chain Provenance is malformed: ${(e as Error).message.slice(0, 160)}`, { claims });
  }
  const p = anchor.proof;
  const mismatch =
    anchor.fingerprint !== claims.fingerprint ? 'fingerprint'
    : anchor.ledger !== claims.ledger ? 'ledger'
    : anchor.transaction !== claims.transaction ? 'transaction'
    : String(anchor.height) !== claims.height ? 'height'
    : (p && p.treeSize > 1 ? String(p.leafIndex) : undefined) !== claims.leafIndex ? 'leafIndex'
    : (p && p.treeSize > 1 ? String(p.treeSize) : undefined) !== claims.treeSize ? 'treeSize'
    : (p && p.treeSize > 1 ? p.path.join(',') : undefined) !== claims.auditPath ? 'path'
    : undefined;
  if (mismatch) return fail('provenance', `the chain Provenance's ${mismatch} is not the credential's`, { claims });
  ok('provenance', `anchored on ${anchor.ledger} in ${anchor.transaction} at height ${anchor.height}`);

  // signature: the performing hospital's, over the fingerprint, with the key the sender registered for it
  const sig = (provenance.signature as unknown[] | undefined)?.[0];
  if (!claims.signature) {
    steps.push({ step: 'signature', status: 'skipped', detail: 'the performing institution did not sign this report' });
  } else {
    if ((sig as FhirSignature | undefined)?.data !== claims.signature) return fail('signature', "the Provenance's signature is not the one the credential names", { claims });
    let der: string;
    try {
      der = readSignature(sig).der;
    } catch (e) {
      return fail('signature', `the signature is malformed: ${(e as Error).message.slice(0, 120)}`, { claims });
    }
    if (!claims.performerKey || !verifyFingerprintSignature(claims.fingerprint, der, claims.performerKey)) {
      return fail('signature', `the performing institution's signature does not verify over ${claims.fingerprint} with its registered key${claims.performerKeyId ? ` ${claims.performerKeyId}` : ''}`, { claims });
    }
    ok('signature', `signed by ${claims.performer ?? 'the performer'} (key ${claims.performerKeyId ?? '?'})`);
  }

  // inclusion proof: the fingerprint leads to the anchored root
  const proof = verifyAnchorProof(claims.fingerprint, p);
  if (!proof.ok) return fail('inclusion-proof', proof.reason, { claims });
  if (proof.root !== claims.root) return fail('inclusion-proof', `the proof leads to ${proof.root}, not to the anchored root ${claims.root}`, { claims });
  ok('inclusion-proof', p && p.treeSize > 1 ? `leaf ${p.leafIndex} of ${p.treeSize} leads to ${claims.root}` : `the fingerprint itself was anchored (${claims.root})`);

  // anchor: the partner's chain holds the root in that transaction
  if (!options.ledger) {
    steps.push({ step: 'anchor', status: 'skipped', detail: 'no chain node given: the anchor transaction was not looked up' });
    return out(undefined, { claims, original: parsed });
  }
  if (options.ledger.name !== claims.ledger) return fail('anchor', `the anchor is on ledger '${claims.ledger}', the chain read is '${options.ledger.name}'`, { claims });
  let tx;
  try {
    tx = await options.ledger.transaction(claims.transaction);
  } catch (e) {
    return fail('anchor', `the anchor transaction cannot be looked up: ${(e as Error).message.slice(0, 160)}`, { claims });
  }
  const want = toBytes32(claims.root);
  const found = tx.nodes.find((n) => n.status === 'found' && n.root?.toLowerCase() === want);
  if (!found) {
    const seen = tx.nodes.map((n) => `${n.node}: ${n.status}${n.root ? ` ${n.root}` : ''}`).join('; ');
    return fail('anchor', `the chain does not hold root ${claims.root} in transaction ${claims.transaction} (${seen})`, { claims });
  }
  if (found.height !== undefined && String(found.height) !== claims.height) return fail('anchor', `the transaction is in block ${found.height}, not ${claims.height}`, { claims });
  ok('anchor', `${found.node} holds ${claims.root} in ${claims.transaction} (block ${found.height})`);
  return out(undefined, { claims, original: parsed });
}
