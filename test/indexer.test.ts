/**
 * The indexer compiles simple search expressions into property walks (server/fhir/search/indexer.ts); they
 * must yield exactly what @medplum/core's FHIRPath engine yields. Checked on resources of every type filled
 * from the StructureDefinitions (every choice type in turn, references of several shapes).
 */
import test from 'ava';
import { evalFhirPathTyped, getDataType, toTypedValue, type TypedValue } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { loadDefinitions, searchParams, supportedResourceTypes } from '../server/fhir/definitions.ts';
import { emptyRows, extractorOf, indexResource } from '../server/fhir/search/indexer.ts';

loadDefinitions();

let seed = 7;
const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
const pick = <T>(list: T[]): T => list[Math.floor(rnd() * list.length)];

const PRIMITIVES: Record<string, () => unknown> = {
  boolean: () => rnd() < 0.5,
  integer: () => 3,
  positiveInt: () => 2,
  unsignedInt: () => 0,
  decimal: () => 4.5,
  integer64: () => '5',
  string: () => `Text ${Math.floor(rnd() * 5)}`,
  markdown: () => 'md',
  code: () => pick(['final', 'phone', 'email', 'active', 'Patient']),
  id: () => 'abc',
  uri: () => 'http://example.org/u',
  url: () => 'http://example.org/l',
  canonical: () => 'http://example.org/fhir/StructureDefinition/x|1',
  oid: () => 'urn:oid:1.2.3',
  uuid: () => 'urn:uuid:0b6e0f5e-4c53-4c87-9a0e-0c4c86d59c4f',
  date: () => '2020-01-02',
  dateTime: () => '2020-01-02T03:04:05+08:00',
  instant: () => '2020-01-02T03:04:05.123Z',
  time: () => '10:00:00',
  base64Binary: () => 'AAAA',
  xhtml: () => '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
};
const REFERENCES = [
  'Patient/1',
  'Group/2',
  'Organization/3',
  'urn:uuid:0b6e0f5e-4c53-4c87-9a0e-0c4c86d59c4f',
  'http://example.org/fhir/Patient/9',
  'Patient?identifier=a|b',
  'Practitioner/4',
  'Device/5',
  'Location/6',
];

/** A value of FHIR type `typeName`, its elements filled at random (choice elements use type `variant`). */
function make(typeName: string, depth: number, variant: number): unknown {
  if (PRIMITIVES[typeName]) return PRIMITIVES[typeName]();
  if (typeName === 'Reference') {
    return rnd() < 0.1 ? { type: 'Patient', identifier: { system: 's', value: 'v' } } : { reference: pick(REFERENCES), display: 'd' };
  }
  if (typeName === 'ContactPoint') return { system: pick(['phone', 'email', 'fax']), value: '123', use: 'home' };
  if (depth > 4) return undefined;
  let schema;
  try {
    schema = getDataType(typeName);
  } catch {
    return undefined;
  }
  if (!schema?.elements) return undefined;
  const out: Record<string, unknown> = {};
  for (const [path, element] of Object.entries(schema.elements)) {
    if (path.includes('.') || ['extension', 'modifierExtension', 'contained', 'id', 'text'].includes(path)) continue;
    if (rnd() < (depth === 0 ? 0.15 : 0.35)) continue;
    const types = element.type.map((t) => t.code);
    const code = types[(variant + Math.floor(rnd() * types.length)) % types.length];
    if (!code || code.includes('/') || code === 'Resource') continue;
    const name = path.endsWith('[x]') ? `${path.slice(0, -3)}${code[0].toUpperCase()}${code.slice(1)}` : path;
    const values = Array.from({ length: element.isArray ? 1 + Math.floor(rnd() * 2) : 1 }, () => make(code, depth + 1, variant)).filter(
      (v) => v !== undefined && !(typeof v === 'object' && v !== null && Object.keys(v).length === 0)
    );
    if (values.length > 0) out[name] = element.isArray ? values : values[0];
  }
  return out;
}

const key = (values: TypedValue[]) => [...new Set(values.map((v) => `${v.type}:${JSON.stringify(v.value)}`))].sort().join('\n');

test('compiled search expressions give the same values as FHIRPath, for every parameter of every type', (t) => {
  let compared = 0;
  let nonEmpty = 0;
  const mismatches: string[] = [];
  for (const type of supportedResourceTypes()) {
    const params = [...searchParams(type).values()];
    for (let variant = 0; variant < 8; variant++) {
      const resource = {
        resourceType: type,
        id: 'x1',
        meta: { versionId: '1', lastUpdated: '2020-01-01T00:00:00Z', profile: ['http://p'], tag: [{ system: 's', code: 't' }], source: 'src' },
        ...(make(type, 0, variant) as object),
      } as Resource;
      const typed = [toTypedValue(resource)];
      for (const param of params) {
        const extract = extractorOf(type, param);
        // `.as(T)` (function form) is a filter in FHIRPath; @medplum/core 4.5 lets everything through
        if (!extract || /\.as\(/.test(param.definition.expression ?? '')) continue;
        const expected = evalFhirPathTyped(param.details.parsedExpression, typed);
        const actual = extract(resource);
        compared++;
        if (expected.length > 0) nonEmpty++;
        if (key(expected) !== key(actual)) mismatches.push(`${type}.${param.code}: expected ${key(expected)} got ${key(actual)}`);
      }
    }
  }
  t.deepEqual(mismatches.slice(0, 10), []);
  t.true(compared > 10_000, `compared ${compared}`);
  t.true(nonEmpty > compared / 3, `non-empty ${nonEmpty} of ${compared}`);
});

test('nearly every search parameter is compiled; the rest still go through FHIRPath', (t) => {
  let compiled = 0;
  let total = 0;
  for (const type of supportedResourceTypes()) {
    for (const param of searchParams(type).values()) {
      total++;
      if (extractorOf(type, param)) compiled++;
    }
  }
  t.true(compiled / total > 0.99, `${compiled} of ${total}`);
  // Patient.deceased is `deceased.exists() and deceased != false`: not a path, evaluated by FHIRPath
  t.is(extractorOf('Patient', searchParams('Patient').get('deceased')!), undefined);
  const rows = indexResource({ resourceType: 'Patient', id: 'p1', deceasedBoolean: false } as Resource, emptyRows());
  t.deepEqual(
    rows.token.filter((r) => r[2] === 'deceased'),
    [['Patient', 'p1', 'deceased', null, 'false', null]]
  );
});

test('.as(T) keeps only values of type T', (t) => {
  const onsetAge = searchParams('Condition').get('onset-age')!;
  const extract = extractorOf('Condition', onsetAge)!;
  t.deepEqual(extract({ resourceType: 'Condition', id: 'c1', onsetDateTime: '2020-01-01' } as Resource), []);
  t.deepEqual(
    extract({ resourceType: 'Condition', id: 'c1', onsetAge: { value: 3, unit: 'a' } } as Resource).map((v) => v.type),
    ['Age']
  );
});
