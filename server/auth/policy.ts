/**
 * The FHIR engine's access policy (server/fhir/engine.ts `AccessPolicy`), docs/security.md 访问控制:
 * 1. scopes — the caller's SMART system scopes must allow the interaction (the bootstrap token has system/*.*),
 *    and every resource an answer holds (also through _include, _revinclude, operations) needs a read scope on
 *    its type;
 * 2. the audit trail — AuditEvents are written by the platform only and read only with a scope naming
 *    AuditEvent (the audit administrator), wherever they would appear;
 * 3. institution binding of writes — a caller bound to an institution writes only as itself and changes only
 *    its own resources; the platform's records only the platform writes;
 * 4. reads with a reason — another institution's personal data only for a patient in the caller's care, with a
 *    stated purpose (server/auth/care.ts): a single read is refused (403), searches, histories, Bundles and
 *    operation answers leave out what may not be seen (and then give no total).
 */
import type { Bundle, BundleEntry, Parameters, ParametersParameter, Resource } from '@medplum/fhirtypes';
import { fail, informational } from '../fhir/errors.ts';
import type { AccessPolicy } from '../fhir/engine.ts';
import type { Principal } from '../fhir/principal.ts';
import { careRefusal, isPersonalType, ReadAccess } from './care.ts';
import { claimsOf, institutionsOf, isOwnResource, isPlatform, namesOwn } from './institution.ts';
import { missing, parseScope, refusalText, requirements } from './scopes.ts';

/**
 * The platform's own records: reminders and recognition records (DetectedIssue), quality statistics
 * (MeasureReport), data-quality alerts (Flag), the audit trail (AuditEvent). No client writes them through the
 * API; the platform's operations and jobs do (a check writes its reminder; a decision is $decide).
 */
export const PLATFORM_RECORDS: ReadonlySet<string> = new Set(['DetectedIssue', 'MeasureReport', 'Flag', 'AuditEvent']);

/**
 * Operations that change the platform's own state (its settings, catalogue, statistics and monitoring
 * records): never run by a caller bound to an institution, whatever its scopes.
 */
export const PLATFORM_OPERATIONS: ReadonlySet<string> = new Set(['badge-settings', 'code-upgrade', 'catalogue-import', 'evaluate-monitoring', 'chain-statistics']);

/**
 * The operations an app launched for one patient (a SMART EHR launch, server/auth/app-auth.ts) may run: the
 * patient's reports and record, a report's chain verification, and terminology look-ups.
 */
const LAUNCHED_OPERATIONS: ReadonlySet<string> = new Set(['reports', 'view', 'everything', 'summary', 'verify', 'trace', 'lookup', 'expand', 'validate-code', 'subsumes']);

/** Types a bound caller creates only naming its own institution (a report without a performer is no one's). */
const CLAIM_REQUIRED: Record<string, string> = {
  DiagnosticReport: 'performer',
  Provenance: 'agent',
};

/** Resources that hold others and are not themselves data. */
const CONTAINERS = new Set(['Bundle', 'Parameters', 'OperationOutcome']);

/** Whether the caller may read AuditEvents: a scope naming AuditEvent (`system/*.…` does not reach them), or the platform. */
export function readsAudit(principal: Principal, action: 'r' | 's' = 'r'): boolean {
  if (isPlatform(principal)) return true;
  return principal.scopes.some((scope) => {
    const grant = parseScope(scope);
    return grant?.type === 'AuditEvent' && (grant.actions.has(action) || grant.actions.has('r') || grant.actions.has('s'));
  });
}

function authorizeAudit(principal: Principal, action: string): void {
  if (action === 'c' || action === 'u' || action === 'd') {
    throw fail(403, 'forbidden', 'AuditEvents are written by the platform only: none is created, updated, patched or deleted through the API');
  }
  if (!readsAudit(principal, action as 'r' | 's')) throw fail(403, 'forbidden', `The audit trail is for the audit administrator (needs system/AuditEvent.${action})`);
}

