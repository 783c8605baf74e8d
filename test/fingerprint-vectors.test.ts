/** The published vectors (docs/fingerprint-vectors.json, docs/fingerprint.md) agree with the code. */
import test from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import smCrypto from 'sm-crypto';
import { canonicalize as otherJcs } from 'json-canonicalize';
import {
  BEGIN,
  END,
  FINGERPRINT_MD,
  VECTORS_JSON,
  buildVectors,
  renderVectorsMarkdown,
  type VectorFile,
} from '../scripts/fingerprint-vectors.ts';
import { canonicalBytes, DuplicateMemberError, findDuplicateMember, fingerprint, isChainEntry, parseUniqueJson } from '../server/fingerprint/index.ts';

const stored: VectorFile = JSON.parse(readFileSync(VECTORS_JSON, 'utf8'));

test('every stored vector recomputes from its submitted text', (t) => {
  t.true(stored.vectors.length >= 3);
  for (const v of stored.vectors) {
    const bundle = JSON.parse(v.submitted);
    const bytes = canonicalBytes(bundle);
    t.is(bytes.toString('utf8'), v.canonical, v.name);
    t.is(bytes.length, v.canonicalBytes, v.name);
    if (v.canonicalHex) t.is(bytes.toString('hex'), v.canonicalHex, v.name);
    t.is(fingerprint(bundle, 'sm3'), v.sm3, v.name);
    t.is(fingerprint(bundle, 'sha256'), v.sha256, v.name);
  }
});

test('the stored vectors hold under independent implementations (json-canonicalize, sm-crypto, plain sha256)', (t) => {
  for (const v of stored.vectors) {
    const b = JSON.parse(v.submitted);
    delete b.id;
    delete b.meta;
    delete b.signature;
    b.entry = b.entry.filter((e: unknown) => !isChainEntry(e));
    const text = otherJcs(b);
    t.is(text, v.canonical, v.name);
    t.is(`sm3:${smCrypto.sm3(Array.from(Buffer.from(text, 'utf8')))}`, v.sm3, v.name);
    t.is(`sha256:${createHash('sha256').update(Buffer.from(text, 'utf8')).digest('hex')}`, v.sha256, v.name);
  }
});

test('the generator still produces exactly the stored file (run scripts/fingerprint-vectors.ts after changing it)', (t) => {
  t.deepEqual(buildVectors(), stored);
});

test('docs/fingerprint.md shows exactly the stored vectors', (t) => {
  const md = readFileSync(FINGERPRINT_MD, 'utf8');
  const a = md.indexOf(BEGIN);
  const b = md.indexOf(END);
  t.true(a >= 0 && b > a, 'the generated section is present');
  t.is(md.slice(a, b + END.length), renderVectorsMarkdown(stored));
});

test('the envelope and chain Provenance do not change the fingerprint; the non-chain Provenance counts', (t) => {
  const byName = new Map(stored.vectors.map((v) => [v.name, v]));
  const plain = byName.get('lab-report')!;
  const wrapped = byName.get('lab-report-with-envelope-and-chain-provenance')!;
  t.is(wrapped.sm3, plain.sm3);
  t.is(wrapped.sha256, plain.sha256);
  t.not(wrapped.submitted, plain.submitted);
  const exam = byName.get('exam-report-unicode-numbers')!;
  t.true(exam.canonical.includes('"resourceType":"Provenance"'));
  t.true(exam.canonical.includes('"value":1e-7') && exam.canonical.includes('"value":1e+21') && exam.canonical.includes('"value":0.3}'));
});

test('the refused vectors: JSON.parse accepts them silently, the platform\'s scanner refuses them where the vector says', (t) => {
  t.true(stored.refused.length >= 1);
  for (const v of stored.refused) {
    t.notThrows(() => JSON.parse(v.submitted), 'valid JSON text');
    t.throws(() => parseUniqueJson(v.submitted), { instanceOf: DuplicateMemberError }, v.name);
    t.is(findDuplicateMember(v.submitted, 'Bundle')?.expression, v.expression, v.name);
  }
  const dup = stored.refused.find((v) => v.name === 'duplicate-member-name')!;
  t.is(dup.expression, 'Bundle.entry[0].resource.status');
  t.is(JSON.parse(dup.submitted).entry[0].resource.status, 'preliminary', 'JSON.parse keeps the last');
});
