/** `$validate` (FHIR R4 Resource-validate): validates a resource without storing it. */
import type { OperationOutcome, Parameters, Resource } from '@medplum/fhirtypes';
import { badRequest } from '../errors.ts';
import { checkResource } from '../validate.ts';
import type { Operation } from './registry.ts';
import { loadDefinition } from './registry.ts';

export const validateOperation: Operation = {
  name: 'validate',
  get definition() {
    return (definition ??= loadDefinition('OperationDefinition-validate.json'));
  },
  methods: ['POST'],
  async: true,
  async handle(_ctx, req, target) {
    let resource = req.body as Resource | undefined;
    let profile = req.query.find(([k]) => k === 'profile')?.[1];
    if (resource?.resourceType === 'Parameters') {
      const params = resource as Parameters;
      const p = params.parameter?.find((x) => x.name === 'profile');
      profile = p?.valueUri ?? p?.valueCanonical ?? p?.valueString ?? profile;
      const mode = params.parameter?.find((p) => p.name === 'mode')?.valueCode;
      if (mode && mode !== 'create' && mode !== 'update') throw badRequest(`$validate mode '${mode}' is not supported`, 'Parameters.parameter.where(name=\'mode\')');
      resource = params.parameter?.find((p) => p.name === 'resource')?.resource as Resource | undefined;
      if (!resource) throw badRequest("$validate needs a 'resource' parameter", "Parameters.parameter.where(name='resource')");
    }
    if (!resource || typeof resource !== 'object') throw badRequest('$validate needs a resource body');
    if (target.type && resource.resourceType !== target.type) {
      throw badRequest(`Expected a ${target.type}, got ${String(resource.resourceType)}`, 'resourceType');
    }
    // `profile`: validate against this profile as if the resource claimed it (profiles/validate.ts)
    if (profile && !resource.meta?.profile?.includes(profile)) {
      resource = { ...resource, meta: { ...resource.meta, profile: [...(resource.meta?.profile ?? []), profile] } } as Resource;
    }
    const issues = checkResource(resource);
    const outcome: OperationOutcome = {
      resourceType: 'OperationOutcome',
      issue: issues.length > 0 ? issues : [{ severity: 'information', code: 'informational', details: { text: 'No issues found' } }],
    };
    return { status: 200, body: outcome };
  },
};

let definition: ReturnType<typeof loadDefinition> | undefined;
