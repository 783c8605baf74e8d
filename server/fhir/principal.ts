/**
 * Who is calling: the engine's view of an authenticated caller. The HTTP layer (server/http/auth.ts) resolves
 * one for every request; the engine uses it to authorise each interaction (engine.ts `AccessPolicy`) and to
 * keep asynchronous results for their owner.
 */
export interface Principal {
  kind: 'anonymous' | 'bootstrap' | 'cds-client' | 'client' | 'user' | 'app';
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
  /**
   * A SMART app launched for one patient (kind 'app'): the id of that Patient. The caller sees nothing personal
   * but this patient's (and the same person's other registrations') data, whatever its scopes say.
   */
  patient?: string;
  /** The person the caller acts for, as the system that vouches for them asserts it (a HIS's user): for the audit trail. */
  actingFor?: ActingFor;
}

/** A user as another system asserts it: a Practitioner reference, an identifier, and/or that system's login. No name. */
export interface ActingFor {
  practitioner?: string;
  identifier?: { system?: string; value: string };
  login?: string;
  /** The client that vouches for the user. */
  assertedBy: string;
}

export const ANONYMOUS: Principal = { kind: 'anonymous', id: 'anonymous', scopes: [] };
