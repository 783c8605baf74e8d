/**
 * Structural validation of FHIR JSON against the R4 type schemas, compiled: the same rules, the same issues
 * (severity, code, text, expression, diagnostics) and in the same order as `validateResource` of
 * @medplum/core 4.5.2 (packages/core/src/typeschema/validation.ts and crawler.ts), at a fraction of its cost.
 * @medplum/core stays the reference: test/validation-compiled.test.ts runs both over every official R4
 * example and a corpus of broken resources and requires identical answers.
 *
 * Design. medplum's validator is a visitor over a generic crawler: for every element of every object it looks
 * the element up by name (`getElementDefinition`, a string search over the type's elements), wraps each value
 * in a TypedValue, re-parses choice names by splitting on capitals, and evaluates each invariant by FHIRPath
 * through an LRU cache of parsed expressions. Here, once per type (lazily, cached by the schema object so a
 * reloaded schema recompiles):
 * - a `Plan` lists the type's elements in schema order with what the walk needs already computed: the JSON
 *   names of each element (`status`/`_status`; for a choice `valueQuantity`/`_valueQuantity`, … in type
 *   order), cardinality, whether it is an array, its primitive JS type, its Reference target profiles, and
 *   its error invariants with their FHIRPath parsed once (`parseFhirPath`);
 * - a map from each JSON key the type can hold to the choice element it belongs to (medplum's
 *   `isChoiceOfType`), so unknown and conflicting properties are found without regular expressions.
 * The walk then visits the JSON once per object, in medplum's order (root invariants, the null scan, then
 * elements in schema order, each value's invariants, reference targets and primitive format before its
 * children, unknown properties on leaving the object), producing the issues medplum would produce, and
 * throwing where medplum throws (an unknown resource type inside: `Unknown data type`; a primitive extension
 * `_x` that is not an object: `Primitive extension must be an object`) — checkResource turns those into the
 * same issue as before. Primitive extensions are merged into their values exactly as medplum merges them
 * (String/Number objects carrying `id`/`extension`, arrays index by index), including medplum's deletion of
 * `constructor`/`__proto__` keys from `_x` objects, so the resource stored afterwards is the same too.
 *
 * Invariants: ele-1 (and dom-3, org-1, sdf-19) are skipped as medplum skips them; ele-1 ("has a value or
 * children") is what the empty-value and null checks enforce. ext-1 (`extension.exists() != value.exists()`,
 * on every Extension) is evaluated natively. The invariants a report upload evaluates on every resource or
 * element (dom-2, dom-4, dom-5 without `contained`; obs-3, obs-6, obs-7, bdl-5, bdl-8 in their common
 * shapes) have a native shortcut that answers only "holds", and only where the FHIRPath could neither fail
 * nor raise an error (e.g. `contained.contained.empty()` on a resource without `contained`); anything else,
 * and every other invariant, is evaluated by medplum's FHIRPath engine on the parsed expression with
 * medplum's variables (%context, %resource, %rootResource, %ucum), so a failure's message is always medplum's.
 * Native shortcuts are keyed by the exact expression text: a changed definition falls back to FHIRPath.
 *
 * Known, deliberate difference: none in issues. (Slicing, fixed and pattern values do not occur in the R4
 * base schemas; they are supported through medplum's own helpers for a schema that has them.)
 */
import {
  arrayify,
  createConstraintIssue,
  createOperationOutcomeIssue,
  createProcessingIssue,
  createStructureIssue,
  deepEquals,
  deepIncludes,
  evalFhirPathTyped,
  fhirTypeToJsType,
  getDataType,
  getNestedProperty,
  HTTP_HL7_ORG,
  isEmpty,
  isReference,
  matchDiscriminant,
  parseFhirPath,
  toTypedValue,
  UCUM,
  validationRegexes,
  type InternalSchemaElement,
  type InternalTypeSchema,
  type TypedValue,
} from '@medplum/core';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';

type Json = Record<string, unknown>;
type Tv = TypedValue & { path: string };
type Atom = ReturnType<typeof parseFhirPath>;

/** Invariants medplum does not evaluate (validation.ts `skippedConstraintKeys`). */
const SKIPPED = new Set(['ele-1', 'dom-3', 'org-1', 'sdf-19']);

