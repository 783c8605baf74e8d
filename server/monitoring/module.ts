/**
 * The data-quality monitoring module (docs/monitoring.md): records the facts (uploads, orders, recognition
 * calls and records) as the engine's write observer and an HTTP middleware, evaluates the monitors every minute
 * (interruption, recognition disabled, timeliness → Flags) and the indicators daily (→ MeasureReports), offers
 * Measure/$evaluate-monitoring and the app's JSON API with its live event stream.
 */
import type { ModuleFactory } from '../module.ts';
import { monitoringApi } from './api.ts';
import { loadMonitoringConfig } from './config.ts';
import { evaluateMonitoringOperation } from './operations/evaluate-monitoring.ts';
import { monitoringMetrics } from './metrics.ts';
import { MonitoringService } from './service.ts';

export const monitoringModule: ModuleFactory = ({ db, logger, limits }) => {
  const service = new MonitoringService(db, loadMonitoringConfig(), logger);
  const api = monitoringApi(db, service, limits);
  return {
    name: 'monitoring',
    operations: [evaluateMonitoringOperation(service)],
    writeObservers: [service.facts.observer],
    routes: [service.facts.callRecorder(), api.routes(), api.allowedMethods()],
    jobs: service.jobs(),
    metrics: (registry) => monitoringMetrics(db, registry),
  };
};
