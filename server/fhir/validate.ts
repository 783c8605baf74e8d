/**
 * Validation of every write: structure, cardinality, primitive formats and invariants against the R4
 * StructureDefinitions (validation/compiled.ts: @medplum/core's validateResource rules, compiled once per
 * type; medplum's own validator is the reference its test compares against), plus the server's own checks (validation/: required terminology
 * bindings, inner resource ids, extensions, narrative safety, Bundle and other resource rules). Errors become
 * a 400 OperationOutcome whose issues carry FHIRPath expressions. See docs/validation.md.
 */
import { getAllDataTypes, OperationOutcomeError } from '@medplum/core';
import type { OperationOutcome, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { isSupportedResourceType, loadDefinitions } from './definitions.ts';
import { validateStructure } from './validation/compiled.ts';
import { loadCoreExtensions } from './validation/extensions.ts';
import { Issues } from './validation/issues.ts';
import { loadRuleData } from './validation/rules.ts';
import { warmSchemas } from './validation/schema.ts';
import { loadTerminology, registerCanonical, releaseTerminologySource } from './validation/terminology.ts';
import { Walker } from './validation/walker.ts';
import { loadProfiles } from './profiles/load.ts';
import { profileIssues } from './profiles/validate.ts';

const ID_RE = /^[A-Za-z0-9\-.]{1,64}$/;

/** medplum issues the server's own checks replace (stricter or more lenient versions of the same rule). */
const REPLACED = [/^Invalid base64Binary format$/, /\bper-1\b/, /\bque-12\b/, /^Invalid reference: got /];

let loaded = false;

/**
 * Loads everything validation needs (idempotent; about a second): the R4 definitions, the core terminology,
 * whose required-binding value sets are expanded once here, core extensions and search parameters.
 */
export function loadValidation(): void {
  if (loaded) return;
  loadDefinitions();
  loadTerminology();
  loadCoreExtensions();
  loadRuleData();
  loadProfiles();
  for (const schema of Object.values(getAllDataTypes())) {
    if (schema.url) registerCanonical(schema.url, 'StructureDefinition');
  }
  warmSchemas();
  releaseTerminologySource();
  loaded = true;
}

/** Returns every issue (errors and warnings) found in `resource`. Never throws. */
export function checkResource(resource: unknown, path?: string): OperationOutcomeIssue[] {
  const where = (expr: string) => (path ? `${path}.${expr.replace(/^[A-Za-z]+\.?/, '')}`.replace(/\.$/, '') : expr);
  try {
    loadValidation();
    if (!resource || typeof resource !== 'object' || Array.isArray(resource)) {
      return [error('structure', 'Expected a FHIR resource (a JSON object)', path ?? 'Resource')];
    }
    const type = (resource as Resource).resourceType;
    if (typeof type !== 'string') return [error('structure', 'Missing resourceType', path ?? 'Resource')];
    if (!isSupportedResourceType(type)) {
      return [error('not-supported', `Unknown resource type '${type.slice(0, 64)}'`, path ? `${path}.resourceType` : 'Resource.resourceType')];
    }
    const id = (resource as Resource).id;
    if (id !== undefined && (typeof id !== 'string' || !ID_RE.test(id))) {
      return [error('value', `Invalid id '${String(id).slice(0, 70)}'`, where(`${type}.id`))];
    }
    let issues: OperationOutcomeIssue[];
    try {
      issues = validateStructure(resource as Resource);
    } catch (err) {
      if (err instanceof OperationOutcomeError) issues = err.outcome.issue ?? [];
      else issues = [error('processing', `Validation failed: ${(err as Error).message}`, type)];
    }
    issues = issues.filter((i) => !REPLACED.some((re) => re.test(i.details?.text ?? '')));
    const own = new Issues();
    new Walker(own).resource(resource as Record<string, unknown>, type, true);
    // a resource (or Bundle entry) claiming one of our profiles is validated against it (profiles/validate.ts)
    const seen = new Set([...issues, ...own.list].map(issueKey));
    for (const i of profileIssues(resource as Resource)) {
      const key = issueKey(i);
      if (REPLACED.some((re) => re.test(i.details?.text ?? '')) || seen.has(key)) continue;
      seen.add(key);
      own.list.push(i);
    }
    // every issue names a FHIRPath; 'exception' would make the outcome a 500 (medplum getStatus)
    issues = [...issues, ...own.list].map((i) => ({
      ...i,
      code: i.code === 'exception' ? 'processing' : i.code,
      expression: i.expression?.length ? i.expression : [type],
    }));
    if (path) issues = issues.map((i) => ({ ...i, expression: i.expression?.map(where) }));
    return issues;
  } catch (err) {
    // a bug in a check must never turn a client's request into a 500
    return [error('processing', `Validation could not complete: ${(err as Error)?.message?.slice(0, 200) ?? String(err)}`, path ?? 'Resource')];
  }
}

/** Throws a 400 OperationOutcomeError when `resource` has errors; returns the warnings otherwise. */
export function assertValid(resource: unknown, path?: string): OperationOutcomeIssue[] {
  const issues = checkResource(resource, path);
  const errors = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
  if (errors.length > 0) {
    throw new OperationOutcomeError({ resourceType: 'OperationOutcome', issue: errors } as OperationOutcome);
  }
  return issues;
}

function issueKey(i: OperationOutcomeIssue): string {
  return `${i.severity}|${i.details?.text ?? ''}|${i.expression?.join(',') ?? ''}`;
}

export function error(code: OperationOutcomeIssue['code'], text: string, expression: string): OperationOutcomeIssue {
  return { severity: 'error', code, details: { text }, ...(expression ? { expression: [expression] } : {}) };
}
