/**
 * The compiled structural validator (server/fhir/validation/compiled.ts) against its reference, @medplum/core's
 * `validateResource`: over every official R4 example and HL7 validator test case the repository holds, and over
 * a corpus of systematically broken resources (every property of a set of seed resources removed, nulled,
 * emptied, given the wrong JSON type, wrapped in or unwrapped from an array, duplicated, given bad primitive
 * formats and primitive extensions; unknown properties everywhere; wrong and conflicting choice types; failed
 * invariants; contained resources and Bundle entries), both must answer the same: the same issues (severity,
 * code, details.text, expression, diagnostics) in the same order, or the same thrown error — and leave the
 * resource in the same state (medplum merges some primitive extensions into the resource; so must we).
 */
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OperationOutcomeError, validateResource } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { checkResource, loadValidation } from '../server/fhir/validate.ts';
import { validateStructure } from '../server/fhir/validation/compiled.ts';
import { defaultWindow, labReport, Rng } from '../bench/data.ts';

loadValidation();

const DATA = fileURLToPath(new URL('./fixtures/', import.meta.url));

type Answer = { issues: unknown } | { thrown: string };

function answer(validate: (r: Resource) => unknown, resource: unknown): { answer: Answer; after: string } {
  const r = structuredClone(resource) as Resource;
  let a: Answer;
  try {
    a = { issues: validate(r) };
  } catch (e) {
    a = e instanceof OperationOutcomeError ? { issues: e.outcome.issue } : { thrown: String((e as Error)?.message ?? e) };
  }
  return { answer: JSON.parse(JSON.stringify(a)) as Answer, after: JSON.stringify(r) };
}

/** The differences between the two validators on `resources` (at most 5 described). */
function differences(resources: [string, unknown][]): { compared: number; differing: string[] } {
  const differing: string[] = [];
  for (const [name, resource] of resources) {
    const reference = answer(validateResource, resource);
    const compiled = answer(validateStructure, resource);
    const same = JSON.stringify(reference.answer) === JSON.stringify(compiled.answer) && reference.after === compiled.after;
    if (!same) {
      differing.push(name);
      if (differing.length <= 5) {
        console.log(`${name}\n  medplum:  ${JSON.stringify(reference.answer).slice(0, 2000)}\n  compiled: ${JSON.stringify(compiled.answer).slice(0, 2000)}`);
      }
    }
  }
  return { compared: resources.length, differing };
}

function fixtures(dir: string): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (const f of readdirSync(`${DATA}${dir}`)) {
    if (!f.endsWith('.json')) continue;
    try {
      const r = JSON.parse(readFileSync(`${DATA}${dir}/${f}`, 'utf8'));
      if (r && typeof r === 'object' && typeof r.resourceType === 'string') out.push([`${dir}/${f}`, r]);
    } catch {
      // not JSON (the validator cases include unparseable files on purpose)
    }
  }
  return out;
}

test('the official R4 examples: same issues as @medplum/core', (t) => {
  const examples = fixtures('fhir-r4-examples');
  t.true(examples.length >= 324);
  const { differing } = differences(examples);
  t.deepEqual(differing, []);
});

test('the HL7 validator test cases: same issues as @medplum/core', (t) => {
  const cases = fixtures('fhir-validator-cases');
  t.true(cases.length >= 140);
  const { differing } = differences(cases);
  t.deepEqual(differing, []);
});

// ---------------------------------------------------------------------------------------------------
// the broken corpus

const report = labReport(new Rng(7), { patientId: 'p1', gender: 'female', org: { id: 'o1', code: 'c1', name: 'Org' } }, defaultWindow(Date.UTC(2026, 0, 1)));
const observation = report.bundle.entry![1].resource as Resource;
const diagnosticReport = report.bundle.entry![0].resource as Resource;

