/** `CodeSystem/$subsumes` (FHIR R4): is A an ancestor of B (kind › field › category › item)? */
import type { CodeSystem, OperationDefinition } from '@medplum/fhirtypes';
import { badRequest } from '../../fhir/errors.ts';
import { subsumes } from '../service.ts';
import { terminology } from '../load.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { OpInput, parametersResponse } from '../../fhir/operations/input.ts';
import { guard, resolverFor, resourceById } from './params.ts';

export const subsumesOperation: Operation = {
  name: 'subsumes',
  get definition() {
    return (definition ??= loadDefinition('OperationDefinition-CodeSystem-subsumes.json'));
  },
  methods: ['GET', 'POST'],
  async handle(ctx, req, target) {
    const input = new OpInput('subsumes', req);
    let system = input.text('system');
    let version = input.text('version');
    let instance: CodeSystem | undefined;
    if (target.id) {
      instance = await resourceById<CodeSystem>(ctx, 'CodeSystem', target.id);
      if (system && system !== instance.url) throw badRequest(`$subsumes: system ${system} is not the url of CodeSystem/${target.id}`, input.expr('system'));
      system = instance.url;
      version = instance.version;
    }
    const side = (which: 'A' | 'B'): string => {
      const code = input.text(`code${which}`);
      const coding = input.coding(`coding${which}`);
      if (code !== undefined && coding !== undefined) throw badRequest(`$subsumes takes code${which} or coding${which}, not both`, input.expr(`code${which}`));
      if (coding) {
        if (!coding.code) throw badRequest(`$subsumes: coding${which} has no code`, input.expr(`coding${which}`));
        if (!system) system = coding.system;
        else if (coding.system && coding.system !== system) {
          throw badRequest(`$subsumes: coding${which} is from ${coding.system}, not ${system}`, input.expr(`coding${which}`));
        }
        return coding.code;
      }
      if (code === undefined) throw badRequest(`$subsumes needs code${which} or coding${which}`, input.expr(`code${which}`));
      return code;
    };
    const a = side('A');
    const b = side('B');
    if (!system) throw badRequest('$subsumes needs a system (or call it on CodeSystem/[id])', input.expr('system'));
    const resolver =
      instance && !(instance.url && terminology.codeSystem(instance.url, instance.version)) ? terminology.withExtra([instance]) : await resolverFor(ctx, { codeSystems: [version ? `${system}|${version}` : system] });
    const outcome = guard(input, () => subsumes(resolver, system as string, a, b, version));
    return parametersResponse([{ name: 'outcome', valueCode: outcome }]);
  },
};

let definition: OperationDefinition | undefined;
