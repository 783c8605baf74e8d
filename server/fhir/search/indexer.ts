/**
 * Turns a resource into search-index rows, one table per search-parameter type, by evaluating each
 * SearchParameter's FHIRPath expression (pre-parsed by @medplum/core) on the resource.
 */
import { evalFhirPathTyped, toTypedValue, type TypedValue } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { searchParams, type ParamDef } from '../definitions.ts';
import { dateRange, toSqlTimestamp } from './ranges.ts';
import { parseReference } from './references.ts';

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
  const typed = [toTypedValue(resource)];
  for (const param of searchParams(type).values()) {
    let values: TypedValue[];
    try {
      values = evalFhirPathTyped(param.details.parsedExpression, typed);
    } catch {
      continue; // an expression that cannot apply to this content indexes nothing
    }
    for (const v of values) {
      addValue(rows, type, id, param, v);
    }
  }
  dedupe(rows);
  for (const table of INDEX_TABLES) (into[table] as unknown[][]).push(...(rows[table] as unknown[][]));
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
    const seen = new Set<string>();
    const list = rows[table] as unknown[][];
    rows[table] = list.filter((r) => {
      const key = JSON.stringify(r);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    }) as any;
  }
}