const patient = {
  resourceType: 'Patient',
  id: 'p1',
  meta: { versionId: '1', lastUpdated: '2024-01-01T00:00:00Z', profile: ['http://example.org/p'] },
  text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">A</div>' },
  extension: [
    { url: 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace', valueAddress: { city: 'Guangzhou' } },
    { url: 'http://example.org/complex', extension: [{ url: 'a', valueCode: 'x' }, { url: 'b', valueInteger: 2 }] },
  ],
  identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: '44010619900101001X', period: { start: '2020-01-01' } }],
  active: true,
  name: [{ family: '王', given: ['小', '明'], _given: [null, { extension: [{ url: 'http://example.org/g', valueString: 'x' }] }] }],
  telecom: [{ system: 'phone', value: '13800000000', use: 'mobile', rank: 1 }],
  gender: 'male',
  _gender: { id: 'g1' },
  birthDate: '1990-01-01',
  multipleBirthInteger: 2,
  deceasedBoolean: false,
  address: [{ line: ['1 Road'], city: 'Guangzhou', period: { start: '2020-01-01', end: '2021-01-01' } }],
  contact: [{ relationship: [{ text: 'mother' }], name: { family: '李' }, telecom: [{ system: 'phone', value: '1' }] }],
  communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'zh' }] }, preferred: true }],
  photo: [{ contentType: 'image/png', data: 'AAAA', size: 3 }],
  link: [{ other: { reference: 'Patient/p2' }, type: 'seealso' }],
};

const questionnaire = {
  resourceType: 'Questionnaire',
  url: 'http://example.org/q',
  status: 'active',
  contained: [{ resourceType: 'ValueSet', id: 'vs', status: 'active', compose: { include: [{ system: 'http://example.org/cs' }] } }],
  item: [
    {
      linkId: '1',
      type: 'group',
      text: 'Group',
      item: [
        { linkId: '1.1', type: 'choice', answerValueSet: '#vs', required: true, initial: [{ valueCoding: { code: 'a' } }] },
        { linkId: '1.2', type: 'integer', enableWhen: [{ question: '1.1', operator: 'exists', answerBoolean: true }], maxLength: 3 },
      ],
    },
  ],
};

const bundle = {
  resourceType: 'Bundle',
  type: 'transaction',
  entry: [
    { fullUrl: 'urn:uuid:0d3f6e2a-1b2c-4d5e-8f90-1a2b3c4d5e6f', resource: observation, request: { method: 'POST', url: 'Observation' } },
    { resource: { resourceType: 'Patient', id: 'x', contained: [{ resourceType: 'Organization', id: 'o', name: 'O' }] }, request: { method: 'PUT', url: 'Patient/x' } },
  ],
};

const seeds: [string, unknown][] = [
  ['Observation', observation],
  ['DiagnosticReport', diagnosticReport],
  ['Patient', patient],
  ['Questionnaire', questionnaire],
  ['Bundle', bundle],
];

/** Replacement values tried at every property. */
const REPLACEMENTS: unknown[] = [
  null, '', ' ', {}, [], 0, 1.5, -1, true, 'x y', ' x', [null], [{}], [''], { foo: 1 }, ['a', 'a'],
  '2024-02-30', '2024-13', '2024-01-01T10:00', '10:00', 'urn:uuid:bad', 'urn:oid:1.2.x', 'a\u0001', '#', 'Patient?x=1',
  { reference: '#missing' }, { extension: [{ url: 'http://x', valueString: 'v' }] },
];

/** Primitive extensions tried next to every property. */
const PRIMITIVE_EXTENSIONS: unknown[] = [
  { extension: [{ url: 'http://example.org/e', valueString: 'a' }] },
  { id: 'i' },
  { foo: 1 },
  { constructor: 1, extension: [{ url: 'http://example.org/e' }] },
  'bad',
  3,
  [null, { id: 'i' }],
  [{ extension: [{ url: 'http://example.org/e', valueBoolean: true, extension: [{ url: 'x', valueCode: 'y' }] }] }],
  {},
];

type Json = Record<string, unknown>;

/** Every (object, key) in a JSON tree, as paths of keys and indexes. */
function locations(value: unknown, path: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (Array.isArray(value)) value.forEach((v, i) => locations(v, [...path, i], out));
  else if (value && typeof value === 'object') {
    for (const k of Object.keys(value)) {
      out.push([...path, k]);
      locations((value as Json)[k], [...path, k], out);
    }
  }
  return out;
}

function mutate(seed: unknown, path: (string | number)[], fn: (parent: Json | unknown[], key: string | number) => void): unknown {
  const copy = structuredClone(seed);
  let parent = copy as Json | unknown[];
  for (const k of path.slice(0, -1)) parent = (parent as Json)[k as string] as Json;
  fn(parent, path[path.length - 1]);
  return copy;
}

