/**
 * Monitoring settings from the environment (docs/monitoring.md "Settings"). A wrong value stops the start
 * with a message naming the variable.
 */
import {
  checkThresholds,
  DEFAULT_BASELINE,
  DEFAULT_DISABLED_THRESHOLDS,
  DEFAULT_INTERRUPTION_THRESHOLDS,
  DEFAULT_TIMELINESS_RATES,
  type BaselineOptions,
  type Thresholds,
} from './rules.ts';

export interface MonitoringConfig {
  /** The evaluation job's schedule (default every minute). */
  cron: string;
  /** The daily MeasureReports' job (default 00:20 every day: yesterday and today). */
  reportsCron: string;
  /** When the figures of the past days (the big screen's 62 days) are counted and kept ahead of their readers. */
  keepCron: string;
  interruption: Thresholds;
  disabled: Thresholds;
  /** On-time rate (%) below which timeliness levels 1–4 start (descending). */
  timelinessRates: Thresholds;
  /** A report is late when received − issued exceeds this many minutes. */
  lateMinutes: number;
  /** The trailing window the timeliness alert judges (hours). */
  timelinessWindowHours: number;
  /** A reminder is "without decision" when none came within this many hours. */
  undecidedHours: number;
  baseline: BaselineOptions;
  /** The briefings' job (default 00:40 every day: the last complete week and month, city and districts). */
  briefingCron: string;
  /** The Chromium that prints the briefings to PDF ('' or a missing file: HTML only). */
  chromium: string;
}

export class MonitoringConfigError extends Error {}

const list = (v: string | undefined, fallback: Thresholds, name: string, descending = false): Thresholds => {
  if (v === undefined || v === '') return fallback;
  try {
    return checkThresholds(v.split(',').map((s) => Number(s.trim())), name, descending);
  } catch (e) {
    throw new MonitoringConfigError(`${name}: ${(e as Error).message.replace(`${name}: `, '')} (e.g. ${fallback.join(',')})`);
  }
};

const num = (v: string | undefined, fallback: number, name: string, min = 0): number => {
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new MonitoringConfigError(`${name} must be a number ≥ ${min}, not '${v.slice(0, 30)}'`);
  return n;
};

export function loadMonitoringConfig(env: NodeJS.ProcessEnv = process.env): MonitoringConfig {
  return {
    cron: env.HUREN_MONITORING_CRON || '0 * * * * *',
    reportsCron: env.HUREN_MONITORING_REPORTS_CRON || '0 20 0 * * *',
    keepCron: env.HUREN_MONITORING_KEEP_CRON || '0 5 * * * *',
    interruption: list(env.HUREN_MONITORING_INTERRUPTION_MINUTES, DEFAULT_INTERRUPTION_THRESHOLDS, 'HUREN_MONITORING_INTERRUPTION_MINUTES'),
    disabled: list(env.HUREN_MONITORING_DISABLED_MINUTES, DEFAULT_DISABLED_THRESHOLDS, 'HUREN_MONITORING_DISABLED_MINUTES'),
    timelinessRates: list(env.HUREN_MONITORING_TIMELINESS_RATES, DEFAULT_TIMELINESS_RATES, 'HUREN_MONITORING_TIMELINESS_RATES', true),
    lateMinutes: num(env.HUREN_MONITORING_LATE_MINUTES, 30, 'HUREN_MONITORING_LATE_MINUTES'),
    timelinessWindowHours: num(env.HUREN_MONITORING_TIMELINESS_WINDOW_HOURS, 24, 'HUREN_MONITORING_TIMELINESS_WINDOW_HOURS', 1),
    undecidedHours: num(env.HUREN_MONITORING_UNDECIDED_HOURS, 24, 'HUREN_MONITORING_UNDECIDED_HOURS'),
    baseline: {
      weeks: num(env.HUREN_MONITORING_BASELINE_WEEKS, DEFAULT_BASELINE.weeks, 'HUREN_MONITORING_BASELINE_WEEKS', 1),
      minShare: num(env.HUREN_MONITORING_BASELINE_SHARE, DEFAULT_BASELINE.minShare, 'HUREN_MONITORING_BASELINE_SHARE'),
      minHistoryDays: num(env.HUREN_MONITORING_BASELINE_MIN_DAYS, DEFAULT_BASELINE.minHistoryDays, 'HUREN_MONITORING_BASELINE_MIN_DAYS'),
    },
    briefingCron: env.HUREN_MONITORING_BRIEFING_CRON || '0 40 0 * * *',
    chromium: env.HUREN_CHROMIUM ?? '/usr/bin/chromium',
  };
}
