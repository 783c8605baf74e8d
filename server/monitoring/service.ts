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
import { generateReports } from './measures.ts';

const dayOf = (t: number) => new Date(t + 8 * 3_600_000).toISOString().slice(0, 10);

export class MonitoringService {
  readonly facts: MonitoringFacts;

  constructor(
    readonly db: Database,
    readonly config: MonitoringConfig,
    private readonly logger: Logger
  ) {
    this.facts = new MonitoringFacts(db);
  }

  evaluate(repo: Repository, at: Date): Promise<Evaluation> {
    return evaluate(repo, this.config, at);
  }

  generateReports(repo: Repository, from: string, to: string) {
    return repo.transaction((tx) => generateReports(tx, this.facts, this.config, from, to));
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
    ];
  }
}
