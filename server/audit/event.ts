/**
 * One request → one AuditEvent, shaped after IHE Basic Audit Log Patterns (BALP): type/subtype (the RESTful
 * interaction, or the account event), action, recorded, outcome, agent (who: the principal's id and kind, the
 * client, its institution, the source IP, the purpose of use the request states), source (the platform), entity
 * (what: the resource, the query with its personal values replaced by keyed hashes, the patient when known).
 * Pure: the caller gives the request's facts and a keyed hash for the values that must not appear in clear.
 */
import type { AuditEvent, AuditEventAgent, AuditEventEntity, CodeableConcept, Coding, Reference } from '@medplum/fhirtypes';
import type { Principal } from '../fhir/principal.ts';
import { actingForAgent, PRINCIPAL_SYSTEM } from '../recognition/records.ts';
import { CANONICAL_BASE } from '../terminology/canonical.ts';

/** What the accounts module says about an account event (on `ctx.state.audit`). */
export interface AccountAudit {
  action: 'login' | 'login-failed' | 'logout' | 'password-change' | 'account-change' | 'role-change';
  outcome: 'success' | 'failure';
  detail?: string;
}

export interface RequestFacts {
  method: string;
  /** The URL path, e.g. /fhir/Patient/1 */
  path: string;
  query: [string, string][];
  status: number;
  principal?: Principal;
  account?: AccountAudit;
  ip?: string;
  requestId?: string;
  /** The `X-Purpose-Of-Use` header: `code` or `system|code`. */
  purpose?: string;
  /** The answer, when it is one resource (to find the patient it is about). */
  answer?: { resourceType?: string; id?: string; subject?: Reference; patient?: Reference; issue?: { code?: string }[] };
  /** The Location header of a create. */
  location?: string;
  now: Date;
}

export type Masker = (value: string) => string;

const AUDIT_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const INTERACTION = 'http://hl7.org/fhir/restful-interaction';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const ACT_REASON = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
export const PRINCIPAL_KIND_SYSTEM = `${CANONICAL_BASE}/CodeSystem/principal-kind`;
export const AUDIT_DETAIL_SYSTEM = `${CANONICAL_BASE}/CodeSystem/audit-detail`;

const ACCOUNT: Record<AccountAudit['action'], { type: Coding; subtype: Coding }> = {
  login: { type: { system: DCM, code: '110114', display: 'User Authentication' }, subtype: { system: DCM, code: '110122', display: 'Login' } },
  'login-failed': { type: { system: DCM, code: '110114', display: 'User Authentication' }, subtype: { system: DCM, code: '110122', display: 'Login' } },
  logout: { type: { system: DCM, code: '110114', display: 'User Authentication' }, subtype: { system: DCM, code: '110123', display: 'Logout' } },
  'password-change': { type: { system: DCM, code: '110137', display: 'User Security Attributes Changed' }, subtype: { system: AUDIT_DETAIL_SYSTEM, code: 'password-change' } },
  'account-change': { type: { system: DCM, code: '110137', display: 'User Security Attributes Changed' }, subtype: { system: AUDIT_DETAIL_SYSTEM, code: 'account-change' } },
  'role-change': { type: { system: DCM, code: '110136', display: 'Security Roles Changed' }, subtype: { system: AUDIT_DETAIL_SYSTEM, code: 'role-change' } },
};

/**
 * Search parameters whose values are kept in clear in the recorded query: codes, statuses, dates, paging and
 * references by id. Every other value (identifier, name, phone, address, birthdate, free text, chained
 * parameters …) is replaced by its keyed hash.
 */
const CLEAR_PARAMS = new Set([
  '_count', '_offset', '_sort', '_include', '_revinclude', '_elements', '_summary', '_total', '_format', '_pretty', '_since',
  '_at', '_type', '_lastUpdated', '_id', '_security', '_tag', '_profile', '_contained', '_containedType', 'code', 'category',
  'status', 'date', 'issued', 'patient', 'subject', 'performer', 'requester', 'organization', 'encounter', 'based-on', 'result',
  'entity', 'agent', 'type', 'subtype', 'action', 'outcome', 'url', 'version', 'system', 'target', 'source', 'include', 'page',
]);

/** 15- or 18-character PRC resident identity numbers, wherever they appear. */
const NATIONAL_ID = /(?<![0-9])(?:[1-9]\d{16}[\dXx]|[1-9]\d{14})(?![0-9])/g;
const HAS_NATIONAL_ID = new RegExp(NATIONAL_ID.source);