/** A native answer for an invariant: true when it certainly holds (no FHIRPath error either), else undefined. */
type Shortcut = (value: unknown) => true | undefined;

interface Invariant {
  key: string;
  expression: string;
  description: string;
  severity: 'error' | 'warning';
  atom?: Atom;
  /** Decides the invariant completely (true: holds, false: fails), or undefined to ask FHIRPath. */
  native?: (value: unknown) => boolean | undefined;
  shortcut?: Shortcut;
}

interface Candidate {
  /** JSON key of the value (`valueQuantity`). */
  name: string;
  /** JSON key of its primitive extension (`_valueQuantity`). */
  ext: string;
  type: string;
  primitive: boolean;
}

interface Prop {
  key: string;
  element: InternalSchemaElement;
  candidates: Candidate[];
  invariants: Invariant[];
  /** Target profiles of the Reference type, when the element allows Reference. */
  targetProfiles?: string[];
}

interface Plan {
  schema: InternalTypeSchema;
  props: Prop[];
  /** JSON key (value or primitive extension) -> index in `props`; undefined when a key could be inherited. */
  keyIndex?: Map<string, number>;
  /** Indexes of the elements with min > 0. */
  required: number[];
  byKey: Map<string, Prop>;
  rootInvariants: Invariant[];
  /** JSON key -> choice element name (`_value[x]` for `_valueQuantity`), null when the key is no choice name. */
  choiceOf: Map<string, string | null>;
  hasChoices: boolean;
}

const plans = new WeakMap<InternalTypeSchema, Plan>();

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function planOf(schema: InternalTypeSchema): Plan {
  let plan = plans.get(schema);
  if (plan) return plan;
  const props: Prop[] = [];
  const byKey = new Map<string, Prop>();
  let keyIndex: Map<string, number> | undefined = new Map();
  const required: number[] = [];
  let hasChoices = false;
  for (const [key, element] of Object.entries(schema.elements)) {
    const last = element.path.slice(element.path.lastIndexOf('.') + 1);
    const candidates = (element.type ?? []).map((t) => {
      const name = last.replace('[x]', capitalize(t.code));
      return { name, ext: `_${name}`, type: t.code, primitive: isPrimitiveType(t.code) };
    });
    for (const c of candidates) {
      // a name an object inherits (`constructor`, ...) is present in every object: walk such a type the slow way
      if (keyIndex && (c.name in Object.prototype || c.ext in Object.prototype)) keyIndex = undefined;
      if (keyIndex && !keyIndex.has(c.name)) keyIndex.set(c.name, props.length);
      if (keyIndex && !keyIndex.has(c.ext)) keyIndex.set(c.ext, props.length);
    }
    if (element.min > 0) required.push(props.length);
    if (key.endsWith('[x]')) hasChoices = true;
    const prop: Prop = {
      key,
      element,
      candidates,
      invariants: compileInvariants(element.constraints),
      targetProfiles: element.type?.find((t) => t.code === 'Reference')?.targetProfile,
    };
    props.push(prop);
    byKey.set(key, prop);
  }
  plan = { schema, props, keyIndex, required, byKey, rootInvariants: compileInvariants(schema.constraints), choiceOf: new Map(), hasChoices };
  plans.set(schema, plan);
  return plan;
}

