/**
 * The sending side of a shared result: from a report version this platform holds — its original, its decisive
 * anchor, the performing hospital's signature and registered key — to the shared Bundle (shared-bundle.ts),
 * with this platform's credential over it. Only versions whose hash status is consistent are shared.
 */
import type { ProvenanceService } from '../provenance/index.ts';
import type { ExchangeConfig } from './config.ts';
import { platformId, vcKeyId, type ExchangeKeyFile } from './keys.ts';
import { buildSharedBundle, type ShareInput } from './shared-bundle.ts';

export class ShareError extends Error {}

export async function shareInput(service: ProvenanceService, platform: string, reportId: string): Promise<ShareInput> {
  const v = await service.verify(reportId);
  if (v.status !== 'consistent') throw new ShareError(`DiagnosticReport/${reportId} is ${v.status}: only consistent reports are shared`);
  const decisive = v.decisive?.anchor;
  if (!decisive || !v.fingerprint || !v.alg) throw new ShareError(`DiagnosticReport/${reportId} has no anchor`);
  const original = await service.original(reportId, v.version);
  const sig = v.signature.status === 'valid' ? v.signature : undefined;
  const chain = await service.chainIdentity().catch(() => ({ ledger: decisive.anchor.ledger }) as { ledger: string; contract?: string });
  const publicKey = sig?.signedBy && sig.kid ? service.institutionKey(sig.signedBy, sig.kid) : undefined;
  return {
    platform,
    reportId,
    version: v.version,
    raw: original.raw,
    alg: v.alg as ShareInput['alg'],
    fingerprint: v.fingerprint,
    anchor: decisive.anchor,
    root: decisive.root,
    ...(chain.contract ? { contract: chain.contract } : {}),
    ...(sig?.signature ? { signature: sig.signature } : {}),
    ...(sig?.signedBy || original.row.performer ? { performer: sig?.signedBy ?? (original.row.performer as string) } : {}),
    ...(sig?.signedBy && sig.kid && publicKey ? { performerKey: { kid: sig.kid, publicKey } } : {}),
  };
}

export function issuerKey(config: ExchangeConfig, keys: ExchangeKeyFile) {
  return { controller: platformId(config.platform), id: vcKeyId(config.platform), ...keys.vc };
}

export async function shareReport(service: ProvenanceService, config: ExchangeConfig, keys: ExchangeKeyFile, reportId: string): Promise<Record<string, unknown>> {
  return buildSharedBundle(await shareInput(service, config.platform, reportId), issuerKey(config, keys));
}
