/**
 * Turns a resource into search-index rows, one table per search-parameter type, by evaluating each
 * SearchParameter's FHIRPath expression on the resource.
 *
 * Nearly all R4 search expressions are simple paths (`Observation.code`, `(Observation.value as Quantity)`,
 * `Observation.subject.where(resolve() is Patient)`, `Patient.telecom.where(system='phone')`); those are
 * compiled once, against the StructureDefinitions, into plain property walks that yield the same typed
 * values as FHIRPath would, at a small fraction of the cost (an absent element costs one property lookup).
 * Any other expression is evaluated with @medplum/core's FHIRPath engine, as before.
 */
import { evalFhirPathTyped, getElementDefinition, getExpressionsForResourceType, toTypedValue, type TypedValue } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { searchParams, type ParamDef } from '../definitions.ts';
import { dateRange, toSqlTimestamp } from './ranges.ts';
import { parseReference } from './references.ts';
import { limits, tooCostly } from '../limits.ts';

export interface IndexRows {
  token: [string, string, string, string | null, string | null, string | null][];
  string: [string, string, string, string, string][];
  date: [string, string, string, string, string][];
  quantity: [string, string, string, string, string | null, string | null][];
  reference: [string, string, string, string | null, string | null, string | null][];
  uri: [string, string, string, string][];
}

export const INDEX_TABLES = ['token', 'string', 'date', 'quantity', 'reference', 'uri'] as const;
export type IndexTable = (typeof INDEX_TABLES)[number];

export function emptyRows(): IndexRows {
  return { token: [], string: [], date: [], quantity: [], reference: [], uri: [] };
}

export function tableOf(param: ParamDef): IndexTable {
  return param.type === 'number' ? 'quantity' : param.type;
}

/** Longest indexed key text, in characters: B-tree entries must stay under PostgreSQL's ~2.7 kB limit. */
export const KEY_LENGTH = 256;

/** Cuts a value to the indexed length; search values are cut the same way so equality still holds. */
export function clip(value: string, length = KEY_LENGTH): string {
  return value.length > length ? value.slice(0, length) : value;
}

/** Normalises text for string search: case-folded, accents removed, whitespace collapsed. */
export function normalizeText(text: string): string {
  return text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 2 * KEY_LENGTH);
}

/** Appends the index rows of `resource` (which must have an id) to `rows`. */
export function indexResource(resource: Resource, into: IndexRows = emptyRows()): IndexRows {
  const rows = emptyRows();
  const type = resource.resourceType;
  const id = resource.id as string;
  let typed: TypedValue[] | undefined;
  for (const { param, extract } of compiledParams(type)) {
    let values: TypedValue[];
    try {
      if (extract) values = extract(resource);
      else values = evalFhirPathTyped(param.details.parsedExpression, (typed ??= [toTypedValue(resource)]));
    } catch {
      continue; // an expression that cannot apply to this content indexes nothing
    }
    for (const v of values) {
      addValue(rows, type, id, param, v);
    }
  }
  dedupe(rows);
  const total = INDEX_TABLES.reduce((n, table) => n + rows[table].length, 0);
  if (total > limits().maxIndexRows) {
    throw tooCostly(422, `${type} would need ${total} search-index rows; at most ${limits().maxIndexRows} are kept per resource`, type);
  }
  // one push per row: a spread of a long list into push() overflows the stack
  for (const table of INDEX_TABLES) for (const row of rows[table] as unknown[][]) (into[table] as unknown[][]).push(row);
  return into;
}

