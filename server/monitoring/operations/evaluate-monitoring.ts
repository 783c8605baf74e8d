/**
 * `Measure/$evaluate-monitoring` (docs/monitoring.md): evaluates every monitor at an instant (`at`, default
 * now) and moves the alerts (Flags), and — with `from`/`to` — (re)generates the indicator MeasureReports of
 * those days (a backfill of a past period is the same call). Idempotent; the scheduled job makes the same call
 * every minute. Needs the right to write Flag and MeasureReport.
 */
import type { OperationDefinition, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { allows } from '../../auth/scopes.ts';
import { badRequest, fail } from '../../fhir/errors.ts';
import { StrictInput } from '../../fhir/operations/input.ts';
import { loadDefinition, type Operation } from '../../fhir/operations/registry.ts';
import type { MonitoringService } from '../service.ts';

const DAY = /^\d{4}-\d{2}-\d{2}$/;
const MAX_DAYS = 366;

export function evaluateMonitoringOperation(service: MonitoringService): Operation {
  let definition: OperationDefinition | undefined;
  return {
    name: 'evaluate-monitoring',
    get definition() {
      return (definition ??= loadDefinition('OperationDefinition-Measure-evaluate-monitoring.json'));
    },
    methods: ['GET', 'POST'],
    async: true,
    async handle(ctx, req) {
      const input = new StrictInput('evaluate-monitoring', req, ['at', 'from', 'to']);
      const atText = input.string('at');
      const at = atText === undefined ? new Date() : new Date(atText);
      if (atText !== undefined && (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(atText) || Number.isNaN(at.getTime()))) {
        throw badRequest(`$evaluate-monitoring: at must be an instant with a time zone (e.g. 2024-06-03T08:30:00+08:00), not '${atText.slice(0, 40)}'`, input.expr('at'));
      }
      const from = input.string('from');
      const to = input.string('to') ?? from;
      for (const [name, v] of [['from', from], ['to', to]] as const) {
        if (v !== undefined && (!DAY.test(v) || Number.isNaN(Date.parse(`${v}T00:00:00Z`)) || new Date(`${v}T00:00:00Z`).toISOString().slice(0, 10) !== v)) {
          throw badRequest(`$evaluate-monitoring: ${name} must be a date YYYY-MM-DD (Asia/Shanghai), not '${v.slice(0, 30)}'`, input.expr(name));
        }
      }
      if (to !== undefined && from === undefined) throw badRequest('$evaluate-monitoring: to needs from', input.expr('from'));
      if (from !== undefined && to !== undefined) {
        if (from > to) throw badRequest(`$evaluate-monitoring: from (${from}) is after to (${to})`, input.expr('from'));
        if (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`) >= MAX_DAYS * 86_400_000) throw badRequest(`$evaluate-monitoring: a range covers at most ${MAX_DAYS} days`, input.expr('to'));
      }
      if (!allows(ctx.principal.scopes, 'Flag', 'u') || !allows(ctx.principal.scopes, 'MeasureReport', 'u')) {
        throw fail(403, 'forbidden', 'Evaluating the monitors needs the right to write Flag and MeasureReport resources');
      }
      const evaluation = await service.evaluate(ctx.repo, at);
      const parameter: ParametersParameter[] = [{ name: 'at', valueInstant: evaluation.at }];
      if (evaluation.skipped) parameter.push({ name: 'skipped', valueString: evaluation.skipped });
      for (const j of evaluation.active) {
        parameter.push({
          name: 'alert',
          part: [
            { name: 'institution', valueReference: { reference: j.institution } },
            { name: 'monitor', valueCode: j.monitor },
            { name: 'flow', valueCode: j.flow },
            { name: 'level', valueInteger: j.level },
            { name: 'reason', valueCode: j.reason },
            { name: 'minutes', valueInteger: j.minutes },
          ],
        });
      }
      for (const c of evaluation.changes) {
        parameter.push({
          name: 'change',
          part: [
            { name: 'institution', valueReference: { reference: c.institution } },
            { name: 'monitor', valueCode: c.monitor },
            { name: 'flow', valueCode: c.flow },
            { name: 'from', valueInteger: c.from },
            { name: 'to', valueInteger: c.to },
            { name: 'flag', valueReference: { reference: c.flag } },
          ],
        });
      }
      if (from !== undefined && to !== undefined) {
        const { reports, written } = await service.generateReports(ctx.repo, from, to);
        parameter.push({ name: 'reports', valueInteger: reports.length }, { name: 'written', valueInteger: written });
        for (const r of reports) parameter.push({ name: 'report', valueReference: { reference: `MeasureReport/${r.id}` } });
      }
      return { status: 200, body: { resourceType: 'Parameters', parameter } as Parameters };
    },
  };
}
