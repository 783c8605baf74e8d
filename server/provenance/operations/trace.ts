/**
 * `DiagnosticReport/[id]/$trace` (DESIGN.md §6, docs/chain-provenance.md): the report's provenance — every
 * version with its fingerprint, status and anchors; for each anchor what every configured chain node holds
 * (transaction, block, height) and whether they agree; whether the nodes' chains agree block by block (the
 * first divergence: which node, at which height); and the access history (AuditEvents naming the report).
 * Honours `Prefer: respond-async`.
 */
import type { OperationDefinition, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { fail } from '../../fhir/errors.ts';
import { ProvenanceService } from '../service.ts';
import { iso, num } from '../records.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { OpInput } from '../../fhir/operations/input.ts';
import { nodeParts, refuseUnknown } from './verify.ts';
import { authorizeReport } from '../../auth/care.ts';

let definition: OperationDefinition | undefined;

export const traceOperation: Operation = {
  name: 'trace',
  get definition() {
    return (definition ??= loadDefinition('OperationDefinition-DiagnosticReport-trace.json'));
  },
  methods: ['GET', 'POST'],
  async: true,
  async handle(ctx, req, target) {
    await authorizeReport(ctx, target.id as string, 'trace');
    refuseUnknown(new OpInput('trace', req), []);
    const service = ProvenanceService.of(ctx.repo.db);
    if (!service) throw fail(503, 'transient', 'Chain provenance is not running on this server');
    const t = await service.trace(target.id as string, ctx.repo, ctx.baseUrl);
    const parameter: ParametersParameter[] = [{ name: 'ledger', valueString: t.ledger }];
    for (const v of t.versions) {
      const row = v.row;
      const part: ParametersParameter[] = [
        { name: 'version', valueInteger: v.version },
        { name: 'lastUpdated', valueInstant: v.lastUpdated },
        { name: 'method', valueCode: v.method },
      ];
      if (v.deleted) part.push({ name: 'deleted', valueBoolean: true });
      if (row) {
        part.push({ name: 'status', valueCode: row.status });
        if (row.fingerprint) part.push({ name: 'fingerprint', valueString: row.fingerprint });
        if (row.alg) part.push({ name: 'alg', valueCode: row.alg });
        for (const reason of [...row.integrity_reasons, ...(row.status === 'consistent' ? [] : row.chain_reasons)]) part.push({ name: 'reason', valueString: reason });
      }
      if (v.original) part.push({ name: 'received', valueInstant: v.original.receivedAt });
      for (const a of v.anchors) {
        const r = a.row;
        const anchor: ParametersParameter[] = [
          { name: 'anchoredBy', valueCode: r.source },
          ...(r.provenance_id ? [{ name: 'provenance', valueReference: { reference: `Provenance/${r.provenance_id}/_history/${r.provenance_version}` } }] : []),
          { name: 'status', valueCode: r.withdrawn ? 'withdrawn' : r.status },
          { name: 'ledger', valueString: r.anchor.ledger },
          { name: 'txId', valueString: r.anchor.transaction },
          { name: 'height', valueInteger: num(r.height) ?? r.anchor.height },
          { name: 'root', valueString: r.root },
          ...(iso(r.checked_at) ? [{ name: 'checked', valueInstant: iso(r.checked_at) }] : []),
          ...r.reasons.map((reason) => ({ name: 'reason', valueString: reason })),
        ];
        if (a.lookup) {
          anchor.push({ name: 'nodesAgree', valueBoolean: a.lookup.agree });
          for (const n of a.lookup.nodes) anchor.push({ name: 'node', part: nodeParts(n) });
        } else if (a.error) anchor.push({ name: 'chainError', valueString: a.error });
        part.push({ name: 'anchor', part: anchor });
      }
      parameter.push({ name: 'version', part });
    }
    if (t.compare) {
      const c = t.compare;
      const nodes: ParametersParameter[] = [{ name: 'agree', valueBoolean: c.agree }, ...(c.reference ? [{ name: 'reference', valueString: c.reference }] : [])];
      for (const n of c.nodes) {
        nodes.push({
          name: 'node',
          part: [
            { name: 'name', valueString: n.node },
            { name: 'status', valueCode: n.status },
            ...(n.height !== undefined ? [{ name: 'height', valueInteger: n.height }] : []),
            ...(n.firstDivergence !== undefined ? [{ name: 'firstDivergence', valueInteger: n.firstDivergence }] : []),
            ...(n.blockHash ? [{ name: 'blockHash', valueString: n.blockHash }] : []),
            ...(n.referenceBlockHash ? [{ name: 'referenceBlockHash', valueString: n.referenceBlockHash }] : []),
          ],
        });
      }
      if (c.firstDivergence) {
        nodes.push({
          name: 'firstDivergence',
          part: [
            { name: 'node', valueString: c.firstDivergence.node },
            { name: 'height', valueInteger: c.firstDivergence.height },
            { name: 'blockHash', valueString: c.firstDivergence.blockHash },
            { name: 'referenceBlockHash', valueString: c.firstDivergence.referenceBlockHash },
          ],
        });
      }
      parameter.push({ name: 'nodes', part: nodes });
    } else if (t.compareError) parameter.push({ name: 'nodes', part: [{ name: 'error', valueString: t.compareError }] });
    for (const e of t.access) {
      parameter.push({
        name: 'access',
        part: [
          { name: 'event', valueReference: { reference: `AuditEvent/${e.id}` } },
          ...(e.recorded ? [{ name: 'recorded', valueInstant: e.recorded }] : []),
          ...(e.action ? [{ name: 'action', valueCode: e.action }] : []),
          ...(e.type ? [{ name: 'type', valueCoding: e.type }] : []),
          ...(e.agent ?? []).filter((a) => a.who).map((a) => ({ name: 'agent', valueReference: a.who! })),
        ],
      });
    }
    return { status: 200, body: { resourceType: 'Parameters', parameter } as Parameters, judged: true };
  },
};
