/**
 * RFC 9162 §2.1 Merkle trees over a chosen hash (SM3 or SHA-256):
 *   MTH({})   = H()                      (the hash of the empty string)
 *   leaf      = H(0x00 ‖ data)
 *   node      = H(0x01 ‖ left ‖ right)
 *   MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two smaller than n.
 * Inclusion proofs (§2.1.3) and consistency proofs (§2.1.4), generation and verification.
 *
 * Functions take leaf *hashes* (already H(0x00 ‖ data)); `leafHash` makes them. The recursive functions
 * follow the RFC's definitions literally (O(n) per proof); `MerkleTree` keeps every level and gives
 * inclusion proofs in O(log n) for a batch — the tests check the two agree.
 */
import { createHash } from 'node:crypto';
import { DIGEST_BYTES, type HashAlg } from '../fingerprint/hash.ts';

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

export function leafHash(alg: HashAlg, data: Uint8Array): Buffer {
  return createHash(alg).update(LEAF_PREFIX).update(data).digest();
}

export function nodeHash(alg: HashAlg, left: Uint8Array, right: Uint8Array): Buffer {
  return createHash(alg).update(NODE_PREFIX).update(left).update(right).digest();
}

export function emptyRoot(alg: HashAlg): Buffer {
  return createHash(alg).digest();
}

/** The largest power of two strictly smaller than n (n ≥ 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** MTH over leaf hashes D[lo:hi]. */
export function rootOf(alg: HashAlg, leaves: readonly Uint8Array[], lo = 0, hi = leaves.length): Buffer {
  const n = hi - lo;
  if (n === 0) return emptyRoot(alg);
  if (n === 1) return Buffer.from(leaves[lo]!);
  const k = splitPoint(n);
  return nodeHash(alg, rootOf(alg, leaves, lo, lo + k), rootOf(alg, leaves, lo + k, hi));
}

/** MTH over raw entries (hashes each as a leaf first). */
export function rootOfData(alg: HashAlg, data: readonly Uint8Array[]): Buffer {
  return rootOf(alg, data.map((d) => leafHash(alg, d)));
}

/** PATH(m, D[n]) — RFC 9162 §2.1.3.1. */
export function inclusionPath(alg: HashAlg, leaves: readonly Uint8Array[], index: number): Buffer[] {
  if (!Number.isSafeInteger(index) || index < 0 || index >= leaves.length) {
    throw new RangeError(`leaf index ${index} is outside a tree of size ${leaves.length}`);
  }
  const path: Buffer[] = [];
  const walk = (m: number, lo: number, hi: number): void => {
    const n = hi - lo;
    if (n === 1) return;
    const k = splitPoint(n);
    if (m < k) {
      walk(m, lo, lo + k);
      path.push(rootOf(alg, leaves, lo + k, hi));
    } else {
      walk(m - k, lo + k, hi);
      path.push(rootOf(alg, leaves, lo, lo + k));
    }
  };
  walk(index, 0, leaves.length);
  return path;
}

/** PROOF(m, D[n]) — RFC 9162 §2.1.4.1. Empty for m = 0 or m = n. */
export function consistencyPath(alg: HashAlg, leaves: readonly Uint8Array[], m: number): Buffer[] {
  const n = leaves.length;
  if (!Number.isSafeInteger(m) || m < 0 || m > n) throw new RangeError(`size ${m} is not within a tree of size ${n}`);
  if (m === 0 || m === n) return [];
  const proof: Buffer[] = [];
  const sub = (m: number, lo: number, hi: number, b: boolean): void => {
    const n = hi - lo;
    if (m === n) {
      if (!b) proof.push(rootOf(alg, leaves, lo, hi));
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      sub(m, lo, lo + k, b);
      proof.push(rootOf(alg, leaves, lo + k, hi));
    } else {
      sub(m - k, lo + k, hi, false);
      proof.push(rootOf(alg, leaves, lo, lo + k));
    }
  };
  sub(m, 0, n, true);
  return proof;
}

function isDigest(x: unknown): x is Uint8Array {
  return x instanceof Uint8Array && x.length === DIGEST_BYTES;
}

/**
 * The root an inclusion proof leads to (RFC 9162 §2.1.3.2 steps 1–4), or null when the proof cannot be
 * valid for this index and size (wrong length, malformed hashes).
 */
