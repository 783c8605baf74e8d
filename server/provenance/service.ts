/**
 * Chain provenance, assembled (issue 5; docs/chain-provenance.md): the ledger (opened on first use), intake
 * (the store's write observer), the verifier of pending anchors, the platform's anchoring outbox and the
 * hash-consistency sweep, as scheduled jobs (server/scheduler/); plus what the operations need ($verify, $trace).
 *
 *   const provenance = new ProvenanceService(db, config, logger);
 *   provenance.install();      // before the server takes requests; engineParts() and jobs() go to the app
 *   provenance.start();
 *   await provenance.anchorNow(); await provenance.verifyNow(); await provenance.sweep();
 *   await provenance.stop();   // before the database closes
 *
 * Nothing here runs on the request path of an upload: intake writes rows in the upload's own transaction;
 * everything that talks to the chain runs from the schedules, a timer, or an explicit operation.
 */
import type { DiagnosticReport } from '@medplum/fhirtypes';
import type { Config } from '../config.ts';
import type { Database, Sql } from '../db/database.ts';
import { badRequest, gone, notFound } from '../fhir/errors.ts';
import type { EngineParts } from '../fhir/engine.ts';
import { Repository } from '../fhir/repository.ts';
import { HASH_BADGE_SYSTEM } from '../profiles/canonical.ts';
import type { ScheduledJob } from '../scheduler/scheduler.ts';
import { repeatedChainProvenance } from './repeat.ts';
import type { Logger } from '../http/observability.ts';
import type { LedgerPort } from '../ledger/port.ts';
import { describeLedgerConfig, type LedgerConfig } from '../ledger/config.ts';
import { setHashStatusProvider } from '../recognition/service.ts';
import type { ProvenanceConfig } from './config.ts';
import { ensureReportVersion, Intake } from './intake.ts';
import { LazyLedger } from './lazy-ledger.ts';
import { Anchorer, enqueue, outboxCounts, type AnchorRunResult, type OutboxCounts } from './outbox.ts';
import { refreshChainStatus, reportVersion, statusesOf, updateAnchor, type AnchorRow } from './records.ts';
import { PlatformSecret } from './secret.ts';
import { decorateWithBadges } from './badge.ts';
import { addDays, generateChainStatistics, today, type GenerateResult, type StatisticsRange } from './statistics.ts';
import { sweep, type SweepResult } from './sweep.ts';
import { traceReport, type TraceResult } from './trace.ts';
import { checkOnChain, Verifier, verifyReport, type VerifyResult } from './verify.ts';

const services = new WeakMap<Database, ProvenanceService>();

export interface ProvenanceOptions {
  /** A ledger to use instead of the configured one (tests). */
  ledger?: LedgerPort;
}

export class ProvenanceService {
  readonly ledger: LedgerPort;
  readonly config: ProvenanceConfig;
  private readonly ledgerConfig: LedgerConfig;
  private readonly secret: PlatformSecret;
  private readonly intake: Intake;
  private readonly anchorer: Anchorer;
  private readonly verifier: Verifier;
  private stopped = false;
  /** One run of each kind at a time in this process (several processes share the work through leases). */
  private anchorRun: Promise<unknown> = Promise.resolve();
  private verifyRun: Promise<unknown> = Promise.resolve();
  private sweepRun: Promise<unknown> = Promise.resolve();

  /** The service installed on a database (for the operations). */
  static of(db: Database): ProvenanceService | undefined {
    return services.get(db);
  }

  constructor(
    private readonly db: Database,
    config: Config,
    private readonly logger: Logger,
    options: ProvenanceOptions = {}
  ) {
    this.config = config.provenance;
    this.ledgerConfig = config.ledger;
    this.ledger = options.ledger ?? new LazyLedger(config.ledger);
    this.secret = new PlatformSecret(config.dataDir);
    this.intake = new Intake({
      platformAnchoring: this.config.platformAnchoring,
      platformAnchorDelaySeconds: this.config.platformAnchorDelaySeconds,
      onPending: () => this.kickVerifier(),
    });
    this.anchorer = new Anchorer(db, this.ledger, this.secret, this.config, logger, () => void this.anchorNow({ force: false }).catch(() => undefined));
    this.verifier = new Verifier(db, this.ledger, this.config, logger);
  }