function brokenCorpus(): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (const [name, seed] of seeds) {
    for (const path of locations(seed)) {
      const at = `${name}.${path.join('.')}`;
      const key = path[path.length - 1];
      if (key === 'resourceType' && path.length === 1) continue;
      out.push([`${at} removed`, mutate(seed, path, (p, k) => delete (p as Json)[k as string])]);
      REPLACEMENTS.forEach((v, i) => out.push([`${at} = replacement ${i}`, mutate(seed, path, (p, k) => ((p as Json)[k as string] = structuredClone(v)))]));
      out.push([`${at} wrapped in an array`, mutate(seed, path, (p, k) => ((p as Json)[k as string] = [(p as Json)[k as string]]))]);
      out.push([`${at} unwrapped`, mutate(seed, path, (p, k) => {
        const v = (p as Json)[k as string];
        if (Array.isArray(v)) (p as Json)[k as string] = v[0];
      })]);
      out.push([`${at} doubled`, mutate(seed, path, (p, k) => {
        const v = (p as Json)[k as string];
        (p as Json)[k as string] = Array.isArray(v) ? [...v, ...structuredClone(v)] : v;
      })]);
      if (typeof key === 'string') {
        PRIMITIVE_EXTENSIONS.forEach((v, i) => out.push([`${at} with primitive extension ${i}`, mutate(seed, path, (p, k) => ((p as Json)[`_${k as string}`] = structuredClone(v)))]));
        out.push([`${at} renamed with a type suffix`, mutate(seed, path, (p, k) => {
          (p as Json)[`${k as string}String`] = (p as Json)[k as string];
          delete (p as Json)[k as string];
        })]);
      }
      const parentPath = path.slice(0, -1);
      out.push([`${at}: unknown sibling`, mutate(seed, [...parentPath, 'x'], (p) => ((p as Json).fooBar = 1))]);
    }
  }
  return out;
}

