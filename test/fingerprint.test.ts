import test from 'ava';
import { createHash } from 'node:crypto';
import libCanonicalize from 'canonicalize';
import { canonicalize as jsonCanonicalize } from 'json-canonicalize';
import smCrypto from 'sm-crypto';
import {
  CHAIN_ANCHOR_URL,
  ChainAnchorError,
  FingerprintError,
  JcsError,
  buildChainProvenance,
  canonicalBytes,
  canonicalString,
  canonicalize,
  chainAnchorExtension,
  digest,
  fingerprint,
  fingerprintBytes,
  fingerprintInput,
  formatDigest,
  isChainEntry,
  isChainProvenance,
  isDigest,
  parseDigest,
  readChainAnchor,
  type ChainAnchor,
} from '../server/fingerprint/index.ts';

// ---------------------------------------------------------------- deterministic random JSON

function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let r = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

const SPECIAL_NUMBERS = [
  0, -0, 1, -1, 0.1, 0.2, 0.3, 1e21, 1e20, 1e-6, 1e-7, 5e-324, -5e-324, 1.7976931348623157e308, 9007199254740992,
  9007199254740993, 123456789012345680000, 333333333.33333329, 4.5, 2e-3, 1e-27, 1e30, 100, 5.6, 0.000001,
  -1.5e-10, 1424953923781206.2, 2 ** 53 - 1, 2 ** 31, -(2 ** 31),
];
const CHARS = [
  'a', 'Z', '0', ' ', '"', '\\', '/', '\b', '\f', '\n', '\r', '\t', '\u0000', '\u0001', '\u001f', '\u007f',
  '\u0080', 'é', 'ö', '€', '\u2028', '\u2029', '\ufeff', '\uffff', '\ufb33', '钾', '电', '解', '质', '😀',
  '\ud83d\ude00', '𠮷', '\u00a0', '\u0301', 'e\u0301', '1', '10', '2', '\\u', '\\ud800',
];

function randomString(rand: () => number, max = 8): string {
  const n = Math.floor(rand() * max);
  let s = '';
  for (let i = 0; i < n; i++) s += CHARS[Math.floor(rand() * CHARS.length)];
  return s;
}

function randomNumber(rand: () => number): number {
  const k = rand();
  if (k < 0.4) return SPECIAL_NUMBERS[Math.floor(rand() * SPECIAL_NUMBERS.length)]!;
  if (k < 0.6) return Math.floor((rand() - 0.5) * 2 ** 40);
  if (k < 0.8) return (rand() - 0.5) * 10 ** Math.floor(rand() * 40 - 20);
  // Any finite double, from random bits.
  const buf = Buffer.alloc(8);
  for (;;) {
    for (let i = 0; i < 8; i++) buf[i] = Math.floor(rand() * 256);
    const x = buf.readDoubleBE(0);
    if (Number.isFinite(x)) return x;
  }
}

function randomJson(rand: () => number, depth = 0): unknown {
  const k = rand();
  if (depth > 4 || k < 0.45) {
    const p = rand();
    if (p < 0.4) return randomString(rand);
    if (p < 0.8) return randomNumber(rand);
    if (p < 0.9) return rand() < 0.5;
    return null;
  }
  if (k < 0.7) return Array.from({ length: Math.floor(rand() * 5) }, () => randomJson(rand, depth + 1));
  const o: Record<string, unknown> = {};
  const n = Math.floor(rand() * 6);
  for (let i = 0; i < n; i++) o[randomString(rand, 4)] = randomJson(rand, depth + 1);
  return o;
}

// ---------------------------------------------------------------- JCS

test('JCS agrees with two independent implementations on 5,000 generated inputs', (t) => {
  const rand = prng(20240615);
  let nonTrivial = 0;
  for (let i = 0; i < 5000; i++) {
    const value = randomJson(rand);
    const mine = canonicalize(value);
    const a = libCanonicalize(value);
    const b = jsonCanonicalize(value);
    if (mine !== a || mine !== b) {
      t.fail(`input ${i} differs:\n mine ${mine}\n canonicalize ${a}\n json-canonicalize ${b}`);
      return;
    }
    // Parsing the canonical text back gives the same value (canonicalisation is idempotent).
    if (canonicalize(JSON.parse(mine)) !== mine) t.fail(`not idempotent on input ${i}`);
    if (mine.length > 20) nonTrivial++;
  }
  t.true(nonTrivial > 1000);
});

