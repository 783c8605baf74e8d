/**
 * `GET DiagnosticReport/[id]/$original[?version=<n>]` (docs/chain-provenance.md): the transaction Bundle of a
 * report version exactly as the institution submitted it (原件) — the response body is the stored request
 * text, byte for byte, so that anyone can recompute the fingerprint with their own JCS and SM3/SHA-256 code
 * and compare it with the anchor. What anchors it travels in response headers (the body must stay exact):
 *
 *   Huren-Fingerprint: sm3:<hex>                      the fingerprint recorded at intake
 *   Huren-Anchor: by=institution; ledger=…; tx=0x…; height=…; root=sm3:<hex>; status=consistent
 *   Huren-Merkle-Proof: leaf=2; size=4; path=<hex>,<hex>   (when the anchored root is a batch's)
 *   Huren-Signature: …                                the institution's signature, when it signed
 *   Huren-Original-Exact: true                        false: the server kept a serialisation of the parsed
 *                                                     Bundle (no request text), not the bytes received
 *   Repr-Digest: sha-256=:<base64>:                   RFC 9530, of the body bytes
 *   Content-Location: <base>/DiagnosticReport/<id>/_history/<v>
 *
 * Authorised like a read of the report (scope DiagnosticReport.r; the report must exist and not be deleted).
 */
import { createHash } from 'node:crypto';
import type { OperationDefinition } from '@medplum/fhirtypes';
import { badRequest, fail } from '../../fhir/errors.ts';
import { loadDefinition, type Operation } from '../../fhir/operations/registry.ts';
import { OpInput } from '../../fhir/operations/input.ts';
import { refuseUnknown } from './verify.ts';
import { num } from '../records.ts';
import { ProvenanceService } from '../service.ts';
import { authorizeReport } from '../../auth/care.ts';

let definition: OperationDefinition | undefined;

export const originalOperation: Operation = {
  name: 'original',
  get definition() {
    return (definition ??= loadDefinition('OperationDefinition-DiagnosticReport-original.json'));
  },
  methods: ['GET'],
  async handle(ctx, req, target) {
    await authorizeReport(ctx, target.id as string, 'original');
    const input = new OpInput('original', req);
    refuseUnknown(input, ['version']);
    if (req.query.some(([k, v]) => k === '_pretty' && v === 'true')) throw badRequest('$original serves the Bundle exactly as it was submitted: _pretty is not available', '_pretty');
    const version = input.integer('version', { min: 1, max: 999_999_999 });
    const service = ProvenanceService.of(ctx.repo.db);
    if (!service) throw fail(503, 'transient', 'Chain provenance is not running on this server');
    const id = target.id as string;
    // authorised like a read: the report must be there (404 / 410 otherwise), and the version too
    if (version === undefined) await ctx.repo.read('DiagnosticReport', id);
    else await ctx.repo.vread('DiagnosticReport', id, String(version));
    const o = await service.original(id, version);
    const bytes = Buffer.from(o.raw, 'utf8');
    const headers: Record<string, string> = {
      'Content-Location': `${ctx.baseUrl}/DiagnosticReport/${id}/_history/${o.version}`,
      'Huren-Fingerprint': o.row.fingerprint ?? '',
      'Huren-Original-Exact': String(o.exact),
      'Repr-Digest': `sha-256=:${createHash('sha256').update(bytes).digest('base64')}:`,
    };
    const a = o.anchor;
    if (a) {
      headers['Huren-Anchor'] = [
        `by=${a.source}`,
        `ledger=${a.anchor.ledger}`,
        `tx=${a.tx_id ?? a.anchor.transaction}`,
        `height=${num(a.height) ?? a.anchor.height}`,
        `root=${a.root}`,
        `status=${a.status}`,
      ].join('; ');
      const p = a.anchor.proof;
      if (p && p.treeSize > 1) headers['Huren-Merkle-Proof'] = `leaf=${p.leafIndex}; size=${p.treeSize}; path=${p.path.join(',')}`;
    }
    if (o.signature) {
      const who = o.signature.who?.identifier;
      headers['Huren-Signature'] = [`alg=sm2-sm3`, ...(who?.system && who.value && /^[\x21-\x7e]{1,200}$/.test(`${who.system}|${who.value}`) ? [`who=${who.system}|${who.value}`] : []), `data=${o.signature.data}`].join('; ');
    }
    // the parsed Bundle stands for the answer inside the server; what is sent is `bytes`
    return { status: 200, body: JSON.parse(o.raw.replace(/^\uFEFF/, '')), bytes, headers, judged: true };
  },
};
