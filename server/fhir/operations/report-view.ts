/**
 * Report viewing for doctors (DESIGN.md §6): `Patient/[id]/$reports` — the patient's reports across
 * institutions, newest first, with recognition status, HR mark and days left; `DiagnosticReport/[id]/$view`
 * — one report with its Observations and its abnormal items picked out. Each view writes an access record.
 */
import { limits } from '../limits.ts';
import type { Observation, OperationDefinition, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import type { FhirResponse } from '../router.ts';
import { patientReports, viewReport, type ReportItemView, type ReportView } from '../../recognition/service.ts';
import { interpretationCodes } from '../../recognition/facts.ts';
import type { Operation } from './registry.ts';
import { loadDefinition } from './registry.ts';
import { RecognitionInput } from './recognition-params.ts';

let reportsDefinition: OperationDefinition | undefined;
let viewDefinition: OperationDefinition | undefined;

export const REPORTS_DEFAULT_COUNT = 20;
export const REPORTS_MAX_COUNT = 200;

export const reportsOperation: Operation = {
  name: 'reports',
  get definition() {
    return (reportsDefinition ??= loadDefinition('OperationDefinition-Patient-reports.json'));
  },
  methods: ['GET', 'POST'],
  async handle(ctx, req, target) {
    const input = new RecognitionInput('reports', req, ['requester', 'kind', 'category', '_count', '_offset']);
    const kinds = input.strings('kind');
    const categories = input.tokens('category');
    const requester = input.reference('requester');
    const count = input.integer('_count', { min: 0, max: REPORTS_MAX_COUNT }) ?? REPORTS_DEFAULT_COUNT;
    const offset = input.integer('_offset', { min: 0, max: limits().maxOffset }) ?? 0;
    const result = await input.guard(() =>
      patientReports({ repo: ctx.repo, principal: ctx.principal }, { patientId: target.id as string, requester, kinds, categories, count, offset })
    );
    const parameter: ParametersParameter[] = [
      { name: 'total', valueInteger: result.total },
      ...result.reports.map((r) => ({ name: 'report', part: reportParts(r) })),
    ];
    return parameters(parameter);
  },
};

export const viewOperation: Operation = {
  name: 'view',
  get definition() {
    return (viewDefinition ??= loadDefinition('OperationDefinition-DiagnosticReport-view.json'));
  },
  methods: ['GET', 'POST'],
  async handle(ctx, req, target) {
    const input = new RecognitionInput('view', req, ['requester']);
    const requester = input.reference('requester');
    const detail = await input.guard(() => viewReport({ repo: ctx.repo, principal: ctx.principal }, { reportId: target.id as string, requester }));
    const parameter: ParametersParameter[] = [
      { name: 'report', resource: detail.report },
      ...detail.observations.map((o) => ({ name: 'observation', resource: o })),
      ...(detail.performer ? [{ name: 'performer', resource: detail.performer }] : []),
      ...(detail.kind ? [{ name: 'kind', valueString: detail.kind }] : []),
      ...(detail.hrMark ? [{ name: 'hrMark', valueString: detail.hrMark }] : []),
      { name: 'abnormalCount', valueInteger: detail.abnormal.length },
      ...detail.abnormal.map(({ observation, critical }) => ({ name: 'abnormal', part: abnormalParts(observation, critical) })),
      ...(detail.recognisable !== undefined ? [{ name: 'recognisable', valueBoolean: detail.recognisable }] : []),
      ...(detail.daysRemaining !== undefined ? [{ name: 'daysRemaining', valueInteger: detail.daysRemaining }] : []),
      ...detail.items.map((i) => ({ name: 'item', part: itemParts(i) })),
    ];
    return parameters(parameter);
  },
};

function reportParts(v: ReportView): ParametersParameter[] {
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

function itemParts(i: ReportItemView): ParametersParameter[] {
  return [
    { name: 'item', valueCoding: i.item.coding },
    { name: 'category', valueCoding: { system: i.item.coding.system, code: i.item.field.code, display: i.item.field.display } },
    ...(i.verdict ? [{ name: 'recognisable', valueBoolean: i.verdict.recognisable }] : []),
    ...(i.verdict?.daysRemaining !== undefined ? [{ name: 'daysRemaining', valueInteger: i.verdict.daysRemaining }] : []),
    ...(i.verdict?.reasons ?? []).map((r) => ({ name: 'reason', valueString: r.text })),
  ];
}

function abnormalParts(o: Observation, critical: boolean): ParametersParameter[] {
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

function rangeText(o: Observation): string | undefined {
  const r = o.referenceRange?.[0];
  if (!r) return undefined;
  if (r.text) return r.text;
  const unit = r.low?.unit ?? r.high?.unit;
  if (r.low?.value !== undefined && r.high?.value !== undefined) return `${r.low.value}–${r.high.value}${unit ? ` ${unit}` : ''}`;
  if (r.low?.value !== undefined) return `≥${r.low.value}${unit ? ` ${unit}` : ''}`;
  if (r.high?.value !== undefined) return `≤${r.high.value}${unit ? ` ${unit}` : ''}`;
  return undefined;
}

function parameters(parameter: ParametersParameter[]): FhirResponse {
  const body: Parameters = { resourceType: 'Parameters', parameter };
  return { status: 200, body };
}
