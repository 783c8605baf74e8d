/**
 * Validation of every write: structure, cardinality, primitive formats and invariants against the R4
 * StructureDefinitions (via @medplum/core), plus the server's own checks. Errors become a 400
 * OperationOutcome whose issues carry FHIRPath expressions.
 */
import { OperationOutcomeError, validateResource } from '@medplum/core';
import type { OperationOutcome, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { isSupportedResourceType, loadDefinitions } from './definitions.ts';

const ID_RE = /^[A-Za-z0-9\-.]{1,64}$/;

/** Returns every issue (errors and warnings) found in `resource`. */
export function checkResource(resource: unknown, path?: string): OperationOutcomeIssue[] {
  loadDefinitions();
  const where = (expr: string) => (path ? `${path}.${expr.replace(/^[A-Za-z]+\.?/, '')}`.replace(/\.$/, '') : expr);
  if (!resource || typeof resource !== 'object' || Array.isArray(resource)) {
    return [error('structure', 'Expected a FHIR resource (a JSON object)', path ?? '')];
  }
  const type = (resource as Resource).resourceType;
  if (typeof type !== 'string') return [error('structure', 'Missing resourceType', path ?? '')];
  if (!isSupportedResourceType(type)) return [error('not-supported', `Unknown resource type '${type}'`, path ? `${path}.resourceType` : 'resourceType')];
  const id = (resource as Resource).id;
  if (id !== undefined && (typeof id !== 'string' || !ID_RE.test(id))) {
    return [error('value', `Invalid id '${String(id).slice(0, 70)}'`, where(`${type}.id`))];
  }
  let issues: OperationOutcomeIssue[];
  try {
    issues = validateResource(resource as Resource);
  } catch (err) {
    if (err instanceof OperationOutcomeError) issues = err.outcome.issue ?? [];
    else issues = [error('processing', `Validation failed: ${(err as Error).message}`, path ?? type)];
  }
  if (path) {
    issues = issues.map((i) => ({ ...i, expression: i.expression?.map(where) }));
  }
  return issues;
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

export function error(code: OperationOutcomeIssue['code'], text: string, expression: string): OperationOutcomeIssue {
  return { severity: 'error', code, details: { text }, ...(expression ? { expression: [expression] } : {}) };
}
