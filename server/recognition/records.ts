/**
 * The records the recognition service writes, built as FHIR resources (pure; the service stores them):
 * - the recognition record (互认记录) — a DetectedIssue with profile recognition-record: the encounter
 *   reminder or the duplicate-order reminder, implicating the recognisable reports; the doctor's decisions
 *   are appended later as `mitigation` (action = recognised | not-recognised + reason code);
 * - the access record of every report view — an AuditEvent (no personal data in it).
 */
import type { AuditEvent, AuditEventAgent, AuditEventEntity, CodeableConcept, Coding, DetectedIssue, DetectedIssueMitigation, Reference } from '@medplum/fhirtypes';
import { EXT, PROFILE, RECOGNITION_SERVICE } from '../profiles/canonical.ts';
import { CANONICAL_BASE, DECISION_SYSTEM, REASON_SYSTEM, RECORD_KIND_SYSTEM } from '../terminology/canonical.ts';
import type { Candidate } from './facts.ts';
import type { ActingFor } from '../fhir/principal.ts';

export type RecordKind = 'encounter-reminder' | 'duplicate-order-reminder';

export const RECORD_KIND_DISPLAY: Record<RecordKind, string> = {
  'encounter-reminder': '就诊提醒',
  'duplicate-order-reminder': '重复检查提醒',
};

export type Decision = 'recognised' | 'not-recognised';

export const DECISION_DISPLAY: Record<Decision, string> = {
  recognised: '已互认',
  'not-recognised': '不予互认',
};

/** The identifier system under which a principal (user, client, token) appears in audit records. */
export const PRINCIPAL_SYSTEM = `${CANONICAL_BASE}/NamingSystem/principal`;

/** Longest summary kept in DetectedIssue.detail. */
const MAX_DETAIL = 1000;

export interface ReminderInput {
  kind: RecordKind;
  patient: Reference;
  requester: Reference;
  /** The recognisable reports (each once). */
  implicated: Reference[];
  detail: string;
  /** For a duplicate-order reminder: the ordered items. */
  ordered?: CodeableConcept[];
  now: Date;
}

export function reminder(input: ReminderInput): DetectedIssue {
  return {
    resourceType: 'DetectedIssue',
    meta: { profile: [PROFILE.recognitionRecord] },
    extension: [{ url: EXT.requestingInstitution, valueReference: input.requester }],
    status: 'final',
    code: { coding: [{ system: RECORD_KIND_SYSTEM, code: input.kind, display: RECORD_KIND_DISPLAY[input.kind] }] },
    severity: input.implicated.length > 0 ? 'moderate' : 'low',
    patient: input.patient as DetectedIssue['patient'],
    identifiedDateTime: input.now.toISOString(),
    // the platform's recognition service raised it; the institution that asked is the extension above
    author: { ...RECOGNITION_SERVICE, identifier: { ...RECOGNITION_SERVICE.identifier } },
    ...(input.implicated.length > 0 ? { implicated: input.implicated } : {}),
    ...(input.ordered?.length ? { evidence: input.ordered.map((code) => ({ code: [code] })) } : {}),
    detail: clip(input.detail, MAX_DETAIL),
  };
}

export function isRecognitionRecord(issue: DetectedIssue): boolean {
  return issue.meta?.profile?.includes(PROFILE.recognitionRecord) === true && recordKindOf(issue) !== undefined;
}

export function recordKindOf(issue: DetectedIssue): RecordKind | undefined {
  const code = issue.code?.coding?.find((c) => c.system === RECORD_KIND_SYSTEM)?.code;
  return code === 'encounter-reminder' || code === 'duplicate-order-reminder' ? code : undefined;
}

export interface DecisionInput {
  decision: Decision;
  /** Required for not-recognised: a code of the not-recognised reason CodeSystem. */
  reason?: Coding;
  comment?: string;
  /** The implicated report the decision is about (all of them when absent). */
  report?: Reference;
  author?: Reference;
  now: Date;
}