/** Whether the scopes let the caller see a resource of this type in an answer (read or search on it). */
function seesType(principal: Principal, type: string): boolean {
  if (isPlatform(principal) || CONTAINERS.has(type)) return true;
  if (type === 'AuditEvent') return readsAudit(principal);
  return principal.scopes.some((scope) => {
    const grant = parseScope(scope);
    return !!grant && (grant.type === '*' || grant.type === type) && (grant.actions.has('r') || grant.actions.has('s'));
  });
}

export function accessPolicy(): AccessPolicy {
  return {
    authorize(principal, method, segments) {
      const needs = requirements(method, segments);
      const audit = needs.find((n) => n.type === 'AuditEvent');
      if (audit) return authorizeAudit(principal, audit.action);
      const need = missing(principal.scopes, needs);
      if (need) throw fail(403, 'forbidden', refusalText(need));
      const op = segments.find((x) => x.startsWith('$'))?.slice(1);
      if (op && principal.patient !== undefined && !LAUNCHED_OPERATIONS.has(op)) {
        throw fail(403, 'forbidden', `$${op} is not open to an app launched for a patient (its token reads that patient's record)`);
      }
      if (op && PLATFORM_OPERATIONS.has(op) && principal.institution && !isPlatform(principal)) {
        throw fail(403, 'forbidden', `$${op} changes the platform's own records: it is run by the platform, not by an institution`);
      }
    },

    async authorizeWrite(principal, change, repo) {
      if (isPlatform(principal)) return;
      if (PLATFORM_RECORDS.has(change.type)) {
        throw fail(403, 'forbidden', `${change.type} is a record of the platform: only the platform writes it (a reminder comes from $recognition-check or $duplicate-check, a decision from $decide)`, change.type);
      }
      if (!principal.institution) return; // an administrator bound to no institution: its scopes hold no personal or institutional data
      const own = await institutionsOf(repo, principal);
      const current = change.current;
      if (current) {
        const mine = current.resourceType === 'Organization' ? own.ids.has(current.id as string) || (await isOwnResource(repo, current, own)) : await isOwnResource(repo, current, own);
        if (!mine) {
          const claim = claimsOf(current)[0];
          throw fail(403, 'forbidden', `${change.type}/${String(current.id).slice(0, 64)} is not this institution's: only the institution that owns a resource changes it`, claim?.expression ?? change.type);
        }
      }
      const next = change.next;
      if (!next) return;
      const claims = claimsOf(next);
      const foreign = claims.find((c) => !namesOwn(c.reference, own));
      if (foreign) throw fail(403, 'forbidden', `${foreign.expression} names another institution: a client writes only as its own institution`, foreign.expression);
      const required = CLAIM_REQUIRED[next.resourceType];
      if (required && claims.length === 0) throw fail(403, 'forbidden', `A ${next.resourceType} written by an institution must name it (${next.resourceType}.${required})`, `${next.resourceType}.${required}`);
      if (next.resourceType === 'Organization' && !current && claims.length === 0) {
        throw fail(403, 'forbidden', 'An institution registers only its own parts (Organization.partOf naming it); other institutions are registered by the platform', 'Organization.partOf');
      }
    },

    async filterAnswer(ctx, req, res) {
      if (isPlatform(ctx.principal) || !res.body || res.judged) return res;
      const access = new ReadAccess(ctx.repo, ctx.principal);
      const write = !req.path.includes('$') && ['POST', 'PUT', 'PATCH'].includes(req.method.toUpperCase()) && req.path.split('/').filter(Boolean).length > 0;
      const body = res.body;
      if (body.resourceType === 'Bundle') {
        const bundle = body as Bundle;
        // a count of personal data (`_summary=count`, `_count=0`) holds nothing to judge: no total is given
        if (bundle.type === 'searchset' && bundle.total !== undefined && !(bundle.entry ?? []).some((e) => e.resource && !CONTAINERS.has(e.resource.resourceType)) && isPersonalType(req.path.split('/').filter(Boolean)[0] ?? '')) {
          const { total: _total, ...rest } = bundle;
          return { ...res, body: rest as Bundle, bytes: undefined };
        }
        const filtered = await filterBundle(access, bundle);
        return filtered === body ? res : { ...res, body: filtered, bytes: undefined };
      }
      if (body.resourceType === 'Parameters') {
        const filtered = await filterParameters(access, body as Parameters);
        return filtered === body ? res : { ...res, body: filtered, bytes: undefined };
      }
      // one resource: the interaction's own scope was checked (authorize); here only the care for personal data
      if (CONTAINERS.has(body.resourceType)) return res;
      const [ok] = await access.visible([body]);
      if (ok) return res;
      if (write) return { ...res, body: informational(`${body.resourceType}/${body.id} exists; it is not shown to this caller`), bytes: undefined };
      throw careRefusal(ctx.principal, `${body.resourceType}/${String(body.id).slice(0, 64)}`);
    },
  };
}

