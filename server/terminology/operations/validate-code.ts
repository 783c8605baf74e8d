/** `ValueSet/$validate-code` (FHIR R4): whether a code (Coding, CodeableConcept) is in a value set. */
import type { Coding, OperationDefinition, ParametersParameter } from '@medplum/fhirtypes';
import { badRequest } from '../../fhir/errors.ts';
import { validateCode } from '../service.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { OpInput, parametersResponse } from '../../fhir/operations/input.ts';
import { guard, resolverFor, targetValueSet } from './params.ts';

export const validateCodeOperation: Operation = {
  name: 'validate-code',
  get definition() {
    return (definition ??= loadDefinition('OperationDefinition-ValueSet-validate-code.json'));
  },
  methods: ['GET', 'POST'],
  async handle(ctx, req, target) {
    const input = new OpInput('validate-code', req);
    if (input.has('context')) throw badRequest('$validate-code: the context parameter is not supported; give url or valueSet', input.expr('context'));
    const codings = codingsOf(input);
    const vs = await targetValueSet(ctx, input, target);
    const resolver = await resolverFor(ctx, { valueSets: [vs], codeSystems: codings.flatMap((c) => (c.system ? [c.system] : [])) });
    const result = guard(input, () => validateCode(resolver, vs, codings, { abstract: input.boolean('abstract'), displayLanguage: input.text('displayLanguage') }));
    const parameter: ParametersParameter[] = [{ name: 'result', valueBoolean: result.result }];
    if (result.message) parameter.push({ name: 'message', valueString: result.message });
    if (result.display !== undefined) parameter.push({ name: 'display', valueString: result.display });
    return parametersResponse(parameter);
  },
};

/** The codings to validate: code + system (+ display), or coding, or codeableConcept — exactly one form. */
function codingsOf(input: OpInput): Coding[] {
  const code = input.text('code');
  const coding = input.coding('coding');
  const cc = input.codeableConcept('codeableConcept');
  const forms = [code !== undefined, coding !== undefined, cc !== undefined].filter(Boolean).length;
  if (forms === 0) throw badRequest('$validate-code needs a code: code and system, coding, or codeableConcept', input.expr('code'));
  if (forms > 1) throw badRequest('$validate-code takes only one of code, coding and codeableConcept', input.expr('code'));
  if (code !== undefined) {
    const system = input.text('system');
    if (!system) throw badRequest('$validate-code: a code needs its system', input.expr('system'));
    const version = input.text('systemVersion');
    const display = input.string('display');
    return [{ system, code, ...(version ? { version } : {}), ...(display !== undefined ? { display } : {}) }];
  }
  if (coding) {
    if (!coding.code) throw badRequest('$validate-code: the coding has no code', `${input.expr('coding')}.value.code`);
    if (!coding.system) throw badRequest('$validate-code: the coding has no system', `${input.expr('coding')}.value.system`);
    return [coding];
  }
  const list = (cc?.coding ?? []).filter((c) => c.code);
  if (list.length === 0) throw badRequest('$validate-code: the codeableConcept has no coded value', `${input.expr('codeableConcept')}.value.coding`);
  return list;
}

let definition: OperationDefinition | undefined;
