/**
 * Builds the SQL of a search from a SearchRequest: one EXISTS sub-query per clause against the index table
 * of the parameter's type, keyed by the owner (type, id). Chains and `_has` nest the same builder.
 */
import type { ParamDef } from '../definitions.ts';
import { storageOf, tableOf, type ParamStorage } from './indexer.ts';
import type { Clause, SearchRequest, SortKey } from './parse.ts';
import { splitPipe, splitPrefix, unescape, type Prefix } from './parse.ts';
import { dateRange, numberRange, toSqlTimestamp } from './ranges.ts';
import { clip, KEY_LENGTH, normalizeText } from './indexer.ts';
import { parseReference } from './references.ts';
import { badRequest, OperationOutcomeError } from '@medplum/core';

/**
 * The values of one statement and its table aliases. The text built with one Params depends only on the shape
 * of the search (its parameters, modifiers, prefixes and the number of values), never on the values: those are
 * only `$n` parameters, and aliases are numbered within the statement. So the same shape gives byte-identical
 * text, which PostgreSQL can keep as a prepared statement (server/db/database.ts).
 */
export class Params {
  readonly values: unknown[] = [];
  private aliases = 0;
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
  /** A table alias not used before in this statement. */
  alias(prefix: string): string {
    return `${prefix}${++this.aliases}`;
  }
}

/**
 * SQL condition (over owner columns `typeCol`/`idCol`) for one clause. `typeIn`: an array expression the owner's
 * type is also within, when `typeCol` is a column (a chain over several target types), so that the lookup
 * indexes, which start with the type, can be used.
 *
 * `probe`: the clause is checked for each candidate owner of a driven search (whereSql), so each of its EXISTS
 * is a planning fence (OFFSET 0): it stays a sub-plan run per candidate, by the owner index. Without the fence
 * the planner may join it instead, and a generic plan (a prepared statement's, which knows no values and so
 * takes every value for a rare one) can then read a common value's whole lookup for each candidate (seen: a
 * LOINC code's 1,041 rows read again for each of a patient's 15 Observations).
 */
export function clauseSql(clause: Clause, typeCol: string, idCol: string, p: Params, typeIn?: string, probe = false, types?: readonly string[]): string {
  const fence = probe ? ' OFFSET 0' : '';
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
      const r = p.alias('lu');
      const conds = clause.values.map((v) => dateCondition(v, `${r}.last_updated`, `${r}.last_updated`, p));
      return `EXISTS (SELECT 1 FROM resource ${r} WHERE ${r}.type = ${typeCol} AND ${r}.id = ${idCol} AND (${conds.join(' OR ')})${fence})`;
    }
    case 'chain': {
      const c = p.alias('c');
      return `EXISTS (SELECT 1 FROM idx_reference ${c} WHERE ${c}.type = ${typeCol} AND ${c}.id = ${idCol} AND ${chainSql(clause, c, p, probe)}${fence})`;
    }
    case 'has': {
      const h = p.alias('h');
      const inner = clauseSql(clause.inner, `${h}.type`, `${h}.id`, p, undefined, probe);
      return `EXISTS (SELECT 1 FROM idx_reference ${h} WHERE ${h}.target_id = ${idCol} AND ${paramIs(h, clause.refParam, p)} AND ${h}.type = ${p.add(
        clause.sourceType
      )} AND ${h}.target_type = ${typeCol} AND ${inner}${fence})`;
    }
    case 'param':
      return paramSql(clause, typeCol, idCol, p, typeIn, fence, types);
  }
}

/**
 * A chain's conditions over its reference row `c`: the parameter, the target types, the inner clause on the
 * target (a probe of each target when the chain itself is probed: see clauseSql).
 */
function chainSql(clause: Extract<Clause, { kind: 'chain' }>, c: string, p: Params, probe = false): string {
  const types = `${p.add(clause.targetTypes)}::text[]`;
  const inner =
    clause.targetTypes.length === 1
      ? clauseSql(clause.inner, p.add(clause.targetTypes[0]), `${c}.target_id`, p, undefined, probe)
      : clauseSql(clause.inner, `${c}.target_type`, `${c}.target_id`, p, types, probe, clause.targetTypes);
  return `${paramIs(c, clause.param, p)} AND ${c}.target_type = ANY(${types}) AND ${inner}`;
}

