/**
 * The roles a human account may hold, each as SMART-style scopes plus an institution compartment, so the
 * engine's access policy (server/auth/policy.ts) governs people exactly as it governs hospital systems. Pure.
 *
 * 三权分立: the system administrator runs the platform (terminology, conformance resources, institutions), the
 * security administrator manages accounts, roles, clients and keys, the audit administrator reads the audit
 * trail and nothing else; no account holds two of these three.
 */

export const ROLES = ['system-admin', 'security-admin', 'audit-admin', 'commission-admin', 'institution-admin', 'doctor'] as const;
export type Role = (typeof ROLES)[number];

/** The three administrator roles no account may combine. */
export const SEPARATED: readonly Role[] = ['system-admin', 'security-admin', 'audit-admin'];

export const ROLE_NAMES: Record<Role, string> = {
  'system-admin': '系统管理员',
  'security-admin': '安全管理员',
  'audit-admin': '审计管理员',
  'commission-admin': '卫健委管理员',
  'institution-admin': '机构管理员',
  doctor: '医生',
};

const read = (...types: string[]) => types.map((t) => `system/${t}.rs`);
const manage = (...types: string[]) => types.map((t) => `system/${t}.cruds`);

/** Least privilege per role. */
const SCOPES: Record<Role, readonly string[]> = {
  // the platform itself: terminology, the conformance resources, the institutions and partner endpoints
  'system-admin': manage('CodeSystem', 'ValueSet', 'ConceptMap', 'NamingSystem', 'StructureDefinition', 'SearchParameter', 'OperationDefinition', 'Organization', 'Endpoint', 'Measure'),
  // the people's FHIR face (Practitioner, PractitionerRole); accounts, clients and keys are its JSON API
  'security-admin': manage('Practitioner', 'PractitionerRole'),
  // the audit trail, read only
  'audit-admin': read('AuditEvent'),
  // the monitoring app: quality and chain statistics, alerts, improvement requests — no patient data
  'commission-admin': [
    ...read('Organization', 'Measure', 'MeasureReport', 'Flag', 'ConceptMap', 'CodeSystem', 'ValueSet', 'Endpoint'),
    ...manage('Task', 'CommunicationRequest'),
  ],
  // its own institution's dictionary and statistics, and the improvement requests addressed to it
  'institution-admin': [...read('Organization', 'Measure', 'MeasureReport', 'Flag', 'CodeSystem', 'ValueSet', 'Task'), 'system/ConceptMap.rus'],
  // the viewer: reports, results and reminders (reads only)
  doctor: read('Patient', 'DiagnosticReport', 'Observation', 'ImagingStudy', 'DetectedIssue', 'Provenance', 'Organization', 'CodeSystem', 'ValueSet', 'Consent'),
};

/** Roles that act inside one institution's compartment (their accounts must name it). */
export const INSTITUTION_ROLES: readonly Role[] = ['institution-admin', 'doctor'];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** The scopes of a set of roles (their union). */
export function scopesOf(roles: readonly Role[]): string[] {
  return [...new Set(roles.flatMap((r) => SCOPES[r]))];
}

/** The administrator roles of `roles` that break the separation of duties, or undefined when it holds. */
export function separationBreach(roles: readonly string[]): Role[] | undefined {
  const held = SEPARATED.filter((r) => roles.includes(r));
  return held.length > 1 ? held : undefined;
}
