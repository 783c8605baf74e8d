/**
 * A flat view of the R4 type schemas (the ones @medplum/core builds from the StructureDefinitions) for a
 * single-pass walk over FHIR JSON: per type, JSON property name -> element, type and (enumerable) required
 * binding. Choice elements are expanded (`value[x]` -> `valueQuantity`, `valueString`, ...).
 * Built once per type at load (see `warmSchemas`) and cached.
 */
import { getAllDataTypes, tryGetDataType, type InternalSchemaElement, type InternalTypeSchema } from '@medplum/core';
import { expansion, type Expansion } from './terminology.ts';

export interface Prop {
  /** Element name without `[x]`. */
  name: string;
  element: InternalSchemaElement;
  /** The type of the value under this JSON key. */
  type: string;
  /** FHIRPath step for this key: `status`, or `value.ofType(Quantity)` for a choice. */
  step: string;
  /** The expansion of a `required` binding, when it can be enumerated locally. */
  required?: Expansion;
}

export const PRIMITIVES: ReadonlySet<string> = new Set([
  'base64Binary', 'boolean', 'canonical', 'code', 'date', 'dateTime', 'decimal', 'id', 'instant', 'integer', 'markdown',
  'oid', 'positiveInt', 'string', 'time', 'unsignedInt', 'uri', 'url', 'uuid', 'xhtml',
  'http://hl7.org/fhirpath/System.String',
]);

const cache = new Map<InternalTypeSchema, Map<string, Prop>>();

/** The JSON properties of a type. */
export function propsOf(schema: InternalTypeSchema): Map<string, Prop> {
  let map = cache.get(schema);
  if (map) return map;
  map = new Map();
  for (const [key, element] of Object.entries(schema.elements)) {
    if (key.includes('.')) continue; // nested paths of profiles; core types keep them in inner types
    const binding = element.binding?.strength === 'required' && element.binding.valueSet ? expansion(element.binding.valueSet) : undefined;
    if (key.endsWith('[x]')) {
      const name = key.slice(0, -3);
      for (const t of element.type ?? []) {
        const suffix = t.code.charAt(0).toUpperCase() + t.code.slice(1);
        map.set(name + suffix, { name, element, type: t.code, step: `${name}.ofType(${t.code})`, required: binding });
      }
    } else {
      const type = element.type?.[0]?.code ?? 'Element';
      map.set(key, { name: key, element, type, step: key, required: binding });
    }
  }
  cache.set(schema, map);
  return map;
}

export function schemaOf(type: string): InternalTypeSchema | undefined {
  return tryGetDataType(type);
}

/** Builds the property maps (and with them the required-binding expansions) of every loaded type. */
export function warmSchemas(): number {
  let n = 0;
  for (const schema of Object.values(getAllDataTypes())) {
    propsOf(schema);
    n++;
  }
  return n;
}
