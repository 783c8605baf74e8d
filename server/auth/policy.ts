/**
 * The FHIR engine's access policy (server/fhir/engine.ts `AccessPolicy`): the caller's SMART system scopes must
 * allow the interaction (the bootstrap token has system/*.*). Institution binding and reads with a reason are
 * the security issue's next steps and slot in here.
 */
import { fail } from '../fhir/errors.ts';
import type { AccessPolicy } from '../fhir/engine.ts';
import { missing, refusalText, requirements } from './scopes.ts';

export const scopeAccessPolicy: AccessPolicy = {
  authorize(principal, method, segments) {
    const need = missing(principal.scopes, requirements(method, segments));
    if (need) throw fail(403, 'forbidden', refusalText(need));
  },
};
