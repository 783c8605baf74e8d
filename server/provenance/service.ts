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
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import client from 'prom-client';
import type { Config } from '../config.ts';
import type { Database, Sql } from '../db/database.ts';
import { badRequest, gone, notFound } from '../fhir/errors.ts';
import { engineOf, type EngineParts } from '../fhir/engine.ts';
import { Repository } from '../fhir/repository.ts';
import { HASH_BADGE_SYSTEM } from '../profiles/canonical.ts';
import type { ScheduledJob } from '../scheduler/scheduler.ts';
import { repeatedChainProvenance } from './repeat.ts';
import type { Logger } from '../http/observability.ts';
import type { LedgerPort } from '../ledger/port.ts';
import type { Readiness } from '../module.ts';
import { describeLedgerConfig, type LedgerConfig } from '../ledger/config.ts';
import { setHashStatusColumn } from '../recognition/service.ts';
import type { ProvenanceConfig } from './config.ts';
import { DOTTED_RAW, ensureReportVersion, Intake, parseOriginal, undot } from './intake.ts';
import { sm2Signatures } from './signatures.ts';
import type { FhirSignature } from '../fingerprint/signature.ts';
import { LazyLedger } from './lazy-ledger.ts';
import { EvmLedger } from '../ledger/evm/adapter.ts';
import { startReadRpc, type ReadRpcServer } from '../ledger/read-rpc.ts';
import { Anchorer, enqueue, outboxCounts, type AnchorRunResult, type OutboxCounts } from './outbox.ts';
import { anchorsOf, onStatusRegression, refreshChainStatus, reportVersion, STATUS_COLUMN, updateAnchor, type AnchorRow, type HashStatus, type ReportVersionRow } from './records.ts';
import { RecordKeys } from './record-keys.ts';
import { InstitutionKeys } from './institution-keys.ts';
import { anchorSeal, anchorSealState, sealVersion } from './seals.ts';
import { PlatformSecret } from './secret.ts';
import { checkKeyFile } from '../key-check.ts';
import { decorateWithBadges } from './badge.ts';
import { addDays, chainStatistics, generateChainStatistics, today, type GenerateResult, type StatisticsRange } from './statistics.ts';
import { sweep, type SweepResult } from './sweep.ts';
import { traceReport, type TraceResult } from './trace.ts';
import { checkOnChain, Verifier, verifyReport, withSeal, type VerifyResult } from './verify.ts';

const services = new WeakMap<Database, ProvenanceService>();

/** A report version whose hash status regressed (consistent → pending). */
export interface StatusAlert {
  reportId: string;
  version: number;
  from: HashStatus;
  to: HashStatus;
  reasons: string[];
}

export interface OriginalResult {
  reportId: string;
  version: number;
  row: ReportVersionRow;
  /** The submitted text, exactly. */
  raw: string;
  /** False when the server kept a serialisation of the parsed Bundle (no request text was available). */
  exact: boolean;
  received: string | Date;
  /** The anchor that decides the status (the latest institution anchor, else the platform's). */
  anchor?: AnchorRow;
  /** The institution's signature over the fingerprint, when it signed (docs/chain-provenance.md). */
  signature?: FhirSignature;
}

export interface ProvenanceOptions {
  /** A ledger to use instead of the configured one (tests). */
  ledger?: LedgerPort;
}

const BACKLOG_DEGRADED_SECONDS = 15 * 60;

async function anchorBacklog(db: Database): Promise<{ queued: number; oldestSeconds: number }> {
  const [row] = await db.query<{ queued: number; oldest: number | null }>(
    `SELECT count(*)::int AS queued, extract(epoch FROM now() - min(enqueued_at))::float8 AS oldest FROM anchor_outbox WHERE state = 'queued'`
  );
  return { queued: row.queued, oldestSeconds: Math.max(0, Math.round(row.oldest ?? 0)) };
}

