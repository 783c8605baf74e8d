/**
 * `AuditEvent/$verify-chain` (docs/security.md 安全审计): the audit chain check now — which sequence number
 * breaks, and how. Reading: the audit administrator's scope (system/AuditEvent.rs) or the platform token.
 */
import type { OperationDefinition, ParametersParameter } from '@medplum/fhirtypes';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { StrictInput } from '../../fhir/operations/input.ts';
import { verifyChain } from '../chain.ts';
import type { AuditKeys } from '../keys.ts';

let definition: OperationDefinition | undefined;

export function verifyChainOperation(keys: AuditKeys): Operation {
  return {
    name: 'verify-chain',
    get definition() {
      return (definition ??= loadDefinition('OperationDefinition-AuditEvent-verify-chain.json'));
    },
    methods: ['GET', 'POST'],
    async handle(ctx, req) {
      new StrictInput('verify-chain', req, ['_format', '_pretty']);
      const r = await verifyChain(ctx.repo.connection, keys);
      const parameter: ParametersParameter[] = [
        { name: 'ok', valueBoolean: r.ok },
        { name: 'entries', valueInteger: r.entries },
        { name: 'archived', valueInteger: r.archived },
        { name: 'headSeq', valueInteger: r.head.seq },
        ...r.breaks.map((b) => ({
          name: 'break',
          part: [
            ...(b.seq !== undefined ? [{ name: 'seq', valueInteger: b.seq }] : []),
            { name: 'problem', valueCode: b.problem },
            ...(b.eventId ? [{ name: 'event', valueString: `AuditEvent/${b.eventId}` }] : []),
          ],
        })),
      ];
      return { status: 200, body: { resourceType: 'Parameters', parameter } };
    },
  };
}
