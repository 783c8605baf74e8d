/**
 * The monitors as Prometheus metrics (the operators' alert rules read them, deploy/prometheus/huren-alerts.yml):
 * the active alerts by monitor, data flow and level, counted at scrape time from `monitoring_alert` — no
 * institution names, which are in the app and the FHIR Flags.
 */
import client from 'prom-client';
import type { Database } from '../db/database.ts';

export function monitoringMetrics(db: Database, registry: client.Registry): void {
  new client.Gauge({
    name: 'huren_monitoring_alerts',
    help: 'Institutions with an active data-quality alert, by monitor, data flow and level',
    labelNames: ['monitor', 'flow', 'level'],
    registers: [registry],
    async collect() {
      const rows = await db
        .query<{ monitor: string; flow: string; level: number; n: number }>(
          'SELECT monitor, flow, level, count(*)::int AS n FROM monitoring_alert WHERE level > 0 GROUP BY monitor, flow, level'
        )
        .catch(() => undefined);
      if (!rows) return;
      this.reset();
      for (const r of rows) this.set({ monitor: r.monitor, flow: r.flow, level: String(r.level) }, r.n);
    },
  });
}
