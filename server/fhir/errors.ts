/** FHIR errors with an explicit HTTP status, carried as OperationOutcomeError so every layer can throw them. */
import { getStatus, OperationOutcomeError } from '@medplum/core';
import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

export class FhirError extends OperationOutcomeError {
  constructor(
    readonly status: number,
    outcome: OperationOutcome
  ) {
    super(outcome);
  }
}

export function outcome(
  severity: OperationOutcomeIssue['severity'],
  code: OperationOutcomeIssue['code'],
  text: string,
  expression?: string
): OperationOutcome {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity, code, details: { text }, ...(expression ? { expression: [expression] } : {}) }],
  };
}

export function fail(status: number, code: OperationOutcomeIssue['code'], text: string, expression?: string): FhirError {
  return new FhirError(status, outcome('error', code, text, expression));
}

export const badRequest = (text: string, expression?: string) => fail(400, 'invalid', text, expression);
export const notFound = (text: string) => fail(404, 'not-found', text);
export const gone = (text: string) => fail(410, 'deleted', text);
export const preconditionFailed = (text: string, expression?: string) => fail(412, 'conflict', text, expression);

/** The HTTP status of any thrown value (500 for anything that is not a FHIR error). */
export function statusOf(err: unknown): number {
  if (err instanceof FhirError) return err.status;
  if (err instanceof OperationOutcomeError) return getStatus(err.outcome);
  return 500;
}

export function informational(text: string): OperationOutcome {
  return outcome('information', 'informational', text);
}
