/**
 * Request bodies, read defensively: size limit (413), content type (415), JSON syntax (400), nesting
 * depth (400) and duplicate member names (400, server/fingerprint/ijson.ts), before anything else looks at them.
 */
import type Koa from 'koa';
import { badRequest, fail } from '../fhir/errors.ts';
import { describeDuplicate, findDuplicateMember, rootName } from '../fingerprint/ijson.ts';
import { limits, tooCostly } from '../fhir/limits.ts';

export interface BodyLimits {
  maxBytes: number;
  maxDepth: number;
  /** Longest JSON array (default: the configured limit, server/fhir/limits.ts). */
  maxArrayLength?: number;
}

const JSON_TYPES = ['application/fhir+json', 'application/json', 'application/json-patch+json'];
const FORM_TYPE = 'application/x-www-form-urlencoded';

/** Reads and parses the body: a JSON value, URLSearchParams for a form, or undefined when empty. */
export async function readBody(ctx: Koa.Context, limits: BodyLimits): Promise<unknown> {
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > limits.maxBytes) throw tooLarge(limits.maxBytes);
  const raw = await readRaw(ctx, limits.maxBytes);
  if (raw.length === 0) return undefined;
  const type = (ctx.get('content-type').split(';')[0] || '').trim().toLowerCase();
  if (type === FORM_TYPE) return new URLSearchParams(raw.toString('utf8'));
  if (!JSON_TYPES.includes(type)) {
    throw fail(415, 'not-supported', `Unsupported content type '${type || '(none)'}'; send application/fhir+json`);
  }
  let value: unknown;
  const text = raw.toString('utf8');
  ctx.state.rawBody = text; // kept exactly: a submitted report Bundle is stored as its original (server/provenance/)
  try {
    value = JSON.parse(text.replace(/^\uFEFF/, '')); // a byte-order mark may be ignored (RFC 8259 §8.1)
  } catch (err) {
    throw badRequest(`Malformed JSON: ${(err as Error).message.slice(0, 160)}`);
  }
  checkJson(value, limits.maxDepth, limits.maxArrayLength);
  // JSON.parse keeps the last of two same-named members silently: ambiguous, so refused (I-JSON, RFC 8785)
  const dup = findDuplicateMember(text, rootName(value));
  if (dup) throw badRequest(describeDuplicate(dup), dup.expression);
  return value;
}

function readRaw(ctx: Koa.Context, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const req = ctx.req;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > maxBytes) {
        done = true;
        req.resume(); // drain the rest so the 413 can be sent
        reject(tooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!done) resolve(Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      if (!done) reject(badRequest(`Could not read the request body: ${err.message}`));
    });
  });
}

function tooLarge(maxBytes: number) {
  return fail(413, 'too-costly', `The request body exceeds the limit of ${maxBytes} bytes`);
}

/** Text that PostgreSQL cannot store: NUL and unpaired UTF-16 surrogates. */
export const UNSTORABLE_TEXT = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** A node of the body being checked: its value, depth, and how it was reached (for the error's location). */
interface Node {
  value: unknown;
  depth: number;
  parent?: Node;
  key?: string | number;
}

/**
 * Rejects JSON nested deeper than `maxDepth`, arrays longer than `maxArrayLength` and strings that cannot be
 * stored (iterative, so a hostile body cannot overflow the stack). Errors name where: `name[0].given`.
 */
export function checkJson(value: unknown, maxDepth: number, maxArrayLength = limits().maxArrayLength): void {
  const stack: Node[] = [{ value, depth: 1 }];
  while (stack.length > 0) {
    const node = stack.pop()!;
    const v = node.value;
    if (typeof v === 'string') {
      if (UNSTORABLE_TEXT.test(v)) throw badRequest('Strings must not contain NUL characters or unpaired surrogates', pathOf(node));
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (node.depth > maxDepth) throw badRequest(`JSON nesting deeper than ${maxDepth} levels`, pathOf(node));
    if (Array.isArray(v)) {
      if (v.length > maxArrayLength) {
        throw tooCostly(413, `An array of ${v.length} elements exceeds the limit of ${maxArrayLength}`, pathOf(node));
      }
      for (let i = 0; i < v.length; i++) stack.push({ value: v[i], depth: node.depth + 1, parent: node, key: i });
    } else {
      for (const [k, child] of Object.entries(v)) {
        if (UNSTORABLE_TEXT.test(k)) throw badRequest('Property names must not contain NUL characters or unpaired surrogates');
        stack.push({ value: child, depth: node.depth + 1, parent: node, key: k });
      }
    }
  }
}

/** `name[0].given` for a node (a FHIRPath-like location; the root is the resource itself). */
function pathOf(node: Node): string | undefined {
  const parts: string[] = [];
  for (let n: Node | undefined = node; n?.parent; n = n.parent) {
    parts.push(typeof n.key === 'number' ? `[${n.key}]` : `.${String(n.key).slice(0, 64)}`);
  }
  const path = parts.reverse().join('').replace(/^\./, '');
  return path === '' ? undefined : path.slice(0, 300);
}
