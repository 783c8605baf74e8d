/**
 * `$code-upgrade` (编码升级, administrators, system level): completes the legacy price codes of stored
 * DiagnosticReport, Observation and ServiceRequest resources with the national and platform codes, with a
 * Provenance per changed resource; idempotent and resumable (see server/terminology/code-upgrade.ts).
 * Run by the system administrator, or by a caller with the right to write the walked types.
 * `Prefer: respond-async` runs it as a job whose poll shows `upgrade N/M` in X-Progress.
 */
import type { OperationDefinition, ParametersParameter } from '@medplum/fhirtypes';
import { badRequest, fail } from '../../fhir/errors.ts';
import { LEGACY_SYSTEM } from '../canonical.ts';
import { codeUpgrade, UpgradeRefused, UPGRADE_TYPES, type UpgradeReport, type UpgradeType } from '../code-upgrade.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { booleanParam, integerParam, paramExpr, parametersBody, primitiveParam, primitiveParams, requireWrite } from '../../fhir/operations/admin.ts';
import { parametersResponse } from '../../fhir/operations/input.ts';

const OP = 'code-upgrade';

export const codeUpgradeOperation: Operation = {
  name: OP,
  get definition() {
    return (definition ??= loadDefinition('OperationDefinition-code-upgrade.json'));
  },
  methods: ['POST'],
  async: true,
  async handle(ctx, req) {
    const params = parametersBody(req, OP);
    const types = primitiveParams(params, 'type', OP).flatMap((t) => t.split(',').map((x) => x.trim()).filter(Boolean));
    for (const t of types) {
      if (!UPGRADE_TYPES.includes(t as UpgradeType)) throw badRequest(`$${OP}: type must be one of ${UPGRADE_TYPES.join(', ')}, not '${t.slice(0, 40)}'`, paramExpr('type'));
    }
    // the system administrator runs the platform's terminology, the code upgrade included (it only completes
    // codings, with a Provenance each); anyone else needs the right to write every type it walks
    if (!ctx.principal?.roles?.includes('system-admin')) for (const t of types.length ? types : UPGRADE_TYPES) requireWrite(ctx, t, 'The code upgrade');
    const options = {
      types: types as UpgradeType[],
      batchSize: integerParam(params, 'batchSize', OP, { min: 1, max: 1000 }),
      limit: integerParam(params, 'limit', OP, { min: 1 }),
      jobId: primitiveParam(params, 'job', OP),
      restart: booleanParam(params, 'restart', OP),
    };
    if (options.jobId && options.restart) throw badRequest(`$${OP}: give either job (to continue it) or restart, not both`, paramExpr('restart'));
    if (options.jobId && types.length) throw badRequest(`$${OP}: the types of a walk are fixed when it starts`, paramExpr('type'));
    let report: UpgradeReport;
    try {
      report = await codeUpgrade(ctx.repo.db, options, ctx.principal, (done, total) => ctx.progress?.(`upgrade ${done}/${total}`));
    } catch (err) {
      if (err instanceof UpgradeRefused) throw fail(err.status, 'not-found', err.message, paramExpr(err.option));
      throw err;
    }
    return parametersResponse(reportParameters(report));
  },
};

export function reportParameters(r: UpgradeReport): ParametersParameter[] {
  return [
    { name: 'job', valueString: r.job },
    { name: 'complete', valueBoolean: r.complete },
    { name: 'total', valueInteger: r.total },
    { name: 'scanned', valueInteger: r.scanned },
    { name: 'upgraded', valueInteger: r.upgraded },
    { name: 'unchanged', valueInteger: r.unchanged },
    { name: 'runScanned', valueInteger: r.run.scanned },
    { name: 'runUpgraded', valueInteger: r.run.upgraded },
    ...(r.mapVersion ? [{ name: 'mapVersion', valueString: r.mapVersion }] : []),
    ...r.unmapped.map((u) => ({
      name: 'unmapped',
      part: [
        { name: 'code', valueCoding: { system: LEGACY_SYSTEM, code: u.code } },
        { name: 'reason', valueCode: u.reason },
        { name: 'count', valueInteger: u.count },
        ...u.examples.map((e) => ({ name: 'example', valueReference: { reference: e } })),
      ],
    })),
    ...r.failed.map((f) => ({ name: 'failed', part: [{ name: 'resource', valueReference: { reference: f.reference } }, { name: 'message', valueString: f.message }] })),
  ];
}

let definition: OperationDefinition | undefined;
