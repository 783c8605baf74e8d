/**
 * Dictionary QC through FHIR (字典数据质控; see server/dictionary/):
 * - `ConceptMap/[id]/$entries`: the entries of an institution's map with their review status;
 * - `ConceptMap/[id]/$entry-status`: change the status of entries (pending / approved / rejected / retired);
 * - `ConceptMap/[id]/$entry-history`: every change of one entry (who, when, from what to what);
 * - `Organization/[id]/$dictionary-qc`: the institution's QC report.
 */
import type { OperationDefinition, ParametersParameter } from '@medplum/fhirtypes';
import { badRequest, fail } from '../errors.ts';
import type { FhirResponse } from '../router.ts';
import { CATALOGUE_SYSTEM, DICTIONARY_STATUS_SYSTEM as STATUS_SYSTEM } from '../../terminology/canonical.ts';
import { DictionaryError, entryHistory, listEntries, setStatus, STATUSES, STATUS_ZH, type Change, type Entry, type EntryStatus } from '../../dictionary/store.ts';
import { dictionaryQc, type QcIssue } from '../../dictionary/qc.ts';
import type { Operation } from './registry.ts';
import { loadDefinition } from './registry.ts';
import { requireWrite } from './admin.ts';
import { OpInput, parametersResponse } from './terminology-params.ts';


async function guarded<T>(input: OpInput, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof DictionaryError) throw fail(err.status, err.code, err.message, err.param ? input.expr(err.param) : undefined);
    throw err;
  }
}

function statusParam(input: OpInput, name: string): EntryStatus[] {
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

function changeParameter(c: Change): ParametersParameter {
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

export const entriesOperation: Operation = {
  name: 'entries',
  get definition() {
    return (definitions.entries ??= loadDefinition('OperationDefinition-ConceptMap-entries.json'));
  },
  methods: ['GET', 'POST'],
  async handle(ctx, req, target) {
    const input = new OpInput('entries', req);
    const statuses = statusParam(input, 'status');
    const list = await guarded(input, () => listEntries(ctx.repo.db, target.id as string, { statuses }));
    return parametersResponse([{ name: 'total', valueInteger: list.length }, ...list.map((e) => entryParameter(e))]);
  },
};

export const entryStatusOperation: Operation = {
  name: 'entry-status',
  get definition() {
    return (definitions.status ??= loadDefinition('OperationDefinition-ConceptMap-entry-status.json'));
  },
  methods: ['POST'],
  async handle(ctx, req, target) {
    requireWrite(ctx, 'ConceptMap', 'Reviewing dictionary entries');
    const input = new OpInput('entry-status', req);
    const codes = input.strings('code');
    if (codes.length === 0) throw badRequest('$entry-status needs the local code(s) of the entries: code', input.expr('code'));
    const status = input.text('status');
    if (!status || !STATUSES.includes(status as EntryStatus)) {
      throw badRequest(`$entry-status needs the new status: one of ${STATUSES.join(', ')}`, input.expr('status'));
    }
    const results = await guarded(input, () =>
      setStatus(ctx.repo.db, target.id as string, { codes, system: input.text('system'), status: status as EntryStatus, comment: input.string('comment') }, ctx.principal)
    );
    return parametersResponse(
      results.map((r) => {
        const p = entryParameter(r.entry);
        return { ...p, part: [...(p.part ?? []), { name: 'statusChanged', valueBoolean: r.changed }] };
      })
    );
  },
};

export const entryHistoryOperation: Operation = {
  name: 'entry-history',
  get definition() {
    return (definitions.history ??= loadDefinition('OperationDefinition-ConceptMap-entry-history.json'));
  },
  methods: ['GET', 'POST'],
  async handle(ctx, req, target) {
    const input = new OpInput('entry-history', req);
    const code = input.text('code');
    if (!code) throw badRequest('$entry-history needs the local code of the entry: code', input.expr('code'));
    const { entry, changes } = await guarded(input, () => entryHistory(ctx.repo.db, target.id as string, code, input.text('system')));
    return parametersResponse([entryParameter(entry), ...changes.map(changeParameter)]);
  },
};

export const dictionaryQcOperation: Operation = {
  name: 'dictionary-qc',
  get definition() {
    return (definitions.qc ??= loadDefinition('OperationDefinition-Organization-dictionary-qc.json'));
  },
  methods: ['GET', 'POST'],
  async: true,
  async handle(ctx, req, target): Promise<FhirResponse> {
    const input = new OpInput('dictionary-qc', req);
    const pendingDays = input.integer('pendingDays', { max: 3650 });
    const report = await guarded(input, () => dictionaryQc(ctx.repo.db, target.id as string, { pendingDays }));
    const parameter: ParametersParameter[] = [
      { name: 'organization', valueReference: { reference: `Organization/${report.organization}` } },
      { name: 'generated', valueInstant: report.generated },
      { name: 'pendingDays', valueInteger: report.pendingDays },
      ...report.maps.map((m) => ({ name: 'map', valueReference: { reference: `ConceptMap/${m}` } })),
      ...report.dictionaries.map((d) => ({ name: 'dictionary', valueReference: { reference: `CodeSystem/${d}` } })),
      { name: 'entries', valueInteger: report.entries },
      ...STATUSES.map((s) => ({ name: 'status', part: [{ name: 'code', valueCoding: { system: STATUS_SYSTEM, code: s, display: STATUS_ZH[s] } }, { name: 'count', valueInteger: report.byStatus[s] }] })),
      ...Object.entries(report.summary).map(([kind, count]) => ({ name: 'summary', part: [{ name: 'kind', valueCode: kind }, { name: 'count', valueInteger: count }] })),
      ...report.issues.map(issueParameter),
    ];
    return parametersResponse(parameter);
  },
};

function issueParameter(i: QcIssue): ParametersParameter {
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

const definitions: Partial<Record<'entries' | 'status' | 'history' | 'qc', OperationDefinition>> = {};
