/**
 * The Verifiable Credential a platform issues over each result it shares (W3C VC Data Model 2.0, Data
 * Integrity `eddsa-rdfc-2022` with an Ed25519 Multikey; @digitalbazaar/vc). The JSON-LD contexts are shipped in
 * ./contexts and the document loader never fetches: an unknown URL is refused. The issuer's key is resolved
 * from what the verifier was given (the partner registry, or huren-verify's key argument), never from the
 * credential itself.
 */
import { readFileSync } from 'node:fs';
import * as vc from '@digitalbazaar/vc';
import { DataIntegrityProof } from '@digitalbazaar/data-integrity';
import { cryptosuite } from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';

export const CREDENTIALS_V2 = 'https://www.w3.org/ns/credentials/v2';
export const MULTIKEY_V1 = 'https://w3id.org/security/multikey/v1';
export const HUREN_CONTEXT = 'https://fhir.huren.gz.cn/ns/exchange/v1';

const context = (file: string) => JSON.parse(readFileSync(new URL(`./contexts/${file}`, import.meta.url), 'utf8'));
const CONTEXTS: Record<string, unknown> = {
  [CREDENTIALS_V2]: context('credentials-v2.jsonld'),
  [MULTIKEY_V1]: context('multikey-v1.jsonld'),
  [HUREN_CONTEXT]: context('huren-v1.jsonld'),
};

/** What the credential states about one shared result (all strings: digests, references, chain coordinates). */
export interface SharedResultClaims {
  /** `urn:huren:<platform>:DiagnosticReport/<id>/_history/<v>` */
  id: string;
  report: string;
  originalDigest: string;
  fingerprint: string;
  performer?: string;
  performerKey?: string;
  performerKeyId?: string;
  signature?: string;
  ledger: string;
  contract?: string;
  transaction: string;
  height: string;
  root: string;
  leafIndex?: string;
  treeSize?: string;
  auditPath?: string;
}

export interface IssuerKey {
  /** The controller, e.g. urn:huren:platform:foshan */
  controller: string;
  /** The verification method id, e.g. urn:huren:platform:foshan#vc */
  id: string;
  publicKeyMultibase: string;
}

/** A document loader over the shipped contexts and the one issuer key given; anything else is refused. */
export function documentLoader(issuer?: IssuerKey) {
  return async (url: string) => {
    const doc = CONTEXTS[url];
    if (doc) return { contextUrl: null, documentUrl: url, document: doc };
    if (issuer && url === issuer.id) {
      return { contextUrl: null, documentUrl: url, document: { '@context': MULTIKEY_V1, id: issuer.id, type: 'Multikey', controller: issuer.controller, publicKeyMultibase: issuer.publicKeyMultibase } };
    }
    if (issuer && url === issuer.controller) {
      return { contextUrl: null, documentUrl: url, document: { '@context': HUREN_CONTEXT, id: issuer.controller, type: 'PartnerPlatform', assertionMethod: [issuer.id] } };
    }
    throw new Error(`the document loader does not fetch: ${String(url).slice(0, 120)} is not a shipped context nor the given issuer key`);
  };
}

export async function issueCredential(key: IssuerKey & { secretKeyMultibase: string }, claims: SharedResultClaims, now = new Date()): Promise<Record<string, unknown>> {
  const pair = await Ed25519Multikey.from({ '@context': MULTIKEY_V1, type: 'Multikey', id: key.id, controller: key.controller, publicKeyMultibase: key.publicKeyMultibase, secretKeyMultibase: key.secretKeyMultibase });
  const credential = {
    '@context': [CREDENTIALS_V2, HUREN_CONTEXT],
    type: ['VerifiableCredential'],
    issuer: key.controller,
    validFrom: now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    credentialSubject: { ...claims, type: 'SharedResult' },
  };
  const suite = new DataIntegrityProof({ signer: pair.signer(), cryptosuite });
  return vc.issue({ credential, suite, documentLoader: documentLoader(key) });
}

export type CredentialCheck = { ok: true; claims: SharedResultClaims } | { ok: false; reason: string };

/** Checks the credential's proof with the issuer key given (and that it names that issuer). */
export async function verifySharedCredential(credential: unknown, issuer: IssuerKey): Promise<CredentialCheck> {
  const c = credential as { issuer?: unknown; credentialSubject?: SharedResultClaims; proof?: { verificationMethod?: unknown } } | null;
  if (!c || typeof c !== 'object') return { ok: false, reason: 'there is no credential' };
  const issuerId = typeof c.issuer === 'string' ? c.issuer : (c.issuer as { id?: string } | undefined)?.id;
  if (issuerId !== issuer.controller) return { ok: false, reason: `the credential names issuer ${String(issuerId).slice(0, 80)}, not ${issuer.controller}` };
  if (c.proof?.verificationMethod !== issuer.id) return { ok: false, reason: `the credential is signed with ${String(c.proof?.verificationMethod).slice(0, 80)}, not the issuer's key ${issuer.id}` };
  let result;
  try {
    result = await vc.verifyCredential({ credential, suite: new DataIntegrityProof({ cryptosuite }), documentLoader: documentLoader(issuer) });
  } catch (e) {
    return { ok: false, reason: `the credential could not be checked: ${(e as Error).message.slice(0, 160)}` };
  }
  if (!result?.verified) {
    const first = result?.error?.errors?.[0] ?? result?.results?.[0]?.error ?? result?.error;
    return { ok: false, reason: `the credential's signature does not verify with ${issuer.id}${first?.message ? ` (${String(first.message).slice(0, 120)})` : ''}` };
  }
  return { ok: true, claims: c.credentialSubject as SharedResultClaims };
}
