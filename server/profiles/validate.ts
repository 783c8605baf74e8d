/**
 * Validation of a resource against one of the platform's profiles (profiles/), for a write that claims it in
 * meta.profile (and for `$validate`).
 *
 * The ordinary validation (fhir/validate.ts) has already checked the resource against the R4 base, so this
 * checks what the profile itself states — its differential, read against the generated snapshot:
 * cardinality, fixed and pattern values, choice-type narrowing, FHIRPath constraints, slicing (slice
 * cardinality, also when the sliced array is absent; closed slicing; the content of each slice), and required
 * bindings (to the platform's value sets through its terminology, to core ones from their expansion). Every
 * extension of ours in the resource is validated against its own StructureDefinition, sub-extensions
 * included. Two rules need the platform's terminology: a code of one of the platform's complete code systems
 * must exist in it, and a recognition report's code must identify a catalogue item.
 *
 * Why not `validateResource(resource, { profile })` of @medplum/core 4.5 alone: by experiment (see
 * test/profiles.test.ts) it validates backbone children against the base type (a profile's `mitigation.date`
 * 1..1 is not enforced), never looks inside slices (a hr-mark with a valueCoding passes), counts slices only
 * when the sliced array is present (a report without any extension passes a 1..1 hr-mark slice), ignores
 * closed slicing, choice-type narrowing and bindings, stops at the first failed constraint of an element, and
 * re-parses the StructureDefinition on every call (about 5 ms for the report profile). This walker does all of
 * it in well under a millisecond from a tree compiled once per definition.
 *
 * Issues carry FHIRPath expressions starting with the resource type.
 */
import { evalFhirPathTyped, getElementDefinitionTypeName, parseFhirPath, type TypedValue } from '@medplum/core';
import type { Coding, ElementDefinition, OperationOutcomeIssue, Resource, StructureDefinition } from '@medplum/fhirtypes';
import { CANONICAL_BASE, CATALOGUE_SYSTEM } from '../terminology/canonical.ts';
import { validateCode, type Resolver } from '../terminology/service.ts';
import { expansion, isCoreValueSet } from '../fhir/validation/terminology.ts';
import { PROFILE } from './canonical.ts';
import { projectDefinition } from './load.ts';

/** What profile validation needs from the running platform (set at start by publish.ts). */
export interface ProfileServices {
  /** The platform's terminology registry: its value sets (bindings) and code systems (codes). */
  terminology?: () => Resolver | undefined;
  /** Resolves a coding to items of the current recognition catalogue (recognition/catalogue.ts). */
  catalogue?: () => { resolve(coding: Coding): { items: unknown[] } | { invalid: string } } | undefined;
}

let services: ProfileServices = {};

export function configureProfileValidation(s: ProfileServices): void {
  services = { ...services, ...s };
}

const PLATFORM_CODE_SYSTEMS = `${CANONICAL_BASE}/CodeSystem/`;
const PRIMITIVE_TYPES = new Set([
  'base64Binary', 'boolean', 'canonical', 'code', 'date', 'dateTime', 'decimal', 'id', 'instant', 'integer', 'markdown', 'oid',
  'positiveInt', 'string', 'time', 'unsignedInt', 'uri', 'url', 'uuid', 'xhtml',
]);

// ---------------------------------------------------------------------------------------------------
// the element tree of a definition

interface Node {
  el: ElementDefinition;
  /** The differential element with the same id: what this definition itself says about the element. */
  own?: ElementDefinition;
  /** JSON name (`value[x]` for a choice). */
  name: string;
  children: Node[];
  slices: Node[];
}

interface Compiled {
  sd: StructureDefinition;
  root: Node;
}

const compiled = new Map<StructureDefinition, Compiled>();

function compile(sd: StructureDefinition): Compiled {
  let c = compiled.get(sd);
  if (c) return c;
  const diff = new Map((sd.differential?.element ?? []).map((e) => [e.id as string, e]));
  const [rootEl, ...rest] = sd.snapshot?.element ?? [];
  const mk = (el: ElementDefinition): Node => ({
    el,
    own: diff.get(el.id as string),
    name: (el.path as string).slice((el.path as string).lastIndexOf('.') + 1),
    children: [],
    slices: [],
  });
  const root = mk(rootEl);
  const nodes = new Map<string, Node>([[rootEl.id as string, root]]);
  for (const el of rest) {
    const id = el.id as string;
    const dot = id.lastIndexOf('.');
    const colon = id.lastIndexOf(':');
    const node = mk(el);
    const parent = nodes.get(colon > dot ? id.slice(0, colon) : id.slice(0, dot));
    if (!parent) continue;
    (colon > dot ? parent.slices : parent.children).push(node);
    nodes.set(id, node);
  }
  c = { sd, root };
  compiled.set(sd, c);
  return c;
}

