/** Duplicate member names (I-JSON, RFC 8785): the scanner behind the request body reader and the kit. */
import test from 'ava';
import { DuplicateMemberError, findDuplicateMember, parseUniqueJson } from '../server/fingerprint/index.ts';

test('the issue\'s report: status given twice is found, at its FHIRPath-like location', (t) => {
  const text = '{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient"}},' +
    '{"fullUrl":"urn:uuid:2","resource":{"resourceType":"DiagnosticReport","status":"final","status":"preliminary"}}]}';
  t.is(JSON.parse(text).entry[1].resource.status, 'preliminary', 'JSON.parse keeps the last one silently');
  t.deepEqual(findDuplicateMember(text, 'Bundle'), { name: 'status', expression: 'Bundle.entry[1].resource.status' });
  const e = t.throws(() => parseUniqueJson(text), { instanceOf: DuplicateMemberError });
  t.regex(e!.message, /Duplicate member name 'status' at Bundle\.entry\[1\]\.resource\.status/);
});

test('names are compared unescaped; strings that look like names are not names', (t) => {
  t.deepEqual(findDuplicateMember('{"a":{"st\\u0061tus":1,"status":2}}'), { name: 'status', expression: '$.a.status' });
  t.deepEqual(findDuplicateMember('{"x":"\\\\","x":1}'), { name: 'x', expression: '$.x' }, 'an escaped backslash before the closing quote');
  t.is(findDuplicateMember('{"a":"\\"a\\":1","b":["a","a"],"c":{"a":1},"d":[{"a":1},{"a":2}]}'), undefined);
  t.is(findDuplicateMember('{"a" : 1, "b" :\n{"a":1}}'), undefined);
  t.deepEqual(findDuplicateMember(' {"a" : 1, "a" \n: 2}'), { name: 'a', expression: '$.a' }, 'whitespace before the colon');
  t.deepEqual(findDuplicateMember('[[1,2],{"k":[0,{"z":1,"z":1}]}]'), { name: 'z', expression: '$[1].k[1].z' }, 'array positions count commas at their own level only');
  t.is(findDuplicateMember('"status"'), undefined);
  t.is(findDuplicateMember('[]'), undefined);
});

test('odd names are quoted in the location; objects with many names use a set (no quadratic time)', (t) => {
  t.deepEqual(findDuplicateMember('{"a b":{"c":1,"c":2}}'), { name: 'c', expression: '$.`a b`.c' });
  const wide = '{' + Array.from({ length: 100_000 }, (_, i) => `"k${i}":${i}`).join(',') + ',"k77":0}';
  t.deepEqual(findDuplicateMember(wide), { name: 'k77', expression: '$.k77' });
  const fine = '{' + Array.from({ length: 100_000 }, (_, i) => `"k${i}":${i}`).join(',') + '}';
  t.is(findDuplicateMember(fine), undefined);
});
