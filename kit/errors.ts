/**
 * Exit codes of `huren-submit` (docs/integration-kit.md):
 *   0  everything asked for succeeded (for `conformance`: every step passed)
 *   1  the platform or the chain said no, or a conformance step failed
 *   2  the command line or an input file is wrong (nothing was sent anywhere)
 */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** An error the CLI prints as one clear line (no stack) and exits with `exitCode`. */
export class KitError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILED
  ) {
    super(message);
    this.name = 'KitError';
  }
}

/** A wrong command line or input file: exit code 2. */
export function usageError(message: string): KitError {
  return new KitError(message, EXIT_USAGE);
}