// ---------------------------------------------------------------------------------------------------
// validation

interface Item {
  value: unknown;
  /** FHIRPath of the value. */
  path: string;
  /** FHIR type of the value (`DetectedIssueMitigation` for a backbone element). */
  type: string;
}

type Json = Record<string, unknown>;

class Run {
  readonly issues: OperationOutcomeIssue[] = [];
  private readonly rootTv: TypedValue;

  constructor(readonly resource: Resource) {
    this.rootTv = { type: resource.resourceType, value: resource };
  }

  error(code: OperationOutcomeIssue['code'], text: string, expression: string): void {
    this.issues.push({ severity: 'error', code, details: { text }, expression: [expression] });
  }

  /** Checks the value of `node`: its own fixed value, pattern, constraints and binding, then its children. */
  visit(node: Node, item: Item): void {
    const own = node.own;
    if (own) {
      this.fixedAndPattern(own, item);
      this.constraints(own, item);
      if (own.binding) this.binding(own, item);
    }
    const value = item.value;
    if (!value || typeof value !== 'object' || Array.isArray(value)) return;
    for (const child of node.children) this.element(child, value as Json, item.path);
  }

  /** Checks element `node` within the object `parent` (at `parentPath`). */
  private element(node: Node, parent: Json, parentPath: string): void {
    const { items, path } = childItems(node, parent, parentPath);
    const own = node.own;
    if (own && (own.min !== undefined || own.max !== undefined)) {
      const min = node.el.min ?? 0;
      const max = cardinality(node.el.max);
      if (items.length < min || items.length > max) {
        this.error('structure', `Invalid number of values: expected ${min}..${node.el.max ?? '*'}, but found ${items.length}`, path);
      }
    }
    let valid = items;
    if (own?.type && node.name.endsWith('[x]')) {
      const allowed = own.type.map((t) => t.code as string);
      valid = items.filter((item) => allowed.includes(item.type));
      // (the value type of an extension of ours is also checked on every write, by validation/walker.ts)
      if (node.el.path !== 'Extension.value[x]') {
        for (const item of items) {
          if (!allowed.includes(item.type)) this.error('structure', `The type ${item.type} is not allowed here (allowed: ${allowed.join(', ')})`, item.path);
        }
      }
    }
    for (const item of valid) this.visit(node, item);
    if (node.slices.length > 0) this.slices(node, items, path);
  }

  private slices(node: Node, items: Item[], path: string): void {
    const slicing = node.el.slicing;
    const assigned = new Map<Node, Item[]>(node.slices.map((s) => [s, []]));
    for (const item of items) {
      const slice = node.slices.find((s) => sliceMatches(node, s, item.value));
      if (slice) assigned.get(slice)?.push(item);
      else if (slicing?.rules === 'closed') {
        this.error('structure', `This element does not match any slice of ${node.el.path} (the slicing is closed: ${node.slices.map((s) => s.el.sliceName).join(', ')})`, item.path);
      }
    }
    for (const [slice, values] of assigned) {
      const min = slice.el.min ?? 0;
      const max = cardinality(slice.el.max);
      // an absent required element is reported as such, not once more per slice
      const absentRequired = items.length === 0 && (node.el.min ?? 0) > 0;
      if (!absentRequired && (values.length < min || values.length > max)) {
        this.error('structure', `Incorrect number of values provided for slice '${slice.el.sliceName}': expected ${min}..${slice.el.max ?? '*'}, but found ${values.length}`, path);
      }
      // an extension of ours is validated against its own definition, wherever it is
      if (ourExtension(slice)) continue;
      for (const item of values) this.visit(slice, item);
    }
  }

  private fixedAndPattern(own: ElementDefinition, item: Item): void {
    for (const [key, expected] of Object.entries(own)) {
      if (key.startsWith('fixed') && /^[A-Z]/.test(key.slice(5))) {
        if (!deepEqual(item.value, expected)) this.error('value', `Value is not the fixed value ${JSON.stringify(expected).slice(0, 200)}`, item.path);
      } else if (key.startsWith('pattern') && /^[A-Z]/.test(key.slice(7))) {
        if (!includes(item.value, expected)) this.error('value', `Value does not match the pattern ${JSON.stringify(expected).slice(0, 200)}`, item.path);
      }
    }
  }

