/**
 * Parses a FHIR search query (the `key=value` pairs of a GET query or a POST `_search` form) into a
 * SearchRequest. Unknown parameters are collected so that the caller can warn (lenient) or refuse
 * (`Prefer: handling=strict`); malformed values of known parameters are always refused.
 */
import { badRequest, OperationOutcomeError } from '@medplum/core';
import { isSupportedResourceType, searchParams, type ParamDef } from '../definitions.ts';
import { limits, tooCostly } from '../limits.ts';

export type Clause =
  | { kind: 'param'; param: ParamDef; modifier?: string; values: string[] }
  | { kind: 'id'; values: string[]; not?: boolean }
  | { kind: 'lastUpdated'; values: string[] }
  | { kind: 'chain'; param: ParamDef; targetTypes: string[]; inner: Clause }
  | { kind: 'has'; sourceType: string; refParam: ParamDef; inner: Clause };

export interface SortKey {
  code: string;
  param?: ParamDef; // undefined for _id and _lastUpdated
  descending: boolean;
}

export interface IncludeSpec {
  sourceType: string; // '*' not supported; must name a type
  param: ParamDef;
  targetType?: string;
  reverse: boolean;
  iterate: boolean;
}

export interface SearchRequest {
  resourceType: string;
  clauses: Clause[];
  sort: SortKey[];
  count: number;
  offset: number;
  total: 'none' | 'estimate' | 'accurate' | undefined;
  summary?: 'count' | 'true' | 'false' | 'data' | 'text';
  elements?: string[];
  includes: IncludeSpec[];
  /** ISO instant that freezes the result set for paging (resources created later are excluded). */
  snapshot?: string;
  /** Keyset position of a deep page (the `next` link beyond the largest `_offset`): after this row, in the default order. */
  cursor?: { created: string; id: string };
  /** Parameters that were not understood (ignored unless strict handling). */
  unknown: string[];
  /**
   * Chains without a type modifier whose parameter exists on several target types (`subject.identifier`:
   * Patient, Group, Device, Location): searched over all of them, refused with strict handling.
   */
  ambiguousChains: { key: string; types: string[] }[];
  /** The query as received, for paging links. */
  original: [string, string][];
}

export const DEFAULT_COUNT = 20;

/** Parameters that affect the result shape, not the matching set. */
const RESULT_PARAMS = new Set(['_sort', '_count', '_offset', '_cursor', '_total', '_summary', '_elements', '_include', '_revinclude', '_snapshot', '_format', '_pretty']);

export function parseSearch(resourceType: string, pairs: Iterable<[string, string]>): SearchRequest {
  const req: SearchRequest = {
    resourceType,
    clauses: [],
    sort: [],
    count: DEFAULT_COUNT,
    offset: 0,
    total: undefined,
    includes: [],
    unknown: [],
    ambiguousChains: [],
    original: [],
  };
  for (const [key, value] of pairs) {
    req.original.push([key, value]);
    if (RESULT_PARAMS.has(key) || key.startsWith('_include:') || key.startsWith('_revinclude:')) {
      parseResultParam(req, key, value);
      continue;
    }
    const clause = parseClause(resourceType, key, value, req.unknown);
    if (clause) req.clauses.push(clause);
    if (clause?.kind === 'chain' && !key.split('.')[0].includes(':') && clause.targetTypes.length > 1) {
      req.ambiguousChains.push({ key, types: clause.targetTypes });
    }
  }
  if (req.cursor && req.sort.length > 0) throw invalid('_cursor pages the default order only; it cannot be combined with _sort', '_cursor');
  if (req.cursor && req.offset > 0) throw invalid('_cursor and _offset cannot be combined', '_cursor');
  return req;
}

/** `_count` and `_offset` of a search or history page, checked against the limits (400 beyond). */
export function pageParam(key: '_count' | '_offset', value: string): number {
  const n = nonNegativeInt(key, value);
  const max = key === '_count' ? limits().maxCount : limits().maxOffset;
  if (n > max) {
    throw tooCostly(400, key === '_count' ? `_count must be at most ${max}` : `_offset must be at most ${max}; page further with the Bundle's next link`, key);
  }
  return n;
}

