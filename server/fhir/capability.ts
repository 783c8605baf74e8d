/**
 * The CapabilityStatement, generated from what the server really does: every resource type it stores, the
 * search parameters it indexes, the interactions the router implements and the registered operations.
 */
import type { CapabilityStatement, CapabilityStatementRestResource } from '@medplum/fhirtypes';
import { searchParams, supportedResourceTypes } from './definitions.ts';
import type { FhirEngine } from './engine.ts';
import { profilesByType } from './profiles/load.ts';
import { version } from '../version.ts';

const caches = new WeakMap<FhirEngine, Map<string, CapabilityStatement>>();

/** The statement of an engine (its operations and identity) at `baseUrl` (built once per engine, URL and CORS setting). */
export function capabilityStatement(baseUrl: string, engine: FhirEngine, options: { cors?: boolean } = {}): CapabilityStatement {
  let cache = caches.get(engine);
  if (!cache) caches.set(engine, (cache = new Map()));
  const key = `${options.cors ? 'cors' : 'no-cors'} ${baseUrl}`;
  let cs = cache.get(key);
  if (cs) return cs;
  const operations = engine.operations.all;
  const profiles = profilesByType();
  const resources: CapabilityStatementRestResource[] = supportedResourceTypes().map((type) => {
    const params = [...searchParams(type).values()];
    const refs = params.filter((p) => p.type === 'reference');
    return {
      type: type as CapabilityStatementRestResource['type'],
      // the project's profiles (profiles/), validated when a resource claims them in meta.profile
      ...(profiles.has(type) ? { supportedProfile: profiles.get(type) } : {}),
      interaction: ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type'].map((code) => ({
        code: code as 'read',
      })),
      versioning: 'versioned-update',
      readHistory: true,
      updateCreate: true,
      conditionalCreate: true,
      conditionalRead: 'not-supported',
      conditionalUpdate: true,
      conditionalDelete: 'single',
      referencePolicy: ['literal', 'logical', 'local'],
      searchInclude: refs.map((p) => `${type}:${p.code}`),
      searchRevInclude: [],
      searchParam: [
        { name: '_id', type: 'token', definition: 'http://hl7.org/fhir/SearchParameter/Resource-id' },
        { name: '_lastUpdated', type: 'date', definition: 'http://hl7.org/fhir/SearchParameter/Resource-lastUpdated' },
        ...params.map((p) => ({ name: p.code, type: p.type, definition: p.definition.url, documentation: p.definition.description })),
      ],
      operation: operations
        .filter((o) => o.definition.type || o.definition.instance)
        .filter((o) => !o.definition.resource?.length || o.definition.resource.includes(type as never) || o.definition.resource.includes('Resource' as never))
        .map((o) => ({ name: o.name, definition: o.definition.url as string })),
    };
  });
  // _revinclude: every reference parameter that can point at the type
  const byTarget = new Map<string, string[]>();
  for (const type of supportedResourceTypes()) {
    for (const p of searchParams(type).values()) {
      if (p.type !== 'reference') continue;
      for (const t of p.targets) byTarget.set(t, [...(byTarget.get(t) ?? []), `${type}:${p.code}`]);
    }
  }
  for (const r of resources) r.searchRevInclude = byTarget.get(r.type) ?? [];

  cs = {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    publisher: engine.identity.name,
    kind: 'instance',
    software: { name: engine.identity.name, version },
    implementation: { description: engine.identity.description, url: baseUrl },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'application/json'],
    patchFormat: ['application/json-patch+json'],
    rest: [
      {
        mode: 'server',
        security: {
          cors: options.cors === true,
          extension: [
            {
              url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
              extension: [
                { url: 'token', valueUri: `${baseUrl.replace(/\/fhir$/, '')}/auth/token` },
                { url: 'authorize', valueUri: `${baseUrl.replace(/\/fhir$/, '')}/auth/authorize` },
              ],
            },
          ],
          service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
          description:
            'Every request except this statement and the health endpoints needs a bearer token (Authorization: Bearer …): ' +
            'an access token from SMART Backend Services (client_credentials with a signed JWT assertion, see /.well-known/smart-configuration), ' +
            'within its system scopes; an access token of a SMART app the platform launched from a HIS (EHR launch: authorization code with PKCE S256, ' +
            'patient scopes, the patient in the launch context), which reads only that patient\'s data; or the platform token.',
        },
        resource: resources,
        interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'history-system' }],
        operation: operations.filter((o) => o.definition.system).map((o) => ({ name: o.name, definition: o.definition.url as string })),
      },
    ],
  };
  cache.set(key, cs);
  return cs;
}
