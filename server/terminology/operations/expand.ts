/** `ValueSet/$expand` (FHIR R4): the codes of a value set, with text filter, paging and zh-CN displays. */
import type { OperationDefinition } from '@medplum/fhirtypes';
import { badRequest } from '../../fhir/errors.ts';
import { expandSerialised, MAX_EXPANSION } from '../service.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { OpInput } from '../../fhir/operations/input.ts';
import { guard, resolverFor, targetValueSet } from './params.ts';

export const expandOperation: Operation = {
  name: 'expand',
  get definition() {
    return (definition ??= loadDefinition('OperationDefinition-ValueSet-expand.json'));
  },
  methods: ['GET', 'POST'],
  async handle(ctx, req, target) {
    const input = new OpInput('expand', req);
    if (input.has('context')) throw badRequest('$expand: the context parameter is not supported; give url or valueSet', input.expr('context'));
    const options = {
      filter: input.string('filter'),
      offset: input.integer('offset'),
      count: input.integer('count', { max: MAX_EXPANSION }),
      displayLanguage: input.text('displayLanguage'),
      includeDesignations: input.boolean('includeDesignations'),
      activeOnly: input.boolean('activeOnly'),
      excludeNotForUI: input.boolean('excludeNotForUI'),
    };
    const vs = await targetValueSet(ctx, input, target);
    const resolver = await resolverFor(ctx, { valueSets: [vs] });
    const { body, bytes } = guard(input, () => expandSerialised(resolver, vs, options));
    return { status: 200, body, bytes };
  },
};

let definition: OperationDefinition | undefined;
