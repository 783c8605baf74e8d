/**
 * SMART system scopes and what a request needs of them. Pure.
 *
 * A scope is `system/<Type|*>.<permissions>`: SMART v1 `read` (read + search), `write` (create, update,
 * delete) or `*`, or SMART v2 letters `c r u d s` (in that order, e.g. `rs`, `cruds`). The FHIR interaction a
 * request makes is one letter on one resource type; operations that only look (the recognition checks, the
 * report views, terminology, $verify, $trace …) need `r`, every other operation `u`. The recognition checks
 * also write a reminder (a DetectedIssue) and answer with reports, so they need `DetectedIssue.c` and
 * `DiagnosticReport.r` besides (requirements()); the CDS Hooks calls ask the same (server/cds/router.ts).
 */

export type Action = 'c' | 'r' | 'u' | 'd' | 's';

export interface Need {
  /** A resource type; undefined for a system-level interaction. */
  type?: string;
  action: Action;
}

export interface Grant {
  /** A resource type, or `*`. */
  type: string;
  actions: ReadonlySet<Action>;
}

const V1: Record<string, Action[]> = { read: ['r', 's'], write: ['c', 'u', 'd'], '*': ['c', 'r', 'u', 'd', 's'] };
const SCOPE_RE = /^system\/([A-Z][A-Za-z]+|\*)\.([a-z*]+)$/;

/** The grant of one scope, or undefined for a scope that is not a SMART system scope. */
export function parseScope(scope: string): Grant | undefined {
  const m = SCOPE_RE.exec(scope);
  if (!m) return undefined;
  const [, type, perms] = m;
  if (V1[perms]) return { type, actions: new Set(V1[perms]) };
  if (!/^c?r?u?d?s?$/.test(perms) || perms === '') return undefined;
  return { type, actions: new Set(perms.split('') as Action[]) };
}

/** Whether any of the scopes allows `action` on `type` (undefined type: a system-level interaction, `*` only). */
export function allows(scopes: readonly string[], type: string | undefined, action: Action): boolean {
  for (const scope of scopes) {
    const grant = parseScope(scope);
    if (grant && grant.actions.has(action) && (grant.type === '*' || grant.type === type)) return true;
  }
  return false;
}

/** Operations that only read (their reminder and access records are the platform's own bookkeeping). */
const READING_OPERATIONS = new Set([
  'recognition-check',
  'duplicate-check',
  'reports',
  'view',
  'everything',
  'verify',
  'original',
  'trace',
  'expand',
  'lookup',
  'validate-code',
  'translate',
  'subsumes',
  'validate',
  'entries',
  'entry-history',
  'dictionary-qc',
  'verify-chain',
  'exchange-check',
]);

/**
 * The scope a FHIR REST request needs, from its method and path segments below the FHIR base; undefined for
 * what needs none (the CapabilityStatement, a Bundle — its entries are checked one by one —, polling one's
 * own asynchronous request).
 */
export function needed(method: string, segments: readonly string[]): { type?: string; action: Action } | undefined {
  const [first, second, third] = segments;
  const m = method.toUpperCase();
  if (segments.length === 0 || first === 'metadata' || first === '_async') return undefined;
  if (first === '_history') return { action: 's' };
  const op = (name: string | undefined) => (READING_OPERATIONS.has(name!.slice(1)) ? 'r' : 'u');
  if (first.startsWith('$')) return { action: op(first) };
  const type = first;
  if (segments.length === 1) {
    const byMethod: Record<string, Action> = { GET: 's', HEAD: 's', POST: 'c', PUT: 'u', PATCH: 'u', DELETE: 'd' };
    return { type, action: byMethod[m] ?? 'r' };
  }
  if (second === '_search' || second === '_history') return { type, action: 's' };
  if (second.startsWith('$')) return { type, action: op(second) };
  if (third?.startsWith('$')) return { type, action: op(third) };
  if (segments.length === 2) {
    const byMethod: Record<string, Action> = { GET: 'r', HEAD: 'r', PUT: 'u', PATCH: 'u', DELETE: 'd' };
    return { type, action: byMethod[m] ?? 'r' };
  }
  return { type, action: 'r' };
}

/** What the recognition checks need besides their own letter: they answer with reports and write a reminder. */
export const RECOGNITION_NEEDS: readonly Need[] = [
  { type: 'DiagnosticReport', action: 'r' },
  { type: 'DetectedIssue', action: 'c' },
];

const ALSO_NEEDED: Record<string, readonly Need[]> = {
  'recognition-check': RECOGNITION_NEEDS,
  'duplicate-check': RECOGNITION_NEEDS,
};

/** Everything a FHIR REST request needs of the scopes: needed() and what its operation also reads or writes. */
export function requirements(method: string, segments: readonly string[]): Need[] {
  const need = needed(method, segments);
  if (!need) return [];
  const op = segments.find((s) => s.startsWith('$'));
  return [need, ...(op ? (ALSO_NEEDED[op.slice(1)] ?? []) : [])];
}

/** The first of `needs` that `scopes` do not allow, if any. */
export function missing(scopes: readonly string[], needs: readonly Need[]): Need | undefined {
  return needs.find((n) => !allows(scopes, n.type, n.action));
}

/** The words of a refusal for a need the scopes do not meet. */
export function refusalText(need: Need): string {
  const what = { c: 'create', r: 'read', u: 'update or run this operation on', d: 'delete', s: 'search' }[need.action];
  return `The caller's scopes do not allow it to ${what} ${need.type ?? 'the whole server'} (needs system/${need.type ?? '*'}.${need.action})`;
}
