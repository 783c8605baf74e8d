/**
 * Shared plumbing of the dictionary QC operations: dictionary errors as OperationOutcomes, status parameters,
 * entries and changes as Parameters parts.
 */
import type { OperationDefinition, ParametersParameter } from '@medplum/fhirtypes';
import { badRequest, fail } from '../../fhir/errors.ts';
import { CATALOGUE_SYSTEM, DICTIONARY_STATUS_SYSTEM as STATUS_SYSTEM } from '../../terminology/canonical.ts';
import { DictionaryError, STATUSES, STATUS_ZH, type Change, type Entry, type EntryStatus } from '../store.ts';
import { type QcIssue } from '../qc.ts';
import { OpInput } from '../../fhir/operations/input.ts';


export async function guarded<T>(input: OpInput, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof DictionaryError) throw fail(err.status, err.code, err.message, err.param ? input.expr(err.param) : undefined);
    throw err;
  }
}

export function statusParam(input: OpInput, name: string): EntryStatus[] {
  const values = input.strings(name);
  for (const v of values) if (!STATUSES.includes(v as EntryStatus)) throw badRequest(`$${input.op}: ${name} must be one of ${STATUSES.join(', ')}, not '${v.slice(0, 40)}'`, input.expr(name));
  return values as EntryStatus[];
}

export function entryParameter(e: Entry, name = 'entry'): ParametersParameter {
  return {
    name,
    part: [
      { name: 'system', valueUri: e.system },
      { name: 'code', valueCode: e.code },
      ...(e.display ? [{ name: 'display', valueString: e.display }] : []),
      ...(e.target?.split(' ') ?? []).map((code) => ({ name: 'target', valueCoding: { system: CATALOGUE_SYSTEM, code } })),
      { name: 'status', valueCoding: { system: STATUS_SYSTEM, code: e.status, display: STATUS_ZH[e.status] } },
      { name: 'inMap', valueBoolean: e.inMap },
      { name: 'changed', valueDateTime: e.changedAt },
      { name: 'changedBy', valueString: e.changedBy },
    ],
  };
}

export function changeParameter(c: Change): ParametersParameter {
  return {
    name: 'change',
    part: [
      { name: 'at', valueDateTime: c.at },
      { name: 'by', valueString: c.by },
      { name: 'action', valueCode: c.action },
      ...(c.fromStatus ? [{ name: 'fromStatus', valueCode: c.fromStatus }] : []),
      ...(c.toStatus ? [{ name: 'toStatus', valueCode: c.toStatus }] : []),
      ...(c.fromTarget ? [{ name: 'fromTarget', valueString: c.fromTarget }] : []),
      ...(c.toTarget ? [{ name: 'toTarget', valueString: c.toTarget }] : []),
      ...(c.mapVersion !== undefined ? [{ name: 'mapVersion', valueInteger: c.mapVersion }] : []),
      ...(c.comment ? [{ name: 'comment', valueString: c.comment }] : []),
    ],
  };
}





export function issueParameter(i: QcIssue): ParametersParameter {
  return {
    name: 'issue',
    part: [
      { name: 'kind', valueCode: i.kind },
      ...(i.map ? [{ name: 'map', valueReference: { reference: `ConceptMap/${i.map}` } }] : []),
      { name: 'code', valueCoding: { system: i.system, code: i.code, ...(i.display ? { display: i.display } : {}) } },
      ...(i.target ? [{ name: 'target', valueCoding: { system: CATALOGUE_SYSTEM, code: i.target.code, ...(i.target.display ? { display: i.target.display } : {}) } }] : []),
      ...(i.status ? [{ name: 'status', valueCode: i.status }] : []),
      ...(i.since ? [{ name: 'since', valueDateTime: i.since }] : []),
      ...(i.count !== undefined ? [{ name: 'count', valueInteger: i.count }] : []),
      ...(i.example ? [{ name: 'example', valueReference: { reference: i.example } }] : []),
    ],
  };
}

export const definitions: Partial<Record<'entries' | 'status' | 'history' | 'qc', OperationDefinition>> = {};