  /**
   * Registers the service for the operations and plugs the report statuses into the recognition service; the
   * engine parts (intake as write observer, the badge decorator, the repeat finder) are `engineParts()`.
   */
  install(): void {
    services.set(this.db, this);
    // stateless: reads the statuses through the caller's own connection, whichever server it belongs to
    setHashStatusProvider(async (reports: DiagnosticReport[], repo: Repository) =>
      statusesOf(repo.connection, reports.map((r) => ({ id: r.id as string, version: Number(r.meta?.versionId ?? 0) })))
    );
  }

  /** What the FHIR engine runs for chain provenance. */
  engineParts(): Pick<EngineParts, 'writeObservers' | 'responseDecorators' | 'repeatFinders' | 'responseOnlyTags'> {
    return {
      // intake: the original submission, its fingerprint and anchor records, in the upload's own transaction
      writeObservers: [this.intake],
      // the hash-consistent badge on answers that show reports (badge.ts); stateless
      responseDecorators: [decorateWithBadges],
      // an exact retry of a submission does not store its chain Provenance again (repeat.ts)
      repeatFinders: [repeatedChainProvenance],
      // the badge is shown, never stored
      responseOnlyTags: [HASH_BADGE_SYSTEM],
    };
  }

  /** The scheduled jobs (server/scheduler/: each tick runs once across server processes). */
  jobs(): ScheduledJob[] {
    return [
      { name: 'provenance.anchor', cron: this.config.anchorCron, run: () => this.anchorNow({ force: false }) },
      { name: 'provenance.sweep', cron: this.config.sweepCron, run: () => this.sweep({ deep: false, chain: true }) },
      { name: 'provenance.deep-sweep', cron: this.config.deepSweepCron, run: () => this.sweep({ deep: true, chain: true }) },
      { name: 'provenance.statistics', cron: this.config.statisticsCron, run: () => this.statistics() },
      // anchors waiting for the chain: cheap when none is due (the ledger is not opened)
      { name: 'provenance.verify', cron: this.config.verifyCron, run: () => this.verifyDue() },
    ];
  }

