/**
 * The recognition operations' input: a StrictInput whose `guard` turns the service's RecognitionErrors into 4xx
 * OperationOutcomes whose expression names the parameter as the caller sent it.
 */
import { StrictInput } from '../../fhir/operations/input.ts';
import { RecognitionError, toFhirError } from '../errors.ts';

export class RecognitionInput extends StrictInput {
  /** Runs service code, mapping its RecognitionErrors to OperationOutcomes with this input's expressions. */
  async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof RecognitionError) throw toFhirError(err, (param) => this.expr(param));
      throw err;
    }
  }
}
