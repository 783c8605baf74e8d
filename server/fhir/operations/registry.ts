/**
 * FHIR operations: what one is (`Operation`), and the registry the router and the CapabilityStatement read.
 * Each operation lives in its own file beside its domain, with its OperationDefinition (published from
 * `profiles/`); the app hands the engine the list (engine.ts `installEngine`).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { OperationDefinition } from '@medplum/fhirtypes';
import type { FhirContext, FhirRequest, FhirResponse } from '../router.ts';

export interface Operation {
  name: string;
  definition: OperationDefinition;
  methods: string[];
  /** Whether `Prefer: respond-async` runs it as an asynchronous job. */
  async?: boolean;
  handle(ctx: FhirContext, req: FhirRequest, target: { type?: string; id?: string }): Promise<FhirResponse>;
}

/** The directory of the server's published conformance resources (OperationDefinitions among them). */
const PROFILES_DIR = fileURLToPath(new URL('../../../profiles/', import.meta.url));

/** An OperationDefinition of `profiles/`, by file name. */
export function loadDefinition(file: string): OperationDefinition {
  return JSON.parse(readFileSync(`${PROFILES_DIR}${file}`, 'utf8')) as OperationDefinition;
}

export class OperationRegistry {
  private readonly byName = new Map<string, Operation[]>();

  constructor(readonly all: readonly Operation[]) {
    for (const op of all) this.byName.set(op.name, [...(this.byName.get(op.name) ?? []), op]);
  }

  /** The operation `$name` at the given level, if the server offers it there. */
  find(name: string, type: string | undefined, instance: boolean): Operation | undefined {
    return this.byName.get(name)?.find((op) => offeredAt(op.definition, type, instance));
  }
}

function offeredAt(d: OperationDefinition, type: string | undefined, instance: boolean): boolean {
  if (!type && !d.system) return false;
  if (type && !instance && !d.type) return false;
  if (instance && !d.instance) return false;
  if (type && d.resource?.length && !d.resource.includes(type as never) && !d.resource.includes('Resource' as never)) return false;
  return true;
}
