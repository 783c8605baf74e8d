/**
 * The FHIR operations the server offers. Each lives in its own file with its OperationDefinition in
 * `profiles/`; this registry is what the router and the CapabilityStatement read.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { OperationDefinition } from '@medplum/fhirtypes';
import type { FhirContext, FhirRequest, FhirResponse } from '../router.ts';
import { validateOperation } from './validate.ts';
import { lookupOperation } from './lookup.ts';
import { expandOperation } from './expand.ts';
import { validateCodeOperation } from './validate-code.ts';
import { translateOperation } from './translate.ts';
import { subsumesOperation } from './subsumes.ts';
import { catalogueImportOperation } from './catalogue-import.ts';
import { codeUpgradeOperation } from './code-upgrade.ts';
import { dictionaryQcOperation, entriesOperation, entryHistoryOperation, entryStatusOperation } from './dictionary.ts';
import { decideOperation, duplicateCheckOperation, recognitionCheckOperation } from './recognition.ts';
import { reportsOperation, viewOperation } from './report-view.ts';
import { everythingOperation } from './everything.ts';
import { verifyOperation } from './verify.ts';
import { traceOperation } from './trace.ts';
import { chainStatisticsOperation } from './chain-statistics.ts';
import { badgeSettingsOperation } from './badge-settings.ts';
import { originalOperation } from '../../provenance/operations/original.ts';

export interface Operation {
  name: string;
  definition: OperationDefinition;
  methods: string[];
  /** Whether `Prefer: respond-async` runs it as an asynchronous job. */
  async?: boolean;
  handle(ctx: FhirContext, req: FhirRequest, target: { type?: string; id?: string }): Promise<FhirResponse>;
}

const PROFILES_DIR = fileURLToPath(new URL('../../../profiles/', import.meta.url));

export function loadDefinition(file: string): OperationDefinition {
  return JSON.parse(readFileSync(`${PROFILES_DIR}${file}`, 'utf8')) as OperationDefinition;
}

export const operations: Operation[] = [
  validateOperation,
  lookupOperation,
  expandOperation,
  validateCodeOperation,
  translateOperation,
  subsumesOperation,
  // recognition (issue 4): the HIS-facing checks, the decision, report viewing
  recognitionCheckOperation,
  duplicateCheckOperation,
  decideOperation,
  reportsOperation,
  viewOperation,
  everythingOperation,
  // catalogue administration (issue 3): import, code upgrade, dictionary QC
  catalogueImportOperation,
  codeUpgradeOperation,
  entriesOperation,
  entryStatusOperation,
  entryHistoryOperation,
  dictionaryQcOperation,
  // chain provenance (issue 5): hash consistency now, traceability
  verifyOperation,
  originalOperation,
  traceOperation,
  chainStatisticsOperation,
  badgeSettingsOperation,
];

/** The operation `$name` at the given level, if the server offers it there. */
export function findOperation(name: string, type: string | undefined, instance: boolean): Operation | undefined {
  const op = operations.find((o) => o.name === name);
  if (!op) return undefined;
  const d = op.definition;
  if (!type && !d.system) return undefined;
  if (type && !instance && !d.type) return undefined;
  if (instance && !d.instance) return undefined;
  if (type && d.resource?.length && !d.resource.includes(type as never) && !d.resource.includes('Resource' as never)) return undefined;
  return op;
}
