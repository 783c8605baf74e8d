/**
 * The FHIR engine's access policy (server/fhir/engine.ts `AccessPolicy`): the caller's SMART system scopes must
 * allow the interaction (the bootstrap token has system/*.*). Institution binding and reads with a reason are
 * the security issue's next steps and slot in here.
 */
import { fail } from '../fhir/errors.ts';
import type { AccessPolicy } from '../fhir/engine.ts';
import { allows, needed, parseScope } from './scopes.ts';

/**
 * The audit trail (server/audit/): nobody creates, updates, patches or deletes an AuditEvent through the API —
 * the platform writes them itself; reading them takes a scope that names AuditEvent (the audit administrator's
 * system/AuditEvent.rs; `system/*.…` does not reach them) or the platform token.
 */
function authorizeAudit(principal: Parameters<AccessPolicy['authorize']>[0], action: string): void {
  if (action === 'c' || action === 'u' || action === 'd') {
    throw fail(403, 'forbidden', 'AuditEvents are written by the platform only: none is created, updated, patched or deleted through the API');
  }
  if (principal.kind === 'bootstrap') return;
  const named = principal.scopes.some((scope) => {
    const grant = parseScope(scope);
    return grant?.type === 'AuditEvent' && grant.actions.has(action as 'r' | 's');
  });
  if (!named) throw fail(403, 'forbidden', `The audit trail is for the audit administrator (needs system/AuditEvent.${action})`);
}

export const scopeAccessPolicy: AccessPolicy = {
  authorize(principal, method, segments) {
    const need = needed(method, segments);
    if (need?.type === 'AuditEvent') return authorizeAudit(principal, need.action);
    if (need && !allows(principal.scopes, need.type, need.action)) {
      const what = { c: 'create', r: 'read', u: 'update or run this operation on', d: 'delete', s: 'search' }[need.action];
      throw fail(403, 'forbidden', `The caller's scopes do not allow it to ${what} ${need.type ?? 'the whole server'} (needs system/${need.type ?? '*'}.${need.action})`);
    }
  },
};
