/**
 * The partner platforms for `/readyz` (docs/operations/monitoring-alerts.md): each registered partner's
 * CapabilityStatement (public) asked with a short timeout. A partner down is `degraded`, never `down` — the
 * checks answer without it (a partial answer with a warning). Kept for 15 s so that probes every few seconds do
 * not become calls to the other city.
 */
import type { Readiness } from '../module.ts';
import type { PartnerRegistry } from './registry.ts';

const TIMEOUT_MS = 1500;
const KEEP_MS = 15_000;

export function partnerReadiness(registry: () => PartnerRegistry): () => Promise<Readiness> {
  let last: { at: number; value: Readiness } | undefined;
  return async () => {
    if (last && Date.now() - last.at < KEEP_MS) return last.value;
    const partners = await registry().list();
    const results = await Promise.all(
      partners.map(async (p) => {
        const begun = Date.now();
        const ok = await fetch(`${p.fhirBase.replace(/\/$/, '')}/metadata`, { signal: AbortSignal.timeout(TIMEOUT_MS), headers: { accept: 'application/fhir+json' } }).then(
          async (r) => (await r.arrayBuffer(), r.status === 200),
          () => false
        );
        return [p.code, ok ? { up: true, ms: Date.now() - begun } : { up: false }] as const;
      })
    );
    const value: Readiness = { status: results.every(([, r]) => r.up) ? 'up' : 'degraded', detail: { partners: Object.fromEntries(results) } };
    last = { at: Date.now(), value };
    return value;
  };
}
