/**
 * `ConceptMap/[id]/$entry-history`: every change of one dictionary entry (who, when, from what to what).
 */
import { badRequest } from '../../fhir/errors.ts';
import { entryHistory } from '../store.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { OpInput, parametersResponse } from '../../fhir/operations/input.ts';


import { guarded, entryParameter, changeParameter, definitions } from './params.ts';


export const entryHistoryOperation: Operation = {
  name: 'entry-history',
  get definition() {
    return (definitions.history ??= loadDefinition('OperationDefinition-ConceptMap-entry-history.json'));
  },
  methods: ['GET', 'POST'],
  async handle(ctx, req, target) {
    const input = new OpInput('entry-history', req);
    const code = input.text('code');
    if (!code) throw badRequest('$entry-history needs the local code of the entry: code', input.expr('code'));
    const { entry, changes } = await guarded(input, () => entryHistory(ctx.repo.db, target.id as string, code, input.text('system')));
    return parametersResponse([entryParameter(entry), ...changes.map(changeParameter)]);
  },
};
