/**
 * Who is calling: the engine's view of an authenticated caller. The HTTP layer (server/http/auth.ts) resolves
 * one for every request; the engine uses it to authorise each interaction (engine.ts `AccessPolicy`) and to
 * keep asynchronous results for their owner.
 */
export interface Principal {
  kind: 'anonymous' | 'bootstrap' | 'cds-client' | 'client' | 'user';
  /** A stable, non-personal identifier for logs and audit. */
  id: string;
  scopes: string[];
  /** The institution the caller speaks for ("Organization/[id]" or "Organization?identifier=…"), if bound to one. */
  institution?: string;
  /** A signed-in person's roles (kind 'user'); their scopes above are what the roles grant. */
  roles?: string[];
  /**
   * The purpose of use the request states (`X-Purpose-Of-Use`: a code of v3 PurposeOfUse, e.g. TREAT), set per
   * request; reads of another institution's personal data need one (server/auth/care.ts).
   */
  purposeOfUse?: string;
}

export const ANONYMOUS: Principal = { kind: 'anonymous', id: 'anonymous', scopes: [] };
