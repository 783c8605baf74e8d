/**
 * RFC 8785 JSON Canonicalization Scheme (JCS), written for speed on parsed JSON (what `JSON.parse` returns):
 * the usual case copies the value with members in sorted order and lets the native JSON.stringify write it;
 * a general serialiser handles the rest (member names starting with a digit, `__proto__`).
 *
 * - Object members sorted by their names as UTF-16 code-unit sequences (JavaScript's default string sort).
 * - Strings serialised as ECMAScript `JSON.stringify` does (the escaping RFC 8785 §3.2.2.2 prescribes).
 * - Numbers serialised with ECMAScript Number-to-String (RFC 8785 §3.2.2.3): `-0` → `0`, `1e21` → `1e+21`.
 * - No whitespace.
 *
 * Refused (RFC 8785 requires I-JSON input): NaN and ±Infinity, strings or names with lone surrogates,
 * values that are not JSON (undefined inside arrays, functions, symbols, bigints). An object member whose
 * value is `undefined` is left out, as `JSON.stringify` does.
 *
 * The tests cross-check this against two independent implementations (`canonicalize`, `json-canonicalize`).
 */

export class JcsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JcsError';
  }
}

/** The canonical JSON text of `value` (a string; its UTF-8 encoding is the canonical byte sequence). */
export function canonicalize(value: unknown): string {
  let text: string;
  try {
    // Fast path: copy with members inserted in sorted order, then the native JSON.stringify, which writes
    // members in insertion order, strings and numbers exactly as RFC 8785 wants.
    text = JSON.stringify(sortedCopy(value));
  } catch (e) {
    if (e !== FALLBACK) throw e;
    // Objects with names that start with a digit (integer-like names come first in JavaScript's property
    // order, whatever the insertion order) or named __proto__: the general serialiser.
    text = serialize(value);
  }
  // JSON.stringify writes a lone surrogate as the escape \udXXX; well-formed text never contains one.
  if (text.includes('\\ud')) checkNoLoneSurrogates(text);
  return text;
}

const FALLBACK = Symbol('jcs-fallback');

function sortedCopy(v: unknown): unknown {
  if (typeof v !== 'object') {
    if (typeof v === 'string' || typeof v === 'boolean') return v;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new JcsError(`${v} is not a JSON number`);
      return v;
    }
    throw new JcsError(`a ${typeof v} is not JSON data`);
  }
  if (v === null) return null;
  if (Array.isArray(v)) {
    const n = v.length;
    const out = new Array(n);
    for (let i = 0; i < n; i++) {
      const x = v[i];
      if (x === undefined) throw new JcsError('undefined is not JSON data');
      out[i] = sortedCopy(x);
    }
    return out;
  }
  const keys = Object.keys(v);
  for (let i = 0; i < keys.length; i++) {
    const c = keys[i]!.charCodeAt(0);
    if ((c >= 48 && c <= 57) || keys[i] === '__proto__') throw FALLBACK;
  }
  keys.sort();
  const out: Record<string, unknown> = {};
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const x = (v as Record<string, unknown>)[k];
    if (x !== undefined) out[k] = sortedCopy(x);
  }
  return out;
}

function serialize(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      if (!Number.isFinite(v)) throw new JcsError(`${v} is not a JSON number`);
      return '' + v;
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) {
        const n = v.length;
        if (n === 0) return '[]';
        let s = '[' + element(v[0]);
        for (let i = 1; i < n; i++) s += ',' + element(v[i]);
        return s + ']';
      }
      const keys = Object.keys(v).sort();
      let s = '{';
      let first = true;
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        const x = (v as Record<string, unknown>)[k];
        if (x === undefined) continue;
        if (first) first = false;
        else s += ',';
        s += JSON.stringify(k) + ':' + serialize(x);
      }
      return s + '}';
    }
    default:
      throw new JcsError(`a ${typeof v} is not JSON data`);
  }
}

function element(x: unknown): string {
  if (x === undefined) throw new JcsError('undefined is not JSON data');
  return serialize(x);
}

/** Scans escapes left to right so that an escaped backslash followed by "ud8.." is not mistaken for one. */
const ESCAPE = /\\(\\|u[dD][89a-fA-F][0-9a-fA-F]{2})/g;
function checkNoLoneSurrogates(text: string): void {
  for (const m of text.matchAll(ESCAPE)) {
    if (m[1] !== '\\') throw new JcsError(`lone surrogate ${m[0]} is not allowed (RFC 8785 requires well-formed Unicode)`);
  }
}
