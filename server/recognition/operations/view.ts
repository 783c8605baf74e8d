/**
 * `DiagnosticReport/[id]/$view` (DESIGN.md §6): one report with its Observations and its abnormal items
 * picked out. Writes an access record.
 */
import type { OperationDefinition, ParametersParameter } from '@medplum/fhirtypes';
import { viewReport } from '../service.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { RecognitionInput } from './params.ts';
import { itemParts, abnormalParts, parameters } from './report-parts.ts';
import { authorizeReport } from '../../auth/care.ts';

let viewDefinition: OperationDefinition | undefined;

export const viewOperation: Operation = {
  name: 'view',
  get definition() {
    return (viewDefinition ??= loadDefinition('OperationDefinition-DiagnosticReport-view.json'));
  },
  methods: ['GET', 'POST'],
  async handle(ctx, req, target) {
    await authorizeReport(ctx, target.id as string, 'view');
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
    // the report was authorised as a whole above (authorizeReport): its Observations and performer go with it
    return { ...parameters(parameter), judged: true };
  },
};
