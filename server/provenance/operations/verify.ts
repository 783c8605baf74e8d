/**
 * `DiagnosticReport/[id]/$verify` (DESIGN.md §6, docs/chain-provenance.md): hash consistency now. The
 * fingerprint is recomputed from the original Bundle, the stored report and its results are compared with
 * what was submitted, every anchor's proof is checked and its root looked up on every configured chain
 * node. The answer (and the stored status) is consistent, inconsistent, pending (the chain could not say) or
 * unanchored, with the reasons. The institution's signature verified on intake is not verified again (SM2,
 * ~30 ms of CPU) unless `reverify=true` or what that check relied on changed. Honours `Prefer: respond-async`.
 */
import type { OperationDefinition, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { badRequest, fail } from '../../fhir/errors.ts';
import { ProvenanceService } from '../service.ts';
import type { VerifyResult } from '../verify.ts';
import { num } from '../records.ts';
import type { NodeHolding } from '../../ledger/port.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { OpInput } from '../../fhir/operations/input.ts';
import { authorizeReport } from '../../auth/care.ts';

let definition: OperationDefinition | undefined;

export const verifyOperation: Operation = {
  name: 'verify',
  get definition() {
    return (definition ??= loadDefinition('OperationDefinition-DiagnosticReport-verify.json'));
  },
  methods: ['GET', 'POST'],
  async: true,
  async handle(ctx, req, target) {
    await authorizeReport(ctx, target.id as string, 'verify');
    const input = new OpInput('verify', req);
    refuseUnknown(input, ['version', 'reverify']);
    const version = input.integer('version', { min: 1, max: 999_999_999 });
    const reverify = input.boolean('reverify') ?? false;
    const service = ProvenanceService.of(ctx.repo.db);
    if (!service) throw fail(503, 'transient', 'Chain provenance is not running on this server');
    const r = await service.verify(target.id as string, version, input.expr('version'), { reverify });
    const d = r.decisive;
    const held = d?.verdict.nodes ?? d?.anchor.nodes ?? [];
    const parameter: ParametersParameter[] = [
      { name: 'status', valueCode: r.status },
      { name: 'report', valueReference: { reference: `DiagnosticReport/${r.reportId}/_history/${r.version}` } },
      { name: 'version', valueInteger: r.version },
      ...(r.fingerprint ? [{ name: 'fingerprint', valueString: r.fingerprint }] : []),
      ...(r.alg ? [{ name: 'alg', valueCode: r.alg }] : []),
      ...(r.recomputed ? [{ name: 'recomputedFingerprint', valueString: r.recomputed }] : []),
      ...(d ? anchorParts(d.anchor.source, d.anchor.anchor.ledger, d.verdict.txId ?? d.anchor.tx_id ?? undefined, d.verdict.height ?? num(d.anchor.height), d.verdict.blockHash ?? d.anchor.block_hash ?? undefined, d.anchor.root) : []),
      { name: 'nodesChecked', valueInteger: held.length },
      ...held.map((n) => ({ name: 'node', part: nodeParts(n) })),
      { name: 'membersChecked', valueInteger: r.members.length },
      { name: 'signature', valueCode: r.signature.status },
      { name: 'signedByPerformer', valueBoolean: r.signature.status === 'valid' },
      ...(r.signature.signedBy ? [{ name: 'signedBy', valueString: r.signature.signedBy }] : []),
      ...(r.signature.kid ? [{ name: 'signatureKey', valueString: r.signature.kid }] : []),
      ...(r.signature.checkedAt ? [{ name: 'signatureCheckedAt', valueInstant: r.signature.checkedAt }] : []),
      ...(r.signature.status === 'valid' ? [{ name: 'signatureCheckedOnIntake', valueBoolean: r.signature.fromIntake === true }] : []),
      ...(r.signature.status === 'invalid' || r.signature.status === 'no-key' ? [{ name: 'signatureReason', valueString: r.signature.reason! }] : []),
      ...r.reasons.map((reason) => ({ name: 'reason', valueString: reason })),
      ...r.revisions.map((text) => ({ name: 'revision', valueString: text })),
      ...(r.derivedFrom ? [{ name: 'derivedFrom', part: derivedParts(r.derivedFrom) }] : []),
    ];
    return { status: 200, body: { resourceType: 'Parameters', parameter } as Parameters, judged: true };
  },
};

/** The version a platform revision was derived from, as checked now (recursively, down to the submission). */
function derivedParts(d: NonNullable<VerifyResult['derivedFrom']>): ParametersParameter[] {
  const r = d.result;
  const a = r.decisive;
  return [
    { name: 'version', valueInteger: r.version },
    { name: 'report', valueReference: { reference: `DiagnosticReport/${r.reportId}/_history/${r.version}` } },
    { name: 'reason', valueString: d.reason },
    { name: 'status', valueCode: r.status },
    ...(r.fingerprint ? [{ name: 'fingerprint', valueString: r.fingerprint }] : []),
    ...(r.recomputed ? [{ name: 'recomputedFingerprint', valueString: r.recomputed }] : []),
    ...(a ? anchorParts(a.anchor.source, a.anchor.anchor.ledger, a.verdict.txId ?? a.anchor.tx_id ?? undefined, a.verdict.height ?? num(a.anchor.height), a.verdict.blockHash ?? a.anchor.block_hash ?? undefined, a.anchor.root) : []),
    ...(r.derivedFrom ? [{ name: 'derivedFrom', part: derivedParts(r.derivedFrom) }] : []),
  ];
}

function anchorParts(source: string, ledger: string, txId: string | undefined, height: number | undefined, blockHash: string | undefined, root: string): ParametersParameter[] {
  return [
    { name: 'anchoredBy', valueCode: source },
    { name: 'ledger', valueString: ledger },
    ...(txId ? [{ name: 'txId', valueString: txId }] : []),
    ...(height !== undefined ? [{ name: 'height', valueInteger: height }] : []),
    ...(blockHash ? [{ name: 'blockHash', valueString: blockHash }] : []),
    { name: 'root', valueString: root },
  ];
}

/** What one chain node holds. */
export function nodeParts(n: NodeHolding): ParametersParameter[] {
  return [
    { name: 'name', valueString: n.node },
    { name: 'status', valueCode: n.status },
    ...(n.txId ? [{ name: 'txId', valueString: n.txId }] : []),
    ...(n.height !== undefined ? [{ name: 'height', valueInteger: n.height }] : []),
    ...(n.blockHash ? [{ name: 'blockHash', valueString: n.blockHash }] : []),
  ];
}

/** Refuses parameters the operation does not define. */
export function refuseUnknown(input: OpInput, allowed: string[]): void {
  for (const name of input.names()) {
    if (['_format', '_pretty'].includes(name)) continue;
    if (!allowed.includes(name)) {
      throw badRequest(`$${input.op}: unknown parameter '${String(name).slice(0, 40)}'${allowed.length ? ` (known: ${allowed.join(', ')})` : ' (it takes none)'}`, input.expr(String(name).slice(0, 40)));
    }
  }
}
