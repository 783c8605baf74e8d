/**
 * `ConceptMap/[id]/$entry-status`: changes the status of dictionary entries (pending / approved / rejected / retired).
 */
import { badRequest, fail } from '../../fhir/errors.ts';
import type { FhirContext } from '../../fhir/router.ts';
import { institutionsOf, isOwnResource, isPlatform } from '../../auth/institution.ts';
import { setStatus, STATUSES, type EntryStatus } from '../store.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { requireWrite } from '../../fhir/operations/admin.ts';
import { OpInput, parametersResponse } from '../../fhir/operations/input.ts';


import { guarded, entryParameter, definitions } from './params.ts';


/** A caller bound to an institution reviews only its own dictionary's entries (the map's useContext venue). */
async function requireOwnMap(ctx: FhirContext, id: string): Promise<void> {
  if (isPlatform(ctx.principal) || !ctx.principal.institution) return;
  const [map] = await ctx.repo.readMany('ConceptMap', [id]);
  if (map && !(await isOwnResource(ctx.repo, map, await institutionsOf(ctx.repo, ctx.principal)))) {
    throw fail(403, 'forbidden', `ConceptMap/${id.slice(0, 64)} is another institution's dictionary map: only that institution reviews its entries`, 'ConceptMap.useContext');
  }
}

export const entryStatusOperation: Operation = {
  name: 'entry-status',
  get definition() {
    return (definitions.status ??= loadDefinition('OperationDefinition-ConceptMap-entry-status.json'));
  },
  methods: ['POST'],
  async handle(ctx, req, target) {
    requireWrite(ctx, 'ConceptMap', 'Reviewing dictionary entries');
    await requireOwnMap(ctx, target.id as string);
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
