/**
 * `ServiceRequest/$duplicate-check` (DESIGN.md §6): per ordered item, whether a recognisable result covers it,
 * and the duplicate-order reminder. Thin: parameters in, the recognition service, Parameters out.
 */
import type { OperationDefinition, ParametersParameter } from '@medplum/fhirtypes';
import { badRequest } from '../../fhir/errors.ts';
import { duplicateCheck } from '../service.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { RecognitionInput } from './params.ts';
import { mappingParameter, resultParts, parameters, outcomeParameter, originPart } from './answers.ts';
import { askPartners, checkParties, orderPatient, orderedItems } from '../partner.ts';

let duplicateDefinition: OperationDefinition | undefined;

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
    // the partner platforms are asked in parallel with the local search, for the catalogue items ordered
    const patient = orderPatient(orders);
    const codes = orderedItems(orders);
    // (once the local check found the patient and the requester: neither is read twice)
    const { parties, found, failed } = checkParties();
    const partners = patient && codes.length > 0 ? askPartners({ kind: 'duplicate-check', repo: ctx.repo, principal: ctx.principal, patient, requester, codes, categories: [], parties }) : Promise.resolve(undefined);
    const result = await input.guard(() => duplicateCheck({ repo: ctx.repo, principal: ctx.principal, found }, { orders, requester })).catch((err: unknown) => {
      failed();
      throw err;
    });
    const federated = await partners;
    const parameter: ParametersParameter[] = result.items.map((item) => {
      const remote = (federated?.results ?? []).filter((r) => r.itemCode === item.code.code);
      const duplicate = item.duplicate || remote.length > 0;
      return {
        name: 'item',
        part: [
          { name: 'order', valueString: item.order },
          { name: 'code', valueCoding: item.code },
          ...(item.orderMapping ? [mappingParameter(item.orderMapping, 'orderMapping')] : []),
          { name: 'duplicate', valueBoolean: duplicate },
          ...item.matches.map((m) => ({ name: 'match', part: federated ? [...resultParts(m), originPart(federated.origin)] : resultParts(m) })),
          ...remote.map((r) => ({ name: 'match', part: r.parts })),
          ...(item.reason && !duplicate ? [{ name: 'reason', valueString: item.reason }] : []),
        ],
      };
    });
    parameter.push({ name: 'reminder', valueReference: { reference: `DetectedIssue/${result.reminder.id}` } });
    if (federated) parameter.push(...outcomeParameter(federated.issues));
    return parameters(parameter);
  },
};