/** The `_cursor` of a deep page: base64url of JSON [timestamp, id, …] (the last row of the page before). */
export function encodeCursor(...parts: (string | number)[]): string {
  return Buffer.from(JSON.stringify(parts)).toString('base64url');
}

const CURSOR_TIME_RE = /^\d{4}-\d{2}-\d{2}[ T][0-9:.]+([+-]\d{2}(:?\d{2})?|Z)$/;
const CURSOR_ID_RE = /^[A-Za-z0-9\-.]{1,64}$/;

/** A `_cursor` back to [timestamp, id] (search) or [timestamp, id, version] (history); 400 when it is anything else. */
export function decodeCursor(value: string, withVersion: boolean): [string, string, number] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const ok =
    Array.isArray(parsed) && parsed.length === (withVersion ? 3 : 2) &&
    typeof parsed[0] === 'string' && CURSOR_TIME_RE.test(parsed[0]) &&
    typeof parsed[1] === 'string' && CURSOR_ID_RE.test(parsed[1]) &&
    (!withVersion || (Number.isInteger(parsed[2]) && parsed[2] > 0 && parsed[2] < 2 ** 31));
  if (!ok) throw invalid('Malformed _cursor (use the next link as given)', '_cursor');
  const [time, id, version] = parsed as [string, string, number?];
  return [time, id, version ?? 0];
}

function parseResultParam(req: SearchRequest, key: string, value: string): void {
  const base = key.split(':')[0];
  switch (base) {
    case '_count':
      req.count = pageParam('_count', value);
      return;
    case '_offset':
      req.offset = pageParam('_offset', value);
      return;
    case '_cursor': {
      const [created, id] = decodeCursor(value, false);
      req.cursor = { created, id };
      return;
    }
    case '_total':
      if (!['none', 'estimate', 'accurate'].includes(value)) throw invalid(`_total must be none, estimate or accurate`, key);
      req.total = value as SearchRequest['total'];
      return;
    case '_summary':
      if (!['count', 'true', 'false', 'data', 'text'].includes(value)) throw invalid(`Unknown _summary value '${value}'`, key);
      req.summary = value as SearchRequest['summary'];
      return;
    case '_elements':
      req.elements = value.split(',').map((e) => e.trim()).filter(Boolean);
      return;
    case '_snapshot':
      if (Number.isNaN(Date.parse(value))) throw invalid('Malformed _snapshot', key);
      req.snapshot = new Date(value).toISOString();
      return;
    case '_sort':
      for (const part of value.split(',').map((s) => s.trim()).filter(Boolean)) {
        const descending = part.startsWith('-');
        const code = descending ? part.slice(1) : part;
        if (code === '_id' || code === '_lastUpdated') {
          req.sort.push({ code, descending });
          continue;
        }
        const param = searchParams(req.resourceType).get(code);
        if (!param) throw invalid(`Unknown sort parameter '${code}' for ${req.resourceType}`, key);
        req.sort.push({ code, param, descending });
      }
      return;
    case '_include':
    case '_revinclude':
      req.includes.push(parseInclude(req, key, value));
      return;
    default:
      return; // _format, _pretty: handled by the HTTP layer
  }
}

function parseInclude(req: SearchRequest, key: string, value: string): IncludeSpec {
  const reverse = key.startsWith('_revinclude');
  const iterate = key.endsWith(':iterate') || key.endsWith(':recurse');
  const [sourceType, code, targetType] = value.split(':');
  if (!sourceType || !code) throw invalid(`${key} must be Type:parameter[:targetType]`, key);
  if (!isSupportedResourceType(sourceType)) throw invalid(`Unknown resource type '${sourceType}' in ${key}`, key);
  if (!reverse && sourceType !== req.resourceType && !iterate) {
    throw invalid(`${key}=${value} must start with ${req.resourceType}`, key);
  }
  const param = searchParams(sourceType).get(code);
  if (!param || param.type !== 'reference') throw invalid(`'${code}' is not a reference parameter of ${sourceType}`, key);
  if (targetType && !isSupportedResourceType(targetType)) throw invalid(`Unknown target type '${targetType}'`, key);
  return { sourceType, param, targetType, reverse, iterate };
}