function compileInvariants(constraints: InternalSchemaElement['constraints']): Invariant[] {
  const out: Invariant[] = [];
  for (const c of constraints ?? []) {
    if (c.severity !== 'error' || SKIPPED.has(c.key)) continue;
    const inv: Invariant = { ...c, native: NATIVE[c.expression], shortcut: SHORTCUTS[c.expression] };
    try {
      inv.atom = parseFhirPath(c.expression);
    } catch {
      // medplum parses on first use and reports the parse error as a processing issue; so do we (see check)
    }
    out.push(inv);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// values: medplum's getTypedPropertyValueWithSchema on a plain object

function safeAssign(target: unknown, source: Json): unknown {
  delete source.__proto__; // eslint-disable-line no-proto
  delete (source as { constructor?: unknown }).constructor;
  return Object.assign(target ?? {}, source);
}

function assignPrimitiveExtension(target: unknown, primitiveExtension: unknown): unknown {
  if (primitiveExtension) {
    if (typeof primitiveExtension !== 'object') throw new Error('Primitive extension must be an object');
    return safeAssign(target, primitiveExtension as Json);
  }
  return target;
}

function toTyped(value: unknown, type: string, path: string): Tv {
  if (type === 'Resource' && value && typeof value === 'object' && 'resourceType' in value) type = (value as Resource).resourceType;
  return { type, value, path };
}

/**
 * The value(s) of an element in `obj` as medplum's crawler sees them (getTypedPropertyValueWithSchema), with
 * their paths under `path`; undefined when absent or empty.
 */
function propertyValue(obj: Json, prop: Prop, path: string): Tv | Tv[] | undefined {
  let resultValue: unknown = undefined;
  let resultType = 'undefined';
  let primitiveExtension: unknown = undefined;
  for (const c of prop.candidates) {
    resultValue = obj[c.name];
    primitiveExtension = obj[c.ext];
    if (resultValue !== undefined || primitiveExtension !== undefined) {
      resultType = c.type;
      break;
    }
  }
  if (primitiveExtension) {
    const pe = primitiveExtension as unknown[];
    if (Array.isArray(resultValue)) {
      const rv = resultValue.slice();
      for (let i = 0; i < Math.max(rv.length, pe.length); i++) rv[i] = assignPrimitiveExtension(rv[i], pe[i]);
      resultValue = rv;
    } else if (!resultValue && Array.isArray(pe)) {
      const rv = pe.slice();
      for (let i = 0; i < pe.length; i++) rv[i] = assignPrimitiveExtension(undefined, pe[i]);
      resultValue = rv;
    } else {
      resultValue = assignPrimitiveExtension(resultValue, primitiveExtension);
    }
  }
  if (isEmpty(resultValue)) return undefined;
  if (resultType === 'Element' || resultType === 'BackboneElement') resultType = prop.element.type[0].code;
  if (Array.isArray(resultValue)) return resultValue.map((v, i) => toTyped(v, resultType, `${path}[${i}]`));
  return toTyped(resultValue, resultType, path);
}

/** medplum's isPrimitiveType; `in`, as medplum has it (a contained resourceType `constructor` counts as primitive). */
function isPrimitiveType(code: string): boolean {
  return code === 'undefined' || code in fhirTypeToJsType;
}

// ---------------------------------------------------------------------------------------------------
// the walk

export class CompiledValidator {
  private readonly issues: OperationOutcomeIssue[] = [];
  private readonly resources: unknown[] = [];
  private readonly root: TypedValue;
  private ucum?: TypedValue;

  constructor(resource: Resource) {
    this.root = toTypedValue(resource);
    if (isResourceValue(resource)) this.resources.push(resource);
  }

  /** All issues (errors and warnings). Throws where medplum's validator throws (see the header). */
  run(): OperationOutcomeIssue[] {
    const schema = getDataType(this.root.type);
    this.invariants({ ...this.root, path: schema.path }, planOf(schema).rootInvariants);
    checkObjectForNull(this.root.value as Json, schema.path, this.issues);
    this.object({ ...this.root, path: schema.path }, schema, schema.path);
    return this.issues;
  }

  private object(obj: Tv, schema: InternalTypeSchema, path: string): void {
    const isRes = isResourceValue(obj.value);
    if (isRes) this.resources.push(obj.value);
    const plan = planOf(schema);
    const value = obj.value as Json | undefined;
    const prefix = obj.path ? `${obj.path}.` : '';
    const keys = value ? Object.keys(value) : undefined;
    if (plan.keyIndex && keys && isPlainObject(value)) {
      // only the elements present (or required) need a look, in schema order as medplum visits them
      const order: number[] = plan.required.slice();
      for (const k of keys) {
        const i = plan.keyIndex.get(k);
        if (i !== undefined) order.push(i);
      }
      order.sort(byNumber);
      let last = -1;
      for (const i of order) {
        if (i === last) continue;
        last = i;
        this.property(plan.props[i], value!, prefix, path);
      }
    } else {
      for (const prop of plan.props) this.property(prop, value, prefix, path);
    }
    if (keys) this.additionalProperties(plan, value!, keys, obj.path);
    if (isRes) this.resources.pop();
  }

  /** medplum's crawlProperty: visit the element, then walk its complex values. */
  private property(prop: Prop, value: Json | undefined, prefix: string, path: string): void {
    const found = value ? propertyValue(value, prop, prefix + prop.key) : undefined;
    if (found === undefined) {
      if (prop.element.min > 0) this.issues.push(createStructureIssue(prefix + prop.key, 'Missing required property'));
      return;
    }
    const propPath = `${path}.${prop.key}`;
    if (Array.isArray(found)) {
      this.visit(prop, found, found, propPath);
      for (const v of found) if (!isPrimitiveType(v.type)) this.object(v, getDataType(v.type), propPath);
    } else {
      this.visit(prop, found, [found], propPath);
      if (!isPrimitiveType(found.type)) this.object(found, getDataType(found.type), propPath);
    }
  }

  /** medplum's visitProperty for one present element. */
  private visit(prop: Prop, raw: Tv | Tv[], values: Tv[], path: string): void {
    const element = prop.element;
    if (element.isArray) {
      if (!Array.isArray(raw)) {
        this.issues.push(createStructureIssue(path, 'Expected array of values for property'));
        return;
      }
    } else if (Array.isArray(raw)) {
      this.issues.push(createStructureIssue(path, 'Expected single value for property'));
      return;
    }
    if (values.length < element.min || values.length > element.max) {
      this.issues.push(
        createStructureIssue(element.path, `Invalid number of values: expected ${element.min}..${Number.isFinite(element.max) ? element.max : '*'}, but found ${values.length}`),
      );
    }
    if ((element.pattern || element.fixed) && !matchesSpecifiedValue(raw, element)) {
      this.issues.push(createStructureIssue(path, 'Value did not match expected pattern'));
    }
    const sliceCounts = element.slicing ? Object.fromEntries(element.slicing.slices.map((s) => [s.name, 0])) : undefined;
    for (const v of values) {
      if (prop.invariants.length > 0) this.invariants(v, prop.invariants);
      if (v.type === 'Reference' && prop.targetProfiles) this.referenceType(v, prop.targetProfiles);
      if (isPrimitiveType(v.type)) this.primitive(v);
      else if (isEmpty(v.value)) this.issues.push(createStructureIssue(v.path, 'Invalid empty non-primitive value'));
      if (sliceCounts) {
        const name = sliceOf(v, element.slicing);
        if (name) sliceCounts[name] += 1;
      }
    }
    if (element.slicing && sliceCounts) {
      for (const slice of element.slicing.slices) {
        const n = sliceCounts[slice.name];
        if (n < slice.min || n > slice.max) {
          this.issues.push(
            createStructureIssue(path, `Incorrect number of values provided for slice '${slice.name}': expected ${slice.min}..${Number.isFinite(slice.max) ? slice.max : '*'}, but found ${n}`),
          );
        }
      }
    }
  }

  /** medplum's constraintsCheck: stops at an element's first failed invariant. */
  private invariants(value: Tv, invariants: Invariant[]): void {
    for (const inv of invariants) {
      const native = inv.native?.(value.value);
      if (native === true || (native === undefined && inv.shortcut?.(value.value))) continue;
      if (native === false || !this.holds(inv, value)) {
        this.issues.push(createConstraintIssue(value.path, inv));
        return;
      }
    }
  }

  private holds(inv: Invariant, value: Tv): boolean {
    const variables: Record<string, TypedValue> = { '%context': value, '%ucum': (this.ucum ??= toTypedValue(UCUM)) };
    if (this.resources.length > 0) variables['%resource'] = toTypedValue(this.resources[this.resources.length - 1]);
    if (isResourceValue(this.root.value)) variables['%rootResource'] = this.root;
    try {
      const result = evalFhirPathTyped(inv.atom ?? inv.expression, [value], variables);
      return result.length === 1 && result[0].value === true;
    } catch (e) {
      this.issues.push(createProcessingIssue(value.path, 'Error evaluating invariant expression', e as Error, { fhirpath: inv.expression }));
      return false;
    }
  }

  private referenceType(value: Tv, targetProfiles: string[]): void {
    const reference = value.value;
    if (!isReference(reference)) return;
    if (reference.reference.startsWith('#')) return;
    const r = reference.reference;
    const q = r.indexOf('?');
    const slash = r.indexOf('/');
    const type = q >= 0 ? r.slice(0, q) : slash >= 0 ? r.slice(0, slash) : r;
    if (!type) return;
    const hl7 = `${HTTP_HL7_ORG}/fhir/StructureDefinition/`;
    const medplum = 'https://medplum.com/fhir/StructureDefinition/';
    for (const target of targetProfiles) {
      if (target === `${hl7}Resource` || target === hl7 + type || target === medplum + type) return;
      if (!target.startsWith(hl7) && !target.startsWith(medplum)) return;
    }
    this.issues.push(
      createOperationOutcomeIssue('warning', 'structure', `Invalid reference: got "${type}", expected "${targetProfiles.join('", "')}"`, value.path),
    );
  }

  /** medplum's validatePrimitiveType (with unpackPrimitiveElement). */
  private primitive(tv: Tv): void {
    let primitive: TypedValue | undefined = tv;
    let extension: TypedValue | undefined;
    const raw = tv.value;
    if (typeof raw === 'object' && raw) {
      const pv = raw.valueOf();
      if (pv === raw) {
        primitive = undefined;
        extension = { type: 'Element', value: raw };
      } else {
        const primitiveKeys = new Set(Object.keys(pv));
        const entries = Object.entries(raw).filter(([k]) => !primitiveKeys.has(k));
        primitive = { type: tv.type, value: pv };
        extension = { type: 'Element', value: entries.length > 0 ? Object.fromEntries(entries) : undefined };
      }
    }
    const path = tv.path;
    if (primitive) {
      const { type, value } = primitive;
      if (!(type in fhirTypeToJsType)) {
        this.issues.push(createStructureIssue(path, `Invalid JSON type: ${type} is not a valid FHIR type`));
        return;
      }
      const expected = fhirTypeToJsType[type as keyof typeof fhirTypeToJsType];
      if (typeof value !== expected) {
        if (value !== null) this.issues.push(createStructureIssue(path, `Invalid JSON type: expected ${expected}, but got ${typeof value}`));
        return;
      }
      if (expected === 'string') this.string(value as string, type, path);
      else if (expected === 'number') this.number(value as number, type, path);
    }
    if (extension) this.object({ ...extension, path }, getDataType('Element'), path);
  }

  private string(str: string, type: string, path: string): void {
    if (!str.trim()) {
      this.issues.push(createStructureIssue(path, 'String must contain non-whitespace content'));
      return;
    }
    if (str.length > 1024 * 1024) {
      this.issues.push(createStructureIssue(path, 'String cannot be larger than 1 MB'));
      return;
    }
    const regex = validationRegexes[type];
    if (regex && !regex.exec(str)) this.issues.push(createStructureIssue(path, `Invalid ${type} format`));
  }

  private number(n: number, type: string, path: string): void {
    if (Number.isNaN(n) || !Number.isFinite(n)) {
      this.issues.push(createStructureIssue(path, 'Invalid numeric value'));
    } else if ((type === 'integer' || type === 'positiveInt' || type === 'unsignedInt') && !Number.isInteger(n)) {
      this.issues.push(createStructureIssue(path, 'Expected number to be an integer'));
    } else if (type === 'positiveInt' && n <= 0) {
      this.issues.push(createStructureIssue(path, 'Expected number to be positive'));
    } else if (type === 'unsignedInt' && n < 0) {
      this.issues.push(createStructureIssue(path, 'Expected number to be non-negative'));
    }
  }

  /** medplum's checkAdditionalProperties: unknown keys, conflicting choices, mismatched `_x` choices. */
  private additionalProperties(plan: Plan, object: Json, keys: string[], path: string): void {
    const elements = plan.schema.elements;
    const choices: Record<string, string> = {};
    for (const key of keys) {
      if (key === 'resourceType') continue;
      const choice = plan.hasChoices ? this.choiceOfType(plan, object, key) : undefined;
      if (choice) {
        let related: string;
        let requiredRelated: string;
        if (choice.startsWith('_')) {
          related = choice.slice(1);
          requiredRelated = key.slice(1);
        } else {
          related = `_${choice}`;
          requiredRelated = `_${key}`;
        }
        if (related in choices && choices[related] !== requiredRelated) {
          const name = choice.startsWith('_') ? choice.slice(1) : choice;
          this.issues.push(createOperationOutcomeIssue('warning', 'structure', `Type of primitive extension does not match the type of property "${name}"`, choice));
        }
        if (choices[choice]) {
          this.issues.push(createOperationOutcomeIssue('warning', 'structure', `Conflicting choice of type properties: "${key}", "${choices[choice]}"`, key));
        }
        choices[choice] = key;
        continue;
      }
      if (!(key in elements) && !(key.startsWith('_') && key.slice(1) in elements)) {
        this.issues.push(createStructureIssue(`${path}.${key}`, `Invalid additional property "${key}"`));
      }
    }
  }

  /** medplum's isChoiceOfType: the choice element a key names, when that element has a value. */
  private choiceOfType(plan: Plan, object: Json, key: string): string | undefined {
    let name = plan.choiceOf.get(key);
    if (name === undefined) {
      name = choiceName(plan.schema.elements, key);
      if (plan.choiceOf.size < 1000) plan.choiceOf.set(key, name);
    }
    if (name === null) return undefined;
    const prop = plan.byKey.get(name.startsWith('_') ? name.slice(1) : name)!;
    return propertyValue(object, prop, '') ? name : undefined;
  }
}

function choiceName(elements: Record<string, InternalSchemaElement>, key: string): string | null {
  let prefix = '';
  if (key.startsWith('_')) {
    key = key.slice(1);
    prefix = '_';
  }
  let test = '';
  for (const part of key.split(/(?=[A-Z])/g)) {
    test += part;
    const elementName = `${test}[x]`;
    if (elements[elementName]) return prefix + elementName;
  }
  return null;
}

const byNumber = (a: number, b: number) => a - b;

function isPlainObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
}

function isResourceValue(value: unknown): boolean {
  return !!value && typeof value === 'object' && 'resourceType' in value;
}

/** medplum's checkObjectForNull (paths built only where an issue or a nested object needs them). */
function checkObjectForNull(obj: Json, path: string, issues: OperationOutcomeIssue[]): void {
  // Object.entries, not obj[key]: an own `__proto__` key (JSON.parse makes one) must be read as the value it holds
  for (const [key, value] of Object.entries(obj)) {
    if (value === null) {
      issues.push(createStructureIssue(`${path}.${key}`, 'Invalid null value'));
    } else if (Array.isArray(value)) {
      const propertyPath = `${path}.${key}`;
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i];
        if (item === undefined) {
          issues.push(createStructureIssue(`${propertyPath}[${i}]`, 'Invalid undefined value'));
        } else if (item === null) {
          const partnerKey = key.startsWith('_') ? key.slice(1) : `_${key}`;
          if (!(obj[partnerKey] as unknown[] | undefined)?.[i]) issues.push(createStructureIssue(`${propertyPath}[${i}]`, 'Invalid null value'));
        } else if (typeof item === 'object') {
          // (a string's characters or a number's nothing cannot hold a null)
          checkObjectForNull(item as Json, `${propertyPath}[${i}]`, issues);
        }
      }
    } else if (typeof value === 'object') {
      checkObjectForNull(value as Json, `${path}.${key}`, issues);
    }
  }
}

