/**
 * `CodeSystem/$catalogue-import` (administrators): imports an official catalogue file (CSV or .xlsx, sent as
 * an Attachment) as a new edition of the recognition catalogue. Row errors → 422 with one issue per line;
 * nothing is written. `Prefer: respond-async` runs it as a job whose poll shows the progress.
 */
import type { OperationDefinition, ParametersParameter } from '@medplum/fhirtypes';
import { fail } from '../../fhir/errors.ts';
import { importCatalogue, ImportRefused, ImportRejected, type ImportOptions } from '../import.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { booleanParam, fileParameter, paramExpr, parametersBody, primitiveParam, primitiveParams, requireWrite, rowErrors } from '../../fhir/operations/admin.ts';
import { parametersResponse } from '../../fhir/operations/input.ts';

const OP = 'catalogue-import';

export const catalogueImportOperation: Operation = {
  name: OP,
  get definition() {
    return (definition ??= loadDefinition('OperationDefinition-CodeSystem-catalogue-import.json'));
  },
  methods: ['POST'],
  async: true,
  async handle(ctx, req) {
    requireWrite(ctx, 'CodeSystem', 'Importing the catalogue');
    const params = parametersBody(req, OP);
    const file = fileParameter(params, 'file', OP);
    const options: ImportOptions = {
      version: primitiveParam(params, 'version', OP),
      effectiveFrom: primitiveParam(params, 'effectiveFrom', OP),
      scope: primitiveParam(params, 'scope', OP),
      hrLabel: primitiveParam(params, 'hrLabel', OP),
      newFields: primitiveParams(params, 'newField', OP),
      newCategories: primitiveParams(params, 'newCategory', OP),
      fileName: file.name ?? (file.contentType?.includes('spreadsheetml') ? 'catalogue.xlsx' : 'catalogue.csv'),
      dryRun: booleanParam(params, 'dryRun', OP),
    };
    let result;
    try {
      result = await importCatalogue(ctx.repo.db, file.data, options, (phase, done, total) => ctx.progress?.(`${phase} ${done}/${total}`), ctx.principal);
    } catch (err) {
      if (err instanceof ImportRejected) throw rowErrors(err.errors, 'file', err.message);
      if (err instanceof ImportRefused) throw fail(err.status, err.status === 409 ? 'conflict' : err.status === 400 ? 'invalid' : 'business-rule', err.message, paramExpr(err.option));
      throw err;
    }
    const out: ParametersParameter[] = [
      { name: 'version', valueString: result.version },
      ...(result.previousVersion ? [{ name: 'previousVersion', valueString: result.previousVersion }] : []),
      { name: 'items', valueInteger: result.items },
      { name: 'added', valueInteger: result.added },
      { name: 'changed', valueInteger: result.changed },
      { name: 'unchanged', valueInteger: result.unchanged },
      { name: 'retired', valueInteger: result.retired },
      { name: 'written', valueInteger: result.written },
      { name: 'dryRun', valueBoolean: result.dryRun },
      { name: 'noChange', valueBoolean: result.noChange },
      { name: 'sha256', valueString: result.sha256 },
      ...(result.codeSystem ? [{ name: 'codeSystem', valueReference: { reference: result.codeSystem } }] : []),
      ...(result.provenance ? [{ name: 'provenance', valueReference: { reference: result.provenance } }] : []),
    ];
    return parametersResponse(out);
  },
};

let definition: OperationDefinition | undefined;
