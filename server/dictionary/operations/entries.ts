/**
 * `ConceptMap/[id]/$entries` (字典数据质控, server/dictionary/): the entries of an institution's map with their
 * review status.
 */
import { listEntries } from '../store.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { OpInput, parametersResponse } from '../../fhir/operations/input.ts';


import { guarded, statusParam, entryParameter, definitions } from './params.ts';


export const entriesOperation: Operation = {
  name: 'entries',
  get definition() {
    return (definitions.entries ??= loadDefinition('OperationDefinition-ConceptMap-entries.json'));
  },
  methods: ['GET', 'POST'],
  async handle(ctx, req, target) {
    const input = new OpInput('entries', req);
    const statuses = statusParam(input, 'status');
    const list = await guarded(input, () => listEntries(ctx.repo.db, target.id as string, { statuses }));
    return parametersResponse([{ name: 'total', valueInteger: list.length }, ...list.map((e) => entryParameter(e))]);
  },
};