function matchesSpecifiedValue(value: TypedValue | TypedValue[], element: InternalSchemaElement): boolean {
  const typeAndValue = Array.isArray(value) ? value.map((v) => ({ type: v.type, value: v.value })) : { type: value.type, value: value.value };
  if (element.pattern && !deepIncludes(typeAndValue, element.pattern)) return false;
  if (element.fixed && !deepEquals(typeAndValue, element.fixed)) return false;
  return true;
}

function sliceOf(value: TypedValue, slicing: InternalSchemaElement['slicing']): string | undefined {
  if (!slicing) return undefined;
  for (const slice of slicing.slices) {
    if (slicing.discriminator.every((d) => arrayify(getNestedProperty(value, d.path))?.some((v) => matchDiscriminant(v, d, slice)))) {
      return slice.name;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// native invariants

/** A plain JSON object (not a String/Number carrying a primitive extension, not a resource-looking one). */
function plain(v: unknown): Json | undefined {
  return v && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype && !('resourceType' in v) ? (v as Json) : undefined;
}

function absent(obj: Json, name: string): boolean {
  return obj[name] === undefined && obj[`_${name}`] === undefined;
}

/** `name.exists()` on a plain object, when certain: a plain non-empty value without `_name`. */
function surelyExists(obj: Json, name: string): boolean {
  if (obj[`_${name}`] !== undefined) return false;
  const v = obj[name];
  if (typeof v === 'string') return v !== '';
  return plain(v) !== undefined && Object.keys(v as Json).length > 0;
}


const NATIVE: Record<string, (value: unknown) => boolean | undefined> = {
  // ext-1 on every Extension
  'extension.exists() != value.exists()': (value) => {
    const ext = plain(value);
    if (!ext || ext._extension !== undefined) return undefined;
    const e = ext.extension;
    let hasExtension: boolean;
    if (e === undefined) hasExtension = false;
    else if (Array.isArray(e)) {
      if (e.some((x) => x === undefined || x === null)) return undefined;
      hasExtension = e.length > 0 && e.every((x) => !isEmpty(x));
    } else hasExtension = !isEmpty(e);
    // Extension.value[x] in the schema's type order, as medplum's property lookup tries them
    const candidates = planOf(getDataType('Extension')).byKey.get('value[x]')?.candidates;
    if (!candidates) return undefined;
    let hasValue = false;
    for (const { name, ext: extName } of candidates) {
      const v = ext[name];
      if (ext[extName] !== undefined) return undefined;
      if (v === undefined) continue;
      if (Array.isArray(v)) return undefined;
      hasValue = !isEmpty(v);
      break;
    }
    return hasExtension !== hasValue;
  },
};

/**
 * The shortcuts. Each must be certain that medplum's evaluation answers exactly `true` without an error and
 * without side effects: FHIRPath evaluates both operands of `or`/`and`/`implies`, and reading an element merges
 * its primitive extension `_x` into it (medplum mutates an object value that way), so a shortcut also requires
 * that no element it names has a primitive extension.
 */
const SHORTCUTS: Record<string, Shortcut> = {
  // dom-2, dom-4, dom-5: no contained resources, nothing to check (both sides of `and` are booleans)
  'contained.contained.empty()': (v) => (plainResource(v) && absent(v as Json, 'contained')) || undefined,
  'contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()': (v) => (plainResource(v) && absent(v as Json, 'contained')) || undefined,
  'contained.meta.security.empty()': (v) => (plainResource(v) && absent(v as Json, 'contained')) || undefined,
  // obs-6, obs-7: both operands of `or` are single booleans whatever the content
  'dataAbsentReason.empty() or value.empty()': (v) => (plainResource(v) && absent(v as Json, 'dataAbsentReason') && noValueExtension(v as Json)) || undefined,
  'value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()': (v) =>
    (plainResource(v) && absent(v as Json, 'component') && noValueExtension(v as Json)) || undefined,
  // obs-3 (referenceRange), bdl-5 (entry): `exists()` is always a single boolean
  'low.exists() or high.exists() or text.exists()': (v) => {
    const o = plain(v);
    if (!o || o._low !== undefined || o._high !== undefined || o._text !== undefined) return undefined;
    return surelyExists(o, 'low') || surelyExists(o, 'high') || surelyExists(o, 'text') || undefined;
  },
  'resource.exists() or request.exists() or response.exists()': (v) => {
    const o = plain(v);
    if (!o || o._resource !== undefined || o._request !== undefined || o._response !== undefined) return undefined;
    const r = o.resource;
    return (r !== null && typeof r === 'object' && !Array.isArray(r) && Object.keys(r).length > 0) || surelyExists(o, 'request') || undefined;
  },
  // bdl-8: a plain fullUrl without a version
  "fullUrl.exists() implies fullUrl.contains('/_history/').not()": (v) => {
    const o = plain(v);
    if (!o) return undefined;
    const f = o.fullUrl;
    return (o._fullUrl === undefined && typeof f === 'string' && f !== '' && !f.includes('/_history/')) || undefined;
  },
};

/** No primitive extension of a `value[x]` (`_valueString`, ...) in `obj`. */
function noValueExtension(obj: Json): boolean {
  for (const k in obj) if (k.startsWith('_value')) return false;
  return true;
}

/** A resource as plain JSON (the root or a contained/entry resource), for the resource-level shortcuts. */
function plainResource(v: unknown): boolean {
  return !!v && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype && typeof (v as Json).resourceType === 'string';
}

/**
 * Validates `resource` like @medplum/core's `validateResource`, returning all issues instead of throwing on
 * errors. Throws what medplum throws for content it cannot walk (see the header).
 */
export function validateStructure(resource: Resource): OperationOutcomeIssue[] {
  return new CompiledValidator(resource).run();
}
