/**
 * `Patient/[id]/$recognition-check` (and type-level by identifier, DESIGN.md §6): the patient's recognisable
 * results now, and the encounter reminder. Thin: parameters in, the recognition service, Parameters out.
 */
import type { OperationDefinition, ParametersParameter } from '@medplum/fhirtypes';
import { badRequest } from '../../fhir/errors.ts';
import { recognitionCheck, type PatientSelector } from '../service.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { RecognitionInput } from './params.ts';
import { resultParts, parameters, withPartners } from './answers.ts';
import { askPartners, checkParties } from '../partner.ts';

let checkDefinition: OperationDefinition | undefined;

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
    // the partner platforms are asked in parallel with the local search (server/recognition/partner.ts)
    // (they are asked once the local check found the patient and the requester: neither is read twice)
    const { parties, found, failed } = checkParties();
    const partners = askPartners({ kind: 'recognition-check', repo: ctx.repo, principal: ctx.principal, patient: selector, requester, codes, categories, parties });
    const result = await input.guard(() => recognitionCheck({ repo: ctx.repo, principal: ctx.principal, found }, { patient: selector, requester, categories, codes })).catch((err: unknown) => {
      failed();
      throw err;
    });
    const federated = await partners;
    const local = result.results.map((r) => ({ name: 'result', part: resultParts(r) }));
    const merged = withPartners(local, federated);
    const parameter: ParametersParameter[] = [
      { name: 'exists', valueBoolean: merged.results.length > 0 },
      { name: 'reminder', valueReference: { reference: `DetectedIssue/${result.reminder.id}` } },
      ...merged.results,
      ...merged.outcome,
    ];
    return parameters(parameter);
  },
};