/** Hand-made cases: choice types, invariants, contained resources, Bundle entries. */
function handMade(): [string, unknown][] {
  const obs = observation as unknown as Json;
  const cases: Record<string, unknown> = {
    'conflicting choices': { ...obs, valueString: 'x' },
    'unknown choice type': { ...obs, valueQuantity: undefined, valueFoo: 1 },
    'choice with a wrong-type primitive extension': { ...obs, _valueString: { id: 'a' } },
    'choice primitive extension matching': { ...obs, valueQuantity: undefined, valueString: 'a', _valueString: { id: 'a' } },
    'choice as primitive extension only': { ...obs, valueQuantity: undefined, _valueString: { id: 'a' } },
    'choice of wrong JSON type': { ...obs, valueQuantity: undefined, valueBoolean: 'true' },
    'obs-6 failed': { ...obs, dataAbsentReason: { text: 'x' } },
    // (medplum's FHIRPath `intersect` finds no common coding here, so obs-7 holds for both)
    'obs-7 with a component of the same code': { ...obs, component: [{ code: obs.code, valueString: 'x' }] },
    'obs-6/obs-7 with a value primitive extension': { ...obs, _valueQuantity: { id: 'v' } },
    'obs-7 holds': { ...obs, component: [{ code: { text: 'other' }, valueString: 'x' }] },
    'obs-3 failed': { ...obs, referenceRange: [{ appliesTo: [{ text: 'x' }] }] },
    'obs-3 with text only': { ...obs, referenceRange: [{ text: 'x' }] },
    'obs-3 with an empty low': { ...obs, referenceRange: [{ low: {}, text: '' }] },
    'dom-2 failed': { ...obs, contained: [{ resourceType: 'Patient', id: 'a', contained: [{ resourceType: 'Patient', id: 'b' }] }] },
    'dom-4 failed': { ...obs, contained: [{ resourceType: 'Patient', id: 'a', meta: { versionId: '1' } }] },
    'dom-5 failed': { ...obs, contained: [{ resourceType: 'Patient', id: 'a', meta: { security: [{ code: 's' }] } }] },
    'contained of unknown type': { ...obs, contained: [{ resourceType: 'Nope', id: 'a' }] },
    'contained without a type': { ...obs, contained: [{ id: 'a', name: 'x' }] },
    'contained with a numeric type': { ...obs, contained: [{ resourceType: 5, id: 'a' }] },
    'contained Bundle with broken entries': { ...obs, contained: [bundle] },
    'ext-1 both': { ...obs, extension: [{ url: 'http://x', valueString: 'a', extension: [{ url: 'y', valueString: 'b' }] }] },
    'ext-1 neither': { ...obs, extension: [{ url: 'http://x' }] },
    'ext-1 empty value': { ...obs, extension: [{ url: 'http://x', valueString: '' }] },
    'ext-1 two values': { ...obs, extension: [{ url: 'http://x', valueString: 'a', valueCode: 'b' }] },
    'ext-1 null extension inside': { ...obs, extension: [{ url: 'http://x', extension: [null] }] },
    'ext-1 value and _value': { ...obs, extension: [{ url: 'http://x', _valueString: { id: 'q' } }] },
    'ext-1 array value': { ...obs, extension: [{ url: 'http://x', valueString: ['a'] }] },
    'modifierExtension': { ...obs, modifierExtension: [{ url: 'http://x', valueBoolean: true }] },
    'nested extension in a primitive extension': { ...obs, _status: { extension: [{ url: 'http://x', extension: [{ url: 'a' }] }] } },
    'reference to a wrong type': { ...obs, subject: { reference: 'Medication/1' } },
    'reference conditional': { ...obs, subject: { reference: 'Patient?identifier=1' } },
    'reference contained': { ...obs, subject: { reference: '#p' }, contained: [{ resourceType: 'Patient', id: 'p' }] },
    'reference absolute': { ...obs, subject: { reference: 'http://example.org/fhir/Patient/1' } },
    'reference empty type': { ...obs, subject: { reference: '/x' } },
    'a string for an object': { ...obs, code: 'abc' },
    'a String prototype name for an object': { ...patient, link: ['link'] },
    'constructor as a property': { ...obs, constructor: 1, toString: 'x', __proto__x: 1 },
    'bdl-1 failed': { ...bundle, total: 2 },
    'bdl-2 failed': { ...bundle, entry: [{ ...bundle.entry[0], search: { mode: 'match' } }] },
    'bdl-3 failed': { ...bundle, entry: [{ fullUrl: 'urn:uuid:1', resource: observation }] },
    'bdl-5 failed': { ...bundle, entry: [{ fullUrl: 'urn:uuid:1' }] },
    'bdl-7 failed': { resourceType: 'Bundle', type: 'collection', entry: [{ fullUrl: 'http://a/Patient/1', resource: { resourceType: 'Patient' } }, { fullUrl: 'http://a/Patient/1', resource: { resourceType: 'Patient' } }] },
    'bdl-8 failed': { ...bundle, entry: [{ ...bundle.entry[0], fullUrl: 'http://a/Observation/1/_history/1' }] },
    'bdl-9 failed': { resourceType: 'Bundle', type: 'document', timestamp: '2024-01-01T00:00:00Z', entry: [{ resource: { resourceType: 'Composition' } }] },
    'bdl-11 failed': { resourceType: 'Bundle', type: 'document', identifier: { system: 'a', value: 'b' }, timestamp: '2024-01-01T00:00:00Z', entry: [{ resource: { resourceType: 'Patient' } }] },
    'entry resource with errors': { ...bundle, entry: [{ ...bundle.entry[0], resource: { ...obs, status: 'nope', valueQuantity: { value: 'x' } } }] },
    'entry resource of unknown type': { ...bundle, entry: [{ ...bundle.entry[0], resource: { resourceType: 'Nope' } }] },
    'deep backbone errors': { ...questionnaire, item: [{ linkId: '1', type: 'group', item: [{ linkId: '2', type: 'group', item: [{ type: 'string', foo: 1, item: [{}] }] }] }] },
    'que invariant errors': { ...questionnaire, item: [{ linkId: '1', type: 'display', required: true, item: [{ linkId: '2', type: 'string' }] }] },
    'period invariant': { ...patient, address: [{ period: { start: '2022-01-01', end: '2021-01-01' } }] },
    'integer formats': { ...patient, multipleBirthInteger: 1.5, photo: [{ size: -1 }], telecom: [{ rank: 0 }] },
    'huge string': { ...patient, name: [{ family: 'x'.repeat(1024 * 1024 + 1) }] },
    'whitespace strings': { ...patient, name: [{ family: '  ', given: ['\n'] }] },
    'primitive array with nulls and extensions': { ...patient, name: [{ given: [null, 'a', null], _given: [{ id: 'a' }, null, null] }] },
    'primitive extension longer than the values': { ...patient, name: [{ given: ['a'], _given: [null, { id: 'b' }] }] },
    'primitive extension array for a single value': { ...patient, gender: 'male', _gender: [{ id: 'a' }] },
    'primitive extension on a complex element': { ...patient, _name: { extension: [{ url: 'http://x', valueString: 'y' }] } },
    'primitive extension object on a complex single element': { ...obs, _code: { id: 'c', extension: [{ url: 'http://x', valueString: 'y' }] } },
    'xhtml narrative': { ...patient, text: { status: 'generated', div: '<p>no div</p>' } },
    'narrative missing div': { ...patient, text: { status: 'generated' } },
    'Parameters with a resource': { resourceType: 'Parameters', parameter: [{ name: 'r', resource: { ...obs, status: 'bad' } }, { name: 'v', valueString: 'a', part: [{ name: 'p' }] }] },
  };
  const out: [string, unknown][] = Object.entries(cases).map(([k, v]) => [k, JSON.parse(JSON.stringify(v)) as unknown]);
  // own keys named like Object.prototype's, as JSON.parse makes them
  const json = JSON.stringify(obs).slice(0, -1);
  for (const extra of ['"__proto__":null', '"__proto__":{"a":null}', '"constructor":[null]', '"code":{"__proto__":{"x":1},"text":"t"}', '"_status":{"__proto__":{"id":"a"}}']) {
    out.push([`own key ${extra}`, JSON.parse(`${json},${extra}}`)]);
  }
  for (const type of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'Element', 'Quantity', 'string']) {
    out.push([`contained resourceType ${type}`, { ...obs, contained: [{ resourceType: type, id: 'a' }] }]);
  }
  return out;
}

