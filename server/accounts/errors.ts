/**
 * An account or session refusal: an HTTP status, an English code for programs, a Chinese message for the app,
 * and the request field it concerns. The accounts API answers it as JSON `{ code, message, field? }`.
 */
export class AccountError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string
  ) {
    super(message);
  }
}
