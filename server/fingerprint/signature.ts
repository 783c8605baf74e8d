/**
 * The institution's signature over a report fingerprint (docs/chain-provenance.md, "Hospital signatures"):
 * SM2 with SM3 (GB/T 32918, the default signer id 1234567812345678 of GB/T 35276), over the UTF-8 bytes of
 * the fingerprint text `sm3:<hex>`, DER-encoded, carried as a FHIR R4 Signature:
 *
 *   { "type": [{ "system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1" }],
 *     "when": "…", "who": { "identifier": { "system": "urn:huren:org", "value": "gy1" } },
 *     "targetFormat": "text/plain", "sigFormat": "application/sm2-signature", "data": "<base64 of DER>" }
 *
 * in `Provenance.signature` of the chain Provenance (or `Bundle.signature` when the platform anchors). Both
 * are outside the fingerprint, so signing does not change what is signed. `sm-crypto` does the SM2 maths
 * (node:crypto's SM2 does not interoperate).
 */
import smCrypto from 'sm-crypto';

const { sm2 } = smCrypto;

export const SIGNATURE_TYPE = { system: 'urn:iso-astm:E1762-95:2013', code: '1.2.840.10065.1.12.1.1', display: "Author's Signature" };
export const SM2_SIG_FORMAT = 'application/sm2-signature';

export interface FhirSignature {
  type: Array<{ system?: string; code?: string; display?: string }>;
  when: string;
  who: { identifier?: { system?: string; value?: string }; reference?: string; display?: string };
  targetFormat?: string;
  sigFormat?: string;
  data?: string;
}

export class SignatureFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SignatureFormatError';
  }
}

const HEX_KEY = /^[0-9a-fA-F]{64}$/;
const HEX_PUBLIC = /^04[0-9a-fA-F]{128}$/;

/** A new SM2 key pair: private key 64 hex, public key 04 + 128 hex (uncompressed). */
export function generateSm2KeyPair(): { privateKey: string; publicKey: string } {
  const k = sm2.generateKeyPairHex();
  return { privateKey: k.privateKey.padStart(64, '0'), publicKey: k.publicKey };
}

/** The public key of an SM2 private key. */
export function sm2PublicKey(privateKey: string): string {
  if (!HEX_KEY.test(privateKey)) throw new SignatureFormatError('an SM2 private key is 64 hex digits');
  return (sm2 as unknown as { getPublicKeyFromPrivateKey(k: string): string }).getPublicKeyFromPrivateKey(privateKey.toLowerCase());
}

export function isSm2PublicKey(key: unknown): key is string {
  return typeof key === 'string' && HEX_PUBLIC.test(key);
}

/** Signs a fingerprint: the Signature element to put into the chain Provenance (or Bundle.signature). */
export function signFingerprint(fingerprint: string, privateKey: string, who: FhirSignature['who'], when = new Date().toISOString()): FhirSignature {
  if (!HEX_KEY.test(privateKey)) throw new SignatureFormatError('an SM2 private key is 64 hex digits');
  const der = sm2.doSignature(fingerprint, privateKey.toLowerCase(), { hash: true, der: true });
  return { type: [SIGNATURE_TYPE], when, who, targetFormat: 'text/plain', sigFormat: SM2_SIG_FORMAT, data: Buffer.from(der, 'hex').toString('base64') };
}

/** Checks a Signature element's form (not the maths): the SM2 signature bytes as hex DER. Throws SignatureFormatError. */
export function readSignature(sig: unknown): { der: string; sig: FhirSignature } {
  const s = sig as FhirSignature;
  if (!s || typeof s !== 'object') throw new SignatureFormatError('a Signature is an object');
  if (s.sigFormat !== SM2_SIG_FORMAT) throw new SignatureFormatError(`sigFormat must be '${SM2_SIG_FORMAT}' (SM2 with SM3, DER, GB/T 32918)`);
  if (typeof s.data !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(s.data)) throw new SignatureFormatError('data must be the base64 of the DER-encoded SM2 signature');
  const bytes = Buffer.from(s.data, 'base64');
  if (bytes.length < 8 || bytes.length > 80 || bytes[0] !== 0x30) throw new SignatureFormatError('data is not a DER-encoded SM2 signature (SEQUENCE of r and s)');
  return { der: bytes.toString('hex'), sig: s };
}

/** Whether the signature is the one of `publicKey` over `fingerprint` (~30 ms of CPU: pure-JS SM2). */
export function verifyFingerprintSignature(fingerprint: string, der: string, publicKey: string): boolean {
  if (!isSm2PublicKey(publicKey)) return false;
  try {
    return sm2.doVerifySignature(fingerprint, der, publicKey.toLowerCase(), { hash: true, der: true });
  } catch {
    return false;
  }
}
