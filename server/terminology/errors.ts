/**
 * A terminology failure: the domain says what went wrong and which input caused it; the FHIR operation
 * layer turns it into a 4xx OperationOutcome whose expression names the parameter as the caller sent it.
 */
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';

export class TerminologyError extends Error {
  constructor(
    readonly status: number,
    readonly code: OperationOutcomeIssue['code'],
    message: string,
    /** The operation parameter at fault (e.g. `system`, `code`, `url`). */
    readonly param?: string
  ) {
    super(message);
  }
}
