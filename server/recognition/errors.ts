/**
 * Bad input to the recognition service: a RecognitionError names the input at fault (param, index, path);
 * callers map it to their protocol (an OperationOutcome with a FHIRPath expression for the FHIR operations).
 */
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { FhirError } from '../fhir/errors.ts';

export class RecognitionError extends Error {
  constructor(
    readonly status: number,
    readonly code: OperationOutcomeIssue['code'],
    message: string,
    /** The input at fault (a parameter name of the operations). */
    readonly param?: string,
    /** Which repetition of the input (e.g. the second `order`). */
    readonly index?: number,
    /** A FHIRPath below the input, e.g. `resource.code.coding[0]`. */
    readonly path?: string
  ) {
    super(message);
  }
}

/** Maps a RecognitionError to the FHIR error the operations throw (the expression built by `expr`). */
export function toFhirError(err: RecognitionError, expr: (param: string) => string): FhirError {
  const base = err.param ? expr(err.param) : undefined;
  const expression = base ? `${base}${err.index !== undefined ? `[${err.index}]` : ''}${err.path ? `.${err.path}` : ''}` : undefined;
  return new FhirError(err.status, {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code: err.code, details: { text: err.message }, ...(expression ? { expression: [expression] } : {}) }],
  });
}
