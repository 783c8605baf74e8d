/**
 * Answer shapes shared by the recognition operations: the parts of a recognisable result, a Parameters answer.
 */
import type { OperationOutcomeIssue, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import type { FederatedAnswer } from '../partner.ts';
import type { ApprovedMapping } from '../../dictionary/mappings.ts';
import type { FhirResponse } from '../../fhir/router.ts';
import { type ResultSummary } from '../service.ts';

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
    ...(r.mapping ? [mappingParameter(r.mapping)] : []),
  ];
}

/**
 * The approved dictionary entry through which a local code stands for a catalogue item: the map
 * (ConceptMap/<id>) and the local code it maps.
 */
export function mappingParameter(m: ApprovedMapping, name = 'mapping'): ParametersParameter {
  return {
    name,
    part: [
      { name: 'map', valueReference: { reference: `ConceptMap/${m.map}` } },
      { name: 'source', valueCoding: { system: m.system, code: m.code, ...(m.display ? { display: m.display } : {}) } },
    ],
  };
}

export function parameters(parameter: ParametersParameter[]): FhirResponse {
  const body: Parameters = { resourceType: 'Parameters', parameter };
  return { status: 200, body };
}

/** Where a result comes from: this platform's code, or the partner's (with the partner results' own parts). */
export function originPart(origin: string): ParametersParameter {
  return { name: 'origin', valueCode: origin };
}

/** The partners' warnings (slow, down, refused results) as one OperationOutcome parameter, when there are any. */
export function outcomeParameter(issues: OperationOutcomeIssue[]): ParametersParameter[] {
  return issues.length > 0 ? [{ name: 'outcome', resource: { resourceType: 'OperationOutcome', issue: issues } }] : [];
}

/** The local results labelled with this platform's origin, then the partners' results, then their warnings. */
export function withPartners(local: ParametersParameter[], federated: FederatedAnswer | undefined): { results: ParametersParameter[]; outcome: ParametersParameter[] } {
  if (!federated) return { results: local, outcome: [] };
  return {
    results: [...local.map((p) => ({ ...p, part: [...(p.part ?? []), originPart(federated.origin)] })), ...federated.results.map((r) => ({ name: 'result', part: r.parts }))],
    outcome: outcomeParameter(federated.issues),
  };
}
