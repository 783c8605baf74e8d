/**
 * Platform anchors as FHIR Provenance (docs/chain-provenance.md): when the outbox has anchored a batch, each
 * report version and recognition record (DetectedIssue version) in it gets a Provenance — target = that
 * version, agent = the platform, and the chain-anchor extension of the chain-provenance profile (algorithm,
 * fingerprint or record digest, ledger, transaction, height, and the Merkle inclusion proof when the batch
 * held more than one record) — so that integrators read the anchor through FHIR
 * (`GET /fhir/Provenance?target=DiagnosticReport/<id>`).
 *
 * They are written in the anchoring transaction, past the write observer: intake never sees them, so they do
 * not count as an institution's anchor, re-enter the outbox or start a verification. Their ids are
 * `platform-anchor-<outbox record>`; clients may not write such ids nor Provenances whose agent is the
 * platform (intake refuses them with 403). Nothing personal: references, digests and chain coordinates only.
 */
import type { Provenance, Resource } from '@medplum/fhirtypes';
import type { Database, Sql } from '../db/database.ts';
import { fail } from '../fhir/errors.ts';
import { Repository } from '../fhir/repository.ts';
import { chainAnchorExtension, parseDigest, type HashAlg, type MerkleProof } from '../fingerprint/index.ts';
import type { AnchorReceipt } from '../ledger/port.ts';
import { PROFILE } from '../profiles/canonical.ts';
import { CANONICAL_BASE } from '../terminology/canonical.ts';
import { revisionsOf } from './revisions.ts';

export const PLATFORM_PROVENANCE_PREFIX = 'platform-anchor-';
/** Who the platform is, as a Provenance agent (a logical reference: the platform is no Organization resource). */
export const PLATFORM_AGENT_SYSTEM = `${CANONICAL_BASE}/platform`;
export const PLATFORM_AGENT = { identifier: { system: PLATFORM_AGENT_SYSTEM, value: 'huren' }, display: '互认平台 (Huren platform)' };

export interface AnchoredRecord {
  seq: number | string;
  kind: string;
  /** `DiagnosticReport/<id>/_history/<v>` or `DetectedIssue/<id>/_history/<v>`. */
  key: string;
  digest: string;
  proof: MerkleProof;
}

/** The Provenance of one anchored record. */
export function platformProvenance(record: AnchoredRecord, receipt: AnchorReceipt, recorded: string, revision?: { base_version: number; reason: string }): Provenance {
  const digest = parseDigest(record.digest);
  const proof = record.proof && record.proof.path.length > 0 ? { proof: record.proof } : {};
  return {
    resourceType: 'Provenance',
    id: `${PLATFORM_PROVENANCE_PREFIX}${record.seq}`,
    ...(record.key.startsWith('DiagnosticReport/') ? { meta: { profile: [PROFILE.chainProvenance] } } : {}),
    extension: [
      chainAnchorExtension({
        alg: digest.alg as HashAlg,
        fingerprint: `${digest.alg}:${digest.hex}`,
        ledger: receipt.ledger,
        transaction: receipt.txId,
        height: receipt.height,
        ...proof,
      }) as NonNullable<Provenance['extension']>[number],
    ],
    target: [{ reference: record.key }],
    recorded,
    // a version the platform wrote itself (a code upgrade): why, and the version it was derived from
    ...(revision
      ? {
          reason: [{ text: revision.reason }],
          entity: [{ role: 'revision' as const, what: { reference: record.key.replace(/\/_history\/\d+$/, `/_history/${revision.base_version}`) } }],
        }
      : {}),
    agent: [
      {
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type', code: 'custodian', display: 'Custodian' }] },
        who: PLATFORM_AGENT,
      },
    ],
  };
}

/** Writes the Provenances of an anchored batch in the caller's transaction, past the write observer (idempotent). */
export async function writePlatformProvenances(db: Database, sql: Sql, records: AnchoredRecord[], receipt: AnchorReceipt): Promise<number> {
  const anchored = records.filter((r) => /^[A-Z][A-Za-z]{1,63}\/[^/]+\/_history\/\d+$/.test(r.key));
  if (anchored.length === 0) return 0;
  const recorded = new Date().toISOString();
  const repo = new Repository(db, sql, true); // no TxWrites: the observer (intake) does not see these writes
  const revisions = await revisionsOf(sql, anchored.map((r) => r.key));
  const all = anchored.map((r) => platformProvenance(r, receipt, recorded, revisions.get(r.key)));
  const existing = new Set((await repo.readMany('Provenance', all.map((p) => p.id as string))).map((p) => p.id));
  const fresh = all.filter((p) => !existing.has(p.id));
  if (fresh.length > 0) await repo.createMany(fresh);
  return fresh.length;
}

/** Intake's guard: a client write of a platform Provenance (its id or its agent) is refused. */
export function refusePlatformProvenanceWrite(resource: Resource): void {
  if (resource.resourceType !== 'Provenance') return;
  if (resource.id?.startsWith(PLATFORM_PROVENANCE_PREFIX)) {
    throw fail(403, 'forbidden', `Provenance/${resource.id.slice(0, 64)} records a platform anchor: only the platform writes it`, 'Provenance.id');
  }
  const agents = (resource as Provenance).agent ?? [];
  const i = agents.findIndex((a) => a?.who?.identifier?.system === PLATFORM_AGENT_SYSTEM);
  if (i >= 0) throw fail(403, 'forbidden', 'Only the platform records anchors in its own name', `Provenance.agent[${i}].who.identifier`);
}
