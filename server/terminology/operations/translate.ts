/** `ConceptMap/$translate` (FHIR R4): legacy → national → platform codes, and any other loaded map. */
import type { Coding, ConceptMap, OperationDefinition, ParametersParameter, ValueSet } from '@medplum/fhirtypes';
import { badRequest, fail } from '../../fhir/errors.ts';
import { ConceptMapIndex } from '../conceptmap.ts';
import { terminology } from '../load.ts';
import { translate, type TranslateResult } from '../service.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { OpInput, parametersResponse } from '../../fhir/operations/input.ts';
import { guard, resolverFor, resourceById, splitCanonical, storedByUrl } from './params.ts';

export const translateOperation: Operation = {
  name: 'translate',
  get definition() {
    return (definition ??= loadDefinition('OperationDefinition-ConceptMap-translate.json'));
  },
  methods: ['GET', 'POST'],
  async handle(ctx, req, target) {
    const input = new OpInput('translate', req);
    if (input.has('dependency')) throw badRequest('$translate: dependency is not supported', input.expr('dependency'));
    const codings = codingsOf(input);
    const map = await conceptMapOf(ctx, input, target.id);
    const targetSystem = input.text('targetsystem');
    const reverse = input.boolean('reverse') ?? false;
    let targetVs: ValueSet | undefined;
    const targetUrl = input.text('target');
    if (targetUrl) {
      const [u, v] = splitCanonical(targetUrl);
      targetVs = terminology.valueSet(u, v) ?? (await storedByUrl<ValueSet>(ctx, 'ValueSet', u, v));
      if (!targetVs) throw fail(404, 'not-found', `The target value set ${targetUrl} is not known to this server`, input.expr('target'));
    }
    const resolver = await resolverFor(ctx, { valueSets: targetVs ? [targetVs] : [], conceptMaps: map && !isPublished(map) ? [map] : [] });
    const index = map ? (isPublished(map) ? terminology.conceptMap(map.url as string, map.version) : new ConceptMapIndex(map)) : undefined;
    const results: TranslateResult[] = guard(input, () =>
      codings.map((c) => translate(resolver, { system: c.system as string, code: c.code as string }, { map: index, targetSystem, target: targetVs, reverse }))
    );
    const matches = results.flatMap((r) => r.matches);
    const result = results.some((r) => r.result);
    const parameter: ParametersParameter[] = [{ name: 'result', valueBoolean: result }];
    if (!result) parameter.push({ name: 'message', valueString: results.map((r) => r.message).filter(Boolean).join('; ') });
    for (const m of matches) {
      parameter.push({
        name: 'match',
        part: [
          { name: 'equivalence', valueCode: m.equivalence },
          ...(m.concept.code ? [{ name: 'concept', valueCoding: m.concept }] : []),
          { name: 'source', valueUri: m.source },
        ],
      });
    }
    return parametersResponse(parameter);
  },
};

function isPublished(map: ConceptMap): boolean {
  return !!map.url && terminology.conceptMap(map.url, map.version)?.resource === map;
}

async function conceptMapOf(ctx: Parameters<Operation['handle']>[0], input: OpInput, id: string | undefined): Promise<ConceptMap | undefined> {
  if (id) return resourceById<ConceptMap>(ctx, 'ConceptMap', id);
  const inline = input.resource<ConceptMap>('conceptMap', 'ConceptMap');
  if (inline) return inline;
  const urlParam = input.text('url');
  if (!urlParam) return undefined; // every map the server has
  const [url, inlineVersion] = splitCanonical(urlParam);
  const version = input.text('conceptMapVersion') ?? inlineVersion;
  const map = terminology.conceptMap(url, version)?.resource ?? (await storedByUrl<ConceptMap>(ctx, 'ConceptMap', url, version));
  if (!map) throw fail(404, 'not-found', `The concept map ${url}${version ? `|${version}` : ''} is not known to this server`, input.expr('url'));
  return map;
}

function codingsOf(input: OpInput): Coding[] {
  const code = input.text('code');
  const coding = input.coding('coding');
  const cc = input.codeableConcept('codeableConcept');
  const forms = [code !== undefined, coding !== undefined, cc !== undefined].filter(Boolean).length;
  if (forms === 0) throw badRequest('$translate needs a code: code and system, coding, or codeableConcept', input.expr('code'));
  if (forms > 1) throw badRequest('$translate takes only one of code, coding and codeableConcept', input.expr('code'));
  if (code !== undefined) {
    const system = input.text('system');
    if (!system) throw badRequest('$translate: a code needs its system', input.expr('system'));
    return [{ system, code }];
  }
  if (coding) {
    if (!coding.code || !coding.system) throw badRequest('$translate: the coding needs a system and a code', input.expr('coding'));
    return [coding];
  }
  const list = (cc?.coding ?? []).filter((c) => c.code && c.system);
  if (list.length === 0) throw badRequest('$translate: the codeableConcept has no coding with system and code', input.expr('codeableConcept'));
  return list;
}

let definition: OperationDefinition | undefined;