function paramSql(clause: Extract<Clause, { kind: 'param' }>, typeCol: string, idCol: string, p: Params, typeIn: string | undefined, fence: string, types?: readonly string[]): string {
  const { param, modifier, values } = clause;
  const table = tableOf(param);
  const i = p.alias('i');
  const within = typeIn ? ` AND ${i}.type = ANY(${typeIn})` : '';
  const owner = `${i}.id = ${idCol} AND ${i}.type = ${typeCol}${within} AND ${paramIs(i, param, p, types)}`;
  if (modifier === 'missing') {
    const exists = `EXISTS (SELECT 1 FROM idx_${table} ${i} WHERE ${owner}${fence})`;
    return values[0] === 'true' ? `NOT ${exists}` : exists;
  }
  const conds = values.map((v) => valueSql(param.type, modifier, v, i, p));
  const any = `EXISTS (SELECT 1 FROM idx_${table} ${i} WHERE ${owner} AND (${conds.join(' OR ')})${fence})`;
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

/** Characters of a url reference in its index key (migration 043's idx_reference_url). */
const URL_KEY = 256;

function referenceSql(modifier: string | undefined, value: string, i: string, p: Params): string {
  const v = unescape(value);
  const parsed = parseReference(v);
  if (modifier) {
    // `subject:Patient=123`
    return `(${i}.target_type = ${p.add(modifier)} AND ${i}.target_id = ${p.add(parsed?.id ?? v)})`;
  }
  if (parsed) return `(${i}.target_id = ${p.add(parsed.id)} AND ${i}.target_type = ${p.add(parsed.type)})`;
  if (/^[A-Za-z0-9\-.]{1,64}$/.test(v)) return `${i}.target_id = ${p.add(v)}`;
  // a reference that parses as Type/id is kept by target; idx_reference_url holds the others, by their start
  const url = clip(v, 8 * KEY_LENGTH);
  return `(${i}.target_id IS NULL AND left(${i}.url, ${URL_KEY}) = ${p.add(Array.from(url).slice(0, URL_KEY).join(''))} AND ${i}.url = ${p.add(url)})`;
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

/**
 * The condition on the `param` column of index rows `i` for parameter `param` — its own code, or the codes (and
 * target type) of the parameters its rows are kept under (indexer.ts `storageOf`). `types`: the owner types
 * when the owner may be of several (a chain over several targets); one condition per way of keeping them.
 */
export function paramIs(i: string, param: ParamDef, p: Params, types?: readonly string[]): string {
  const one = (s: ParamStorage) =>
    (s.codes.length === 1 ? `${i}.param = ${p.add(s.codes[0])}` : `${i}.param = ANY(${p.add(s.codes)}::text[])`) +
    (s.targetType ? ` AND ${i}.target_type = ${p.add(s.targetType)}` : '');
  if (!types || types.length <= 1) return one(storageOf(types?.[0] ?? param.resourceType, param.code));
  const ways = new Map<string, { storage: ParamStorage; types: string[] }>();
  for (const t of types) {
    const storage = storageOf(t, param.code);
    const key = JSON.stringify(storage);
    const way = ways.get(key) ?? { storage, types: [] };
    way.types.push(t);
    ways.set(key, way);
  }
  if (ways.size === 1) return one([...ways.values()][0].storage);
  return `(${[...ways.values()].map((w) => `(${i}.type = ANY(${p.add(w.types)}::text[]) AND ${one(w.storage)})`).join(' OR ')})`;
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
    return `(SELECT ${agg}(s.${col}) FROM idx_${table} s WHERE s.id = r.id AND s.type = r.type AND ${paramIs('s', param, p)}) ${dir} NULLS LAST`;
  });
  keys.push('r.created ASC', 'r.id ASC');
  return keys.join(', ');
}

