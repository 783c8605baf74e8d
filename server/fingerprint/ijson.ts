/**
 * I-JSON (RFC 7493) member-name uniqueness, which RFC 8785 requires of its input: `JSON.parse` silently keeps
 * the last of two members with the same name, so `{"status":"final","status":"preliminary"}` would be stored
 * as one reading while another parser (or the hospital's own) fingerprints the other. Such text is refused.
 *
 * `findDuplicateMember(text)` scans JSON text that `JSON.parse` has already accepted (so it need not check
 * syntax) and returns the first duplicate with its location, or undefined. One pass over the text: string
 * contents are skipped with `indexOf`, names are compared after unescaping (`"st\u0061tus"` is `status`), and
 * only the path of the current nesting is kept. It costs a few ms per MB.
 */

export interface DuplicateMember {
  /** The member name, unescaped. */
  name: string;
  /** FHIRPath-like location of the second occurrence, e.g. `Bundle.entry[0].resource.status`. */
  expression: string;
}

interface Frame {
  /** Member names seen in this object (FHIR objects are small: a list beats a Set), or undefined for an array. */
  names?: string[];
  /** The same names as a Set, once an object has more than SMALL_OBJECT members (a hostile object of 100,000 names). */
  set?: Set<string>;
  /** The member being read (object) or the element index (array). */
  key: string | number;
}

const QUOTE = 34;
const BACKSLASH = 92;
const COLON = 58;
const COMMA = 44;
const SMALL_OBJECT = 16;

/** The first duplicate member name in JSON text (already known to be valid JSON), or undefined. */
export function findDuplicateMember(text: string, rootName = '$'): DuplicateMember | undefined {
  const stack: Frame[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // a string: find its closing quote (one not preceded by an odd number of backslashes)
      let j = text.indexOf('"', i + 1);
      for (;;) {
        let k = j - 1;
        while (text.charCodeAt(k) === BACKSLASH) k--;
        if ((j - 1 - k) % 2 === 0) break;
        j = text.indexOf('"', j + 1);
      }
      const top = stack[stack.length - 1];
      if (top?.names) {
        // inside an object a string followed by ':' is a member name
        let k = j + 1;
        while (k < n && isSpace(text.charCodeAt(k))) k++;
        if (text.charCodeAt(k) === COLON) {
          let escaped = false;
          for (let b = i + 1; b < j; b++) if (text.charCodeAt(b) === BACKSLASH) { escaped = true; break; }
          const name = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
          if (top.set ? top.set.has(name) : top.names.includes(name)) return { name: name.slice(0, 64), expression: pathOf(rootName, stack, name) };
          if (top.set) top.set.add(name);
          else if (top.names.push(name) > SMALL_OBJECT) top.set = new Set(top.names);
          top.key = name;
          i = k + 1;
          continue;
        }
      }
      i = j + 1;
      continue;
    }
    if (c === 123 /* { */) stack.push({ names: [], key: '' });
    else if (c === 91 /* [ */) stack.push({ key: 0 });
    else if (c === 125 /* } */ || c === 93 /* ] */) stack.pop();
    else if (c === COMMA) {
      const top = stack[stack.length - 1];
      if (top && !top.names) top.key = (top.key as number) + 1;
    }
    i++;
  }
  return undefined;
}

function isSpace(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9;
}

/** `Bundle.entry[0].resource.status`: member names joined with dots, array positions in brackets. */
function pathOf(root: string, stack: Frame[], name: string): string {
  let out = root;
  // the outermost frame is the root object itself; each frame's key is the step into the next one
  for (let f = 0; f < stack.length - 1; f++) {
    const key = stack[f]!.key;
    out += typeof key === 'number' ? `[${key}]` : `.${step(key)}`;
  }
  return `${out}.${step(name)}`;
}

/** A member name as a FHIRPath step: plain names as they are, others quoted with backticks (and shortened). */
function step(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name) ? name : '`' + name.slice(0, 64).replace(/[`\\]/g, '\\$&') + '`';
}

/** The refusal's text. */
export function describeDuplicate(d: DuplicateMember): string {
  return `Duplicate member name '${d.name}' at ${d.expression}: JSON member names must be unique within an object (I-JSON, RFC 8785); a parser would keep only one of them silently, so the meaning — and the fingerprint — would be ambiguous`;
}

/** JSON.parse that refuses duplicate member names (throws DuplicateMemberError; SyntaxError as JSON.parse). */
export function parseUniqueJson(text: string): unknown {
  const value = JSON.parse(text.replace(/^\uFEFF/, ''));
  const dup = findDuplicateMember(text, rootName(value));
  if (dup) throw new DuplicateMemberError(dup);
  return value;
}

/** The name a location starts with: the parsed root's `resourceType`, else `$`. */
export function rootName(value: unknown): string {
  const t = (value as { resourceType?: unknown } | null)?.resourceType;
  return typeof t === 'string' && /^[A-Za-z]{1,64}$/.test(t) ? t : '$';
}

export class DuplicateMemberError extends Error {
  constructor(readonly duplicate: DuplicateMember) {
    super(describeDuplicate(duplicate));
    this.name = 'DuplicateMemberError';
  }
}
