/**
 * An exact retry of a submission stores nothing new: when a transaction Bundle re-sends a report the platform
 * already holds (its entry matched, no new version), the chain Provenance inside it is matched to the stored
 * one with the same targets and the same anchor (fingerprint, ledger, transaction, height, proof) instead of
 * being created again. A Provenance with another anchor (the report re-anchored) is a new one, as before.
 */
import type { Provenance, Resource } from '@medplum/fhirtypes';
import { isChainProvenance, readChainAnchor, ChainAnchorError } from '../fingerprint/index.ts';
import type { Repository } from '../fhir/repository.ts';

const targetsOf = (p: Provenance): string[] => (p.target ?? []).map((t) => t.reference ?? '').sort();

export async function repeatedChainProvenance(repo: Repository, resource: Resource, retried: ReadonlySet<string>): Promise<string | undefined> {
  if (resource.resourceType !== 'Provenance' || !isChainProvenance(resource)) return undefined;
  const targets = targetsOf(resource);
  const reports = targets.map((t) => t.replace(/\/_history\/[^/]+$/, ''));
  if (reports.length === 0 || !reports.every((r) => retried.has(r))) return undefined;
  let parsed;
  try {
    parsed = readChainAnchor(resource);
  } catch (err) {
    if (err instanceof ChainAnchorError) return undefined; // intake refuses it with its reason
    throw err;
  }
  const anchor = JSON.stringify(parsed);
  const ids = await repo.conditionalMatch('Provenance', `chain-fingerprint=${encodeURIComponent(parsed.fingerprint)}&target=${encodeURIComponent(reports[0]!)}`, 'Provenance');
  for (const id of ids) {
    const stored = (await repo.read('Provenance', id)) as Provenance;
    if (JSON.stringify(targetsOf(stored)) !== JSON.stringify(targets)) continue;
    try {
      if (JSON.stringify(readChainAnchor(stored)) === anchor) return id;
    } catch (err) {
      if (!(err instanceof ChainAnchorError)) throw err;
    }
  }
  return undefined;
}