  private constraints(own: ElementDefinition, item: Item): void {
    for (const c of own.constraint ?? []) {
      if (c.severity !== 'error' || !c.expression) continue;
      const tv: TypedValue = { type: item.type, value: item.value };
      let ok: boolean;
      try {
        const out = evalFhirPathTyped(atom(c.expression), [tv], { '%context': tv, '%resource': this.rootTv, '%rootResource': this.rootTv });
        ok = out.length === 1 && out[0].value === true;
      } catch {
        ok = false;
      }
      if (!ok) this.error('invariant', `Constraint ${c.key} not met: ${c.human}`, item.path);
    }
  }

  private binding(own: ElementDefinition, item: Item): void {
    const b = own.binding;
    if (b?.strength !== 'required' || !b.valueSet) return;
    const codings = codingsOf(item);
    if (codings.length === 0) return;
    const url = b.valueSet.split('|')[0];
    const resolver = services.terminology?.();
    // a FHIR core value set is judged as the core validator judges it (below: only when enumerable here),
    // not through the registry's fallback to the core terminology, which would refuse what it cannot expand
    const vs = isCoreValueSet(url) ? undefined : resolver?.valueSet(url);
    if (resolver && vs) {
      const result = validateCode(resolver, vs, codings);
      if (!result.result) this.error('code-invalid', `The code is not in the value set ${url}, which is required here (${result.message ?? 'no valid code'})`, item.path);
      return;
    }
    const e = expansion(url);
    if (!e) return; // not enumerable here: not judged
    const judged = codings.filter((c) => c.system && c.code && e.systems.has(c.system));
    if (judged.length > 0 && !judged.some((c) => e.systems.get(c.system as string)?.has(c.code as string))) {
      this.error('code-invalid', `The code '${judged[0].system}#${judged[0].code}' is not in the value set ${url}, which is required here`, item.path);
    }
  }
}

function isBackbone(el: ElementDefinition): boolean {
  return el.type?.some((t) => t.code === 'BackboneElement' || t.code === 'Element') === true;
}

function ourExtension(slice: Node): boolean {
  const t = slice.el.type;
  return t?.length === 1 && t[0].code === 'Extension' && !!t[0].profile?.[0] && !!projectDefinition(t[0].profile[0]);
}

const cardinality = (max: string | undefined) => (max === undefined || max === '*' ? Number.POSITIVE_INFINITY : Number(max));

/** The values of element `node` in `parent`, with their FHIRPaths and types. */
function childItems(node: Node, parent: Json, parentPath: string): { items: Item[]; path: string } {
  const name = node.name;
  if (name.endsWith('[x]')) {
    const prefix = name.slice(0, -3);
    const items: Item[] = [];
    for (const key of Object.keys(parent)) {
      if (!key.startsWith(prefix) || !/^[A-Z]/.test(key.charAt(prefix.length)) || parent[key] === undefined) continue;
      const suffix = key.slice(prefix.length);
      const lower = suffix.charAt(0).toLowerCase() + suffix.slice(1);
      const type = PRIMITIVE_TYPES.has(lower) ? lower : suffix;
      items.push({ value: parent[key], path: `${parentPath}.${prefix}.ofType(${type})`, type });
    }
    return { items, path: `${parentPath}.${prefix}` };
  }
  const path = `${parentPath}.${name}`;
  const raw = parent[name];
  const type = typeOf(node.el);
  if (raw === undefined || raw === null) return { items: [], path };
  if (Array.isArray(raw)) return { items: raw.map((value, i) => ({ value, path: `${path}[${i}]`, type })), path };
  return { items: [{ value: raw, path, type }], path };
}

function typeOf(el: ElementDefinition): string {
  if (isBackbone(el)) return getElementDefinitionTypeName(el);
  const code = el.type?.[0]?.code ?? 'Element';
  return code.startsWith('http://hl7.org/fhirpath/System.') ? 'string' : code;
}

