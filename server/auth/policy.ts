/**
 * The FHIR engine's access policy (server/fhir/engine.ts `AccessPolicy`): the caller's SMART system scopes must
 * allow the interaction (the bootstrap token has system/*.*). Institution binding and reads with a reason are
 * the security issue's next steps and slot in here.
 */
import { fail } from '../fhir/errors.ts';
import type { AccessPolicy } from '../fhir/engine.ts';
import { allows, needed } from './scopes.ts';

export const scopeAccessPolicy: AccessPolicy = {
  authorize(principal, method, segments) {
    const need = needed(method, segments);
    if (need && !allows(principal.scopes, need.type, need.action)) {
      const what = { c: 'create', r: 'read', u: 'update or run this operation on', d: 'delete', s: 'search' }[need.action];
      throw fail(403, 'forbidden', `The caller's scopes do not allow it to ${what} ${need.type ?? 'the whole server'} (needs system/${need.type ?? '*'}.${need.action})`);
    }
  },
};
