/**
 * The HIS-facing recognition operations (DESIGN.md §6): `Patient/[id]/$recognition-check` (and type-level
 * by identifier), `ServiceRequest/$duplicate-check`, and `DetectedIssue/[id]/$decide` for HIS without CDS
 * Hooks. Thin: parameters in, the recognition service, Parameters out.
 */
import type { OperationDefinition, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { badRequest } from '../errors.ts';
import type { FhirResponse } from '../router.ts';
import { duplicateCheck, recognitionCheck, recordDecision, type PatientSelector, type ResultSummary } from '../../recognition/service.ts';
import type { Operation } from './registry.ts';
import { loadDefinition } from './registry.ts';
import { RecognitionInput } from './recognition-params.ts';

let checkDefinition: OperationDefinition | undefined;
let duplicateDefinition: OperationDefinition | undefined;
let decideDefinition: OperationDefinition | undefined;

export const recognitionCheckOperation: Operation = {
  name: 'recognition-check',
  get definition() {
    return (checkDefinition ??= loadDefinition('OperationDefinition-Patient-recognition-check.json'));
  },
  methods: ['GET', 'POST'],
  async: true,
  async handle(ctx, req, target) {
    const input = new RecognitionInput('recognition-check', req, ['patient', 'identifier', 'requester', 'category', 'code']);
    const patient = input.reference('patient');
    const identifier = input.identifier('identifier');
    let selector: PatientSelector;
    if (target.id) {
      if (patient || identifier) throw badRequest('Patient/[id]/$recognition-check names the patient in the URL: do not also give patient or identifier', input.expr(patient ? 'patient' : 'identifier'));
      selector = { id: target.id };
    } else {
      if (patient && identifier) throw badRequest('Give either patient or identifier, not both', input.expr('identifier'));
      if (!patient && !identifier) throw badRequest('Patient/$recognition-check needs the patient: identifier (system|value, e.g. the national ID) or patient (a reference)', input.expr('identifier'));
      selector = patient ? { reference: patient } : { identifier };
    }
    const requester = input.reference('requester');
    const categories = input.tokens('category');
    const codes = input.tokens('code');
    const result = await input.guard(() => recognitionCheck({ repo: ctx.repo, principal: ctx.principal }, { patient: selector, requester, categories, codes }));
    const parameter: ParametersParameter[] = [
      { name: 'exists', valueBoolean: result.exists },
      { name: 'reminder', valueReference: { reference: `DetectedIssue/${result.reminder.id}` } },
      ...result.results.map((r) => ({ name: 'result', part: resultParts(r) })),
    ];
    return parameters(parameter);
  },
};

export const duplicateCheckOperation: Operation = {
  name: 'duplicate-check',
  get definition() {
    return (duplicateDefinition ??= loadDefinition('OperationDefinition-ServiceRequest-duplicate-check.json'));
  },
  methods: ['POST'],
  async: true,
  async handle(ctx, req) {
    const input = new RecognitionInput('duplicate-check', req, ['order', 'requester']);
    if (!input.posted) throw badRequest('$duplicate-check takes a Parameters body with one or more order (ServiceRequest) parameters', 'Parameters');
    const orders = input.resources('order');
    const requester = input.reference('requester');
    const result = await input.guard(() => duplicateCheck({ repo: ctx.repo, principal: ctx.principal }, { orders, requester }));
    const parameter: ParametersParameter[] = result.items.map((item) => ({
      name: 'item',
      part: [
        { name: 'order', valueString: item.order },
        { name: 'code', valueCoding: item.code },
        { name: 'duplicate', valueBoolean: item.duplicate },
        ...item.matches.map((m) => ({ name: 'match', part: resultParts(m) })),
        ...(item.reason ? [{ name: 'reason', valueString: item.reason }] : []),
      ],
    }));
    parameter.push({ name: 'reminder', valueReference: { reference: `DetectedIssue/${result.reminder.id}` } });
    return parameters(parameter);
  },
};

export const decideOperation: Operation = {
  name: 'decide',
  get definition() {
    return (decideDefinition ??= loadDefinition('OperationDefinition-DetectedIssue-decide.json'));
  },
  methods: ['POST'],
  async handle(ctx, req, target) {
    const input = new RecognitionInput('decide', req, ['decision', 'reason', 'comment', 'report', 'author']);
    const decision = input.text('decision');
    if (!decision) throw badRequest('$decide needs decision: recognised or not-recognised', input.expr('decision'));
    const reason = input.codingParam('reason');
    const comment = input.string('comment');
    const report = input.reference('report');
    const author = input.reference('author');
    const issue = await input.guard(() =>
      recordDecision({ repo: ctx.repo, principal: ctx.principal }, { reminderId: target.id as string, decision, reason, comment, report, author })
    );
    return { status: 200, resource: issue, body: issue };
  },
};

/** The sub-parts of a recognisable result (`result` of $recognition-check, `match` of $duplicate-check). */
export function resultParts(r: ResultSummary): ParametersParameter[] {
  return [
    { name: 'report', valueReference: r.report },
    { name: 'item', valueCoding: r.item },
    ...(r.performer ? [{ name: 'performer', valueReference: r.performer }] : []),
    ...(r.issued ? [{ name: 'issued', valueDateTime: r.issued }] : []),
    ...(r.daysRemaining !== undefined ? [{ name: 'daysRemaining', valueInteger: r.daysRemaining }] : []),
    ...(r.hrMark ? [{ name: 'hrMark', valueString: r.hrMark }] : []),
    { name: 'hashStatus', valueCode: r.hashStatus },
    { name: 'abnormalCount', valueInteger: r.abnormalCount },
  ];
}

function parameters(parameter: ParametersParameter[]): FhirResponse {
  const body: Parameters = { resourceType: 'Parameters', parameter };
  return { status: 200, body };
}