function addValue(rows: IndexRows, type: string, id: string, param: ParamDef, tv: TypedValue): void {
  const { value } = tv;
  if (value === undefined || value === null) return;
  const code = param.code;
  switch (param.type) {
    case 'token':
      return addToken(rows, type, id, code, tv);
    case 'string':
      for (const s of stringsOf(value)) rows.string.push([type, id, code, normalizeText(s), clip(s, 8 * KEY_LENGTH)]);
      return;
    case 'date': {
      const range = dateValue(tv);
      if (range) rows.date.push([type, id, code, toSqlTimestamp(range.low), toSqlTimestamp(range.high)]);
      return;
    }
    case 'number':
      if (typeof value === 'number') rows.quantity.push([type, id, code, String(value), null, null]);
      else if (typeof value === 'object' && typeof value.value === 'number') {
        rows.quantity.push([type, id, code, String(value.value), null, null]);
      }
      return;
    case 'quantity':
      if (typeof value === 'object' && typeof value.value === 'number') {
        const unit = value.code ?? value.unit;
        rows.quantity.push([type, id, code, String(value.value), value.system ? clip(value.system) : null, unit ? clip(unit) : null]);
      } else if (typeof value === 'number') {
        rows.quantity.push([type, id, code, String(value), null, null]);
      }
      return;
    case 'reference': {
      const ref = typeof value === 'string' ? value : value.reference;
      if (typeof ref === 'string') {
        const parsed = parseReference(ref);
        rows.reference.push([type, id, code, parsed?.type ?? null, parsed?.id ?? null, clip(ref, 8 * KEY_LENGTH)]);
      }
      return;
    }
    case 'uri':
      if (typeof value === 'string') rows.uri.push([type, id, code, clip(value, 2 * KEY_LENGTH)]);
      return;
  }
}

function addToken(rows: IndexRows, type: string, id: string, code: string, tv: TypedValue): void {
  const v = tv.value;
  const push = (system: string | undefined, c: string | undefined, text: string | undefined) => {
    if (c === undefined && text === undefined) return;
    rows.token.push([type, id, code, system === undefined ? null : clip(system), c === undefined ? null : clip(c), text === undefined ? null : normalizeText(text)]);
  };
  if (typeof v === 'string' || typeof v === 'number') return push(undefined, String(v), undefined);
  if (typeof v === 'boolean') return push(undefined, String(v), undefined);
  if (typeof v !== 'object') return;
  switch (tv.type) {
    case 'CodeableConcept':
      for (const c of v.coding ?? []) push(c.system, c.code, c.display ?? v.text);
      if (v.text) push(undefined, undefined, v.text);
      return;
    case 'Coding':
      return push(v.system, v.code, v.display);
    case 'Identifier':
      return push(v.system, v.value, v.type?.text);
    case 'ContactPoint':
      return push(undefined, v.value, undefined);
    case 'Quantity':
      return push(v.system, v.code, undefined);
    case 'Reference':
      // token parameters over a Reference (rare) match its identifier
      if (v.identifier) push(v.identifier.system, v.identifier.value, undefined);
      return;
    default:
      if (typeof v.code === 'string') push(v.system, v.code, v.display);
      else if (typeof v.value === 'string') push(v.system, v.value, undefined);
  }
}

/** The searchable strings of a value: itself, or each part of a HumanName/Address/other element. */
function stringsOf(value: any): string[] {
  if (typeof value === 'string') return [value];
  if (typeof value !== 'object') return [];
  const out: string[] = [];
  const walk = (v: any) => {
    if (typeof v === 'string') out.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k !== 'extension' && k !== 'use' && k !== 'period' && k !== 'type' && k !== 'id') walk(x);
      }
    }
  };
  walk(value);
  return out;
}

function dateValue(tv: TypedValue): { low: number; high: number } | undefined {
  const v = tv.value;
  if (typeof v === 'string') return dateRange(v);
  if (typeof v !== 'object') return undefined;
  if (tv.type === 'Period' || ('start' in v || 'end' in v)) {
    const start = v.start ? dateRange(v.start) : undefined;
    const end = v.end ? dateRange(v.end) : undefined;
    if (!start && !end) return undefined;
    return { low: start?.low ?? Number.NEGATIVE_INFINITY, high: end?.high ?? Number.POSITIVE_INFINITY };
  }
  if (tv.type === 'Timing' && Array.isArray(v.event)) {
    const ranges = v.event.map((e: string) => dateRange(e)).filter(Boolean) as { low: number; high: number }[];
    if (ranges.length === 0) return undefined;
    return { low: Math.min(...ranges.map((r) => r.low)), high: Math.max(...ranges.map((r) => r.high)) };
  }
  return undefined;
}

