/**
 * `Organization/[id]/$dictionary-qc`: the institution's dictionary QC report.
 */
import type { ParametersParameter } from '@medplum/fhirtypes';
import type { FhirResponse } from '../../fhir/router.ts';
import { DICTIONARY_STATUS_SYSTEM as STATUS_SYSTEM } from '../../terminology/canonical.ts';
import { STATUSES, STATUS_ZH } from '../store.ts';
import { dictionaryQc } from '../qc.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { OpInput, parametersResponse } from '../../fhir/operations/input.ts';


import { guarded, issueParameter, definitions } from './params.ts';


export const dictionaryQcOperation: Operation = {
  name: 'dictionary-qc',
  get definition() {
    return (definitions.qc ??= loadDefinition('OperationDefinition-Organization-dictionary-qc.json'));
  },
  methods: ['GET', 'POST'],
  async: true,
  async handle(ctx, req, target): Promise<FhirResponse> {
    const input = new OpInput('dictionary-qc', req);
    const pendingDays = input.integer('pendingDays', { max: 3650 });
    const report = await guarded(input, () => dictionaryQc(ctx.repo.db, target.id as string, { pendingDays }));
    const parameter: ParametersParameter[] = [
      { name: 'organization', valueReference: { reference: `Organization/${report.organization}` } },
      { name: 'generated', valueInstant: report.generated },
      { name: 'pendingDays', valueInteger: report.pendingDays },
      ...report.maps.map((m) => ({ name: 'map', valueReference: { reference: `ConceptMap/${m}` } })),
      ...report.dictionaries.map((d) => ({ name: 'dictionary', valueReference: { reference: `CodeSystem/${d}` } })),
      { name: 'entries', valueInteger: report.entries },
      ...STATUSES.map((s) => ({ name: 'status', part: [{ name: 'code', valueCoding: { system: STATUS_SYSTEM, code: s, display: STATUS_ZH[s] } }, { name: 'count', valueInteger: report.byStatus[s] }] })),
      ...Object.entries(report.summary).map(([kind, count]) => ({ name: 'summary', part: [{ name: 'kind', valueCode: kind }, { name: 'count', valueInteger: count }] })),
      ...report.issues.map(issueParameter),
    ];
    return parametersResponse(parameter);
  },
};