test('systematically broken resources: same issues as @medplum/core', (t) => {
  const corpus = [...seeds, ...handMade(), ...brokenCorpus()];
  t.true(corpus.length > 3000, String(corpus.length));
  const { differing } = differences(corpus);
  t.deepEqual(differing, []);
});

test('the corpus exercises what it means to: errors, warnings, thrown errors and FHIRPath invariants', (t) => {
  const seen = new Set<string>();
  for (const [, r] of [...handMade(), ...brokenCorpus()]) {
    const a = answer(validateStructure, r).answer;
    if ('thrown' in a) seen.add(`thrown: ${a.thrown}`);
    else for (const i of a.issues as { severity: string; code: string; details: { text: string } }[]) seen.add(`${i.severity} ${i.code} ${i.details.text.replace(/ ".*| \d.*|: .*/, '')}`);
  }
  for (const expected of [
    'thrown: Primitive extension must be an object',
    'error structure Missing required property',
    'error structure Invalid additional property',
    'error structure Invalid null value',
    'error structure Expected array of values for property',
    'error structure Expected single value for property',
    'error structure Invalid JSON type',
    'error structure Invalid dateTime format',
    'error structure String must contain non-whitespace content',
    'error structure String cannot be larger than',
    'error structure Expected number to be an integer',
    'error structure Expected number to be positive',
    'error structure Invalid empty non-primitive value',
    'warning structure Conflicting choice of type properties',
    'warning structure Type of primitive extension does not match the type of property',
    'warning structure Invalid reference',
    'error invariant Constraint ext-1 not met',
    'error invariant Constraint obs-6 not met',
    'error invariant Constraint obs-3 not met',
    'error invariant Constraint dom-2 not met',
    'error invariant Constraint dom-4 not met',
    'error invariant Constraint dom-5 not met',
    'error invariant Constraint bdl-5 not met',
    'error invariant Constraint bdl-8 not met',
  ]) {
    t.true(seen.has(expected), `${expected} (seen: ${[...seen].sort().join(' | ')})`);
  }
  t.true([...seen].some((s) => s.startsWith('error invalid Unknown data type')) || [...seen].some((s) => s.includes('Unknown data type')), [...seen].join(' | '));
});

test('checkResource: the report transaction has no issues; a broken Observation gets medplum\'s messages and expressions', (t) => {
  for (const entry of report.bundle.entry!) {
    t.deepEqual(checkResource(entry.resource), []);
  }
  const broken = { ...(observation as unknown as Json), status: undefined, valueQuantity: { value: 'x' }, foo: 1 };
  const texts = checkResource(JSON.parse(JSON.stringify(broken))).map((i) => `${i.severity} ${i.details?.text} @ ${i.expression?.join()}`);
  t.true(texts.includes('error Missing required property @ Observation.status'), texts.join('\n'));
  t.true(texts.includes('error Invalid JSON type: expected number, but got string @ Observation.value[x].value'), texts.join('\n'));
  t.true(texts.includes('error Invalid additional property "foo" @ Observation.foo'), texts.join('\n'));
});