/** Whether `value` belongs to slice `slice` of `node`, by the slicing's discriminators. */
function sliceMatches(node: Node, slice: Node, value: unknown): boolean {
  const discriminators = node.el.slicing?.discriminator ?? [];
  if (discriminators.length === 0) return false;
  return discriminators.every((d) => {
    const target = d.path === '$this' ? slice : descendant(slice, d.path as string);
    const actual = d.path === '$this' ? [value] : valuesAt(value, d.path as string);
    if (d.type === 'exists') return actual.length > 0;
    if ((d.type !== 'value' && d.type !== 'pattern') || !target) return false;
    const expected = specified(target.el);
    if (!expected) return false;
    return actual.some((v) => (expected.fixed ? deepEqual(v, expected.value) : includes(v, expected.value)));
  });
}

function descendant(node: Node, path: string): Node | undefined {
  let current: Node | undefined = node;
  for (const part of path.split('.')) current = current?.children.find((c) => c.name === part || c.name === `${part}[x]`);
  return current;
}

function valuesAt(value: unknown, path: string): unknown[] {
  let current: unknown[] = [value];
  for (const part of path.split('.')) {
    const next: unknown[] = [];
    for (const v of current) {
      if (!v || typeof v !== 'object') continue;
      const x = (v as Json)[part];
      if (Array.isArray(x)) next.push(...x);
      else if (x !== undefined) next.push(x);
    }
    current = next;
  }
  return current;
}

function specified(el: ElementDefinition): { fixed: boolean; value: unknown } | undefined {
  for (const [key, value] of Object.entries(el)) {
    if (key.startsWith('fixed') && /^[A-Z]/.test(key.slice(5))) return { fixed: true, value };
    if (key.startsWith('pattern') && /^[A-Z]/.test(key.slice(7))) return { fixed: false, value };
  }
  return undefined;
}

function codingsOf(item: Item): Coding[] {
  const v = item.value as Json | undefined;
  if (!v || typeof v !== 'object') return [];
  if (item.type === 'Coding') return [v as Coding];
  if (item.type === 'CodeableConcept') return Array.isArray(v.coding) ? (v.coding as Coding[]) : [];
  return [];
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((x, i) => deepEqual(x, (b as unknown[])[i]));
  const ka = Object.keys(a as Json);
  const kb = Object.keys(b as Json);
  return ka.length === kb.length && ka.every((k) => deepEqual((a as Json)[k], (b as Json)[k]));
}

/** FHIR pattern matching: every member of the pattern is in the value (arrays: each pattern item in some item). */
function includes(value: unknown, pattern: unknown): boolean {
  if (Array.isArray(pattern)) {
    return Array.isArray(value) && pattern.every((p) => value.some((v) => includes(v, p)));
  }
  if (pattern && typeof pattern === 'object') {
    if (!value || typeof value !== 'object' || Array.isArray(value)) return false;
    return Object.entries(pattern as Json).every(([k, p]) => includes((value as Json)[k], p));
  }
  return value === pattern;
}

const atoms = new Map<string, ReturnType<typeof parseFhirPath>>();
function atom(expression: string): ReturnType<typeof parseFhirPath> {
  let a = atoms.get(expression);
  if (!a) {
    a = parseFhirPath(expression);
    atoms.set(expression, a);
  }
  return a;
}

// ---------------------------------------------------------------------------------------------------
// the whole resource

/** Every extension of ours in `value` (any depth, contained resources included), with its FHIRPath. */
function ourExtensions(value: unknown, path: string, out: { ext: Json; path: string; sd: StructureDefinition }[]): void {
  if (!value || typeof value !== 'object') return;
  if (Array.isArray(value)) return;
  for (const [key, x] of Object.entries(value as Json)) {
    if (!x || typeof x !== 'object') continue;
    const items = Array.isArray(x) ? x : [x];
    items.forEach((item, i) => {
      const p = Array.isArray(x) ? `${path}.${key}[${i}]` : `${path}.${key}`;
      if ((key === 'extension' || key === 'modifierExtension') && item && typeof item === 'object') {
        const url = (item as Json).url;
        const sd = typeof url === 'string' ? projectDefinition(url) : undefined;
        if (sd?.type === 'Extension') out.push({ ext: item as Json, path: p, sd });
      }
      ourExtensions(item, p, out);
    });
  }
}

/** Codings of the platform's complete code systems must name a code of the system. */
function platformCodes(run: Run, value: unknown, path: string, resolver: Resolver): void {
  if (!value || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => platformCodes(run, v, `${path}[${i}]`, resolver));
    return;
  }
  const obj = value as Json;
  if (typeof obj.system === 'string' && typeof obj.code === 'string' && obj.system.startsWith(PLATFORM_CODE_SYSTEMS)) {
    const cs = resolver.codeSystem(obj.system);
    if (cs?.complete && !cs.get(obj.code)) run.error('code-invalid', `Unknown code '${obj.code.slice(0, 80)}' in the code system ${obj.system}`, `${path}.code`);
  }
  for (const [key, x] of Object.entries(obj)) {
    if (x && typeof x === 'object') platformCodes(run, x, `${path}.${key}`, resolver);
  }
}