export function sanitiseQuery(query: [string, string][], mask: Masker): string {
  return query
    .map(([name, value]) => {
      const base = name.split(':')[0];
      const clear = CLEAR_PARAMS.has(base) && !name.includes('.') && !HAS_NATIONAL_ID.test(value);
      return `${encodeURIComponent(name)}=${clear ? encodeURIComponent(value) : mask(value)}`;
    })
    .join('&');
}

/** The path with anything that looks like a national ID replaced. */
export function sanitisePath(path: string, mask: Masker): string {
  return path.replace(NATIONAL_ID, (m) => mask(m));
}

interface Interaction {
  subtype?: Coding;
  action: AuditEvent['action'];
  type?: string;
  id?: string;
  operation?: string;
  search?: boolean;
}

/** The FHIR interaction of a request under /fhir (or undefined for other paths). */
export function interactionOf(method: string, path: string, query: [string, string][]): Interaction | undefined {
  if (path !== '/fhir' && !path.startsWith('/fhir/')) return undefined;
  const s = path.slice('/fhir'.length).split('/').filter(Boolean);
  const code = (c: string): Coding => ({ system: INTERACTION, code: c, display: c });
  const m = method === 'HEAD' ? 'GET' : method;
  const op = s.find((x) => x.startsWith('$'));
  const isType = (x: string | undefined) => !!x && /^[A-Z][A-Za-z]+$/.test(x);
  const type = isType(s[0]) ? s[0] : undefined;
  const id = type && s[1] && !s[1].startsWith('$') && !s[1].startsWith('_') ? s[1] : undefined;
  if (op) return { subtype: code('operation'), action: m === 'GET' ? 'R' : 'E', type, id, operation: op };
  if (s.length === 0) return m === 'POST' ? { subtype: code('transaction'), action: 'E' } : { subtype: code('search-system'), action: 'R', search: true };
  if (s[0] === 'metadata') return { subtype: code('capabilities'), action: 'R' };
  if (s[0] === '_history') return { subtype: code('history-system'), action: 'R' };
  if (!type) return { action: m === 'GET' ? 'R' : 'E' };
  if (s[1] === '_search' || (s.length === 1 && m === 'GET')) return { subtype: code('search-type'), action: 'R', type, search: true };
  if (s[1] === '_history') return { subtype: code('history-type'), action: 'R', type };
  if (s.length === 1) {
    if (m === 'POST') return { subtype: code('create'), action: 'C', type };
    const conditional = { PUT: ['update', 'U'], PATCH: ['patch', 'U'], DELETE: ['delete', 'D'] }[m] as [string, AuditEvent['action']] | undefined;
    if (conditional) return { subtype: code(conditional[0]), action: conditional[1], type, search: query.length > 0 };
  }
  if (s[2] === '_history') return s[3] ? { subtype: code('vread'), action: 'R', type, id } : { subtype: code('history-instance'), action: 'R', type, id };
  const instance = { GET: ['read', 'R'], PUT: ['update', 'U'], PATCH: ['patch', 'U'], DELETE: ['delete', 'D'] }[m] as [string, AuditEvent['action']] | undefined;
  return instance ? { subtype: code(instance[0]), action: instance[1], type, id } : { action: 'E', type, id };
}

/** BALP: 0 success, 4 minor failure (the request was refused or wrong), 8 serious failure (the server failed). */
export function outcomeOf(status: number): '0' | '4' | '8' {
  return status < 400 ? '0' : status < 500 ? '4' : '8';
}

function patientOf(facts: RequestFacts, interaction: Interaction | undefined): string | undefined {
  if (interaction?.type === 'Patient' && interaction.id) return `Patient/${interaction.id}`;
  for (const [name, value] of facts.query) {
    const base = name.split(':')[0];
    if (name.includes('.')) continue;
    if (base === 'patient' && /^(Patient\/)?[A-Za-z0-9\-.]{1,64}$/.test(value)) return value.startsWith('Patient/') ? value : `Patient/${value}`;
    if (base === 'subject' && /^Patient\/[A-Za-z0-9\-.]{1,64}$/.test(value)) return value;
  }
  const a = facts.answer;
  if (a?.resourceType === 'Patient' && a.id) return `Patient/${a.id}`;
  for (const ref of [a?.subject?.reference, a?.patient?.reference]) if (ref && /^Patient\/[A-Za-z0-9\-.]{1,64}$/.test(ref)) return ref;
  return undefined;
}

function purposeOf(header: string | undefined): CodeableConcept | undefined {
  if (!header) return undefined;
  const m = /^(?:([^|\s]{1,200})\|)?([A-Za-z0-9\-._]{1,40})$/.exec(header.trim());
  if (!m) return undefined;
  return { coding: [{ system: m[1] ?? ACT_REASON, code: m[2] }] };
}

