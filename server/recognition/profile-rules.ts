/**
 * The rule of the recognition report profile that its definition cannot state: the report's code identifies an
 * item of the current recognition catalogue (a platform code, or a national or legacy code the catalogue maps).
 */
import type { Coding, Resource } from '@medplum/fhirtypes';
import { configureProfileValidation, type IssueSink } from '../fhir/profiles/validate.ts';
import { PROFILE } from '../profiles/canonical.ts';
import { CANONICAL_BASE, CATALOGUE_SYSTEM } from '../terminology/canonical.ts';
import { currentCatalogue } from './catalogue.ts';

const PLATFORM_CODE_SYSTEMS = `${CANONICAL_BASE}/CodeSystem/`;

export function connectCatalogueRule(): void {
  configureProfileValidation({ rules: new Map([[PROFILE.diagnosticReport, catalogueItem]]) });
}

function catalogueItem(resource: Resource, error: IssueSink): void {
  let catalogue;
  try {
    catalogue = currentCatalogue();
  } catch {
    return; // no catalogue loaded: the rule is not applied
  }
  const codings = (resource as { code?: { coding?: Coding[] } }).code?.coding;
  if (!Array.isArray(codings)) return;
  let found = false;
  let platform = false;
  codings.forEach((coding, i) => {
    if (!coding || typeof coding !== 'object') return;
    if (typeof coding.system === 'string' && coding.system.startsWith(PLATFORM_CODE_SYSTEMS)) platform = true;
    const r = catalogue.resolve(coding);
    if ('invalid' in r) {
      if (coding.system !== CATALOGUE_SYSTEM) error('code-invalid', `Not a code of the recognition catalogue: ${r.invalid}`, `DiagnosticReport.code.coding[${i}]`);
    } else if (r.items.length > 0) found = true;
  });
  // without a platform coding, hr-dr-1 says it
  if (!found && platform) {
    error('code-invalid', 'The report code identifies no item of the recognition catalogue (platform code, or a national or legacy code the catalogue maps)', 'DiagnosticReport.code');
  }
}