test('JCS: the examples of RFC 8785 §3.2.2 and §3.2.3', (t) => {
  const input = String.raw`{
    "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
    "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
    "literals": [null, true, false]
  }`;
  t.is(
    canonicalize(JSON.parse(input)),
    String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
  );
  const sorting = JSON.parse(String.raw`{
    "\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One",
    "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"
  }`);
  t.is(
    canonicalize(sorting),
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😀":"Emoji: Grinning Face","דּ":"Hebrew Letter Dalet With Dagesh"}',
  );
});

test('JCS: the number serialisations of RFC 8785 Appendix B', (t) => {
  const cases: Array<[string, string]> = [
    ['0000000000000000', '0'],
    ['8000000000000000', '0'],
    ['0000000000000001', '5e-324'],
    ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'],
    ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
    ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ];
  for (const [bits, expected] of cases) {
    const x = Buffer.from(bits, 'hex').readDoubleBE(0);
    t.is(canonicalize(x), expected, bits);
    t.is(canonicalize([x]), `[${expected}]`, bits);
  }
});

test('JCS refuses what is not I-JSON, and does not mistake an escaped backslash for a surrogate escape', (t) => {
  for (const bad of [NaN, Infinity, -Infinity, { a: [1, NaN] }, 'x\ud800', { ['\udc00']: 1 }, ['a', '\ud83d'], [undefined], 10n, () => 1, Symbol('s')]) {
    t.throws(() => canonicalize(bad), { instanceOf: JcsError }, String(typeof bad));
  }
  t.is(canonicalize('\\ud800'), '"\\\\ud800"');
  t.is(canonicalize({ '\\ud83d': '\\\\udc00' }), '{"\\\\ud83d":"\\\\\\\\udc00"}');
  t.is(canonicalize('\ud83d\ude00'), '"😀"');
  t.is(canonicalize({ a: undefined, b: 1 }), '{"b":1}');
});

test('JCS: member names JavaScript orders specially (integer-like, __proto__) are still sorted by code units', (t) => {
  const value = JSON.parse('{"a":3,"10":1,"2":2,"!":4,"__proto__":{"9":0,"-1":5},"4294967296":6,"":7}');
  const expected = '{"":7,"!":4,"10":1,"2":2,"4294967296":6,"__proto__":{"-1":5,"9":0},"a":3}';
  t.is(canonicalize(value), expected);
  t.is(libCanonicalize(value), expected);
  t.is(canonicalize({ nested: [value] }), `{"nested":[${expected}]}`);
  t.throws(() => canonicalize({ '1': NaN }), { instanceOf: JcsError });
});

// ---------------------------------------------------------------- SM3

test('SM3: the GB/T 32905 examples, node:crypto and sm-crypto', (t) => {
  const abc = '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0';
  const abcd16 = 'debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732';
  t.is(createHash('sm3').update('abc').digest('hex'), abc);
  t.is(smCrypto.sm3('abc'), abc);
  t.is(digest('sm3', 'abc').toString('hex'), abc);
  t.is(createHash('sm3').update('abcd'.repeat(16)).digest('hex'), abcd16);
  t.is(smCrypto.sm3('abcd'.repeat(16)), abcd16);
});

test('SM3: node:crypto and sm-crypto agree on 600 inputs of every length across block boundaries', (t) => {
  const rand = prng(32905);
  for (let len = 0; len < 600; len++) {
    const bytes = Buffer.alloc(len === 599 ? 10_000 : len);
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
    const a = createHash('sm3').update(bytes).digest('hex');
    const b = smCrypto.sm3(Array.from(bytes));
    if (a !== b) return t.fail(`length ${bytes.length}: ${a} vs ${b}`);
  }
  // UTF-8 text: sm-crypto encodes strings itself; both must hash the same bytes.
  const text = canonicalize({ 钾: 5.6, emoji: '😀', note: '肝脏大小正常\n' });
  t.is(createHash('sm3').update(text, 'utf8').digest('hex'), smCrypto.sm3(text));
});

// ---------------------------------------------------------------- the fingerprint

const REPORT = () => ({
  resourceType: 'Bundle',
  type: 'transaction',
  entry: [
    {
      fullUrl: 'urn:uuid:1',
      resource: { resourceType: 'DiagnosticReport', status: 'final', code: { text: '血常规' }, result: [{ reference: 'urn:uuid:2' }] },
      request: { method: 'POST', url: 'DiagnosticReport' },
    },
    {
      fullUrl: 'urn:uuid:2',
      resource: { resourceType: 'Observation', status: 'final', code: { text: 'WBC' }, valueQuantity: { value: 5.6, unit: '10*9/L' } },
      request: { method: 'POST', url: 'Observation' },
    },
  ],
});

