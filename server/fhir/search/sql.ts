/**
 * Builds the SQL of a search from a SearchRequest: one EXISTS sub-query per clause against the index table
 * of the parameter's type, keyed by the owner (type, id). Chains and `_has` nest the same builder.
 */
import { tableOf } from './indexer.ts';
import type { Clause, SearchRequest, SortKey } from './parse.ts';
import { splitPipe, splitPrefix, unescape, type Prefix } from './parse.ts';
import { dateRange, numberRange, toSqlTimestamp } from './ranges.ts';
import { clip, KEY_LENGTH, normalizeText } from './indexer.ts';
import { parseReference } from './references.ts';
import { badRequest, OperationOutcomeError } from '@medplum/core';

export class Params {
  readonly values: unknown[] = [];
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

let aliasCounter = 0;
function alias(prefix: string): string {
  aliasCounter = (aliasCounter + 1) % 1_000_000;
  return `${prefix}${aliasCounter}`;
}

/** SQL condition (over owner columns `typeCol`/`idCol`) for one clause. */
export function clauseSql(clause: Clause, typeCol: string, idCol: string, p: Params): string {
  switch (clause.kind) {
    case 'id': {
      const cond = `${idCol} = ANY(${p.add(clause.values.map(unescape))}::text[])`;
      return clause.not ? `NOT (${cond})` : cond;
    }
    case 'lastUpdated': {
      // owner is either the main resource row or a chained target: read the column through the resource table
      if (typeCol === 'r.type') {
        return `(${clause.values.map((v) => dateCondition(v, 'r.last_updated', 'r.last_updated', p)).join(' OR ')})`;
      }
      const r = alias('lu');
      const conds = clause.values.map((v) => dateCondition(v, `${r}.last_updated`, `${r}.last_updated`, p));
      return `EXISTS (SELECT 1 FROM resource ${r} WHERE ${r}.type = ${typeCol} AND ${r}.id = ${idCol} AND (${conds.join(' OR ')}))`;
    }
    case 'chain': {
      const c = alias('c');
      const inner = clauseSql(clause.inner, `${c}.target_type`, `${c}.target_id`, p);
      return `EXISTS (SELECT 1 FROM idx_reference ${c} WHERE ${c}.type = ${typeCol} AND ${c}.id = ${idCol} AND ${c}.param = ${p.add(
        clause.param.code
      )} AND ${c}.target_type = ANY(${p.add(clause.targetTypes)}::text[]) AND ${inner})`;
    }
    case 'has': {
      const h = alias('h');
      const inner = clauseSql(clause.inner, `${h}.type`, `${h}.id`, p);
      return `EXISTS (SELECT 1 FROM idx_reference ${h} WHERE ${h}.target_id = ${idCol} AND ${h}.param = ${p.add(
        clause.refParam.code
      )} AND ${h}.type = ${p.add(clause.sourceType)} AND ${h}.target_type = ${typeCol} AND ${inner})`;
    }
    case 'param':
      return paramSql(clause, typeCol, idCol, p);
  }
}

function paramSql(clause: Extract<Clause, { kind: 'param' }>, typeCol: string, idCol: string, p: Params): string {
  const { param, modifier, values } = clause;
  const table = tableOf(param);
  const i = alias('i');
  const owner = `${i}.id = ${idCol} AND ${i}.type = ${typeCol} AND ${i}.param = ${p.add(param.code)}`;
  if (modifier === 'missing') {
    const exists = `EXISTS (SELECT 1 FROM idx_${table} ${i} WHERE ${owner})`;
    return values[0] === 'true' ? `NOT ${exists}` : exists;
  }
  const conds = values.map((v) => valueSql(param.type, modifier, v, i, p));
  const any = `EXISTS (SELECT 1 FROM idx_${table} ${i} WHERE ${owner} AND (${conds.join(' OR ')}))`;
  return modifier === 'not' ? `NOT ${any}` : any;
}

function valueSql(type: string, modifier: string | undefined, value: string, i: string, p: Params): string {
  switch (type) {
    case 'token':
      return tokenSql(modifier, value, i, p);
    case 'string': {
      const v = unescape(value);
      if (modifier === 'exact') return `${i}.value = ${p.add(clip(v, 8 * KEY_LENGTH))}`;
      const norm = likeEscape(normalizeText(v));
      return modifier === 'contains' ? `${i}.norm LIKE ${p.add(`%${norm}%`)}` : `${i}.norm LIKE ${p.add(`${norm}%`)}`;
    }
    case 'date':
      return dateCondition(value, `${i}.low`, `${i}.high`, p);
    case 'number':
    case 'quantity':
      return quantitySql(value, i, p);
    case 'reference':
      return referenceSql(modifier, value, i, p);
    case 'uri': {
      const v = unescape(value);
      const u = clip(v, 2 * KEY_LENGTH);
      return modifier === 'below' ? `${i}.value LIKE ${p.add(`${likeEscape(u)}%`)}` : `${i}.value = ${p.add(u)}`;
    }
  }
  throw new Error(`unsupported parameter type ${type}`);
}

function tokenSql(modifier: string | undefined, value: string, i: string, p: Params): string {
  if (modifier === 'text') {
    const norm = likeEscape(normalizeText(unescape(value)));
    return `(${i}.text LIKE ${p.add(`${norm}%`)} OR ${i}.text LIKE ${p.add(`% ${norm}%`)})`;
  }
  const parts = splitPipe(value);
  if (parts.length === 1) return `${i}.code = ${p.add(clip(parts[0]))}`;
  const system = clip(parts[0]);
  const code = clip(unescape(parts[1]));
  if (system === '') return `(${i}.system IS NULL AND ${i}.code = ${p.add(code)})`;
  if (code === '') return `${i}.system = ${p.add(system)}`;
  return `(${i}.code = ${p.add(code)} AND ${i}.system = ${p.add(system)})`;
}

function referenceSql(modifier: string | undefined, value: string, i: string, p: Params): string {
  const v = unescape(value);
  const parsed = parseReference(v);
  if (modifier) {
    // `subject:Patient=123`
    return `(${i}.target_type = ${p.add(modifier)} AND ${i}.target_id = ${p.add(parsed?.id ?? v)})`;
  }
  if (parsed) return `(${i}.target_id = ${p.add(parsed.id)} AND ${i}.target_type = ${p.add(parsed.type)})`;
  if (/^[A-Za-z0-9\-.]{1,64}$/.test(v)) return `${i}.target_id = ${p.add(v)}`;
  return `${i}.url = ${p.add(clip(v, 8 * KEY_LENGTH))}`;
}

/** FHIR date comparison of a search value's range against an indexed [low, high] range. */
export function dateCondition(value: string, low: string, high: string, p: Params): string {
  const [prefix, text] = splitPrefix(value);
  const range = dateRange(text);
  if (!range) throw new OperationOutcomeError(badRequest(`'${value}' is not a valid date`));
  let loRef: string | undefined;
  let hiRef: string | undefined;
  const lo = () => (loRef ??= `${p.add(toSqlTimestamp(range.low))}::timestamptz`);
  const hi = () => (hiRef ??= `${p.add(toSqlTimestamp(range.high))}::timestamptz`);
  return rangeCondition(prefix, low, high, lo, hi);
}

/** FHIR prefix semantics of a search range [lo, hi] against a stored range [low, high]. */
function rangeCondition(prefix: Prefix, low: string, high: string, lo: () => string, hi: () => string): string {
  switch (prefix) {
    case 'eq':
      return `(${low} >= ${lo()} AND ${high} <= ${hi()})`;
    case 'ne':
      return `NOT (${low} >= ${lo()} AND ${high} <= ${hi()})`;
    case 'lt':
      return `${low} < ${lo()}`;
    case 'gt':
      return `${high} > ${hi()}`;
    case 'le':
      return `${low} <= ${hi()}`;
    case 'ge':
      return `${high} >= ${lo()}`;
    case 'sa':
      return `${low} > ${hi()}`;
    case 'eb':
      return `${high} < ${lo()}`;
    case 'ap':
      return `(${low} <= ${hi()} AND ${high} >= ${lo()})`;
  }
}

function quantitySql(value: string, i: string, p: Params): string {
  const [prefix, rest] = splitPrefix(value);
  const parts = rest.split('|');
  const range = numberRange(parts[0]);
  if (!range) throw new OperationOutcomeError(badRequest(`'${value}' is not a number`));
  const v = `${i}.value`;
  let cond: string;
  let exactRef: string | undefined;
  const exact = () => (exactRef ??= p.add(range.value));
  switch (prefix) {
    case 'eq':
      cond = `(${v} >= ${p.add(range.low)}::numeric AND ${v} < ${p.add(range.high)}::numeric)`;
      break;
    case 'ne':
      cond = `NOT (${v} >= ${p.add(range.low)}::numeric AND ${v} < ${p.add(range.high)}::numeric)`;
      break;
    case 'lt':
    case 'eb':
      cond = `${v} < ${exact()}::numeric`;
      break;
    case 'gt':
    case 'sa':
      cond = `${v} > ${exact()}::numeric`;
      break;
    case 'le':
      cond = `${v} <= ${exact()}::numeric`;
      break;
    case 'ge':
      cond = `${v} >= ${exact()}::numeric`;
      break;
    case 'ap': {
      // ±10 % of the value, as the spec suggests
      const n = Number(range.value);
      const d = Math.abs(n) * 0.1;
      cond = `(${v} >= ${p.add(String(n - d))}::numeric AND ${v} <= ${p.add(String(n + d))}::numeric)`;
      break;
    }
  }
  const system = parts[1];
  const code = parts[2];
  if (code) cond += ` AND ${i}.code = ${p.add(clip(code))}`;
  if (system) cond += ` AND ${i}.system = ${p.add(clip(system))}`;
  return `(${cond})`;
}

function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** ORDER BY expressions for the sort keys, ending with a stable tie-break. */
export function orderBySql(sort: SortKey[], p: Params): string {
  const keys = sort.map((k) => {
    const dir = k.descending ? 'DESC' : 'ASC';
    if (k.code === '_id') return `r.id ${dir}`;
    if (k.code === '_lastUpdated') return `r.last_updated ${dir}`;
    const param = k.param!;
    const table = tableOf(param);
    const col = { token: 'code', string: 'norm', date: k.descending ? 'high' : 'low', quantity: 'value', reference: 'target_id', uri: 'value' }[
      table
    ];
    const agg = k.descending ? 'max' : 'min';
    return `(SELECT ${agg}(s.${col}) FROM idx_${table} s WHERE s.id = r.id AND s.type = r.type AND s.param = ${p.add(param.code)}) ${dir} NULLS LAST`;
  });
  keys.push('r.created ASC', 'r.id ASC');
  return keys.join(', ');
}

/** WHERE clause over `resource r` for a search request. */
export function whereSql(req: SearchRequest, p: Params): string {
  const conds = [`r.type = ${p.add(req.resourceType)}`, 'NOT r.deleted'];
  if (req.snapshot) conds.push(`r.created <= ${p.add(req.snapshot)}::timestamptz`);
  for (const clause of req.clauses) conds.push(clauseSql(clause, 'r.type', 'r.id', p));
  return conds.join(' AND ');
}
