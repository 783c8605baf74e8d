/** `CodeSystem/$lookup` (FHIR R4): the display, designations and properties of a code. */
import type { OperationDefinition, ParametersParameter } from '@medplum/fhirtypes';
import { badRequest } from '../../fhir/errors.ts';
import { lookup } from '../service.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { OpInput, parametersResponse } from '../../fhir/operations/input.ts';
import { guard, resolverFor } from './params.ts';

export const lookupOperation: Operation = {
  name: 'lookup',
  get definition() {
    return (definition ??= loadDefinition('OperationDefinition-CodeSystem-lookup.json'));
  },
  methods: ['GET', 'POST'],
  async handle(ctx, req) {
    const input = new OpInput('lookup', req);
    const coding = input.coding('coding');
    const code = input.text('code') ?? coding?.code;
    const system = input.text('system') ?? coding?.system;
    const version = input.text('version') ?? coding?.version;
    if (!code) throw badRequest('$lookup needs a code: code and system, or coding', input.expr(input.has('coding') ? 'coding' : 'code'));
    if (!system) throw badRequest('$lookup needs the system of the code', input.expr(input.has('coding') ? 'coding' : 'system'));
    const resolver = await resolverFor(ctx, { codeSystems: [version ? `${system}|${version}` : system] });
    const result = guard(input, () =>
      lookup(resolver, system, code, { version, properties: input.strings('property'), displayLanguage: input.text('displayLanguage') })
    );
    const parameter: ParametersParameter[] = [{ name: 'name', valueString: result.name }];
    if (result.version) parameter.push({ name: 'version', valueString: result.version });
    if (result.display !== undefined) parameter.push({ name: 'display', valueString: result.display });
    for (const d of result.designations) {
      parameter.push({
        name: 'designation',
        part: [
          ...(d.language ? [{ name: 'language', valueCode: d.language }] : []),
          ...(d.use ? [{ name: 'use', valueCoding: d.use }] : []),
          { name: 'value', valueString: d.value },
        ],
      });
    }
    if (result.definition) parameter.push({ name: 'property', part: [{ name: 'code', valueCode: 'definition' }, { name: 'value', valueString: result.definition }] });
    for (const p of result.properties) {
      const { code: _code, ...value } = p.value;
      const valueKey = Object.keys(value).find((k) => k.startsWith('value'));
      if (!valueKey) continue;
      parameter.push({
        name: 'property',
        part: [
          { name: 'code', valueCode: p.code },
          { name: 'value', [valueKey]: (value as Record<string, unknown>)[valueKey] } as ParametersParameter,
          ...(p.description ? [{ name: 'description', valueString: p.description }] : []),
        ],
      });
    }
    return parametersResponse(parameter);
  },
};

let definition: OperationDefinition | undefined;
