/**
 * One typed pass over a resource (and the resources inside it: contained, Bundle entries, Parameters), for
 * the checks @medplum/core's validator does not make: required terminology bindings, ids of inner resources,
 * empty arrays and objects, lenient base64 (whitespace allowed, as XML-derived content has it) and attachment
 * sizes, period ordering with FHIRPath precision rules, dateTime time zones, Coding.system, canonical target
 * types, narrative XHTML safety, and the context and value type of known extensions. Resource-specific rules
 * (Bundle, Questionnaire, ...) are in rules.ts.
 */
import { isResourceType, type InternalTypeSchema } from '@medplum/core';
import { contextAllows, extensionDef } from './extensions.ts';
import type { Issues } from './issues.ts';
import { PRIMITIVES, propsOf, schemaOf, type Prop } from './schema.ts';
import { canonicalType, isCoreCodeSystem, isCoreValueSet } from './terminology.ts';
import { checkXhtml } from './xhtml.ts';
import { resourceRules } from './rules.ts';

type Json = Record<string, unknown>;

const ID_RE = /^[A-Za-z0-9\-.]{1,64}$/;
const BASE64_RE = /^([A-Za-z\d+/]{4})*([A-Za-z\d+/]{2}==|[A-Za-z\d+/]{3}=)?$/;
const ABSOLUTE_URI_RE = /^[A-Za-z][A-Za-z0-9+.-]*:/;
const TIME_WITHOUT_ZONE_RE = /T\d\d(:\d\d(:\d\d(\.\d+)?)?)?$/;

export class Walker {
  private elementSchema?: InternalTypeSchema;
  constructor(readonly issues: Issues) {}

  /** Walks a resource at `path` (its own type name for a root resource). */
  resource(res: Json, path: string, root: boolean): void {
    const type = res.resourceType;
    if (typeof type !== 'string') {
      if (!root) this.issues.error('structure', 'A resource must have a resourceType', path);
      return;
    }
    const schema = schemaOf(type);
    if (!schema || schema.kind !== 'resource') {
      if (!root) this.issues.error('structure', `Unknown resource type '${type.slice(0, 64)}'`, path);
      return;
    }
    if (!root && res.id !== undefined) this.checkId(res.id, `${path}.id`);
    this.object(res, schema, path, type, type, true);
    resourceRules.get(type)?.(res, path, this);
  }

  checkId(id: unknown, path: string): void {
    if (typeof id !== 'string') {
      this.issues.error('structure', 'Resource id must be a string', path);
    } else if (!ID_RE.test(id)) {
      this.issues.error('value', id.length > 64 ? `Invalid Resource id: Too long (${id.length} chars)` : `Invalid Resource id: Invalid Characters ('${id.slice(0, 64)}')`, path);
    }
  }

  private object(obj: Json, schema: InternalTypeSchema, path: string, hostType: string, hostPath: string, isResource: boolean): void {
    const props = propsOf(schema);
    for (const key of Object.keys(obj)) {
      if (key === 'resourceType') continue;
      const primitiveExtension = key.charCodeAt(0) === 95; // '_'
      const prop = props.get(primitiveExtension ? key.slice(1) : key);
      if (!prop) continue; // unknown properties are reported by the structural validator
      const value = obj[key];
      const p = `${path}.${prop.step}`;
      if (Array.isArray(value)) {
        if (value.length === 0) {
          this.issues.error('structure', 'Array cannot be empty - the property should not be present if it has no values', p);
          continue;
        }
        for (let i = 0; i < value.length; i++) this.value(value[i], prop, `${p}[${i}]`, primitiveExtension);
        if ((key === 'extension' || key === 'modifierExtension') && !primitiveExtension) {
          for (let i = 0; i < value.length; i++) this.extension(value[i], `${p}[${i}]`, hostType, hostPath, isResource);
        }
      } else {
        this.value(value, prop, p, primitiveExtension);
      }
    }
  }

  private value(v: unknown, prop: Prop, path: string, primitiveExtension: boolean): void {
    if (v === null || v === undefined) return;
    if (primitiveExtension) {
      if (typeof v === 'object' && !Array.isArray(v)) {
        this.object(v as Json, (this.elementSchema ??= schemaOf('Element') as InternalTypeSchema), path, prop.type, prop.element.path, false);
      }
      return;
    }
    const type = prop.type;
    if (PRIMITIVES.has(type)) {
      if (typeof v === 'string') this.primitive(v, prop, path);
      return;
    }
    if (typeof v !== 'object' || Array.isArray(v)) return; // reported by the structural validator
    const obj = v as Json;
    if (type === 'Resource') {
      this.resource(obj, path, false);
      return;
    }
    if (Object.keys(obj).length === 0) {
      this.issues.error('structure', 'Object must have some content', path);
      return;
    }
    const schema = schemaOf(type);
    if (!schema) return;
    this.object(obj, schema, path, type, prop.element.path, false);
    const rule = DATATYPE_RULES[type];
    if (rule) rule(this, obj, prop, path);
  }

