/**
 * Whether a report version was signed by its performing institution: the SM2 signatures over its
 * fingerprint (server/fingerprint/signature.ts) carried by its chain Provenance (`Provenance.signature`) or by
 * the submitted Bundle (`Bundle.signature`, kept in the original), checked against the keys registered for
 * the identifiers of the report's performer Organization (institution-keys.ts).
 */
import type { Sql } from '../db/database.ts';
import { readSignature, SignatureFormatError, SM2_SIG_FORMAT, verifyFingerprintSignature, type FhirSignature } from '../fingerprint/signature.ts';
import { badRequest, fail } from '../fhir/errors.ts';
import type { InstitutionKeys } from './institution-keys.ts';
import type { RecordKeys } from './record-keys.ts';

export type SignatureStatus = 'valid' | 'invalid' | 'absent' | 'no-key';

export interface SignatureCheck {
  status: SignatureStatus;
  /** The performer's identifier whose key verified it (`system|value`). */
  signedBy?: string;
  kid?: string;
  reason?: string;
  /** The signature that verified (or the first one found). */
  signature?: FhirSignature;
  /** When the SM2 maths ran: at intake (the recorded check was reused), or now. */
  checkedAt?: string;
  /** Whether this answer is the check recorded at intake rather than one made now. */
  fromIntake?: boolean;
}

/** A valid signature as recorded at intake on report_version.signature_check, sealed with the record key. */
export interface RecordedSignature {
  fingerprint: string;
  /** The Signature's `data` (base64 DER): which signature verified. */
  data: string;
  signedBy: string;
  kid: string;
  checkedAt: string;
  seal: string;
}

const SIGNATURE_SEAL = 'signature-check';

function recordedFields(reportId: string, version: number, r: Omit<RecordedSignature, 'seal'>): unknown[] {
  return [reportId, Number(version), r.fingerprint, r.data, r.signedBy, r.kid, r.checkedAt];
}

/** The SM2 signatures among Signature elements (others — another format — are not ours to judge). */
export function sm2Signatures(list: unknown): FhirSignature[] {
  const items = Array.isArray(list) ? list : list ? [list] : [];
  return items.filter((s) => (s as FhirSignature)?.sigFormat === SM2_SIG_FORMAT) as FhirSignature[];
}

/** At intake: an SM2 signature must be well formed (400 naming it); whether it verifies: checkOnIntake. */
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

/**
 * Checks the signatures of a report version against its performer's registered keys. `recorded` (the check
 * made at intake) is reused without the SM2 maths when it still applies: its seal holds, it is over this
 * fingerprint, its signature is among these, and its key is still registered for the performer.
 */
export async function checkSignatures(
  sql: Sql,
  keys: InstitutionKeys,
  performer: string | null,
  fingerprint: string | undefined,
  signatures: FhirSignature[],
  recorded?: { reportId: string; version: number; check: RecordedSignature | null; recordKeys: RecordKeys }
): Promise<SignatureCheck> {
  if (signatures.length === 0) return { status: 'absent', reason: 'the report version carries no signature of an institution' };
  const orgId = /^Organization\/([A-Za-z0-9\-.]{1,64})$/.exec(performer ?? '')?.[1];
  const rows = orgId ? await sql.query<{ ids: Array<{ system?: string; value?: string }> | null }>("SELECT content->'identifier' AS ids FROM resource WHERE type = 'Organization' AND id = $1", [orgId]) : [];
  const identifiers = (rows[0]?.ids ?? []).filter((i) => i?.system && i.value).map((i) => `${i.system}|${i.value}`);
  const registered = keys.keysOf(identifiers);
  if (registered.length === 0) {
    return { status: 'no-key', signature: signatures[0], reason: `no signing key is registered for the performing institution${orgId ? ` (Organization/${orgId})` : ''}: the signature cannot be checked` };
  }
  const r = recorded?.check;
  if (r && fingerprint && r.fingerprint === fingerprint && recorded!.recordKeys.check(r.seal, SIGNATURE_SEAL, recordedFields(recorded!.reportId, recorded!.version, r)) === 'ok') {
    const signature = signatures.find((s) => s.data === r.data);
    if (signature && registered.some((k) => k.kid === r.kid && k.organization === r.signedBy)) {
      return { status: 'valid', signedBy: r.signedBy, kid: r.kid, signature, checkedAt: r.checkedAt, fromIntake: true };
    }
  }
  const checkedAt = new Date().toISOString();
  if (fingerprint) {
    for (const s of signatures) {
      const der = readSignature(s).der;
      const key = registered.find((k) => verifyFingerprintSignature(fingerprint, der, k.publicKey));
      if (key) return { status: 'valid', signedBy: key.organization, kid: key.kid, signature: s, checkedAt };
    }
  }
  return {
    status: 'invalid',
    signature: signatures[0],
    checkedAt,
    reason: `the signature does not verify over ${fingerprint ?? 'the fingerprint'} with any key registered for the performing institution (${[...new Set(registered.map((k) => k.organization))].join(', ')})`,
  };
}

/**
 * On intake: the SM2 signatures of `list` (Bundle.signature or Provenance.signature) checked for the
 * performing institution. One that does not verify with a key registered for it is refused (422 naming the
 * element); without a registered key it cannot be checked and is kept as it is ($verify says `no-key`).
 */
export async function checkOnIntake(sql: Sql, keys: InstitutionKeys, performer: string | null, fingerprint: string, list: unknown, expression: string): Promise<SignatureCheck> {
  const signatures = sm2Signatures(list);
  const check = await checkSignatures(sql, keys, performer, fingerprint, signatures);
  if (check.status === 'invalid') {
    const items = Array.isArray(list) ? list : [list];
    const i = items.indexOf(signatures[0]);
    throw fail(422, 'invalid', `The signature is not the performing institution's: ${check.reason}`, Array.isArray(list) ? `${expression}[${i}]` : expression);
  }
  return check;
}

/** Records a valid signature check on a report version, sealed (a later valid one replaces it). */
export async function recordSignatureCheck(sql: Sql, recordKeys: RecordKeys, reportId: string, version: number, fingerprint: string, check: SignatureCheck): Promise<void> {
  if (check.status !== 'valid' || !check.signature?.data || !check.signedBy || !check.kid) return;
  const r = { fingerprint, data: check.signature.data, signedBy: check.signedBy, kid: check.kid, checkedAt: check.checkedAt ?? new Date().toISOString() };
  const recorded: RecordedSignature = { ...r, seal: recordKeys.seal(SIGNATURE_SEAL, recordedFields(reportId, version, r)) };
  await sql.query('UPDATE report_version SET signature_check = $3 WHERE report_id = $1 AND version = $2', [reportId, version, JSON.stringify(recorded)]);
}