const ANCHOR = (fp: string): ChainAnchor => ({
  alg: fp.startsWith('sm3:') ? 'sm3' : 'sha256',
  fingerprint: fp,
  ledger: 'test-ledger',
  transaction: '0x' + 'ab'.repeat(32),
  height: 7,
});

test('fingerprint = H(JCS(B)) computed independently (json-canonicalize + sm-crypto / sha256)', (t) => {
  const bundle = REPORT();
  const text = jsonCanonicalize(bundle);
  t.is(canonicalString(bundle), text);
  t.true(canonicalBytes(bundle).equals(Buffer.from(text, 'utf8')));
  t.is(fingerprint(bundle), `sm3:${smCrypto.sm3(text)}`);
  t.is(fingerprint(bundle, 'sm3'), `sm3:${smCrypto.sm3(text)}`);
  t.is(fingerprint(bundle, 'sha256'), `sha256:${createHash('sha256').update(text).digest('hex')}`);
  t.is(fingerprintBytes(bundle, 'sha256').toString('hex'), fingerprint(bundle, 'sha256').slice(7));
  t.throws(() => fingerprint(bundle, 'md5' as never), { instanceOf: FingerprintError });
});

test('Bundle.id, Bundle.meta, Bundle.signature and chain entries are left out; nothing else is', (t) => {
  const base = fingerprint(REPORT());
  const withEnvelope = {
    id: 'abc',
    meta: { versionId: '3', lastUpdated: '2024-06-15T10:00:00Z' },
    signature: { when: '2024-06-15T10:00:00Z', data: 'AAAA' },
    ...REPORT(),
  };
  t.is(fingerprint(withEnvelope), base);

  const chain = buildChainProvenance({ target: 'urn:uuid:1', anchor: ANCHOR(base), agent: 'Organization/gy1', recorded: '2024-06-15T10:00:00Z' });
  t.true(isChainProvenance(chain));
  const withChain = REPORT();
  withChain.entry.splice(1, 0, { fullUrl: 'urn:uuid:3', resource: chain as never, request: { method: 'POST', url: 'Provenance' } });
  withChain.entry.push({ fullUrl: 'urn:uuid:4', resource: chain as never, request: { method: 'POST', url: 'Provenance' } });
  t.is(fingerprint(withChain), base);
  t.deepEqual(fingerprintInput(withChain), REPORT());

  // A Provenance without the chain-anchor extension is an ordinary entry.
  const plainProv = { resourceType: 'Provenance', target: [{ reference: 'urn:uuid:1' }], recorded: '2024-06-15T10:00:00Z', agent: [] };
  const withPlain = REPORT();
  withPlain.entry.push({ fullUrl: 'urn:uuid:5', resource: plainProv as never, request: { method: 'POST', url: 'Provenance' } });
  t.not(fingerprint(withPlain), base);
  // Neither is a Provenance whose chain extension has another URL, or sits inside a sub-element.
  for (const resource of [
    { ...plainProv, extension: [{ url: CHAIN_ANCHOR_URL + '-v2' }] },
    { ...plainProv, meta: { extension: [{ url: CHAIN_ANCHOR_URL }] } },
    { ...plainProv, resourceType: 'provenance', extension: [{ url: CHAIN_ANCHOR_URL }] },
    { resourceType: 'Observation', extension: [{ url: CHAIN_ANCHOR_URL }] },
  ]) {
    t.false(isChainEntry({ resource }));
    const b = REPORT();
    b.entry.push({ fullUrl: 'urn:uuid:6', resource: resource as never, request: { method: 'POST', url: 'Provenance' } });
    t.not(fingerprint(b), base);
  }
  // An id or meta inside a resource is content.
  const inner = REPORT();
  (inner.entry[1]!.resource as Record<string, unknown>).meta = { versionId: '1' };
  t.not(fingerprint(inner), base);
  // The input is not modified.
  t.deepEqual(withEnvelope.id, 'abc');
  t.is(withChain.entry.length, 4);
});