/** The mitigation that records a doctor's decision. */
export function decisionMitigation(input: DecisionInput): DetectedIssueMitigation {
  const coding: Coding[] = [{ system: DECISION_SYSTEM, code: input.decision, display: DECISION_DISPLAY[input.decision] }];
  if (input.reason) coding.push({ system: REASON_SYSTEM, code: input.reason.code, ...(input.reason.display ? { display: input.reason.display } : {}) });
  return {
    ...(input.report ? { extension: [{ url: EXT.decisionReport, valueReference: input.report }] } : {}),
    action: { coding, ...(input.comment ? { text: input.comment } : {}) },
    date: input.now.toISOString(),
    ...(input.author ? { author: input.author as DetectedIssueMitigation['author'] } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------
// summaries (zh-CN)

const dateOf = (iso: string | undefined) => (iso ? iso.slice(0, 10) : '日期不详');

/** `血细胞分析（某医院，2024-06-15，剩余 4 天）`. */
export function describe(c: Candidate): string {
  const left = c.verdict.daysRemaining === undefined ? '长期有效' : `剩余 ${c.verdict.daysRemaining} 天`;
  return `${c.item.display}（${c.performer?.name ?? '出具机构不详'}，${dateOf(c.report.issued)}，${left}）`;
}

export function encounterDetail(recognisable: Candidate[]): string {
  if (recognisable.length === 0) return '未发现可互认的检查检验结果。';
  const reports = new Set(recognisable.map((c) => c.report.id)).size;
  return `患者有 ${recognisable.length} 项可互认的检查检验结果（${reports} 份报告）：${recognisable.map(describe).join('；')}。`;
}

/** Why a near-match (same item, not recognisable) does not count. */
export function whyNot(c: Candidate): string {
  return `${c.item.display}（${c.performer?.name ?? '出具机构不详'}，${dateOf(c.report.issued)}）：${c.verdict.reasons.map((r) => r.text).join('；')}`;
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

// ---------------------------------------------------------------------------------------------------
// access records

/** The logins of a HIS client's users, as the HIS asserts them: `<base>/sid/his-user/<client id>`. */
export const hisUserSystem = (clientId: string) => `${CANONICAL_BASE}/sid/his-user/${clientId}`;

/**
 * The agent of a user another system vouches for (ActingFor: the HIS that launched the app): its Practitioner or
 * identifier, else its login in that HIS; the login also as altId. The principal's own agent names the HIS client.
 */
export function actingForAgent(user: ActingFor): AuditEventAgent {
  const who = user.practitioner ? { reference: user.practitioner } : user.identifier ? { identifier: user.identifier } : { identifier: { system: hisUserSystem(user.assertedBy), value: user.login ?? '' } };
  return {
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type', code: 'humanuser', display: 'human user' }] },
    who: who as AuditEventAgent['who'],
    ...(user.login ? { altId: user.login } : {}),
    requestor: true,
  };
}

export interface AccessInput {
  principalId: string;
  /** The user a HIS vouches for (a SMART app it launched): an agent of its own. */
  actingFor?: AuditEventAgent;
  /** The requesting institution, when known. */
  requester?: Reference;
  /** The operation, e.g. `$view`. */
  operation: string;
  /** What was viewed: the patient and/or report(s). */
  entities: Reference[];
  now: Date;
}

/** An AuditEvent for a read: type rest / read; agent = the principal; entity = what was viewed. */
export function accessRecord(input: AccessInput): AuditEvent {
  const entity: AuditEventEntity[] = input.entities.map((what, i) => ({
    what: { reference: what.reference },
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: what.reference?.startsWith('Patient/') ? '1' : '2' },
    role: what.reference?.startsWith('Patient/')
      ? { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1', display: 'Patient' }
      : { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '3', display: 'Report' },
    ...(i === 0 ? { detail: [{ type: 'operation', valueString: input.operation }] } : {}),
  }));
  return {
    resourceType: 'AuditEvent',
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' },
    subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: 'read', display: 'read' }],
    action: 'R',
    recorded: input.now.toISOString(),
    outcome: '0',
    agent: [
      { who: { identifier: { system: PRINCIPAL_SYSTEM, value: input.principalId } }, requestor: true },
      ...(input.actingFor ? [input.actingFor] : []),
      ...(input.requester?.reference ? [{ who: { reference: input.requester.reference }, requestor: false }] : []),
    ],
    source: {
      observer: { display: 'Huren' },
      type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }],
    },
    entity,
  };
}
