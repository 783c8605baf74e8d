/**
 * `DocumentReference/$monitoring-briefing` (docs/monitoring.md "Briefing"): makes — or brings up to date — the
 * weekly or monthly briefing (数据分析简报) of the city or a district from the period's MeasureReports, and
 * answers its DocumentReference (HTML and, where a Chromium is installed, PDF attachments). Idempotent: the same
 * figures write nothing; other figures write a new version. The server makes the last complete week's and
 * month's briefings every day. Needs the right to write DocumentReference (and MeasureReport, to refresh them).
 */
import type { OperationDefinition } from '@medplum/fhirtypes';
import { allows } from '../../auth/scopes.ts';
import { badRequest, fail } from '../../fhir/errors.ts';
import { StrictInput } from '../../fhir/operations/input.ts';
import { loadDefinition, type Operation } from '../../fhir/operations/registry.ts';
import { BriefingInputError, lastCompletePeriod, parseArea, parsePeriod, type BriefingKind } from '../briefing-data.ts';
import type { MonitoringService } from '../service.ts';

export function monitoringBriefingOperation(service: MonitoringService): Operation {
  let definition: OperationDefinition | undefined;
  return {
    name: 'monitoring-briefing',
    get definition() {
      return (definition ??= loadDefinition('OperationDefinition-DocumentReference-monitoring-briefing.json'));
    },
    methods: ['GET', 'POST'],
    async: true,
    async handle(ctx, req) {
      const input = new StrictInput('monitoring-briefing', req, ['kind', 'period', 'area', 'refresh']);
      const kind = input.string('kind');
      if (kind !== 'week' && kind !== 'month') throw badRequest(`$monitoring-briefing: kind must be week or month${kind === undefined ? '' : `, not '${kind.slice(0, 20)}'`}`, input.expr('kind'));
      const refresh = input.boolean('refresh') ?? true;
      let period;
      let area;
      try {
        const key = input.string('period');
        const today = new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);
        period = key === undefined ? lastCompletePeriod(kind as BriefingKind, today) : parsePeriod(kind as BriefingKind, key);
        area = parseArea(input.string('area'));
      } catch (err) {
        if (err instanceof BriefingInputError) throw badRequest(`$monitoring-briefing: ${err.message}`, input.expr(err.param));
        throw err;
      }
      if (ctx.principal.institution) throw fail(403, 'forbidden', 'Briefings cover a district or the city: only the platform (not an institution’s client) makes them');
      if (!allows(ctx.principal.scopes, 'DocumentReference', 'u') || (refresh && !allows(ctx.principal.scopes, 'MeasureReport', 'u'))) {
        throw fail(403, 'forbidden', `Making a briefing needs the right to write DocumentReference${refresh ? ' and MeasureReport (or refresh=false)' : ''}`);
      }
      const result = await service.briefing(ctx.repo, period, area, { refresh });
      return { status: 200, body: result.document };
    },
  };
}