/** A recognition report's code must identify an item of the recognition catalogue. */
function catalogueItem(run: Run, resource: Resource): void {
  const catalogue = services.catalogue?.();
  const codings = (resource as { code?: { coding?: Coding[] } }).code?.coding;
  if (!catalogue || !Array.isArray(codings)) return;
  let found = false;
  let platform = false;
  codings.forEach((coding, i) => {
    if (!coding || typeof coding !== 'object') return;
    if (typeof coding.system === 'string' && coding.system.startsWith(PLATFORM_CODE_SYSTEMS)) platform = true;
    const r = catalogue.resolve(coding);
    if ('invalid' in r) {
      if (coding.system !== CATALOGUE_SYSTEM) run.error('code-invalid', `Not a code of the recognition catalogue: ${r.invalid}`, `DiagnosticReport.code.coding[${i}]`);
    } else if (r.items.length > 0) found = true;
  });
  // without a platform coding, hr-dr-1 says it
  if (!found && platform) {
    run.error('code-invalid', 'The report code identifies no item of the recognition catalogue (platform code, or a national or legacy code the catalogue maps)', 'DiagnosticReport.code');
  }
}

/** Validates `resource` against our profile `sd` (what the profile adds to the base). */
export function validateAgainstProfile(resource: Resource, sd: StructureDefinition): OperationOutcomeIssue[] {
  const run = new Run(resource);
  const { root } = compile(sd);
  run.visit(root, { value: resource, path: resource.resourceType, type: resource.resourceType });
  const exts: { ext: Json; path: string; sd: StructureDefinition }[] = [];
  ourExtensions(resource, resource.resourceType, exts);
  for (const { ext, path, sd: extSd } of exts) {
    run.visit(compile(extSd).root, { value: ext, path, type: 'Extension' });
  }
  const resolver = services.terminology?.();
  if (resolver) platformCodes(run, resource, resource.resourceType, resolver);
  if (sd.url === PROFILE.diagnosticReport) catalogueItem(run, resource);
  return run.issues;
}

/**
 * The profile checks of a write: for each profile of ours in meta.profile, validation against it; for any other
 * profile, a warning that it is not known here (not validated). Nothing when no profile is claimed. The
 * resources of a Bundle's entries are checked too (at `Bundle.entry[i].resource`).
 */
export function profileIssues(resource: Resource): OperationOutcomeIssue[] {
  const out = checkClaimedProfiles(resource);
  if (resource.resourceType === 'Bundle' && Array.isArray(resource.entry)) {
    resource.entry.forEach((entry, i) => {
      const inner = entry?.resource;
      if (!inner || typeof inner !== 'object' || typeof inner.resourceType !== 'string' || !inner.meta?.profile) return;
      const prefix = `Bundle.entry[${i}].resource`;
      for (const issue of checkClaimedProfiles(inner)) {
        out.push({ ...issue, expression: issue.expression?.map((e) => (e.startsWith(inner.resourceType) ? `${prefix}${e.slice(inner.resourceType.length)}` : e)) });
      }
    });
  }
  return out;
}

function checkClaimedProfiles(resource: Resource): OperationOutcomeIssue[] {
  const claimed = resource.meta?.profile;
  if (!Array.isArray(claimed) || claimed.length === 0) return [];
  const out: OperationOutcomeIssue[] = [];
  claimed.forEach((url, i) => {
    if (typeof url !== 'string') return;
    const sd = projectDefinition(url);
    if (sd && sd.kind === 'resource' && sd.type === resource.resourceType) {
      out.push(...validateAgainstProfile(resource, sd));
    } else if (sd) {
      out.push({
        severity: 'error',
        code: 'structure',
        details: { text: `${url} is a profile of ${sd.type}, not of ${resource.resourceType}` },
        expression: [`${resource.resourceType}.meta.profile[${i}]`],
      });
    } else {
      out.push({
        severity: 'warning',
        code: 'informational',
        details: { text: `Profile ${url.slice(0, 200)} is not known to this server: the resource was not validated against it` },
        expression: [`${resource.resourceType}.meta.profile[${i}]`],
      });
    }
  });
  return out;
}
