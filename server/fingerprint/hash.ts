/**
 * The two hash algorithms of the fingerprint contract (DESIGN.md §4): SM3 (GB/T 32905, the default) and
 * SHA-256, both 32-byte digests, both from node:crypto. A digest is written `<alg>:<64 hex digits>`.
 */
import { createHash } from 'node:crypto';

export type HashAlg = 'sm3' | 'sha256';
export const HASH_ALGS: readonly HashAlg[] = ['sm3', 'sha256'];
export const DEFAULT_ALG: HashAlg = 'sm3';
/** Both algorithms give 32 bytes. */
export const DIGEST_BYTES = 32;

export function isHashAlg(value: unknown): value is HashAlg {
  return value === 'sm3' || value === 'sha256';
}

function assertAlg(alg: unknown): asserts alg is HashAlg {
  if (!isHashAlg(alg)) throw new TypeError(`Unknown hash algorithm '${String(alg)}' (expected sm3 or sha256)`);
}

/** H(data): the raw 32-byte digest. Strings are hashed as their UTF-8 bytes. */
export function digest(alg: HashAlg, ...parts: Array<Uint8Array | string>): Buffer {
  assertAlg(alg);
  const h = createHash(alg);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** H(data) as lowercase hex. */
export function digestHex(alg: HashAlg, data: Uint8Array | string): string {
  assertAlg(alg);
  return createHash(alg).update(data).digest('hex');
}

/** A parsed `<alg>:<hex>` digest. */
export interface Digest {
  alg: HashAlg;
  /** 64 lowercase hex digits. */
  hex: string;
  /** The 32 raw bytes. */
  bytes: Buffer;
}

export class DigestFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DigestFormatError';
  }
}

const DIGEST_RE = /^(sm3|sha256):([0-9a-fA-F]{64})$/;

/** `sm3:<hex>` / `sha256:<hex>` → its parts. The prefix is lowercase; hex digits of either case are accepted. */
export function parseDigest(text: string): Digest {
  const m = typeof text === 'string' ? DIGEST_RE.exec(text) : null;
  if (!m) throw new DigestFormatError(`'${String(text).slice(0, 80)}' is not a digest of the form sm3:<64 hex> or sha256:<64 hex>`);
  const hex = m[2]!.toLowerCase();
  return { alg: m[1] as HashAlg, hex, bytes: Buffer.from(hex, 'hex') };
}

export function isDigest(text: unknown): text is string {
  return typeof text === 'string' && DIGEST_RE.test(text);
}

/** (alg, 32 raw bytes or 64 hex digits) → `alg:<lowercase hex>`. */
export function formatDigest(alg: HashAlg, value: Uint8Array | string): string {
  assertAlg(alg);
  const hex = typeof value === 'string' ? value.replace(/^0x/, '').toLowerCase() : Buffer.from(value).toString('hex');
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new DigestFormatError(`a ${alg} digest is 32 bytes, got '${hex.slice(0, 80)}'`);
  return `${alg}:${hex}`;
}
