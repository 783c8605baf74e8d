/**
 * Each exchange is audited on both sides (docs/foshan-exchange.md): besides the request's own AuditEvent (the
 * audit trail records every request), one AuditEvent per partner asked (outgoing) and per partner answered
 * (incoming), naming the partner's registry Organization, the local patient when known, what was asked, and
 * the outcome. Nothing personal beyond the local patient reference (never the national ID or its hash).
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import type { Repository } from '../fhir/repository.ts';
import type { Partner } from './registry.ts';

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
export const EXCHANGE_AUDIT_SYSTEM = 'https://fhir.huren.gz.cn/CodeSystem/exchange-audit';

export interface ExchangeRecord {
  direction: 'outgoing' | 'incoming';
  partner: Partner;
  patient?: string;
  kind: string;
  outcome: 'success' | 'failure';
  detail: string;
}

export async function recordExchange(repo: Repository, r: ExchangeRecord): Promise<void> {
  const event: AuditEvent = {
    resourceType: 'AuditEvent',
    type: { system: DCM, code: '110112', display: 'Query' },
    subtype: [{ system: EXCHANGE_AUDIT_SYSTEM, code: `${r.direction}-${r.kind}`, display: r.direction === 'outgoing' ? '跨市互认查询（发出）' : '跨市互认查询（接收）' }],
    action: 'E',
    recorded: new Date().toISOString(),
    outcome: r.outcome === 'success' ? '0' : '4',
    outcomeDesc: r.detail.slice(0, 200),
    agent: [
      {
        type: { coding: [{ system: DCM, code: r.direction === 'outgoing' ? '110153' : '110152', display: r.direction === 'outgoing' ? 'Source Role ID' : 'Destination Role ID' }] },
        who: { reference: `Organization/partner-${r.partner.code}`, display: r.partner.name },
        requestor: r.direction === 'incoming',
      },
    ],
    source: { observer: { display: 'Huren exchange' }, type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4' }] },
    entity: [
      ...(r.patient ? [{ what: { reference: r.patient }, type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '1' }, role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' } }] : []),
      { what: { reference: `Organization/partner-${r.partner.code}` }, type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '3' } },
    ],
  };
  await repo.create(event);
}