test('whitespace and member order do not matter; entry order and any value do', (t) => {
  const bundle = REPORT();
  const base = fingerprint(bundle);
  const reordered = JSON.parse(JSON.stringify({ entry: bundle.entry.map((e) => ({ request: e.request, resource: e.resource, fullUrl: e.fullUrl })), type: 'transaction', resourceType: 'Bundle' }));
  t.is(fingerprint(reordered), base);
  t.is(fingerprint(JSON.parse(JSON.stringify(bundle, null, 4))), base);
  t.is(fingerprint(JSON.parse(JSON.stringify(bundle).replace('5.6', '5.60'))), base);

  const swapped = REPORT();
  swapped.entry.reverse();
  t.not(fingerprint(swapped), base);
  const changed = REPORT();
  (changed.entry[1]!.resource as { valueQuantity: { value: number } }).valueQuantity.value = 5.7;
  t.not(fingerprint(changed), base);
  const empty = { resourceType: 'Bundle', type: 'transaction', entry: [] };
  t.is(canonicalString(empty), '{"entry":[],"resourceType":"Bundle","type":"transaction"}');
});

test('only Bundles have fingerprints', (t) => {
  for (const bad of [null, [], 'Bundle', 1, { resourceType: 'DiagnosticReport' }, {}]) {
    t.throws(() => fingerprint(bad), { instanceOf: FingerprintError });
  }
});

test('digest strings: parse, format, validate', (t) => {
  const hex = '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0';
  const d = parseDigest(`sm3:${hex.toUpperCase()}`);
  t.is(d.alg, 'sm3');
  t.is(d.hex, hex);
  t.is(d.bytes.toString('hex'), hex);
  t.is(formatDigest('sm3', d.bytes), `sm3:${hex}`);
  t.is(formatDigest('sha256', `0x${hex}`), `sha256:${hex}`);
  t.true(isDigest(`sha256:${hex}`));
  for (const bad of [hex, `SM3:${hex}`, `sm3:${hex}00`, `sm3:${hex.slice(2)}`, `md5:${hex}`, `sm3: ${hex}`, `sm3:${hex}\n`]) {
    t.false(isDigest(bad), bad);
    t.throws(() => parseDigest(bad));
  }
  t.throws(() => formatDigest('sm3', Buffer.alloc(31)));
  t.throws(() => formatDigest('sm2' as never, Buffer.alloc(32)));
});

test('chain anchor extension: write, read back, and precise errors', (t) => {
  const fp = fingerprint(REPORT());
  const anchor: ChainAnchor = {
    ...ANCHOR(fp),
    proof: { leafIndex: 2, treeSize: 5, path: ['aa'.repeat(32), 'bb'.repeat(32)], root: `sm3:${'cc'.repeat(32)}` },
  };
  const prov = buildChainProvenance({ target: 'DiagnosticReport/1', anchor, agent: 'Organization/gy1' });
  t.deepEqual(readChainAnchor(JSON.parse(JSON.stringify(prov))), anchor);
  const simple = buildChainProvenance({ target: 'DiagnosticReport/1', anchor: ANCHOR(fp), agent: 'Organization/gy1' });
  t.deepEqual(readChainAnchor(simple), ANCHOR(fp));

  const ext = chainAnchorExtension(anchor);
  const withParts = (parts: unknown[]) => ({ resourceType: 'Provenance', extension: [{ url: CHAIN_ANCHOR_URL, extension: parts }] });
  const parts = ext.extension as Array<{ url: string }>;
  const without = (name: string) => withParts(parts.filter((p) => p.url !== name));
  t.throws(() => readChainAnchor(without('fingerprint')), { instanceOf: ChainAnchorError, message: /fingerprint is missing/ });
  t.throws(() => readChainAnchor(without('height')), { instanceOf: ChainAnchorError, message: /height/ });
  t.throws(() => readChainAnchor(without('treeSize')), { instanceOf: ChainAnchorError, message: /treeSize is missing/ });
  t.throws(() => readChainAnchor(without('root')), { instanceOf: ChainAnchorError, message: /root is missing/ });
  t.throws(() => readChainAnchor(withParts(parts.map((p) => (p.url === 'algorithm' ? { url: 'algorithm', valueCode: 'sha256' } : p)))), {
    message: /fingerprint is sm3 but algorithm says sha256/,
  });
  t.throws(() => readChainAnchor(withParts(parts.map((p) => (p.url === 'leafIndex' ? { url: 'leafIndex', valueUnsignedInt: 5 } : p)))), {
    message: /leafIndex must be less than treeSize/,
  });
  t.throws(() => readChainAnchor(withParts([...parts, { url: 'ledger', valueString: 'other' }])), { message: /ledger appears more than once/ });
  t.throws(() => readChainAnchor({ resourceType: 'Provenance' }), { instanceOf: ChainAnchorError });
  t.throws(() => chainAnchorExtension({ ...ANCHOR(fp), fingerprint: 'Zhang San' }), { instanceOf: ChainAnchorError });
});
