/**
 * The data-quality monitoring module (docs/monitoring.md): records the facts (uploads, orders, recognition
 * calls and records) as the engine's write observer and an HTTP middleware, evaluates the monitors every minute
 * (interruption, recognition disabled, timeliness → Flags) and the indicators daily (→ MeasureReports), offers
 * Measure/$evaluate-monitoring, the briefings (DocumentReference/$monitoring-briefing, daily job) and the app's
 * JSON API with its live event stream.
 */
import type { ModuleFactory } from '../module.ts';
import { monitoringApi } from './api.ts';
import { loadMonitoringConfig } from './config.ts';
import { evaluateMonitoringOperation } from './operations/evaluate-monitoring.ts';
import { monitoringBriefingOperation } from './operations/monitoring-briefing.ts';
import { monitoringMetrics } from './metrics.ts';
import { MonitoringService } from './service.ts';

export const monitoringModule: ModuleFactory = ({ db, logger, limits }) => {
  const service = new MonitoringService(db, loadMonitoringConfig(), logger);
  const api = monitoringApi(db, service, limits);
  let stopRelay: (() => Promise<void>) | undefined;
  return {
    name: 'monitoring',
    operations: [evaluateMonitoringOperation(service), monitoringBriefingOperation(service)],
    writeObservers: [service.facts.observer],
    routes: [service.facts.callRecorder(), api.routes(), api.allowedMethods()],
    jobs: service.jobs(),
    metrics: (registry) => monitoringMetrics(db, registry),
    // the live stream hears every server process's events (facts.ts relay)
    async init() {
      stopRelay = await service.facts.relay();
    },
    async stop() {
      await service.facts.stop();
      await stopRelay?.();
    },
  };
};