  /** Logs the configuration (the jobs themselves run from the scheduler). */
  start(): void {
    this.logger.info(
      { ledger: describeLedgerConfig(this.ledgerConfig), anchor: this.config.anchorCron ?? 'off', sweep: this.config.sweepCron ?? 'off', platformAnchoring: this.config.platformAnchoring },
      'chain provenance started'
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.anchorer.stop();
    this.verifier.stop();
    await Promise.allSettled([this.anchorRun, this.verifyRun, this.sweepRun]);
    if (services.get(this.db) === this) services.delete(this.db);
    await this.ledger.close();
  }

  /** Queues a record for platform anchoring (see outbox.ts); pass the caller's transaction to make it atomic with its write. */
  async enqueue(kind: string, key: string, digest: string, sql: Sql = this.db): Promise<void> {
    await enqueue(sql, kind, key, digest);
  }

  /** Anchors the outbox now: every due record is batched; every batch is tried (even one waiting for its retry, unless force is false). */
  anchorNow(options: { force?: boolean } = {}): Promise<AnchorRunResult> {
    const run = this.anchorRun.then(() => (this.stopped ? { formed: 0, anchored: 0, records: 0, failed: 0 } : this.anchorer.run(options.force ?? true)));
    this.anchorRun = run.catch(() => undefined);
    return run;
  }

  /** Checks the anchors waiting for the chain now (all of them, also those waiting for their retry, unless force is false). */
  verifyNow(options: { force?: boolean } = {}): Promise<{ checked: number; consistent: number; inconsistent: number; pending: number }> {
    const run = this.verifyRun.then(() => (this.stopped ? { checked: 0, consistent: 0, inconsistent: 0, pending: 0 } : this.verifier.run(options.force ?? true)));
    this.verifyRun = run.catch(() => undefined);
    return run;
  }

  /** The hash-consistency sweep; with `chain`, then also the pending anchors and a rolling recheck of anchored roots. */
  sweep(options: { deep?: boolean; chain?: boolean } = {}): Promise<SweepResult> {
    const run = this.sweepRun.then(async () => {
      const result = await sweep(this.db, { deep: options.deep });
      this.logger.info({ ...result }, 'hash-consistency sweep');
      if (options.chain && !this.stopped) {
        await this.verifyNow({ force: false });
        await this.recheckAnchored();
      }
      return result;
    });
    this.sweepRun = run.catch(() => undefined);
    return run;
  }

  /** Generates the chain statistics MeasureReports (default: yesterday and today, Asia/Shanghai; statistics.ts). */
  async statistics(range?: StatisticsRange): Promise<GenerateResult> {
    const day = today();
    const result = await generateChainStatistics(new Repository(this.db), range ?? { from: addDays(day, -1), to: day });
    this.logger.info({ reports: result.reports.length, written: result.written }, 'chain statistics generated');
    return result;
  }

  async outbox(): Promise<OutboxCounts> {
    return outboxCounts(this.db);
  }

  /** $verify: the full check of a report version now (default: the current one). */
  async verify(reportId: string, version?: number, versionExpr = 'version'): Promise<VerifyResult> {
    const v = version ?? (await this.currentVersion(reportId));
    if (version !== undefined) {
      const hist = await this.db.query("SELECT deleted FROM resource_history WHERE type = 'DiagnosticReport' AND id = $1 AND version = $2", [reportId, version]);
      if (hist.length === 0) throw notFound(`DiagnosticReport/${reportId.slice(0, 64)} has no version ${version}`);
      if ((hist[0] as { deleted: boolean }).deleted) throw badRequest(`Version ${version} of DiagnosticReport/${reportId.slice(0, 64)} is a deletion`, versionExpr);
    }
    let rv = await reportVersion(this.db, reportId, v);
    if (!rv) rv = await this.db.transaction((sql) => ensureReportVersion(sql, reportId, v));
    return verifyReport(this.db, this.ledger, this.config, rv);
  }

  /** $trace. */
  async trace(reportId: string, repo: Repository, baseUrl: string): Promise<TraceResult> {
    return traceReport(this.db, this.ledger, repo, baseUrl, reportId);
  }

  private async currentVersion(reportId: string): Promise<number> {
    const rows = await this.db.query<{ version: number; deleted: boolean }>("SELECT version, deleted FROM resource WHERE type = 'DiagnosticReport' AND id = $1", [reportId]);
    if (rows.length === 0) throw notFound(`DiagnosticReport/${reportId.slice(0, 64)} not found`);
    if (rows[0]!.deleted) throw gone(`DiagnosticReport/${reportId.slice(0, 64)} was deleted`);
    return Number(rows[0]!.version);
  }

  /** Runs the verifier when some anchor is due (cheap when none is: the ledger is not opened). */
  private async verifyDue(): Promise<void> {
    if (this.stopped) return;
    if (await this.verifier.anyDue()) await this.verifyNow({ force: false });
  }

  /** The same, now, without waiting for the schedule (an upload just brought an anchor to check). */
  private kickVerifier(): void {
    void this.verifyDue().catch(() => undefined);
  }

  /** Looks anchored roots up again, oldest check first: a root the chain no longer holds makes its reports inconsistent. */
  private async recheckAnchored(): Promise<void> {
    const limit = this.config.chainRecheckPerSweep;
    if (limit <= 0) return;
    const rows = await this.db.query<{ id: string }>(
      `SELECT id FROM report_anchor WHERE status = 'consistent' AND NOT withdrawn ORDER BY checked_at NULLS FIRST LIMIT $1`,
      [limit]
    );
    if (rows.length === 0) return;
    const anchors = await this.db.query<AnchorRow>('SELECT * FROM report_anchor WHERE id = ANY($1::text[]) ORDER BY checked_at NULLS FIRST', [rows.map((r) => r.id)]);
    for (const a of anchors) {
      if (this.stopped) return;
      // looked up once more: absent on every node that answers is inconsistent at once
      const verdict = await checkOnChain(this.ledger, { ...a, attempts: 1 }, { ...this.config, verifyGiveUpHours: 0 });
      if (verdict.status === 'pending') {
        // not reachable (or another ledger): a consistent anchor does not get worse during an outage
        if (!verdict.nodes || verdict.nodes.every((n) => n.status === 'down' || n.status === 'error')) return;
        continue;
      }
      await this.db.transaction(async (sql) => {
        await updateAnchor(sql, a.id, verdict);
        await refreshChainStatus(sql, a.report_id, a.version);
      });
    }
  }
}
