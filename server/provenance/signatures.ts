/**
 * Whether a report version was signed by its performing institution: the SM2 signatures over its
 * fingerprint (server/fingerprint/signature.ts) carried by its chain Provenance (`Provenance.signature`) or by
 * the submitted Bundle (`Bundle.signature`, kept in the original), checked against the keys registered for
 * the identifiers of the report's performer Organization (institution-keys.ts).
 */
import type { Sql } from '../db/database.ts';
import { readSignature, SignatureFormatError, SM2_SIG_FORMAT, verifyFingerprintSignature, type FhirSignature } from '../fingerprint/signature.ts';
import { badRequest } from '../fhir/errors.ts';
import type { InstitutionKeys } from './institution-keys.ts';

export type SignatureStatus = 'valid' | 'invalid' | 'absent' | 'no-key';

export interface SignatureCheck {
  status: SignatureStatus;
  /** The performer's identifier whose key verified it (`system|value`). */
  signedBy?: string;
  kid?: string;
  reason?: string;
  /** The signature that verified (or the first one found). */
  signature?: FhirSignature;
}

/** The SM2 signatures among Signature elements (others — another format — are not ours to judge). */
export function sm2Signatures(list: unknown): FhirSignature[] {
  const items = Array.isArray(list) ? list : list ? [list] : [];
  return items.filter((s) => (s as FhirSignature)?.sigFormat === SM2_SIG_FORMAT) as FhirSignature[];
}

/** At intake: an SM2 signature must be well formed (400 naming it); whether it verifies is $verify's answer. */
export function checkSignatureForm(list: unknown, expression: string): void {
  const items = Array.isArray(list) ? list : list ? [list] : [];
  items.forEach((s, i) => {
    if ((s as FhirSignature)?.sigFormat !== SM2_SIG_FORMAT) return;
    try {
      readSignature(s);
    } catch (e) {
      if (e instanceof SignatureFormatError) throw badRequest(`Invalid signature: ${e.message}`, Array.isArray(list) ? `${expression}[${i}]` : expression);
      throw e;
    }
  });
}

/** Checks the signatures of a report version against its performer's registered keys. */
export async function checkSignatures(sql: Sql, keys: InstitutionKeys, performer: string | null, fingerprint: string | undefined, signatures: FhirSignature[]): Promise<SignatureCheck> {
  if (signatures.length === 0) return { status: 'absent', reason: 'the report version carries no signature of an institution' };
  const orgId = /^Organization\/([A-Za-z0-9\-.]{1,64})$/.exec(performer ?? '')?.[1];
  const rows = orgId ? await sql.query<{ ids: Array<{ system?: string; value?: string }> | null }>("SELECT content->'identifier' AS ids FROM resource WHERE type = 'Organization' AND id = $1", [orgId]) : [];
  const identifiers = (rows[0]?.ids ?? []).filter((i) => i?.system && i.value).map((i) => `${i.system}|${i.value}`);
  const registered = keys.keysOf(identifiers);
  if (registered.length === 0) {
    return { status: 'no-key', signature: signatures[0], reason: `no signing key is registered for the performing institution${orgId ? ` (Organization/${orgId})` : ''}: the signature cannot be checked` };
  }
  if (fingerprint) {
    for (const s of signatures) {
      const der = readSignature(s).der;
      const key = registered.find((k) => verifyFingerprintSignature(fingerprint, der, k.publicKey));
      if (key) return { status: 'valid', signedBy: key.organization, kid: key.kid, signature: s };
    }
  }
  return {
    status: 'invalid',
    signature: signatures[0],
    reason: `the signature does not verify over ${fingerprint ?? 'the fingerprint'} with any key registered for the performing institution (${[...new Set(registered.map((k) => k.organization))].join(', ')})`,
  };
}