/** Which of the resources the caller may see: by scope, then (personal data) by care. */
async function seen(access: ReadAccess, resources: Resource[]): Promise<boolean[]> {
  const byScope = resources.map((r) => seesType(access.principal, r.resourceType));
  const byCare = await access.visible(resources);
  return resources.map((_, i) => byScope[i] && byCare[i]);
}

/** A Bundle without what may not be seen: entries left out (searches, histories…), or their resource left out (batch and transaction answers). */
async function filterBundle(access: ReadAccess, bundle: Bundle): Promise<Bundle> {
  const entries = bundle.entry ?? [];
  const holding = entries.map((e, i) => [e, i] as const).filter(([e]) => e.resource && !CONTAINERS.has(e.resource.resourceType));
  const nested = await Promise.all(entries.map(async (e) => (e.resource && CONTAINERS.has(e.resource.resourceType) ? filterContainer(access, e.resource) : e.resource)));
  const ok = await seen(access, holding.map(([e]) => e.resource!));
  const hidden = new Set(holding.filter((_, k) => !ok[k]).map(([, i]) => i));
  const changedNested = nested.some((r, i) => r !== entries[i].resource);
  if (hidden.size === 0 && !changedNested) return bundle;
  const response = bundle.type === 'batch-response' || bundle.type === 'transaction-response';
  const out: BundleEntry[] = [];
  entries.forEach((e, i) => {
    if (!hidden.has(i)) out.push(nested[i] === e.resource ? e : { ...e, resource: nested[i] });
    else if (response) {
      const { resource: _hidden, ...rest } = e;
      out.push(rest);
    }
  });
  const { total: _total, ...rest } = bundle;
  // a total would count what was left out
  return { ...(hidden.size > 0 ? rest : bundle), entry: out };
}

function filterContainer(access: ReadAccess, resource: Resource): Promise<Resource> {
  if (resource.resourceType === 'Bundle') return filterBundle(access, resource as Bundle);
  if (resource.resourceType === 'Parameters') return filterParameters(access, resource as Parameters);
  return Promise.resolve(resource);
}

/** Parameters without the parameters (or parts) whose resource may not be seen. */
async function filterParameters(access: ReadAccess, params: Parameters): Promise<Parameters> {
  const all: Resource[] = [];
  const collect = (list: ParametersParameter[] | undefined) => {
    for (const p of list ?? []) {
      if (p.resource && !CONTAINERS.has(p.resource.resourceType)) all.push(p.resource);
      collect(p.part);
    }
  };
  collect(params.parameter);
  const nestedChanged: Map<Resource, Resource> = new Map();
  const gatherNested = async (list: ParametersParameter[] | undefined): Promise<void> => {
    for (const p of list ?? []) {
      if (p.resource && CONTAINERS.has(p.resource.resourceType)) {
        const f = await filterContainer(access, p.resource);
        if (f !== p.resource) nestedChanged.set(p.resource, f);
      }
      await gatherNested(p.part);
    }
  };
  await gatherNested(params.parameter);
  if (all.length === 0 && nestedChanged.size === 0) return params;
  const ok = await seen(access, all);
  const hidden = new Set(all.filter((_, i) => !ok[i]));
  if (hidden.size === 0 && nestedChanged.size === 0) return params;
  const prune = (list: ParametersParameter[] | undefined): ParametersParameter[] | undefined =>
    list
      ?.filter((p) => !(p.resource && hidden.has(p.resource)))
      .map((p) => ({ ...p, ...(p.resource && nestedChanged.has(p.resource) ? { resource: nestedChanged.get(p.resource) } : {}), ...(p.part ? { part: prune(p.part) } : {}) }));
  return { ...params, parameter: prune(params.parameter) };
}