export function rootFromInclusion(
  alg: HashAlg,
  leaf: Uint8Array,
  index: number,
  size: number,
  path: readonly Uint8Array[],
): Buffer | null {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return null;
  if (!isDigest(leaf) || !path.every(isDigest)) return null;
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of path) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(alg, p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(alg, r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

/** RFC 9162 §2.1.3.2: does `path` prove that `leaf` (a leaf hash) is at `index` in the tree of `size` with `root`? */
export function verifyInclusion(
  alg: HashAlg,
  leaf: Uint8Array,
  index: number,
  size: number,
  path: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  const r = rootFromInclusion(alg, leaf, index, size, path);
  return r !== null && isDigest(root) && r.equals(root);
}

/**
 * RFC 9162 §2.1.4.2: does `proof` show that the tree of `size1` with `root1` is a prefix of the tree of
 * `size2` with `root2`? Trivial cases: size1 = size2 needs an empty proof and equal roots; size1 = 0 needs an
 * empty proof (the empty tree is a prefix of every tree).
 */
export function verifyConsistency(
  alg: HashAlg,
  size1: number,
  size2: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): boolean {
  if (!Number.isSafeInteger(size1) || !Number.isSafeInteger(size2) || size1 < 0 || size2 < size1) return false;
  if (!proof.every(isDigest)) return false;
  if (size1 === size2) return proof.length === 0 && isDigest(root1) && Buffer.from(root1).equals(root2);
  if (size1 === 0) return proof.length === 0;
  if (!isDigest(root1) || !isDigest(root2)) return false;
  // 1. An empty path fails.
  if (proof.length === 0) return false;
  // 2. If first is an exact power of two, prepend first_hash.
  const path = isPow2(size1) ? [root1, ...proof] : proof;
  // 3.
  let fn = size1 - 1;
  let sn = size2 - 1;
  // 4.
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // 5.
  let fr: Buffer = Buffer.from(path[0]!);
  let sr: Buffer = Buffer.from(path[0]!);
  // 6.
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(alg, c, fr);
      sr = nodeHash(alg, c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(alg, sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // 7.
  return sn === 0 && fr.equals(root1) && sr.equals(root2);
}

function isPow2(n: number): boolean {
  let k = 1;
  while (k < n) k *= 2;
  return k === n;
}

/**
 * A whole tree kept level by level (level 0 = leaf hashes; an unpaired last node is carried up unchanged,
 * which gives exactly RFC 9162's left-balanced tree). Root in O(n), each inclusion proof in O(log n).
 */
export class MerkleTree {
  readonly alg: HashAlg;
  readonly size: number;
  private readonly levels: Buffer[][];

  constructor(alg: HashAlg, leafHashes: readonly Uint8Array[]) {
    this.alg = alg;
    this.size = leafHashes.length;
    let level: Buffer[] = leafHashes.map((h) => {
      if (!isDigest(h)) throw new TypeError(`a leaf hash is ${DIGEST_BYTES} bytes`);
      return Buffer.from(h);
    });
    this.levels = [level];
    while (level.length > 1) {
      const next: Buffer[] = [];
      for (let i = 0; i + 1 < level.length; i += 2) next.push(nodeHash(alg, level[i]!, level[i + 1]!));
      if (level.length % 2 === 1) next.push(level[level.length - 1]!);
      this.levels.push(next);
      level = next;
    }
  }

  /** A tree over raw entries (each hashed as a leaf). */
  static fromData(alg: HashAlg, data: readonly Uint8Array[]): MerkleTree {
    return new MerkleTree(alg, data.map((d) => leafHash(alg, d)));
  }

  get root(): Buffer {
    return this.size === 0 ? emptyRoot(this.alg) : this.levels[this.levels.length - 1]![0]!;
  }

  leaf(index: number): Buffer {
    const h = this.levels[0]![index];
    if (!h) throw new RangeError(`leaf index ${index} is outside a tree of size ${this.size}`);
    return h;
  }

  /** PATH(index, D[size]). */
  inclusionProof(index: number): Buffer[] {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.size) {
      throw new RangeError(`leaf index ${index} is outside a tree of size ${this.size}`);
    }
    const path: Buffer[] = [];
    let i = index;
    for (let l = 0; l < this.levels.length - 1; l++) {
      const level = this.levels[l]!;
      const sibling = i ^ 1;
      if (sibling < level.length) path.push(level[sibling]!);
      i >>= 1;
    }
    return path;
  }
}
