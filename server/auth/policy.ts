/**
 * The FHIR engine's access policy (server/fhir/engine.ts `AccessPolicy`): the caller's SMART system scopes must
 * allow the interaction (the bootstrap token has system/*.*). Institution binding and reads with a reason are
 * the security issue's next steps and slot in here.
 */
import { fail } from '../fhir/errors.ts';
import type { AccessPolicy } from '../fhir/engine.ts';
import { missing, parseScope, refusalText, requirements } from './scopes.ts';

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
    const needs = requirements(method, segments);
    const audit = needs.find((n) => n.type === 'AuditEvent');
    if (audit) return authorizeAudit(principal, audit.action);
    const need = missing(principal.scopes, needs);
    if (need) throw fail(403, 'forbidden', refusalText(need));
  },
};
