/**
 * The platform's CDS Hooks 2.0 services (DESIGN.md §6): what discovery (`GET /cds-services`) lists.
 *
 * Prefetch asks the CDS client for the patient (its identifiers, e.g. the national ID, find the patient on the
 * platform) and the current user (a PractitionerRole names the requesting institution). Reports are never
 * prefetched: whether a result is recognisable is judged from the platform's own store — QC qualifications,
 * HR mark, status, validity window and chain fingerprint — never from data a client supplies.
 */
import type { RecordKind } from '../recognition/records.ts';

export type Hook = 'patient-view' | 'order-select' | 'order-sign';

export interface CdsServiceDefinition {
  id: string;
  hook: Hook;
  title: string;
  description: string;
  prefetch: Record<string, string>;
  usageRequirements: string;
  /** The recognition record the service writes (and whose cards its feedback endpoint accepts). */
  kind: RecordKind;
}

/** The request extension naming the requesting institution (CDS Hooks extensions use reverse-domain names). */
export const REQUESTER_EXTENSION = 'cn.gz.huren.requester';

export const PREFETCH = {
  patient: 'Patient/{{context.patientId}}',
  user: '{{context.userId}}',
} as const;

const USAGE =
  '申请机构（requester）须为互认平台登记的机构：取自请求扩展 ' +
  `extension["${REQUESTER_EXTENSION}"]（"Organization/[id]" 或 "Organization?identifier=system|value"），` +
  '否则取当前用户 PractitionerRole.organization，否则取调用凭据所属机构。患者按预取 Patient 的标识（如身份证号）或 context.patientId 在平台中查找。';

export const CDS_SERVICES: readonly CdsServiceDefinition[] = [
  {
    id: 'recognition-reminder',
    hook: 'patient-view',
    title: '检查检验结果互认提醒',
    description:
      'At the encounter (patient-view): whether the patient has recognisable lab and examination results from other institutions (互认信息是否存在). ' +
      'One card lists them with institution, date and days left, links to the report viewer, and the not-recognised reasons. Each call writes an encounter reminder (DetectedIssue).',
    prefetch: { ...PREFETCH },
    usageRequirements: USAGE,
    kind: 'encounter-reminder',
  },
  {
    id: 'duplicate-order-select',
    hook: 'order-select',
    title: '检验检查项目重复提醒（选择医嘱）',
    description:
      'When the doctor selects orders (order-select): for each selected ServiceRequest, whether a recognisable result already covers it (检验检查项目重复判断). ' +
      'One card per covered order, suggesting to delete the duplicate draft order. Each call writes a duplicate-order reminder (DetectedIssue).',
    prefetch: { ...PREFETCH },
    usageRequirements: USAGE,
    kind: 'duplicate-order-reminder',
  },
  {
    id: 'duplicate-order-sign',
    hook: 'order-sign',
    title: '检验检查项目重复提醒（签署医嘱）',
    description:
      'When the doctor signs orders (order-sign): for each draft ServiceRequest, whether a recognisable result already covers it (检验检查项目重复判断). ' +
      'One card per covered order, suggesting to delete the duplicate draft order. Each call writes a duplicate-order reminder (DetectedIssue).',
    prefetch: { ...PREFETCH },
    usageRequirements: USAGE,
    kind: 'duplicate-order-reminder',
  },
];

export function findService(id: string): CdsServiceDefinition | undefined {
  return CDS_SERVICES.find((s) => s.id === id);
}

/** The discovery document. */
export function discovery(): { services: Omit<CdsServiceDefinition, 'kind'>[] } {
  return { services: CDS_SERVICES.map(({ kind: _kind, ...service }) => service) };
}
