/**
 * The monitoring service: the facts it records, the evaluation of the monitors and the indicator reports, and
 * its scheduled jobs (docs/monitoring.md).
 */
import type { Database } from '../db/database.ts';
import { Repository } from '../fhir/repository.ts';
import type { Logger } from '../http/observability.ts';
import type { ScheduledJob } from '../scheduler/scheduler.ts';
import type { MonitoringConfig } from './config.ts';
import { evaluate, type Evaluation } from './evaluate.ts';
import { MonitoringFacts } from './facts.ts';
import { districtsWithActivity, lastCompletePeriod, parseArea, type BriefingArea, type BriefingPeriod } from './briefing-data.ts';
import { PdfPrinter } from './briefing-pdf.ts';
import { generateBriefing, type BriefingResult } from './briefing.ts';
import { CITY, generateReports, usageRows } from './measures.ts';

/** How many past days the keep-days job keeps counted (the big screen shows 30 days and the month). */
const KEEP_DAYS = 62;

const dayOf = (t: number) => new Date(t + 8 * 3_600_000).toISOString().slice(0, 10);

export class MonitoringService {
  readonly facts: MonitoringFacts;
  readonly printer: PdfPrinter;

  constructor(
    readonly db: Database,
    readonly config: MonitoringConfig,
    private readonly logger: Logger
  ) {
    this.facts = new MonitoringFacts(db);
    this.printer = new PdfPrinter(config.chromium);
  }

  /** Evaluates the monitors at `at`, with this process's answered calls written first. */
  async evaluate(repo: Repository, at: Date): Promise<Evaluation> {
    await this.facts.flushCalls().catch(() => undefined);
    return evaluate(repo, this.config, at);
  }

  generateReports(repo: Repository, from: string, to: string) {
    return repo.transaction((tx) => generateReports(tx, this.facts, this.config, from, to));
  }

  /** Makes or updates the briefing of a period and area (docs/monitoring.md "Briefing"). */
  briefing(repo: Repository, period: BriefingPeriod, area: BriefingArea, options: { refresh?: boolean } = {}): Promise<BriefingResult> {
    return generateBriefing({ facts: this.facts, printer: this.printer, logger: this.logger, generateReports: (tx, from, to) => this.generateReports(tx, from, to) }, repo, period, area, options);
  }

  /** The scheduled briefings: the last complete week and month, for the city and each district with activity. */
  async scheduledBriefings(repo: Repository, today: string): Promise<BriefingResult[]> {
    const out: BriefingResult[] = [];
    for (const kind of ['week', 'month'] as const) {
      const period = lastCompletePeriod(kind, today);
      out.push(await this.briefing(repo, period, parseArea(CITY)));
      // the city's refresh made the period's reports: the districts reuse them
      for (const district of await districtsWithActivity(repo.connection, period)) out.push(await this.briefing(repo, period, parseArea(district), { refresh: false }));
    }
    return out;
  }

  jobs(): ScheduledJob[] {
    return [
      {
        name: 'monitoring.evaluate',
        cron: this.config.cron,
        run: async (tick) => {
          const result = await this.evaluate(new Repository(this.db), tick);
          if (result.changes.length > 0) this.logger.info({ changes: result.changes.length, active: result.active.length }, 'monitoring alerts changed');
        },
      },
      {
        name: 'monitoring.reports',
        cron: this.config.reportsCron,
        // yesterday (now complete) and today so far
        run: async (tick) => {
          const today = dayOf(tick.getTime());
          await this.generateReports(new Repository(this.db), dayOf(tick.getTime() - 86_400_000), today);
        },
      },
      {
        name: 'monitoring.keep-days',
        cron: this.config.keepCron,
        // the days that ended are counted once and kept (measures.ts usageRows): the first reader pays nothing
        run: async (tick) => {
          const today = dayOf(tick.getTime());
          await usageRows(this.db, this.facts, this.config, dayOf(tick.getTime() - KEEP_DAYS * 86_400_000), today, 'city');
        },
      },
      {
        name: 'monitoring.briefings',
        cron: this.config.briefingCron,
        run: async (tick) => {
          const results = await this.scheduledBriefings(new Repository(this.db), dayOf(tick.getTime()));
          const written = results.filter((r) => r.written).length;
          if (written > 0) this.logger.info({ written, briefings: results.length }, 'monitoring briefings written');
        },
      },
    ];
  }
}