export class ProvenanceService {
  readonly ledger: LedgerPort;
  readonly config: ProvenanceConfig;
  private readonly ledgerConfig: LedgerConfig;
  private readonly secret: PlatformSecret;
  private readonly keys: RecordKeys;
  private readonly institutions: InstitutionKeys;
  private stopRegressions?: () => void;
  /** No key file at start: records written before seals existed are sealed once (trust on first use). */
  private readonly freshKeys: boolean;
  private readonly keyFile: string;
  private readonly intake: Intake;
  private readonly anchorer: Anchorer;
  private readonly verifier: Verifier;
  private stopped = false;
  /** One run of each kind at a time in this process (several processes share the work through leases). */
  private anchorRun: Promise<unknown> = Promise.resolve();
  private verifyRun: Promise<unknown> = Promise.resolve();
  private sweepRun: Promise<unknown> = Promise.resolve();
  private sealRun: Promise<unknown> = Promise.resolve();

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
    const keyFile = this.config.recordKeyFile ?? join(config.dataDir, 'record-keys.json');
    this.keyFile = keyFile;
    this.freshKeys = !existsSync(keyFile);
    this.keys = new RecordKeys(keyFile);
    this.institutions = InstitutionKeys.load(this.config.institutionKeys, config.dataDir);
    this.intake = new Intake({
      platformAnchoring: this.config.platformAnchoring,
      platformAnchorDelaySeconds: this.config.platformAnchorDelaySeconds,
      onPending: () => this.kickVerifier(),
      keys: this.keys,
      institutions: this.institutions,
      texts: () => engineOf(db).codec,
    });
    this.anchorer = new Anchorer(db, this.ledger, this.secret, this.keys, this.config, logger, () => void this.anchorNow({ force: false }).catch(() => undefined));
    this.verifier = new Verifier(db, this.ledger, this.config, logger, this.keys);
  }

  /** The SM2 public key registered for an institution (`system|value`) under `kid` (institution-keys.ts). */
  institutionKey(organization: string, kid: string): string | undefined {
    return this.institutions.keysOf([organization]).find((k) => k.kid === kid)?.publicKey;
  }

  /** The chain's identity for partners: its ledger name and, on an EVM chain, the anchor contract (opens the chain). */
  async chainIdentity(): Promise<{ ledger: string; contract?: string }> {
    const port = this.ledger instanceof LazyLedger ? await this.ledger.resolve() : this.ledger;
    return { ledger: this.ledger.name, ...(port instanceof EvmLedger ? { contract: port.contract } : {}) };
  }

  /** The record seals' keys (record-keys.ts): `keys.rotate()` makes a new current key. */
  get recordKeys(): RecordKeys {
    return this.keys;
  }

  /** Report versions that went from consistent to pending (logged, counted, and given to the alert hooks). */
  regressions = 0;
  private regressionCounter?: client.Counter;
  private readonly alertHooks = new Set<(event: StatusAlert) => void>();

  /** Registers an alert hook (the data-quality monitor's Flag, when it exists): called for every regression. */
  onAlert(hook: (event: StatusAlert) => void): () => void {
    this.alertHooks.add(hook);
    return () => this.alertHooks.delete(hook);
  }

  /** Publishes the provenance counters on the server's metrics registry. */
  registerMetrics(registry: client.Registry): void {
    this.regressionCounter ??= new client.Counter({
      name: 'huren_hash_status_regressions_total',
      help: 'Report versions whose hash status went from consistent to pending (an anchor the chain no longer confirms)',
      registers: [registry],
    });
    const db = this.db;
    let last: Promise<{ queued: number; oldestSeconds: number } | undefined> | undefined;
    // one query per scrape serves both gauges (the first collect() runs it, the second reuses it)
    const scrape = () => (last ??= anchorBacklog(db).catch(() => undefined).finally(() => setImmediate(() => (last = undefined))));
    new client.Gauge({
      name: 'huren_anchor_backlog',
      help: 'Records waiting in the outbox for an anchor',
      registers: [registry],
      async collect() {
        const b = await scrape();
        if (b) this.set(b.queued);
      },
    });
    new client.Gauge({
      name: 'huren_anchor_backlog_oldest_seconds',
      help: 'Age of the oldest record waiting for an anchor (0 when none waits)',
      registers: [registry],
      async collect() {
        const b = await scrape();
        if (b) this.set(b.oldestSeconds);
      },
    });
  }

  /**
   * The chain for `/readyz`: degraded (never down — anchors wait in the outbox) when the oldest record has waited
   * longer than 15 minutes or, once the ledger is open, no node is up.
   */
  async readiness(): Promise<Readiness> {
    const b = await anchorBacklog(this.db);
    let nodesUp: boolean | undefined;
    if (!(this.ledger instanceof LazyLedger) || this.ledger.opened) nodesUp = (await this.ledger.health()).up;
    const late = b.oldestSeconds > BACKLOG_DEGRADED_SECONDS;
    return { status: late || nodesUp === false ? 'degraded' : 'up', detail: { ledger: this.ledger.name, nodesUp: nodesUp ?? 'not opened yet', backlog: b.queued, oldestSeconds: b.oldestSeconds } };
  }

  private regressed(event: StatusAlert): void {
    this.regressions++;
    this.regressionCounter?.inc();
    // ids and statuses only: nothing personal
    this.logger.warn({ report: event.reportId, version: event.version, from: event.from, to: event.to, reasons: event.reasons.slice(0, 3) }, 'hash status regressed: consistent → pending');
    for (const hook of this.alertHooks) {
      try {
        hook(event);
      } catch (e) {
        this.logger.error({ error: (e as Error).name }, 'hash status alert hook failed');
      }
    }
  }

  /**
   * Registers the service for the operations and plugs the report statuses into the recognition service; the
   * engine parts (intake as write observer, the badge decorator, the repeat finder) are `engineParts()`.
   */
  install(): void {
    services.set(this.db, this);
    this.stopRegressions ??= onStatusRegression((e) => this.regressed(e));
    // read in the statement that reads the reports, on the caller's own connection (whichever server it belongs to)
    setHashStatusColumn(STATUS_COLUMN);
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

  /** Refuses a record key file that is not this database's (server/key-check.ts); records new key ids. */
  checkKeys(): Promise<void> {
    return checkKeyFile(this.db, { purpose: 'record', path: this.keyFile, envVar: 'HUREN_RECORD_KEY_FILE', checks: this.keys.checkValues() });
  }

  /** Logs the configuration (the jobs themselves run from the scheduler). */
  start(): void {
    this.logger.info(
      { ledger: describeLedgerConfig(this.ledgerConfig), anchor: this.config.anchorCron ?? 'off', sweep: this.config.sweepCron ?? 'off', platformAnchoring: this.config.platformAnchoring },
      'chain provenance started'
    );
    if (this.freshKeys) {
      this.sealRun = this.sealUnsealed().catch((e: unknown) => this.logger.error({ error: (e as Error).name, message: (e as Error).message?.slice(0, 200) }, 'sealing earlier records failed'));
    }
    this.startReadRpc();
  }

  /** The embedded chain's read-only JSON-RPC on loopback (server/ledger/read-rpc.ts), when configured. */
  readRpc?: Promise<ReadRpcServer | undefined>;

  private startReadRpc(): void {
    const address = this.ledgerConfig.embeddedRpc;
    if (this.ledgerConfig.kind !== 'embedded' || !address || !(this.ledger instanceof LazyLedger)) return;
    const lazy = this.ledger;
    this.readRpc = startReadRpc(address, async () => {
      const port = await lazy.resolve();
      if (!(port instanceof EvmLedger)) throw new Error('the embedded ledger is not an EVM chain');
      const chainId = Number(await port.nodes[0]!.request<string>('eth_chainId'));
      return { node: port.nodes[0]!, name: port.name, contract: port.contract, chainId };
    }).then(
      (rpc) => {
        this.logger.info({ url: rpc.url }, 'embedded chain: read-only JSON-RPC listening');
        return rpc;
      },
      (e: unknown) => {
        this.logger.warn({ error: (e as Error).message?.slice(0, 200) }, 'embedded chain: the read-only JSON-RPC could not start');
        return undefined;
      }
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await (await this.readRpc)?.close();
    this.anchorer.stop();
    this.verifier.stop();
    await Promise.allSettled([this.anchorRun, this.verifyRun, this.sweepRun, this.sealRun]);
    this.stopRegressions?.();
    if (services.get(this.db) === this) services.delete(this.db);
    await this.ledger.close();
  }

  /** Queues a record for platform anchoring (see outbox.ts); pass the caller's transaction to make it atomic with its write. */
  async enqueue(kind: string, key: string, digest: string, sql: Sql = this.db): Promise<void> {
    await enqueue(sql, kind, key, digest);
  }

  /** Anchors the outbox now: every due record is batched; every batch is tried (even one waiting for its retry, unless force is false). */
  anchorNow(options: { force?: boolean; includeWaiting?: boolean } = {}): Promise<AnchorRunResult> {
    const run = this.anchorRun.then(() =>
      this.stopped ? { formed: 0, anchored: 0, records: 0, failed: 0 } : this.anchorer.run(options.force ?? true, { includeWaiting: options.includeWaiting })
    );
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
      const result = await sweep(this.db, { deep: options.deep, keys: this.keys });
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
    // the days that ended are counted once and kept (statistics.ts): the monitoring app's 30 days read kept rows
    if (!range) await chainStatistics(this.db, { from: addDays(day, -61), to: day });
    this.logger.info({ reports: result.reports.length, written: result.written }, 'chain statistics generated');
    return result;
  }

  async outbox(): Promise<OutboxCounts> {
    return outboxCounts(this.db);
  }

  /**
   * Seals the records that have no seal, once, when this server made its key file (an upgrade from a version
   * without seals): from then on a record without a seal is one written behind the server's back.
   */
  private async sealUnsealed(): Promise<void> {
    let versions = 0;
    let anchors = 0;
    for (;;) {
      if (this.stopped) return;
      const rows = await this.db.query<{ report_id: string; version: number }>('SELECT report_id, version FROM report_version WHERE seal IS NULL LIMIT 500');
      if (rows.length === 0) break;
      await this.db.transaction(async (sql) => {
        for (const r of rows) await sealVersion(sql, this.keys, r.report_id, Number(r.version));
      });
      versions += rows.length;
    }
    for (;;) {
      if (this.stopped) return;
      const rows = await this.db.query<AnchorRow>('SELECT * FROM report_anchor WHERE seal IS NULL LIMIT 500');
      if (rows.length === 0) break;
      await this.db.transaction(async (sql) => {
        for (const a of rows) await sql.query('UPDATE report_anchor SET seal = $2 WHERE id = $1', [a.id, anchorSeal(this.keys, a)]);
      });
      anchors += rows.length;
    }
    if (versions + anchors > 0) this.logger.warn({ versions, anchors }, 'new record key file: records written before record seals were sealed as they are now');
  }

  /** $verify: the full check of a report version now (default: the current one). */
  async verify(reportId: string, version?: number, versionExpr = 'version', options: { reverify?: boolean } = {}): Promise<VerifyResult> {
    const v = version ?? (await this.currentVersion(reportId));
    if (version !== undefined) {
      const hist = await this.db.query("SELECT deleted FROM resource_history WHERE type = 'DiagnosticReport' AND id = $1 AND version = $2", [reportId, version]);
      if (hist.length === 0) throw notFound(`DiagnosticReport/${reportId.slice(0, 64)} has no version ${version}`);
      if ((hist[0] as { deleted: boolean }).deleted) throw badRequest(`Version ${version} of DiagnosticReport/${reportId.slice(0, 64)} is a deletion`, versionExpr);
    }
    let rv = await reportVersion(this.db, reportId, v);
    if (!rv) rv = await this.db.transaction((sql) => ensureReportVersion(sql, reportId, v, this.keys));
    return verifyReport(this.db, this.ledger, this.config, this.keys, this.institutions, rv, options);
  }

  /**
   * $original: the Bundle of a report version exactly as it was submitted, with what anchors it (the
   * recorded fingerprint and the decisive anchor: ledger, transaction, height, root, Merkle proof).
   */
  async original(reportId: string, version?: number): Promise<OriginalResult> {
    const v = version ?? (await this.currentVersion(reportId));
    const rv = await reportVersion(this.db, reportId, v);
    if (!rv?.original_id) {
      throw notFound(`DiagnosticReport/${reportId.slice(0, 64)} version ${v} was not submitted in a transaction Bundle: there is no original`);
    }
    const rows = await this.db.query<{ dotted: string; raw_exact: boolean; alg: string; fingerprint: string; received: string | Date }>(
      `SELECT ${DOTTED_RAW}, raw_exact, alg, fingerprint, received_at AS received FROM report_original WHERE id = $1`,
      [rv.original_id]
    );
    if (rows.length === 0) throw notFound(`The original Bundle of DiagnosticReport/${reportId.slice(0, 64)} version ${v} is missing`);
    const anchors = (await anchorsOf(this.db, reportId, v)).filter((a) => !a.withdrawn);
    const latest = (source: string) => anchors.filter((a) => a.source === source).at(-1);
    const decisive = latest('institution') ?? latest('platform');
    const raw = engineOf(this.db).codec.openText(undot(rows[0]!.dotted));
    const sig = sm2Signatures(decisive?.signature)[0] ?? sm2Signatures((parseOriginal(raw) as { signature?: unknown })?.signature)[0];
    return { reportId, version: v, row: rv, raw, exact: rows[0]!.raw_exact, received: rows[0]!.received, anchor: decisive, ...(sig ? { signature: sig } : {}) };
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
      // looked up once more: absent on every node that answers is inconsistent at once, and so is a
      // transaction that anchored another root, or an anchor row whose seal no longer holds
      const sealed = anchorSealState(this.keys, a);
      const verdict = withSeal(sealed, await checkOnChain(this.ledger, { ...a, attempts: 1 }, { ...this.config, verifyGiveUpHours: 0 }, { wasFound: sealed.wasFound }));
      if (verdict.status === 'pending') {
        // not reachable (or another ledger): a consistent anchor does not get worse during an outage
        if (!verdict.nodes || verdict.nodes.every((n) => n.status === 'down' || n.status === 'error')) return;
        continue;
      }
      await this.db.transaction(async (sql) => {
        await updateAnchor(sql, a, verdict, this.keys);
        await refreshChainStatus(sql, a.report_id, a.version);
      });
    }
  }
}