/**
 * WHERE clause over `resource r` for a search request.
 *
 * A search that names one target of a reference (`subject=Patient/…`), or reaches one through a chain or
 * `_has`, is driven by that clause: its lookup (idx_reference_target) gives the candidate owners, the other
 * clauses are probed for each candidate by its owner key (the idx_*_owner indexes) before any `resource` row is
 * read, and only the survivors are read by primary key. The sub-query is a planning fence (OFFSET 0): its plan
 * cannot turn into a walk of the whole type in (created, id) order, and planning stays cheap with many clauses.
 * Without such a clause (or with `_id`, read by primary key) every clause is an EXISTS over `r` and the planner
 * chooses the order from the statistics.
 */
export function whereSql(req: SearchRequest, p: Params): string {
  const type = p.add(req.resourceType);
  const conds = [`r.type = ${type}`, 'NOT r.deleted'];
  if (req.snapshot) conds.push(`r.created <= ${p.add(req.snapshot)}::timestamptz`);
  const driver = pickDriver(req.clauses);
  let rest = req.clauses;
  if (driver) {
    const d = p.alias('d');
    const probed = req.clauses.filter((c) => c !== driver && c.kind !== 'lastUpdated');
    const { select, where } = driverSql(driver, type, d, p);
    const probes = probed.map((c) => ` AND ${clauseSql(c, type, `${d}.${select}`, p, undefined, true)}`).join('');
    conds.push(`r.id IN (SELECT ${d}.${select} FROM idx_reference ${d} WHERE ${where}${probes} OFFSET 0)`);
    rest = req.clauses.filter((c) => c.kind === 'lastUpdated');
  }
  for (const clause of rest) conds.push(clauseSql(clause, 'r.type', 'r.id', p));
  return conds.join(' AND ');
}

type DriverClause = Extract<Clause, { kind: 'param' | 'chain' | 'has' }>;

/** The clause that drives a search (see whereSql), or undefined to leave the order to the planner. */
export function pickDriver(clauses: readonly Clause[]): DriverClause | undefined {
  if (clauses.some((c) => c.kind === 'id' && !c.not)) return undefined; // read by primary key
  const rank = (c: Clause): number => {
    if (c.kind === 'param') return c.param.type === 'reference' && isTargetLookup(c) ? 0 : Infinity;
    if (c.kind === 'chain') return selective(c.inner) ? 1 : Infinity;
    if (c.kind === 'has') return selective(c.inner) ? 2 : Infinity;
    return Infinity;
  };
  let best: DriverClause | undefined;
  for (const c of clauses) if (rank(c) < (best ? rank(best) : Infinity)) best = c as DriverClause;
  return best;
}

/** A reference clause that names its targets (not `:missing`). */
function isTargetLookup(c: Extract<Clause, { kind: 'param' }>): boolean {
  return c.modifier !== 'missing' && c.modifier !== 'not';
}

/** A clause whose lookup index finds few owners: an exact value of a token, uri, string prefix, reference or id. */
function selective(c: Clause): boolean {
  switch (c.kind) {
    case 'id':
      return !c.not;
    case 'chain':
    case 'has':
      return selective(c.inner);
    case 'lastUpdated':
      return false;
    case 'param': {
      const { param, modifier, values } = c;
      if (param.type === 'reference') return isTargetLookup(c);
      if (param.type === 'token') return modifier === undefined && values.every((v) => splitPipe(v).at(-1) !== '');
      if (param.type === 'uri') return modifier === undefined;
      if (param.type === 'string') return modifier === undefined;
      return false;
    }
  }
}

/** The driver's lookup over `idx_reference d`: which column is the owner of the search, and the condition. */
function driverSql(c: DriverClause, type: string, d: string, p: Params): { select: string; where: string } {
  switch (c.kind) {
    case 'param': {
      const conds = c.values.map((v) => referenceSql(c.modifier, v, d, p));
      return { select: 'id', where: `${d}.type = ${type} AND ${paramIs(d, c.param, p)} AND (${conds.join(' OR ')})` };
    }
    case 'chain':
      return { select: 'id', where: `${d}.type = ${type} AND ${chainSql(c, d, p)}` };
    case 'has': {
      const inner = clauseSql(c.inner, `${d}.type`, `${d}.id`, p);
      return {
        select: 'target_id',
        where: `${d}.type = ${p.add(c.sourceType)} AND ${paramIs(d, c.refParam, p)} AND ${d}.target_type = ${type} AND ${inner}`,
      };
    }
  }
}