/** The institution the principal speaks for, as a reference (`Organization/x`) or an identifier (`Organization?identifier=s|v`). */
function institutionOf(institution: string): Reference {
  const m = /^Organization\?identifier=(?:([^|]*)\|)?(.+)$/.exec(institution);
  if (m) return { type: 'Organization', identifier: { ...(m[1] ? { system: decodeURIComponent(m[1]) } : {}), value: decodeURIComponent(m[2]) } };
  return { reference: institution };
}

export function requestEvent(facts: RequestFacts, mask: Masker): AuditEvent {
  const interaction = interactionOf(facts.method, facts.path, facts.query);
  const principal = facts.principal;
  const purpose = purposeOf(facts.purpose);
  const account = facts.account ? ACCOUNT[facts.account.action] : undefined;
  const outcome = facts.account ? (facts.account.outcome === 'success' ? '0' : '4') : outcomeOf(facts.status);
  const issue = facts.answer?.resourceType === 'OperationOutcome' ? facts.answer.issue?.[0]?.code : undefined;
  const outcomeDesc = [`HTTP ${facts.status}`, issue, facts.account?.detail ? mask(facts.account.detail) : undefined].filter(Boolean).join(' ');

  const agent: AuditEventAgent[] = [
    {
      type: { coding: [{ system: PRINCIPAL_KIND_SYSTEM, code: principal?.kind ?? 'anonymous' }] },
      who: { identifier: { system: PRINCIPAL_SYSTEM, value: principal?.id ?? 'anonymous' } },
      // the client id, or a person's account id: searchable with `altid` (the audit administrator's user filter)
      ...(principal?.kind === 'client' || principal?.kind === 'user' ? { altId: principal.id.replace(/^(client|user):/, '') } : {}),
      requestor: true,
      ...(facts.ip ? { network: { address: facts.ip, type: '2' as const } } : {}),
      ...(purpose ? { purposeOfUse: [purpose] } : {}),
    },
  ];
  // the user a HIS vouches for (a SMART app it launched, server/auth/app-auth.ts): the person behind the request
  if (principal?.actingFor) agent.push(actingForAgent(principal.actingFor));
  if (principal?.institution) {
    agent.push({
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleClass', code: 'PROV', display: 'healthcare provider' }] },
      who: institutionOf(principal.institution) as AuditEventAgent['who'],
      requestor: false,
    });
  }

  const entity: AuditEventEntity[] = [];
  const detail = [
    { type: 'method', valueString: facts.method },
    { type: 'path', valueString: sanitisePath(facts.path, mask).slice(0, 500) },
    ...(interaction?.operation ? [{ type: 'operation', valueString: interaction.operation }] : []),
    ...(facts.requestId ? [{ type: 'requestId', valueString: facts.requestId }] : []),
  ];
  const createdId = facts.location && interaction?.action === 'C' ? /\/fhir\/([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/|$)/.exec(facts.location) : null;
  const what = interaction?.type && interaction.id ? `${interaction.type}/${interaction.id}` : createdId ? `${createdId[1]}/${createdId[2]}` : undefined;
  entity.push({
    ...(what ? { what: { reference: what } } : interaction?.type ? { what: { type: interaction.type } as AuditEventEntity['what'] } : {}),
    type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
    role: interaction?.search ? { system: OBJECT_ROLE, code: '24', display: 'Query' } : { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' },
    ...(facts.query.length > 0 ? { query: Buffer.from(sanitiseQuery(facts.query, mask)).toString('base64') } : {}),
    detail,
  });
  const patient = patientOf(facts, interaction);
  if (patient && patient !== what) {
    entity.push({ what: { reference: patient }, type: { system: ENTITY_TYPE, code: '1', display: 'Person' }, role: { system: OBJECT_ROLE, code: '1', display: 'Patient' } });
  } else if (patient) {
    entity[0].type = { system: ENTITY_TYPE, code: '1', display: 'Person' };
    entity[0].role = { system: OBJECT_ROLE, code: '1', display: 'Patient' };
  }

  return {
    resourceType: 'AuditEvent',
    type: account?.type ?? { system: AUDIT_TYPE, code: 'rest', display: 'RESTful Operation' },
    ...(account ? { subtype: [account.subtype] } : interaction?.subtype ? { subtype: [interaction.subtype] } : {}),
    action: account ? 'E' : (interaction?.action ?? (facts.method === 'GET' ? 'R' : 'E')),
    recorded: facts.now.toISOString(),
    outcome,
    outcomeDesc,
    ...(purpose ? { purposeOfEvent: [purpose] } : {}),
    agent,
    source: {
      observer: { display: 'Huren' },
      type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }],
    },
    entity,
  };
}
