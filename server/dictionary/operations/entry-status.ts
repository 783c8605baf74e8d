/**
 * `ConceptMap/[id]/$entry-status`: changes the status of dictionary entries (pending / approved / rejected / retired).
 */
import { badRequest } from '../../fhir/errors.ts';
import { setStatus, STATUSES, type EntryStatus } from '../store.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { requireWrite } from '../../fhir/operations/admin.ts';
import { OpInput, parametersResponse } from '../../fhir/operations/input.ts';


import { guarded, entryParameter, definitions } from './params.ts';


export const entryStatusOperation: Operation = {
  name: 'entry-status',
  get definition() {
    return (definitions.status ??= loadDefinition('OperationDefinition-ConceptMap-entry-status.json'));
  },
  methods: ['POST'],
  async handle(ctx, req, target) {
    requireWrite(ctx, 'ConceptMap', 'Reviewing dictionary entries');
    const input = new OpInput('entry-status', req);
    const codes = input.strings('code');
    if (codes.length === 0) throw badRequest('$entry-status needs the local code(s) of the entries: code', input.expr('code'));
    const status = input.text('status');
    if (!status || !STATUSES.includes(status as EntryStatus)) {
      throw badRequest(`$entry-status needs the new status: one of ${STATUSES.join(', ')}`, input.expr('status'));
    }
    const results = await guarded(input, () =>
      setStatus(ctx.repo.db, target.id as string, { codes, system: input.text('system'), status: status as EntryStatus, comment: input.string('comment') }, ctx.principal)
    );
    return parametersResponse(
      results.map((r) => {
        const p = entryParameter(r.entry);
        return { ...p, part: [...(p.part ?? []), { name: 'statusChanged', valueBoolean: r.changed }] };
      })
    );
  },
};