  private primitive(v: string, prop: Prop, path: string): void {
    switch (prop.type) {
      case 'code':
        if (prop.required && !prop.required.codes.has(v)) {
          this.issues.error('code-invalid', `The value '${v.slice(0, 80)}' is not in the value set ${prop.required.url}, which is required here`, path);
        }
        break;
      case 'base64Binary':
        if (!BASE64_RE.test(v.replace(/\s+/g, ''))) this.issues.error('value', 'The value is not a valid Base64 value', path);
        break;
      case 'dateTime':
      case 'instant':
        if (TIME_WITHOUT_ZONE_RE.test(v)) this.issues.error('value', `If a date has a time, it must have a timezone ('${v.slice(0, 40)}')`, path);
        break;
      case 'canonical': {
        const found = canonicalType(v);
        if (!found) break;
        const targets = prop.element.type.find((t) => t.code === 'canonical')?.targetProfile;
        if (!targets?.length) break;
        const types = targets.map((t) => t.slice(t.lastIndexOf('/') + 1));
        if (!types.includes(found) && !types.includes('Resource')) {
          this.issues.error('value', `Canonical URL '${v.slice(0, 120)}' refers to a resource that has the wrong type. Found ${found} expecting one of [${types.join(', ')}]`, path);
        }
        break;
      }
      case 'xhtml':
        for (const problem of checkXhtml(v)) this.issues.error('value', problem, path);
        break;
    }
  }

  private extension(ext: unknown, path: string, hostType: string, hostPath: string, hostIsResource: boolean): void {
    if (!ext || typeof ext !== 'object') return;
    const url = (ext as Json).url;
    if (typeof url !== 'string' || !ABSOLUTE_URI_RE.test(url)) return; // relative: a part of a complex extension
    if (url.includes('|')) {
      this.issues.error('value', `The extension URL must not contain a version ('${url.slice(0, 120)}')`, `${path}.url`);
      return;
    }
    const def = extensionDef(url);
    if (!def) {
      this.issues.warning('informational', `Unknown extension ${url.slice(0, 200)}: accepted, not validated`, path);
      return;
    }
    if (!def.contexts.some((c) => contextAllows(c, hostType, hostPath, hostIsResource))) {
      this.issues.error('structure', `The extension ${url} is not allowed to be used at this point (this element is ${hostPath}; allowed: ${def.contexts.join(', ')})`, path);
    }
    const valueKey = Object.keys(ext).find((k) => k.startsWith('value'));
    if (valueKey) {
      const suffix = valueKey.slice(5);
      const type = def.valueTypes.has(suffix) ? suffix : suffix.charAt(0).toLowerCase() + suffix.slice(1);
      if (!def.valueTypes.has(type)) {
        this.issues.error('structure', def.valueTypes.size === 0
          ? `The extension ${url} is complex and cannot have a value`
          : `The extension ${url} definition allows for the types [${[...def.valueTypes].join(', ')}] but found type ${type}`, `${path}.${valueKey}`);
      } else if (def.required) {
        checkBoundValue(this, (ext as Json)[valueKey], type, def.required, `${path}.${valueKey}`);
      }
    }
  }
}

type DatatypeRule = (w: Walker, value: Json, prop: Prop, path: string) => void;

const DATATYPE_RULES: Record<string, DatatypeRule> = {
  Period(w, period, _prop, path) {
    const { start, end } = period;
    if (typeof start !== 'string' || typeof end !== 'string') return;
    const order = compareDateTimes(start, end);
    if (order === 'unknown' || (typeof order === 'number' && order > 0)) {
      w.issues.error('invariant', `Constraint failed: per-1: 'If present, start SHALL have a lower value than end' (${start} / ${end})`, path);
    }
  },
  Attachment(w, att, _prop, path) {
    const { data, size } = att;
    if (typeof data !== 'string' || typeof size !== 'number') return;
    const b64 = data.replace(/\s+/g, '');
    if (!BASE64_RE.test(b64)) return;
    const actual = (b64.length / 4) * 3 - (b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0);
    if (actual !== size) w.issues.error('value', `Stated Attachment Size ${size} does not match actual attachment size ${actual}`, path);
  },
  Reference(w, ref, prop, path) {
    const r = ref.reference;
    if (typeof r === 'string' && !r.startsWith('#') && !ABSOLUTE_URI_START_RE.test(r)) {
      const m = RELATIVE_REF_RE.exec(r);
      if (!m || !isResourceType(m[1])) {
        w.issues.error('value', `Malformed reference '${r.slice(0, 80)}': expected Type/id (id: 1 to 64 of A-Z a-z 0-9 - .), an absolute URL, or #contained`, `${path}.reference`);
        return;
      }
    }
    const target = referencedType(ref);
    if (!target) return;
    const profiles = prop.element.type.find((t) => t.code === 'Reference')?.targetProfile;
    if (!profiles?.length || profiles.some((t) => !t.startsWith(CORE_SD))) return; // unconstrained, or a profile's
    const types = profiles.map((t) => t.slice(CORE_SD.length));
    if (!types.includes(target) && !types.includes('Resource')) {
      // a warning: three of the official R4 examples point at types their element does not allow
      w.issues.warning('structure', `The type '${target}' of the reference is not a valid target for this element (must be one of [${types.join(', ')}])`, path);
    }
  },
  Coding(w, coding, prop, path) {
    checkCodingSystem(w, coding, path);
    if (prop.required) checkBoundValue(w, coding, 'Coding', prop.required, path);
  },
  CodeableConcept(w, cc, prop, path) {
    if (prop.required) checkBoundValue(w, cc, 'CodeableConcept', prop.required, path);
  },
};