/** Parses one `key=value` into a clause, or records it as unknown and returns undefined. */
function parseClause(resourceType: string, key: string, value: string, unknown: string[]): Clause | undefined {
  if (key.startsWith('_has:')) return parseHas(resourceType, key, value, unknown);
  const dot = key.indexOf('.');
  if (dot > 0) return parseChain(resourceType, key.slice(0, dot), key.slice(dot + 1), value, unknown);
  const [code, modifier] = splitModifier(key);
  const values = splitValues(value);
  if (code === '_id') {
    if (modifier && modifier !== 'not') throw invalid(`Modifier ':${modifier}' is not supported on _id`, key);
    return { kind: 'id', values, not: modifier === 'not' };
  }
  if (code === '_lastUpdated') {
    values.forEach((v) => checkDateValue(key, v));
    return { kind: 'lastUpdated', values };
  }
  const param = searchParams(resourceType).get(code);
  if (!param) {
    unknown.push(key);
    return undefined;
  }
  checkModifier(param, modifier, key);
  if (modifier !== 'missing') values.forEach((v) => checkValue(param, v, key));
  else if (value !== 'true' && value !== 'false') throw invalid(':missing takes true or false', key);
  return { kind: 'param', param, modifier, values };
}

function parseChain(resourceType: string, head: string, rest: string, value: string, unknown: string[]): Clause | undefined {
  const [code, typeModifier] = splitModifier(head);
  const param = searchParams(resourceType).get(code);
  if (!param) {
    unknown.push(`${head}.${rest}`);
    return undefined;
  }
  if (param.type !== 'reference') throw invalid(`'${code}' is not a reference parameter and cannot be chained`, head);
  let targets = typeModifier ? [typeModifier] : param.targets;
  if (typeModifier && !param.targets.includes(typeModifier)) {
    throw invalid(`'${code}' cannot refer to ${typeModifier}`, head);
  }
  if (rest.includes('.')) throw invalid('Only one level of chaining is supported', `${head}.${rest}`);
  const [innerCode] = splitModifier(rest);
  targets = targets.filter((t) => innerCode === '_id' || innerCode === '_lastUpdated' || searchParams(t).has(innerCode));
  if (targets.length === 0) throw invalid(`No target of '${code}' has a search parameter '${innerCode}'`, `${head}.${rest}`);
  const innerUnknown: string[] = [];
  let inner: Clause | undefined;
  try {
    inner = parseClause(targets[0], rest, value, innerUnknown);
  } catch (err) {
    throw inChain(err, head);
  }
  if (!inner) {
    unknown.push(`${head}.${rest}`);
    return undefined;
  }
  return { kind: 'chain', param, targetTypes: targets, inner };
}

function parseHas(resourceType: string, key: string, value: string, unknown: string[]): Clause | undefined {
  // _has:Observation:patient:code=1234-5
  const depth = key.split('_has:').length - 1;
  if (depth > limits().maxHasDepth) throw tooCostly(400, `_has is nested ${depth} levels deep; at most ${limits().maxHasDepth}`, key.slice(0, 80));
  const parts = key.split(':');
  if (parts.length < 4) throw invalid('_has must be _has:Type:referenceParameter:parameter', key);
  const [, sourceType, refCode, ...restParts] = parts;
  if (!isSupportedResourceType(sourceType)) throw invalid(`Unknown resource type '${sourceType}' in _has`, key);
  const refParam = searchParams(sourceType).get(refCode);
  if (!refParam || refParam.type !== 'reference') throw invalid(`'${refCode}' is not a reference parameter of ${sourceType}`, key);
  if (!refParam.targets.includes(resourceType)) throw invalid(`${sourceType}.${refCode} cannot refer to ${resourceType}`, key);
  const innerUnknown: string[] = [];
  const inner = parseClause(sourceType, restParts.join(':'), value, innerUnknown);
  if (!inner) {
    unknown.push(key);
    return undefined;
  }
  return { kind: 'has', sourceType, refParam, inner };
}

