/**
 * One scheduler for every periodic job of the platform (anchoring, statistics, sweeps, table analysis, the
 * monitors): each job is a name, a cron expression (node-schedule; six fields for seconds) and a function. Every
 * server process schedules every job, but each tick of a job runs in exactly one of them: at the tick, each
 * process tries to insert the row (job, tick) into `scheduled_run`; the one whose insert succeeds runs it, the
 * others skip it. The tick is the scheduled instant (whole seconds), the same in every process, whatever each
 * process's timer jitter. PGlite is one process: the same code, trivially single.
 *
 * A process whose previous run of a job is still going does not claim the next tick (a slow job is not
 * stacked); another process may. A process that dies during a run loses that tick only; jobs are idempotent and
 * the next tick does the work. Runs are kept for `retentionDays` as the run log (`runs()`).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import schedule from 'node-schedule';
import client from 'prom-client';
import type { Database } from '../db/database.ts';

export interface ScheduledJob {
  /** Unique among the jobs, e.g. `provenance.anchor`. */
  name: string;
  /** A cron expression (five fields, or six with seconds first); undefined or 'off' leaves the job unscheduled. */
  cron: string | undefined;
  /** Runs the job for one tick (the scheduled instant). */
  run(tick: Date): Promise<unknown>;
}

export interface SchedulerLogger {
  debug(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** What a process did with one tick of a job (logged at debug level as `scheduled tick`). */
export type TickOutcome = 'ran' | 'failed' | 'claimed-elsewhere' | 'busy' | 'unavailable';

export interface SchedulerOptions {
  /** This process's name in the run log (default host:pid:random). */
  holder?: string;
  /** Days of run log kept (default 7). */
  retentionDays?: number;
}

export interface RunRow {
  job: string;
  tick: string;
  holder: string;
  ok: boolean | null;
}

const CLAIM_SQL = 'INSERT INTO scheduled_run (job, tick, holder) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING job';
const FINISH_SQL = 'UPDATE scheduled_run SET finished_at = now(), ok = $4 WHERE job = $1 AND tick = $2 AND holder = $3';

export class Scheduler {
  readonly holder: string;
  private readonly jobs = new Map<string, ScheduledJob>();
  private readonly timers: schedule.Job[] = [];
  private readonly running = new Map<string, Promise<void>>();
  private readonly retentionDays: number;
  private started = false;
  private stopped = false;
  private readonly lastRun = new Map<string, { at: string; ok: boolean }>();
  private observeRun?: (job: string, outcome: TickOutcome, seconds: number) => void;

  constructor(
    private readonly db: Database,
    private readonly logger: SchedulerLogger,
    options: SchedulerOptions = {}
  ) {
    this.holder = options.holder ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.retentionDays = options.retentionDays ?? 7;
    this.register({ name: 'scheduler.prune', cron: '17 3 * * *', run: () => this.prune() });
  }

  /** Adds a job (before or after start). A bad cron expression throws. */
  register(job: ScheduledJob): void {
    if (this.jobs.has(job.name)) throw new Error(`scheduler: a job named ${job.name} is registered already`);
    this.jobs.set(job.name, job);
    if (this.started) this.schedule(job);
  }

  /** Whether the timers run, and the last run of each job in this process (for `/readyz`). */
  state(): { running: boolean; jobs: number; lastRuns: Record<string, { at: string; ok: boolean }> } {
    return { running: this.started && !this.stopped, jobs: this.jobs.size, lastRuns: Object.fromEntries(this.lastRun) };
  }

  /**
   * Prometheus metrics of every job: ticks by outcome, run duration, and the time of the last success (an
   * alert rule sees a job that stopped succeeding: deploy/prometheus/huren-alerts.yml).
   */
  registerMetrics(registry: client.Registry): void {
    const ticks = new client.Counter({ name: 'huren_job_ticks_total', help: 'Scheduled ticks by job and outcome in this process', labelNames: ['job', 'outcome'], registers: [registry] });
    const duration = new client.Histogram({
      name: 'huren_job_duration_seconds',
      help: 'Run time of the scheduled jobs this process ran',
      labelNames: ['job'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300],
      registers: [registry],
    });
    const lastSuccess = new client.Gauge({ name: 'huren_job_last_success_timestamp_seconds', help: 'When each job last ran successfully in this process (Unix time)', labelNames: ['job'], registers: [registry] });
    this.observeRun = (job, outcome, seconds) => {
      ticks.inc({ job, outcome });
      if (outcome === 'ran' || outcome === 'failed') duration.observe({ job }, seconds);
      if (outcome === 'ran') lastSuccess.set({ job }, Date.now() / 1000);
    };
  }

  /** The registered jobs' names and schedules. */
  list(): { name: string; cron: string | undefined }[] {
    return [...this.jobs.values()].map((j) => ({ name: j.name, cron: j.cron }));
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    try {
      for (const job of this.jobs.values()) this.schedule(job);
    } catch (e) {
      for (const t of this.timers.splice(0)) t.cancel();
      this.started = false;
      throw e;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.splice(0)) t.cancel();
    await Promise.allSettled([...this.running.values()]);
  }

  /**
   * Claims and runs one tick of a job now (what the timer does). Resolves to whether this process ran it.
   * Exposed for tests and for operations that want "the next tick now".
   */
  async tick(name: string, at: Date): Promise<boolean> {
    const job = this.jobs.get(name);
    if (!job || this.stopped) return false;
    const tick = new Date(Math.floor(at.getTime() / 1000) * 1000);
    const begun = process.hrtime.bigint();
    const outcome = await this.claimAndRun(job, tick);
    if (outcome === 'ran' || outcome === 'failed') this.lastRun.set(name, { at: new Date().toISOString(), ok: outcome === 'ran' });
    this.observeRun?.(name, outcome, Number(process.hrtime.bigint() - begun) / 1e9);
    this.logger.debug({ job: name, tick: tick.toISOString(), holder: this.holder, outcome }, 'scheduled tick');
    return outcome === 'ran' || outcome === 'failed';
  }

  private async claimAndRun(job: ScheduledJob, tick: Date): Promise<TickOutcome> {
    if (this.running.has(job.name)) return 'busy';
    let done!: () => void;
    this.running.set(job.name, new Promise<void>((resolve) => (done = resolve)));
    try {
      let claimed: boolean;
      try {
        claimed = (await this.db.query(CLAIM_SQL, [job.name, tick.toISOString(), this.holder])).length === 1;
      } catch {
        return 'unavailable'; // the database is unavailable or closing: the next tick tries again
      }
      if (!claimed) return 'claimed-elsewhere';
      let ok = false;
      try {
        await job.run(tick);
        ok = true;
      } catch (e) {
        this.logger.error({ job: job.name, error: (e as Error).name, message: (e as Error).message?.slice(0, 200) }, 'scheduled job failed');
      }
      await this.db.query(FINISH_SQL, [job.name, tick.toISOString(), this.holder, ok]).catch(() => undefined);
      return ok ? 'ran' : 'failed';
    } finally {
      this.running.delete(job.name);
      done();
    }
  }

  /** The run log, oldest first (optionally of one job). */
  async runs(job?: string): Promise<RunRow[]> {
    const rows = await this.db.query<{ job: string; tick: Date | string; holder: string; ok: boolean | null }>(
      `SELECT job, tick, holder, ok FROM scheduled_run ${job ? 'WHERE job = $1' : ''} ORDER BY tick, job`,
      job ? [job] : []
    );
    return rows.map((r) => ({ job: r.job, tick: new Date(r.tick).toISOString(), holder: r.holder, ok: r.ok }));
  }

  private schedule(job: ScheduledJob): void {
    if (!job.cron || job.cron === 'off') return;
    const timer = schedule.scheduleJob(`${job.name}-${this.holder}`, job.cron, (fireDate: Date) => {
      void this.tick(job.name, fireDate ?? new Date());
    });
    if (!timer) throw new Error(`${job.name}: '${job.cron}' is not a valid cron expression`);
    this.timers.push(timer);
  }

  private async prune(): Promise<void> {
    await this.db.query(`DELETE FROM scheduled_run WHERE started_at < now() - make_interval(days => $1)`, [this.retentionDays]);
  }
}
