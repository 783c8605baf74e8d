import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import type { HashAlg } from '../server/fingerprint/hash.ts';
import {
  MerkleTree,
  buildAnchorTree,
  consistencyPath,
  emptyRoot,
  inclusionPath,
  leafHash,
  rootFromInclusion,
  rootOf,
  rootOfData,
  verifyAnchorProof,
  verifyConsistency,
  verifyInclusion,
} from '../server/merkle/index.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => Buffer.from(s, 'hex');

// Reference data of Certificate Transparency / transparency-dev (RFC 6962 = RFC 9162 hashing, SHA-256).
const CT_LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(unhex);
const CT_ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
// (leaf index 0-based, tree size, audit path)
const CT_INCLUSION: Array<[number, number, string[]]> = [
  [0, 1, []],
  [0, 8, [
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
  ]],
  [5, 8, [
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  ]],
  [2, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [1, 5, [
    '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
  ]],
];
// (size1, size2, proof)
const CT_CONSISTENCY: Array<[number, number, string[]]> = [
  [1, 1, []],
  [1, 8, [
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
  ]],
  [6, 8, [
    '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  ]],
  [2, 5, [
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
  ]],
];

test('RFC 6962/9162 reference roots for every size 1..8 (SHA-256), and the empty tree', (t) => {
  t.is(hex(emptyRoot('sha256')), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  t.is(hex(rootOfData('sha256', [])), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  for (let n = 1; n <= 8; n++) {
    t.is(hex(rootOfData('sha256', CT_LEAVES.slice(0, n))), CT_ROOTS[n - 1], `recursive MTH, size ${n}`);
    t.is(hex(MerkleTree.fromData('sha256', CT_LEAVES.slice(0, n)).root), CT_ROOTS[n - 1], `level tree, size ${n}`);
  }
});

test('reference inclusion proofs are generated exactly and verify', (t) => {
  for (const [index, size, expected] of CT_INCLUSION) {
    const leaves = CT_LEAVES.slice(0, size).map((d) => leafHash('sha256', d));
    t.deepEqual(inclusionPath('sha256', leaves, index).map(hex), expected, `PATH(${index}, D[${size}])`);
    t.deepEqual(new MerkleTree('sha256', leaves).inclusionProof(index).map(hex), expected, `tree PATH(${index}, D[${size}])`);
    t.true(verifyInclusion('sha256', leaves[index]!, index, size, expected.map(unhex), unhex(CT_ROOTS[size - 1]!)));
  }
});

test('reference consistency proofs are generated exactly and verify', (t) => {
  for (const [m, n, expected] of CT_CONSISTENCY) {
    const leaves = CT_LEAVES.slice(0, n).map((d) => leafHash('sha256', d));
    t.deepEqual(consistencyPath('sha256', leaves, m).map(hex), expected, `PROOF(${m}, D[${n}])`);
    t.true(verifyConsistency('sha256', m, n, expected.map(unhex), unhex(CT_ROOTS[m - 1]!), unhex(CT_ROOTS[n - 1]!)));
  }
});

test('SM3 trees use the same construction with SM3 (hand-computed size 3)', (t) => {
  const sm3 = (...parts: Buffer[]) => createHash('sm3').update(Buffer.concat(parts)).digest();
  const data = [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')];
  const l = data.map((d) => sm3(Buffer.from([0]), d));
  const expected = sm3(Buffer.from([1]), sm3(Buffer.from([1]), l[0]!, l[1]!), l[2]!);
  t.is(hex(rootOfData('sm3', data)), hex(expected));
  t.is(hex(MerkleTree.fromData('sm3', data).root), hex(expected));
  t.not(hex(rootOfData('sm3', data)), hex(rootOfData('sha256', data)));
});

function tamperedInclusion(path: Buffer[], root: Buffer): Array<[string, Buffer[], Buffer]> {
  const out: Array<[string, Buffer[], Buffer]> = [];
  path.forEach((_, i) => {
    const p = path.map((h) => Buffer.from(h));
    p[i]![0]! ^= 0x08;
    out.push([`flipped bit in path[${i}]`, p, root]);
  });
  if (path.length > 0) out.push(['removed last', path.slice(0, -1), root]);
  out.push(['trailing root', [...path, root], root]);
  out.push(['preceding root', [root, ...path], root]);
  out.push(['trailing short hash', [...path, Buffer.alloc(0)] as Buffer[], root]);
  const badRoot = Buffer.from(root);
  badRoot[31]! ^= 1;
  out.push(['wrong root', path, badRoot]);
  return out;
}

for (const alg of ['sha256', 'sm3'] as HashAlg[]) {
  test(`${alg}: sizes 1..64 — every inclusion proof verifies, tampered ones and wrong positions fail`, (t) => {
    const data = Array.from({ length: 64 }, (_, i) => Buffer.from([i, i * 7 & 0xff, 0x5a]));
    const allLeaves = data.map((d) => leafHash(alg, d));
    let checked = 0;
    for (let n = 1; n <= 64; n++) {
      const leaves = allLeaves.slice(0, n);
      const tree = new MerkleTree(alg, leaves);
      const root = rootOf(alg, leaves);
      t.true(tree.root.equals(root), `roots agree at size ${n}`);
      for (let i = 0; i < n; i++) {
        const path = tree.inclusionProof(i);
        if (!Buffer.concat(path).equals(Buffer.concat(inclusionPath(alg, leaves, i)))) t.fail(`tree and RFC PATH differ at ${i}/${n}`);
        if (!verifyInclusion(alg, leaves[i]!, i, n, path, root)) t.fail(`proof ${i}/${n} does not verify`);
        for (const [what, p, r] of tamperedInclusion(path, root)) {
          if (verifyInclusion(alg, leaves[i]!, i, n, p, r)) t.fail(`${what} verified at ${i}/${n}`);
        }
        if (n > 1 && verifyInclusion(alg, leaves[(i + 1) % n]!, i, n, path, root)) t.fail(`wrong leaf verified at ${i}/${n}`);
        if (i + 1 < n && verifyInclusion(alg, leaves[i]!, i + 1, n, path, root)) t.fail(`index+1 verified at ${i}/${n}`);
        if (i > 0 && verifyInclusion(alg, leaves[i]!, i - 1, n, path, root)) t.fail(`index-1 verified at ${i}/${n}`);
        if (verifyInclusion(alg, leaves[i]!, i, n * 2, path, root)) t.fail(`size*2 verified at ${i}/${n}`);
        if (n > 1 && i < (n >> 1) && verifyInclusion(alg, leaves[i]!, i, n >> 1, path, root)) t.fail(`size/2 verified at ${i}/${n}`);
        if (verifyInclusion(alg, leaves[i]!, n, n, path, root)) t.fail(`index = size verified at ${i}/${n}`);
        checked++;
      }
    }
    t.is(checked, (64 * 65) / 2);
  });

  test(`${alg}: sizes 1..64 — every consistency proof verifies, tampered ones fail`, (t) => {
    const data = Array.from({ length: 64 }, (_, i) => Buffer.from([0xa5, i]));
    const leaves = data.map((d) => leafHash(alg, d));
    const roots = [emptyRoot(alg), ...leaves.map((_, i) => rootOf(alg, leaves, 0, i + 1))];
    let checked = 0;
    for (let n = 1; n <= 64; n++) {
      const tree = leaves.slice(0, n);
      for (let m = 0; m <= n; m++) {
        const proof = consistencyPath(alg, tree, m);
        if (!verifyConsistency(alg, m, n, proof, roots[m]!, roots[n]!)) t.fail(`PROOF(${m}, D[${n}]) does not verify`);
        checked++;
        if (m === 0 || m === n) {
          t.is(proof.length, 0);
          continue;
        }
        const probes: Array<[string, number, number, Buffer[], Buffer, Buffer]> = [
          ['size1-1', m - 1, n, proof, roots[m]!, roots[n]!],
          ['size1+1', m + 1, n, proof, roots[m]!, roots[n]!],
          ['size2*2', m, n * 2, proof, roots[m]!, roots[n]!],
          ['swapped roots', m, n, proof, roots[n]!, roots[m]!],
          ['wrong root1', m, n, proof, roots[m - 1]!, roots[n]!],
          ['wrong root2', m, n, proof, roots[m]!, roots[n - 1]!],
          ['empty proof', m, n, [], roots[m]!, roots[n]!],
          ['truncated', m, n, proof.slice(0, -1), roots[m]!, roots[n]!],
          ['trailing root1', m, n, [...proof, roots[m]!], roots[m]!, roots[n]!],
          ['preceding root2', m, n, [roots[n]!, ...proof], roots[m]!, roots[n]!],
          ['preceding proof[0]', m, n, [proof[0]!, ...proof], roots[m]!, roots[n]!],
          ['older than', n, m, proof, roots[n]!, roots[m]!],
        ];
        proof.forEach((_, i) => {
          const p = proof.map((h) => Buffer.from(h));
          p[i]![0]! ^= 0x10;
          probes.push([`flipped bit in proof[${i}]`, m, n, p, roots[m]!, roots[n]!]);
        });
        for (const [what, a, b, p, r1, r2] of probes) {
          if (a === m && b === n && r1 === roots[m] && r2 === roots[n] && p === proof) continue;
          if (verifyConsistency(alg, a, b, p, r1, r2)) t.fail(`${what} verified for ${m}→${n}`);
        }
      }
    }
    t.is(checked, 64 + (64 * 65) / 2);
  });
}

test('consistency edge cases: equal sizes need equal roots and no proof; the empty tree is a prefix of any tree', (t) => {
  const r1 = randomBytes(32);
  const r2 = randomBytes(32);
  t.true(verifyConsistency('sha256', 3, 3, [], r1, r1));
  t.false(verifyConsistency('sha256', 3, 3, [], r1, r2));
  t.false(verifyConsistency('sha256', 3, 3, [r1], r1, r1));
  t.true(verifyConsistency('sha256', 0, 5, [], r1, r2));
  t.false(verifyConsistency('sha256', 0, 5, [r1], r1, r2));
  t.false(verifyConsistency('sha256', 2, 1, [], r1, r2));
  t.throws(() => consistencyPath('sha256', [r1], 2), { instanceOf: RangeError });
  t.throws(() => inclusionPath('sha256', [r1], 1), { instanceOf: RangeError });
  t.true(rootFromInclusion('sha256', r1, 0, 1, [])!.equals(r1));
  t.is(rootFromInclusion('sha256', r1, 1, 1, []), null);
});

test('anchor trees: leaf data is the raw digest bytes; a single record anchors the fingerprint itself', (t) => {
  for (const alg of ['sm3', 'sha256'] as HashAlg[]) {
    const fps = Array.from({ length: 5 }, () => `${alg}:${randomBytes(32).toString('hex')}`);
    const one = buildAnchorTree([fps[0]!]);
    t.is(one.root, fps[0]);
    t.deepEqual(one.proofs[0], { leafIndex: 0, treeSize: 1, path: [], root: fps[0] });
    t.deepEqual(verifyAnchorProof(fps[0]!, one.proofs[0]), { ok: true, root: fps[0]! });
    t.deepEqual(verifyAnchorProof(fps[0]!), { ok: true, root: fps[0]! });
    // A pure-RFC size-1 root H(0x00 ‖ fp) is not what the contract anchors.
    const rfcRoot = `${alg}:${hex(leafHash(alg, unhex(fps[0]!.split(':')[1]!)))}`;
    t.false(verifyAnchorProof(fps[0]!, { leafIndex: 0, treeSize: 1, path: [], root: rfcRoot }).ok);

    const batch = buildAnchorTree(fps);
    const leaves = fps.map((f) => leafHash(alg, unhex(f.split(':')[1]!)));
    t.is(batch.root, `${alg}:${hex(rootOf(alg, leaves))}`);
    batch.proofs.forEach((p, i) => {
      t.deepEqual(verifyAnchorProof(fps[i]!, p), { ok: true, root: batch.root });
      t.false(verifyAnchorProof(fps[(i + 1) % 5]!, p).ok, 'another record does not verify with this proof');
      t.false(verifyAnchorProof(fps[i]!, { ...p, path: [] }).ok, 'an empty path for a leaf of a bigger tree fails');
    });
  }
  t.throws(() => buildAnchorTree([]), { instanceOf: RangeError });
  t.throws(() => buildAnchorTree([`sm3:${'00'.repeat(32)}`, `sha256:${'00'.repeat(32)}`]), { message: /one algorithm/ });
  t.throws(() => buildAnchorTree(['Zhang San 440101198001010011']), { message: /not a digest/ });
});
