/**
 * `Measure/$chain-statistics` (DESIGN.md §6 "statistics per institution"; docs/chain-provenance.md): generates
 * the chain statistics MeasureReports of a range of days (Asia/Shanghai), of every institution or of one,
 * and returns them in a Bundle. Idempotent per (institution, day): the same MeasureReport is updated.
 */
import type { Bundle, OperationDefinition } from '@medplum/fhirtypes';
import { allows } from '../../auth/scopes.ts';
import { badRequest, fail } from '../../fhir/errors.ts';
import { generateChainStatistics, statisticsRange, StatisticsError } from '../statistics.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { StrictInput as RecognitionInput } from '../../fhir/operations/input.ts';

let definition: OperationDefinition | undefined;

export const chainStatisticsOperation: Operation = {
  name: 'chain-statistics',
  get definition() {
    return (definition ??= loadDefinition('OperationDefinition-Measure-chain-statistics.json'));
  },
  methods: ['GET', 'POST'],
  async: true,
  async handle(ctx, req) {
    const input = new RecognitionInput('chain-statistics', req, ['institution', 'from', 'to']);
    const institution = input.reference('institution');
    if (institution && !institution.reference) throw badRequest('$chain-statistics: institution must be a literal reference Organization/<id>', input.expr('institution'));
    let range;
    try {
      range = statisticsRange({ from: input.string('from'), to: input.string('to'), institution: institution?.reference });
    } catch (e) {
      if (e instanceof StatisticsError) throw badRequest(`$chain-statistics: ${e.message}`, input.expr(e.param));
      throw e;
    }
    if (!allows(ctx.principal.scopes, 'MeasureReport', 'u')) throw fail(403, 'forbidden', 'Generating statistics needs the right to write MeasureReport resources');
    const { reports } = await ctx.repo.transaction((repo) => generateChainStatistics(repo, range));
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'collection',
      total: reports.length,
      entry: reports.map((r) => ({ fullUrl: `${ctx.baseUrl}/MeasureReport/${r.id}`, resource: r })),
    } as Bundle;
    return { status: 200, body: bundle };
  },
};
