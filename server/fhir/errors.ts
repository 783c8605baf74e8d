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

/** The HTTP status of any thrown value (500 for anything that is neither a FHIR error nor a database answer to input). */
export function statusOf(err: unknown): number {
  if (err instanceof FhirError) return err.status;
  if (err instanceof OperationOutcomeError) return getStatus(err.outcome);
  return databaseFailure(err)?.status ?? 500;
}

/**
 * A database error that is the input's doing, or the database's refusal to do more, as the FHIR error it
 * means (SQLSTATE classes): 22 data exception (a value out of range or malformed) → 400; 54 program limit
 * exceeded (a statement too complex, an index row too large) → 422 `too-costly`; 57014 cancelled (the
 * statement timeout), 53 insufficient resources, 08 connection lost, 57P01/57P03 server shutting down or
 * starting and 25006 a read-only standby (no writable primary during a failover) → 503 `transient`. Anything else stays a server fault.
 * The database's message is not repeated: it may quote the values.
 */
export function databaseFailure(err: unknown): FhirError | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return undefined;
  if (code.startsWith('22')) return fail(400, 'invalid', `A value in the request is out of range or malformed for the store (SQLSTATE ${code})`);
  if (code.startsWith('54')) return fail(422, 'too-costly', `The request is too large or complex for the store (SQLSTATE ${code})`);
  if (code === '57014') return fail(503, 'transient', 'The request took longer than the statement timeout and was cancelled; try again, or ask for less');
  if (code.startsWith('08') || code === '57P01' || code === '57P03' || code === '25006') {
    return fail(503, 'transient', 'The database is not reachable right now (a failover may be under way); try again shortly');
  }
  if (code.startsWith('53')) return fail(503, 'transient', `The store is short of resources (SQLSTATE ${code}); try again later`);
  return undefined;
}

/** `err` as a FHIR error where it is one (or a database answer to input, above); otherwise `err` unchanged. */
export function asFhirError(err: unknown): unknown {
  if (err instanceof OperationOutcomeError) return err;
  return databaseFailure(err) ?? err;
}

export function informational(text: string): OperationOutcome {
  return outcome('information', 'informational', text);
}