const MODIFIERS: Record<string, string[]> = {
  token: ['not', 'text', 'missing'],
  string: ['exact', 'contains', 'missing'],
  date: ['missing'],
  number: ['missing'],
  quantity: ['missing'],
  reference: ['missing'],
  uri: ['below', 'missing'],
};

function checkModifier(param: ParamDef, modifier: string | undefined, key: string): void {
  if (!modifier) return;
  if (param.type === 'reference' && param.targets.includes(modifier)) return;
  if (!MODIFIERS[param.type].includes(modifier)) {
    throw invalid(`Modifier ':${modifier}' is not supported on ${param.type} parameter '${param.code}'`, key);
  }
}

export const PREFIXES = ['eq', 'ne', 'lt', 'gt', 'le', 'ge', 'sa', 'eb', 'ap'] as const;
export type Prefix = (typeof PREFIXES)[number];

/** Splits `ge2020-01-01` into its prefix and value (prefix `eq` when absent). */
export function splitPrefix(value: string): [Prefix, string] {
  const p = value.slice(0, 2) as Prefix;
  if (PREFIXES.includes(p) && value.length > 2 && !/^[a-z]/.test(value.slice(2))) return [p, value.slice(2)];
  return ['eq', value];
}

function checkValue(param: ParamDef, value: string, key: string): void {
  if (value === '') throw invalid(`Empty value for '${key}'`, key);
  if (param.type === 'date') checkDateValue(key, value);
  if (param.type === 'number' || param.type === 'quantity') {
    const [, rest] = splitPrefix(value);
    const num = rest.split('|')[0];
    if (!/^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(num)) throw invalid(`'${value}' is not a number`, key);
  }
}

function checkDateValue(key: string, value: string): void {
  const [, rest] = splitPrefix(value);
  if (!/^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/.test(rest) || Number.isNaN(Date.parse(rest.length === 4 ? `${rest}-01-01` : rest))) {
    throw invalid(`'${value}' is not a valid date`, key);
  }
}

function splitModifier(key: string): [string, string | undefined] {
  const i = key.indexOf(':');
  return i < 0 ? [key, undefined] : [key.slice(0, i), key.slice(i + 1)];
}

/** Splits a value on unescaped commas (OR), unescaping `\,` `\|` `\$` `\\`. */
export function splitValues(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\\' && i + 1 < value.length && ',$|\\'.includes(value[i + 1])) {
      cur += c + value[i + 1]; // keep escape for token/quantity splitting; removed later
      i++;
    } else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/** Splits on the first unescaped `|` and unescapes both halves. */
export function splitPipe(value: string): [string, string] | [string] {
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '\\') {
      i++;
      continue;
    }
    if (value[i] === '|') return [unescape(value.slice(0, i)), value.slice(i + 1)];
  }
  return [unescape(value)];
}

export function unescape(value: string): string {
  return value.replace(/\\([,$|\\])/g, '$1');
}

function nonNegativeInt(key: string, value: string): number {
  if (!/^\d+$/.test(value)) throw invalid(`${key} must be a non-negative integer`, key);
  return Number(value);
}

/** An error about the inner parameter of a chain, named as the caller wrote it (`subject.birthdate`). */
function inChain(err: unknown, head: string): unknown {
  if (!(err instanceof OperationOutcomeError)) return err;
  const issue = (err.outcome.issue ?? []).map((i) => ({ ...i, expression: (i.expression ?? []).map((e) => `${head}.${e}`) }));
  return new OperationOutcomeError({ ...err.outcome, issue });
}

function invalid(message: string, key: string): OperationOutcomeError {
  return new OperationOutcomeError(badRequest(message, key));
}
