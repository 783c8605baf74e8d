/**
 * How fingerprints (and other 32-byte record digests, e.g. keyed hashes of recognition records) are anchored
 * (DESIGN.md §4):
 * - leaf data = the digest's raw bytes (the 32 bytes the hex of `sm3:<hex>` spells — not the text);
 * - a batch of n ≥ 2 records is one RFC 9162 tree over those leaves, in batch order, and its root is
 *   anchored; each record gets an inclusion proof;
 * - a batch of one record anchors the digest itself: the anchored root IS the fingerprint, and the proof has
 *   length 0 ("a proof of length 0 means the fingerprint itself was anchored"). This is the one place where
 *   the anchoring rule departs from a pure RFC 9162 tree of size 1 (whose root would be H(0x00 ‖ fp)).
 * A tree uses one algorithm, and all its records are digests made with it.
 */
import { formatDigest, parseDigest, type HashAlg } from '../fingerprint/hash.ts';
import type { MerkleProof } from '../fingerprint/chain-provenance.ts';
import { MerkleTree, leafHash, rootFromInclusion } from './rfc9162.ts';

export interface AnchorTree {
  alg: HashAlg;
  /** `<alg>:<hex>` — the value to anchor. */
  root: string;
  size: number;
  /** proofs[i] is record i's proof (path hex, root). */
  proofs: MerkleProof[];
}

/** The anchor tree of a batch of `<alg>:<hex>` records (all the same algorithm, at least one). */
export function buildAnchorTree(records: readonly string[]): AnchorTree {
  if (records.length === 0) throw new RangeError('an anchor batch has at least one record');
  const parsed = records.map((r) => parseDigest(r));
  const alg = parsed[0]!.alg;
  for (const p of parsed) {
    if (p.alg !== alg) throw new TypeError(`an anchor batch uses one algorithm: ${alg} and ${p.alg} mixed`);
  }
  if (parsed.length === 1) {
    const root = formatDigest(alg, parsed[0]!.bytes);
    return { alg, root, size: 1, proofs: [{ leafIndex: 0, treeSize: 1, path: [], root }] };
  }
  const tree = new MerkleTree(alg, parsed.map((p) => leafHash(alg, p.bytes)));
  const root = formatDigest(alg, tree.root);
  return {
    alg,
    root,
    size: tree.size,
    proofs: parsed.map((_, i) => ({
      leafIndex: i,
      treeSize: tree.size,
      path: tree.inclusionProof(i).map((h) => h.toString('hex')),
      root,
    })),
  };
}

export type AnchorProofCheck = { ok: true; root: string } | { ok: false; reason: string };

/**
 * Checks a record's proof and says which root the chain must hold for it. Without a proof, or with a proof of
 * length 0, that root is the record itself (tree size 1, leaf index 0).
 */
export function verifyAnchorProof(record: string, proof?: MerkleProof): AnchorProofCheck {
  const fp = parseDigest(record);
  if (!proof || proof.path.length === 0) {
    if (proof && (proof.treeSize !== 1 || proof.leafIndex !== 0)) {
      return { ok: false, reason: `an empty audit path proves nothing for leaf ${proof.leafIndex} of a tree of size ${proof.treeSize}` };
    }
    const root = formatDigest(fp.alg, fp.bytes);
    if (proof && proof.root !== undefined && parseDigestSafe(proof.root) !== root) {
      return { ok: false, reason: 'a proof of length 0 means the fingerprint itself was anchored: root must equal the fingerprint' };
    }
    return { ok: true, root };
  }
  const root = parseDigestSafe(proof.root);
  if (!root) return { ok: false, reason: `root '${String(proof.root).slice(0, 80)}' is not an <alg>:<hex> digest` };
  const rootDigest = parseDigest(root);
  if (rootDigest.alg !== fp.alg) return { ok: false, reason: `the root is ${rootDigest.alg} but the record is ${fp.alg}` };
  if (!proof.path.every((h) => /^[0-9a-fA-F]{64}$/.test(h))) return { ok: false, reason: 'an audit path entry is not 64 hex digits' };
  const computed = rootFromInclusion(
    fp.alg,
    leafHash(fp.alg, fp.bytes),
    proof.leafIndex,
    proof.treeSize,
    proof.path.map((h) => Buffer.from(h, 'hex')),
  );
  if (!computed) return { ok: false, reason: `the audit path does not fit leaf ${proof.leafIndex} of a tree of size ${proof.treeSize}` };
  if (!computed.equals(rootDigest.bytes)) return { ok: false, reason: 'the audit path leads to a different root' };
  return { ok: true, root };
}

function parseDigestSafe(text: string): string | undefined {
  try {
    const d = parseDigest(text);
    return `${d.alg}:${d.hex}`;
  } catch {
    return undefined;
  }
}
