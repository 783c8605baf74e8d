/**
 * The parts of a report view shared by `$reports` and `$view`.
 */
import type { Observation, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import type { FhirResponse } from '../../fhir/router.ts';
import { type ReportItemView, type ReportView } from '../service.ts';
import { interpretationCodes } from '../facts.ts';
import { mappingParameter } from './answers.ts';

export const REPORTS_DEFAULT_COUNT = 20;
export const REPORTS_MAX_COUNT = 200;



export function reportParts(v: ReportView): ParametersParameter[] {
  const r = v.report;
  return [
    { name: 'report', valueReference: { reference: `DiagnosticReport/${r.id}`, ...(r.code?.text ? { display: r.code.text } : {}) } },
    ...(r.code ? [{ name: 'code', valueCodeableConcept: r.code }] : []),
    { name: 'status', valueCode: r.status },
    ...(r.issued ? [{ name: 'issued', valueDateTime: r.issued }] : []),
    ...(v.kind ? [{ name: 'kind', valueString: v.kind }] : []),
    ...(v.performer ? [{ name: 'performer', valueReference: { reference: `Organization/${v.performer.id}`, ...(v.performer.name ? { display: v.performer.name } : {}) } }] : []),
    ...(v.hrMark ? [{ name: 'hrMark', valueString: v.hrMark }] : []),
    { name: 'abnormalCount', valueInteger: v.abnormalCount },
    ...(v.recognisable !== undefined ? [{ name: 'recognisable', valueBoolean: v.recognisable }] : []),
    ...(v.daysRemaining !== undefined ? [{ name: 'daysRemaining', valueInteger: v.daysRemaining }] : []),
    ...v.items.map((i) => ({ name: 'item', part: itemParts(i) })),
  ];
}

export function itemParts(i: ReportItemView): ParametersParameter[] {
  return [
    { name: 'item', valueCoding: i.item.coding },
    { name: 'category', valueCoding: { system: i.item.coding.system, code: i.item.field.code, display: i.item.field.display } },
    ...(i.verdict ? [{ name: 'recognisable', valueBoolean: i.verdict.recognisable }] : []),
    ...(i.verdict?.daysRemaining !== undefined ? [{ name: 'daysRemaining', valueInteger: i.verdict.daysRemaining }] : []),
    ...(i.verdict?.reasons ?? []).map((r) => ({ name: 'reason', valueString: r.text })),
    ...(i.mapping ? [mappingParameter(i.mapping)] : []),
  ];
}

export function abnormalParts(o: Observation, critical: boolean): ParametersParameter[] {
  const flag = interpretationCodes(o)[0];
  const range = rangeText(o);
  return [
    { name: 'observation', valueReference: { reference: `Observation/${o.id}`, ...(o.code?.text ? { display: o.code.text } : {}) } },
    ...(o.code ? [{ name: 'code', valueCodeableConcept: o.code }] : []),
    ...(valueText(o) ? [{ name: 'value', valueString: valueText(o) }] : []),
    ...(flag ? [{ name: 'interpretation', valueCoding: { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: flag } }] : []),
    ...(range ? [{ name: 'referenceRange', valueString: range }] : []),
    { name: 'critical', valueBoolean: critical },
  ];
}

/** The value of an Observation as a short text (`5.6 mmol/L`, `阳性`). */
export function valueText(o: Observation): string | undefined {
  const q = o.valueQuantity;
  if (q?.value !== undefined) {
    const unit = q.unit ?? q.code;
    return `${q.comparator ?? ''}${q.value}${unit ? ` ${unit}` : ''}`;
  }
  if (o.valueString !== undefined) return o.valueString;
  if (o.valueCodeableConcept) return o.valueCodeableConcept.text ?? o.valueCodeableConcept.coding?.[0]?.display ?? o.valueCodeableConcept.coding?.[0]?.code;
  if (o.valueInteger !== undefined) return String(o.valueInteger);
  if (o.valueBoolean !== undefined) return o.valueBoolean ? '是' : '否';
  return undefined;
}

export function rangeText(o: Observation): string | undefined {
  const r = o.referenceRange?.[0];
  if (!r) return undefined;
  if (r.text) return r.text;
  const unit = r.low?.unit ?? r.high?.unit;
  if (r.low?.value !== undefined && r.high?.value !== undefined) return `${r.low.value}–${r.high.value}${unit ? ` ${unit}` : ''}`;
  if (r.low?.value !== undefined) return `≥${r.low.value}${unit ? ` ${unit}` : ''}`;
  if (r.high?.value !== undefined) return `≤${r.high.value}${unit ? ` ${unit}` : ''}`;
  return undefined;
}

export function parameters(parameter: ParametersParameter[]): FhirResponse {
  const body: Parameters = { resourceType: 'Parameters', parameter };
  return { status: 200, body };
}