const CORE_SD = 'http://hl7.org/fhir/StructureDefinition/';
/** A reference that starts with a URI scheme (`https:`, `urn:uuid:`) is absolute. */
const ABSOLUTE_URI_START_RE = /^[A-Za-z][A-Za-z0-9+.\-]*:/;
const RELATIVE_REF_RE = /^([A-Z][A-Za-z]+)(?:\/[A-Za-z0-9\-.]{1,64}(?:\/_history\/[A-Za-z0-9\-.]{1,64})?|\?.*)$/;
const ABSOLUTE_REF_RE = /^https?:\/\/.*\/([A-Z][A-Za-z]+)\/[A-Za-z0-9\-.]{1,64}(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;

/** The resource type a Reference names (its `type`, or the type in a relative or RESTful URL), if any. */
function referencedType(ref: Json): string | undefined {
  const r = ref.reference;
  let type: string | undefined;
  if (typeof r === 'string') type = (RELATIVE_REF_RE.exec(r) ?? ABSOLUTE_REF_RE.exec(r))?.[1];
  if (!type && typeof ref.type === 'string') type = ref.type;
  return type && isResourceType(type) ? type : undefined;
}

/** Coding.system must be an absolute URI naming a code system (not a value set). */
export function checkCodingSystem(w: Walker, coding: Json, path: string): void {
  const system = coding.system;
  if (typeof system !== 'string') return;
  if (!ABSOLUTE_URI_RE.test(system)) {
    w.issues.error('value', `Coding.system must be an absolute reference, not a local reference ('${system.slice(0, 80)}')`, `${path}.system`);
  } else if (isCoreValueSet(system) && !isCoreCodeSystem(system)) {
    w.issues.error('value', `The Coding references a value set, not a code system ('${system}')`, `${path}.system`);
  }
}

/**
 * A required binding on a Coding or CodeableConcept: only codings whose system the value set enumerates
 * are judged (a coding from another system is not evidence either way without a terminology server).
 */
function checkBoundValue(w: Walker, value: unknown, type: string, vs: { url: string; systems: Map<string, Set<string>>; codes: Set<string> }, path: string): void {
  if (type === 'code') {
    if (typeof value === 'string' && !vs.codes.has(value)) {
      w.issues.error('code-invalid', `The value '${value.slice(0, 80)}' is not in the value set ${vs.url}, which is required here`, path);
    }
    return;
  }
  const codings = type === 'Coding' ? [value] : type === 'CodeableConcept' ? ((value as Json)?.coding as unknown[]) : undefined;
  if (!Array.isArray(codings) || codings.length === 0) return;
  let judged = 0;
  for (const c of codings) {
    const { system, code } = (c ?? {}) as Json;
    if (typeof system !== 'string' || typeof code !== 'string') return;
    const codes = vs.systems.get(system);
    if (!codes) return;
    if (codes.has(code)) return;
    judged++;
  }
  if (judged > 0) {
    const first = codings[0] as Json;
    w.issues.error('code-invalid', `The code '${String(first.system)}#${String(first.code).slice(0, 60)}' is not in the value set ${vs.url}, which is required here`, path);
  }
}

/**
 * Compares two FHIR date/dateTime/instant strings by FHIRPath rules: a negative number, 0 or a positive
 * number; 'unknown' when they are equal to their common precision but have different precisions (FHIRPath
 * answers empty); undefined when a value cannot be read.
 */
export function compareDateTimes(a: string, b: string): number | 'unknown' | undefined {
  const aTime = a.includes('T');
  const bTime = b.includes('T');
  if (aTime && bTime) {
    const ta = Date.parse(/[Zz]|[+-]\d\d:\d\d$/.test(a) ? a : `${a}Z`);
    const tb = Date.parse(/[Zz]|[+-]\d\d:\d\d$/.test(b) ? b : `${b}Z`);
    if (Number.isNaN(ta) || Number.isNaN(tb)) return undefined;
    return ta - tb;
  }
  const pa = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?/.exec(a);
  const pb = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?/.exec(b);
  if (!pa || !pb) return undefined;
  const ca = pa.slice(1).filter((x) => x !== undefined).map(Number);
  const cb = pb.slice(1).filter((x) => x !== undefined).map(Number);
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    if (ca[i] !== cb[i]) return ca[i] - cb[i];
  }
  return ca.length === cb.length && !aTime && !bTime ? 0 : 'unknown';
}
