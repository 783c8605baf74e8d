/**
 * `Patient/[id]/$reports` (DESIGN.md §6): the patient's reports across institutions, newest first, with
 * recognition status, HR mark and days left. Writes an access record.
 */
import type { OperationDefinition, ParametersParameter } from '@medplum/fhirtypes';
import { patientReports } from '../service.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { RecognitionInput } from './params.ts';
import { authorizePatientRecord } from '../../auth/care.ts';
import { limits } from '../../fhir/limits.ts';
import { REPORTS_DEFAULT_COUNT, REPORTS_MAX_COUNT, reportParts, parameters } from './report-parts.ts';

let reportsDefinition: OperationDefinition | undefined;

export const reportsOperation: Operation = {
  name: 'reports',
  get definition() {
    return (reportsDefinition ??= loadDefinition('OperationDefinition-Patient-reports.json'));
  },
  methods: ['GET', 'POST'],
  async handle(ctx, req, target) {
    await authorizePatientRecord(ctx, target.id as string, 'reports');
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