function dedupe(rows: IndexRows): void {
  for (const table of INDEX_TABLES) {
    const list = rows[table] as (string | null)[][];
    if (list.length < 2) continue;
    const seen = new Set<string>();
    // the owner (type, id) is the same in every row: the key is the parameter and the values (null apart from '')
    rows[table] = list.filter((r) => {
      let key = r[2] as string;
      for (let i = 3; i < r.length; i++) key += r[i] === null ? '\u0000\u0001' : `\u0000${r[i]}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    }) as any;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Compiled search expressions

/** Yields the typed values of a search parameter's expression for one resource. */
export type Extractor = (resource: Resource) => TypedValue[];

type Op =
  | { kind: 'prop'; name: string }
  | { kind: 'as'; type: string }
  | { kind: 'resolveIs'; type: string }
  | { kind: 'whereEq'; prop: string; literal: string };

type Step = (values: TypedValue[]) => TypedValue[];

const extractors = new Map<string, Extractor | null>();
const byType = new Map<string, { param: ParamDef; extract?: Extractor }[]>();

/** The parameters of a type that keep rows of their own, with their compiled extractors (undefined: use FHIRPath). */
function compiledParams(resourceType: string): { param: ParamDef; extract?: Extractor }[] {
  let list = byType.get(resourceType);
  if (!list) {
    const stored = storage(resourceType);
    list = [...searchParams(resourceType).values()]
      .filter((param) => !stored.has(param.code))
      .map((param) => ({ param, extract: extractorOf(resourceType, param) }));
    byType.set(resourceType, list);
  }
  return list;
}

/**
 * Where the rows of a parameter are kept: under its own code, or — when its values are by definition exactly
 * those of other parameters of the same type — under theirs, and then it keeps no rows of its own:
 * - a union of other parameters' expressions: Observation `combo-code` (`Observation.code |
 *   Observation.component.code`) is searched as the rows of `code` and `component-code`;
 * - another reference parameter restricted to one target type: Observation `patient`
 *   (`Observation.subject.where(resolve() is Patient)`) is searched as the rows of `subject` whose target type is
 *   Patient (an absolute reference to a Patient counts too, as resolving it would answer).
 * On the bench's report transaction this is 61 of 206 index rows (each row a heap tuple and two B-tree entries).
 */
export interface ParamStorage {
  codes: string[];
  /** Only the rows whose target type is this (a restricted reference parameter). */
  targetType?: string;
}

const storages = new Map<string, Map<string, ParamStorage>>();

/** How the rows of parameter `code` of `resourceType` are kept (its own code when not derived). */
export function storageOf(resourceType: string, code: string): ParamStorage {
  return storage(resourceType).get(code) ?? { codes: [code] };
}

function storage(resourceType: string): Map<string, ParamStorage> {
  let map = storages.get(resourceType);
  if (map) return map;
  map = new Map();
  const params = [...searchParams(resourceType).values()];
  // the branches of each parameter with a compiled extractor (the only ones whose values are known statically)
  const branches = new Map<string, string[]>();
  for (const param of params) {
    if (!extractorOf(resourceType, param)) continue;
    const list = branchesOf(resourceType, param.definition.expression ?? '');
    if (list && list.length > 0) branches.set(param.code, list.map((b) => b.trim()));
  }
  const single = new Map<string, ParamDef>(); // branch text -> the reference parameter whose only branch it is
  for (const param of params) {
    const b = branches.get(param.code);
    if (param.type === 'reference' && b?.length === 1 && !single.has(`reference|${b[0]}`)) single.set(`reference|${b[0]}`, param);
  }
  for (const param of params) {
    const b = branches.get(param.code);
    if (!b) continue;
    if (b.length === 1 && param.type === 'reference') {
      const m = /^(.*)\.where\(\(resolve\(\) is ([A-Za-z][A-Za-z0-9]*)\)\)$/.exec(b[0]);
      const base = m && single.get(`reference|${m[1]}`);
      if (base && base.code !== param.code) map.set(param.code, { codes: [base.code], targetType: m![2] });
    } else if (b.length > 1) {
      // the branches partitioned into the whole branch lists of other parameters of the same type
      const left = new Set(b);
      const codes: string[] = [];
      for (const q of params) {
        const qb = q.code === param.code || q.type !== param.type ? undefined : branches.get(q.code);
        if (qb && qb.length < b.length && qb.every((x) => left.has(x))) {
          for (const x of qb) left.delete(x);
          codes.push(q.code);
        }
      }
      if (left.size === 0 && b.length === new Set(b).size) map.set(param.code, { codes });
    }
  }
  // a parameter others are kept under keeps its own rows
  for (const s of map.values()) for (const c of s.codes) map.delete(c);
  storages.set(resourceType, map);
  return map;
}

/** The compiled extractor of a parameter, or undefined when its expression needs the FHIRPath engine. */
export function extractorOf(resourceType: string, param: ParamDef): Extractor | undefined {
  const key = `${resourceType}.${param.code}`;
  let extractor = extractors.get(key);
  if (extractor === undefined) {
    extractor = compileExpression(resourceType, param.definition.expression ?? '') ?? null;
    extractors.set(key, extractor);
  }
  return extractor ?? undefined;
}

/** Compiles the branches of `expression` that apply to `resourceType`; undefined if any is not a simple path. */
export function compileExpression(resourceType: string, expression: string): Extractor | undefined {
  const all = allBranches(resourceType, expression);
  if (!all || all.length === 0) return undefined; // left to the FHIRPath engine
  const compiled: Step[][] = [];
  for (const branch of onType(resourceType, all)) {
    const ops = parseBranch(resourceType, branch);
    const steps = ops && compileOps(resourceType, ops);
    if (!steps) return undefined;
    compiled.push(steps);
  }
  if (compiled.length === 0) return () => [];
  return (resource) => {
    const root: TypedValue[] = [{ type: resourceType, value: resource }];
    if (compiled.length === 1) return run(compiled[0], root);
    const out: TypedValue[] = [];
    for (const steps of compiled) for (const v of run(steps, root)) out.push(v);
    return out;
  };
}

/** The `|` branches of an expression as @medplum/core splits them for a type; undefined if it cannot. */
function allBranches(resourceType: string, expression: string): string[] | undefined {
  try {
    return getExpressionsForResourceType(resourceType, expression).map((atom) => atom.toString());
  } catch {
    return undefined;
  }
}

/** The branches rooted at `resourceType` (`RelatedPerson.address`, offered for Person, selects nothing there). */
function onType(resourceType: string, branches: string[]): string[] {
  return branches.filter((b) => (/^\(?([A-Z][A-Za-z0-9]*)\./.exec(b)?.[1] ?? resourceType) === resourceType);
}

/** The branches of a parameter's expression that apply to `resourceType` (undefined: not split). */
function branchesOf(resourceType: string, expression: string): string[] | undefined {
  const all = allBranches(resourceType, expression);
  return all && onType(resourceType, all);
}

function run(steps: Step[], input: TypedValue[]): TypedValue[] {
  let values = input;
  for (const step of steps) {
    if (values.length === 0) return values;
    values = step(values);
  }
  return values;
}

const IDENT = '[A-Za-z][A-Za-z0-9]*';
const AS_PATH = new RegExp(`^\\((${IDENT}(?:\\.${IDENT})*) as (${IDENT})\\)`);
const SEGMENTS: [RegExp, (m: RegExpExecArray) => Op][] = [
  [new RegExp(`^\\.where\\(\\(resolve\\(\\) is (${IDENT})\\)\\)`), (m) => ({ kind: 'resolveIs', type: m[1] })],
  [new RegExp(`^\\.where\\(\\((${IDENT}) = '([^'\\\\]*)'\\)\\)`), (m) => ({ kind: 'whereEq', prop: m[1], literal: m[2] })],
  [new RegExp(`^\\.(?:as|ofType)\\((${IDENT})\\)`), (m) => ({ kind: 'as', type: m[1] })],
  [new RegExp(`^\\.(${IDENT})(?![A-Za-z0-9(])`), (m) => ({ kind: 'prop', name: m[1] })],
];

/**
 * `Type.a.b`, `(Type.a as T).b`, `.as(T)`, `.ofType(T)`, `.where(resolve() is T)`, `.where(p = 'x')`.
 * `.as(T)` keeps the values of type T, as FHIRPath defines it (@medplum/core 4.5 lets every value through,
 * which in R4 only matters for Condition's onset-* and abatement-* parameters).
 */
function parseBranch(resourceType: string, text: string): Op[] | undefined {
  const ops: Op[] = [];
  let rest = text.trim();
  const asPath = AS_PATH.exec(rest);
  if (asPath) {
    const [root, ...props] = asPath[1].split('.');
    if (root !== resourceType) return undefined;
    for (const name of props) ops.push({ kind: 'prop', name });
    ops.push({ kind: 'as', type: asPath[2] });
    rest = rest.slice(asPath[0].length);
  } else {
    if (!rest.startsWith(resourceType) || rest[resourceType.length] !== '.') return undefined;
    rest = rest.slice(resourceType.length);
  }
  while (rest.length > 0) {
    let matched = false;
    for (const [re, make] of SEGMENTS) {
      const m = re.exec(rest);
      if (!m) continue;
      ops.push(make(m));
      rest = rest.slice(m[0].length);
      matched = true;
      break;
    }
    if (!matched) return undefined;
  }
  return ops.length > 0 && ops[0].kind === 'prop' ? ops : undefined;
}

const PRIMITIVE = /^[a-z]/;

/** Resolves each property against the type definitions; undefined when a type cannot be known statically. */
function compileOps(resourceType: string, ops: Op[]): Step[] | undefined {
  const steps: Step[] = [];
  /** The static type of the current values, or undefined when they may be of several types (a choice). */
  let current: string | undefined = resourceType;
  for (const op of ops) {
    switch (op.kind) {
      case 'prop': {
        if (!current || current === 'Resource' || current.includes('/')) return undefined;
        const element = getElementDefinition(current, op.name);
        if (!element || element.type.length === 0) return undefined;
        const codes = element.type.map((t) => t.code);
        if (codes.some((c) => !c || c.includes('/') || c === 'Resource' || c === 'DomainResource')) return undefined;
        const choice = element.path.endsWith('[x]');
        const keys: [string, string][] = choice ? codes.map((c) => [`${op.name}${c[0].toUpperCase()}${c.slice(1)}`, c]) : [[op.name, codes[0]]];
        steps.push(propertyStep(keys));
        current = keys.length === 1 ? keys[0][1] : undefined;
        break;
      }
      case 'as':
        steps.push((values) => values.filter((v) => v.type === op.type));
        current = op.type;
        break;
      case 'resolveIs':
        steps.push((values) => values.filter((v) => referenceType(v.value) === op.type));
        break;
      case 'whereEq':
        if (!current || PRIMITIVE.test(current)) return undefined;
        steps.push((values) => values.filter((v) => v.value?.[op.prop] === op.literal));
        break;
    }
  }
  return steps;
}

/** Reads the property (or, for a choice element, whichever of its typed properties is present). */
function propertyStep(keys: [string, string][]): Step {
  return (values) => {
    const out: TypedValue[] = [];
    for (const { value } of values) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) continue;
      for (const [key, type] of keys) {
        const x = value[key];
        if (x === undefined || x === null) continue;
        if (Array.isArray(x)) {
          for (const item of x) if (item !== undefined && item !== null) out.push({ type, value: item });
        } else {
          out.push({ type, value: x });
        }
      }
    }
    return out;
  };
}

/** The resource type `resolve()` would give a Reference (as @medplum/core's FHIRPath does, without fetching). */
function referenceType(value: any): string | undefined {
  let ref: string | undefined;
  if (typeof value === 'string') ref = value;
  else if (value && typeof value === 'object') {
    if (value.resource && typeof value.resource === 'object') return value.resource.resourceType;
    if (typeof value.reference === 'string') ref = value.reference;
    else if (value.type && value.identifier) ref = `${value.type}?identifier=`;
  }
  if (ref === undefined) return undefined;
  if (ref.includes('?')) return ref.split('?')[0];
  if (ref.includes('/')) return ref.split('/')[0];
  return undefined;
}
