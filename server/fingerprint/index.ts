/**
 * The report fingerprint (DESIGN.md §4) — the contract with hospitals:
 *
 *   fingerprint = H(JCS(B))
 *
 * where B is the submitted transaction Bundle with `id`, `meta` and `signature` removed from the Bundle
 * itself and without the entries that carry chain information (see chain-provenance.ts for the exact
 * rule); the other entries keep their order and everything else is kept as submitted. JCS is RFC 8785,
 * H is SM3 (default) or SHA-256, written `sm3:<hex>` / `sha256:<hex>`. docs/fingerprint.md has the
 * published test vectors (docs/fingerprint-vectors.json, checked by test/fingerprint-vectors.test.ts).
 */
import { createHash } from 'node:crypto';
import { isChainEntry } from './chain-provenance.ts';
import { DEFAULT_ALG, isHashAlg, type HashAlg } from './hash.ts';
import { canonicalize } from './jcs.ts';

export * from './hash.ts';
export * from './chain-provenance.ts';
export { canonicalize, JcsError } from './jcs.ts';
export { DuplicateMemberError, findDuplicateMember, parseUniqueJson, type DuplicateMember } from './ijson.ts';

/** Bundle members that never enter the fingerprint. */
export const EXCLUDED_BUNDLE_MEMBERS: readonly string[] = ['id', 'meta', 'signature'];

export class FingerprintError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FingerprintError';
  }
}

/**
 * B: the Bundle as it enters the fingerprint — a shallow copy without id/meta/signature and without chain
 * entries. (If the Bundle has an `entry` array it stays an array, possibly empty.)
 */
export function fingerprintInput(bundle: unknown): Record<string, unknown> {
  if (bundle === null || typeof bundle !== 'object' || Array.isArray(bundle)) {
    throw new FingerprintError('a fingerprint is computed over a Bundle (a JSON object)');
  }
  const b = bundle as Record<string, unknown>;
  if (b.resourceType !== 'Bundle') throw new FingerprintError(`a fingerprint is computed over a Bundle, not a ${String(b.resourceType)}`);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(b)) {
    if (key === 'id' || key === 'meta' || key === 'signature') continue;
    const value = b[key];
    if (key === 'entry' && Array.isArray(value)) {
      let filtered: unknown[] | undefined;
      for (let i = 0; i < value.length; i++) {
        if (isChainEntry(value[i])) {
          filtered ??= value.slice(0, i);
        } else if (filtered) filtered.push(value[i]);
      }
      out.entry = filtered ?? value;
    } else out[key] = value;
  }
  return out;
}

/** JCS(B) as text. */
export function canonicalString(bundle: unknown): string {
  return canonicalize(fingerprintInput(bundle));
}

/** JCS(B) as UTF-8 bytes — what is hashed. */
export function canonicalBytes(bundle: unknown): Buffer {
  return Buffer.from(canonicalString(bundle), 'utf8');
}

/** The report fingerprint `sm3:<hex>` (default) or `sha256:<hex>`. */
export function fingerprint(bundle: unknown, alg: HashAlg = DEFAULT_ALG): string {
  if (!isHashAlg(alg)) throw new FingerprintError(`Unknown hash algorithm '${String(alg)}' (expected sm3 or sha256)`);
  return alg + ':' + createHash(alg).update(canonicalString(bundle), 'utf8').digest('hex');
}

/** The fingerprint as raw digest bytes (the Merkle leaf data, DESIGN.md §4). */
export function fingerprintBytes(bundle: unknown, alg: HashAlg = DEFAULT_ALG): Buffer {
  if (!isHashAlg(alg)) throw new FingerprintError(`Unknown hash algorithm '${String(alg)}' (expected sm3 or sha256)`);
  return createHash(alg).update(canonicalString(bundle), 'utf8').digest();
}
