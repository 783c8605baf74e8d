/**
 * The chain provenance module (docs/chain-provenance.md): intake of every upload (the original, fingerprint and
 * anchor records, as the engine's write observer), the hash-consistent badge on answers, anchoring, verification,
 * sweeps and statistics as scheduled jobs, $verify, $trace, $chain-statistics, $badge-settings and the app's API.
 */
import type { ModuleFactory } from '../module.ts';
import { provenanceApi } from './api.ts';
import { badgeSettingsOperation } from './operations/badge-settings.ts';
import { chainStatisticsOperation } from './operations/chain-statistics.ts';
import { originalOperation } from './operations/original.ts';
import { traceOperation } from './operations/trace.ts';
import { verifyOperation } from './operations/verify.ts';
import { ProvenanceService } from './service.ts';

export const provenanceModule: ModuleFactory = ({ db, config, logger, limits }) => {
  const service = new ProvenanceService(db, config, logger);
  service.install();
  const api = provenanceApi(db, limits);
  return {
    name: 'provenance',
    operations: [verifyOperation, traceOperation, originalOperation, chainStatisticsOperation, badgeSettingsOperation],
    ...service.engineParts(),
    routes: [api.routes(), api.allowedMethods()],
    jobs: service.jobs(),
    readiness: { chain: () => service.readiness() },
    metrics: (registry) => service.registerMetrics(registry),
    init: () => service.checkKeys(),
    start: () => service.start(),
    stop: () => service.stop(),
  };
};
