/**
 * The facts the monitors read (docs/monitoring.md "Facts"), recorded as they happen:
 *
 * - the write observer, in the transaction of every write: DiagnosticReport versions (performer, flow, received =
 *   the version's lastUpdated, issued) → monitoring_report; ServiceRequest writes whose requester is an
 *   Organization → monitoring_event (kind `order`); recognition records (DetectedIssue with a record kind) and
 *   their decisions → monitoring_record / monitoring_decision;
 * - the call recorder, an HTTP middleware around `$recognition-check`, `$duplicate-check` and the CDS Hooks
 *   services: after the answer, one monitoring_event (kind `call`) with the HTTP status — so calls that failed
 *   with a 4xx, which write nothing in the FHIR store, are counted too. The calls of ~100 ms are written
 *   together, in one statement (`flushCalls`), not one statement per call: a call is in the table ~100 ms after
 *   its answer (a crash loses at most those), and the monitors, evaluated every minute, see it at the next run;
 * - a live event bus for the Server-Sent Events stream — counts only, per district — fed by every server
 *   process on the database (NOTIFY/LISTEN), so the stream is the same whichever process a browser reaches.
 *
 * Own tables rather than reading report_version/resource_history: the issued time and the flow live in the
 * resource's JSON, so reading them back means parsing every stored version; one narrow insert per upload in
 * the transaction that stores it is cheaper and keeps the monitors' queries on their own indexes.
 */
import { EventEmitter } from 'node:events';
import type Koa from 'koa';
import type { CodeableConcept, DetectedIssue, DiagnosticReport, Organization, Resource, ServiceRequest } from '@medplum/fhirtypes';
import { prepared, type Database, type Sql } from '../db/database.ts';
import { statusOf } from '../fhir/errors.ts';
import type { TxWrites, WriteObserver } from '../fhir/repository.ts';
import type { Companion, NewVersion } from '../fhir/store.ts';
import type { Principal } from '../http/auth.ts';
import { EXT } from '../profiles/canonical.ts';
import { DECISION_SYSTEM, REASON_SYSTEM, RECORD_KIND_SYSTEM } from '../terminology/canonical.ts';
import { CataloguePrices } from './prices.ts';

export type Flow = 'lab' | 'exam';
export const FLOWS: readonly Flow[] = ['lab', 'exam'];
const V2_0074 = 'http://terminology.hl7.org/CodeSystem/v2-0074';

/** The counters of the live stream. */
export type Counter = 'reports' | 'checks' | 'recognitions' | 'anchors' | 'alerts';

export interface LiveEvent {
  /** GB/T 2260 district code, or `unknown` for an institution without one. */
  district: string;
  counts: Partial<Record<Counter, number>>;
}

const orgId = (reference: string | undefined): string | undefined => {
  const m = reference ? /^Organization\/([A-Za-z0-9\-.]{1,64})$/.exec(reference) : null;
  return m ? `Organization/${m[1]}` : undefined;
};

export function flowOf(report: DiagnosticReport): Flow {
  const codes = (report.category ?? []).flatMap((c) => c.coding ?? []).filter((c) => c.system === V2_0074).map((c) => c.code);
  return codes.length === 0 || codes.includes('LAB') ? 'lab' : 'exam';
}

export function districtOfOrganization(org: Organization | undefined): string | undefined {
  const code = org?.extension?.find((e) => e.url === EXT.district)?.valueCoding?.code;
  return code && /^\d{6}$/.test(code) ? code : undefined;
}

const LIVE_CHANNEL = 'huren_live';
/** How long answered calls are kept before they are written (one statement per window). */
const CALL_WINDOW_MS = 100;
const INSERT_CALLS_SQL = prepared(`INSERT INTO monitoring_event (institution, kind, operation, at, status)
  SELECT e->>0, 'call', e->>1, (e->>2)::timestamptz, (e->>3)::int FROM jsonb_array_elements($1::jsonb) AS e`);
/** How long live counts are summed before they are published (one NOTIFY per window). */
const LIVE_WINDOW_MS = 100;

/** Facts recorded, the bus of live events, and the institution → district lookup. */
export class MonitoringFacts {
  readonly bus = new EventEmitter();
  private readonly prices = new CataloguePrices();
  private readonly districts = new Map<string, string>();

  constructor(private readonly db: Database) {
    this.bus.setMaxListeners(1000);
  }

  /** The district of each institution (`Organization/<id>`); cached for the process once known. */
  async districtsOf(sql: Sql, institutions: readonly string[]): Promise<Map<string, string>> {
    const missing = [...new Set(institutions)].filter((i) => !this.districts.has(i));
    if (missing.length > 0) {
      const rows = await sql.query<{ id: string; content: Organization }>(
        `SELECT id, content FROM resource WHERE type = 'Organization' AND NOT deleted AND id = ANY($1::text[])`,
        [missing.map((m) => m.slice('Organization/'.length))]
      );
      for (const r of rows) {
        const content = typeof r.content === 'string' ? (JSON.parse(r.content) as Organization) : r.content;
        const d = districtOfOrganization(content);
        if (d) this.districts.set(`Organization/${r.id}`, d);
      }
      // an institution without a district (or not stored) is remembered as such too, until it is written again
      // (announce(): forget) — otherwise every upload of a hospital without one would look it up again
      for (const m of missing) if (!this.districts.has(m)) this.districts.set(m, 'unknown');
    }
    return new Map(institutions.map((i) => [i, this.districts.get(i) ?? 'unknown']));
  }

  /** Forget a cached district (an Organization changed). */
  forget(institution: string): void {
    this.districts.delete(institution);
  }

  /**
   * Publishes counts to every server process on this database (NOTIFY on `huren_live`; each process relays
   * what it hears to its own event streams — `relay()`), so a browser connected to any process sees them.
   */
  emit(district: string, counts: Partial<Record<Counter, number>>): void {
    // counts are summed per district over a short window and sent in one NOTIFY (one statement per window, not per write)
    const pending = this.pending.get(district) ?? {};
    for (const [counter, n] of Object.entries(counts) as [Counter, number][]) pending[counter] = (pending[counter] ?? 0) + n;
    this.pending.set(district, pending);
    if (this.flushing) return;
    this.flushing = setTimeout(() => this.flush(), LIVE_WINDOW_MS);
    this.flushing.unref();
  }

  private readonly pending = new Map<string, Partial<Record<Counter, number>>>();
  private flushing?: NodeJS.Timeout;

  private flush(): void {
    this.flushing = undefined;
    const events: LiveEvent[] = [...this.pending].map(([district, counts]) => ({ district, counts }));
    this.pending.clear();
    if (events.length === 0) return;
    try {
      this.db.query('SELECT pg_notify($1, $2)', [LIVE_CHANNEL, JSON.stringify(events)]).catch(() => undefined);
    } catch {
      // the database closed meanwhile: the stream is best effort
    }
  }

  /** Emits counts per institution once the districts are known (never throws: the stream is best effort). */
  emitFor(perInstitution: Map<string, Partial<Record<Counter, number>>>): void {
    if (perInstitution.size === 0) return;
    this.districtsOf(this.db, [...perInstitution.keys()])
      .then((districts) => {
        for (const [institution, counts] of perInstitution) this.emit(districts.get(institution) ?? 'unknown', counts);
      })
      .catch(() => undefined);
  }

  /** Starts relaying the live events of every process to this process's bus; resolves to the stop function. */
  relay(): Promise<() => Promise<void>> {
    return this.db.listen(LIVE_CHANNEL, (payload) => {
      try {
        const parsed = JSON.parse(payload) as LiveEvent | LiveEvent[];
        for (const event of Array.isArray(parsed) ? parsed : [parsed]) this.bus.emit('event', event);
      } catch {
        // not ours: ignored
      }
    });
  }

  readonly observer: WriteObserver = {
    alongside: (versions) => this.alongside(versions),
    onlyAlongside: (versions) => versions.every((v) => onlyAlongside(v)),
    beforeCommit: (sql, writes) => this.record(sql, writes),
    afterCommit: (writes) => this.announce(writes),
  };

  /** Versions whose facts were written in their write's own statement (`alongside`). */
  private readonly recorded = new WeakSet<Resource>();

  /**
   * The facts that need nothing from the database, written in the statement that writes the versions: reports,
   * orders, and new recognition records without decisions (a decision's saving is read from the store: below).
   */
  private alongside(versions: readonly NewVersion[]): Companion[] {
    const reports: unknown[] = [];
    const orders: unknown[] = [];
    const records: unknown[] = [];
    for (const { resource, method, isNew } of versions) {
      if (method === 'DELETE') continue;
      if (resource.resourceType === 'DiagnosticReport') {
        const r = resource as DiagnosticReport;
        const institution = (r.performer ?? []).map((p) => orgId(p.reference)).find(Boolean);
        if (institution) reports.push([r.id, Number(r.meta?.versionId ?? 1), institution, flowOf(r), r.meta?.lastUpdated ?? new Date().toISOString(), validTime(r.issued) ?? null]);
      } else if (resource.resourceType === 'ServiceRequest') {
        const institution = orgId((resource as ServiceRequest).requester?.reference);
        if (institution) orders.push([institution, resource.meta?.lastUpdated ?? new Date().toISOString()]);
      } else if (resource.resourceType === 'DetectedIssue' && isNew && !hasDecisions(resource as DetectedIssue)) {
        const row = recordRow(resource as DetectedIssue);
        if (row) records.push(row);
      } else {
        continue;
      }
      this.recorded.add(resource);
    }
    return [
      { rows: reports, sql: (rows) => `INSERT INTO monitoring_report (report_id, version, institution, flow, received_at, issued_at)
          SELECT e->>0, (e->>1)::int, e->>2, e->>3, (e->>4)::timestamptz, (e->>5)::timestamptz FROM jsonb_array_elements(${rows}) AS e ON CONFLICT DO NOTHING` },
      { rows: orders, sql: (rows) => `INSERT INTO monitoring_event (institution, kind, operation, at, status)
          SELECT e->>0, 'order', 'ServiceRequest', (e->>1)::timestamptz, 201 FROM jsonb_array_elements(${rows}) AS e` },
      { rows: records, sql: (rows) => `INSERT INTO monitoring_record (id, institution, kind, at, implicated)
          SELECT e->>0, e->>1, e->>2, (e->>3)::timestamptz, (e->>4)::int FROM jsonb_array_elements(${rows}) AS e
          ON CONFLICT (id) DO UPDATE SET implicated = EXCLUDED.implicated` },
    ];
  }

  private async record(sql: Sql, writes: TxWrites): Promise<void> {
    for (const { resource, method } of writes.versions) {
      if (method === 'DELETE' || this.recorded.has(resource)) continue;
      if (resource.resourceType === 'DetectedIssue') {
        await this.recordIssue(sql, resource as DetectedIssue);
      }
    }
  }

  private async recordIssue(sql: Sql, issue: DetectedIssue): Promise<void> {
    const row = recordRow(issue);
    if (!row) return;
    await sql.query(
      `INSERT INTO monitoring_record (id, institution, kind, at, implicated) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (id) DO UPDATE SET implicated = EXCLUDED.implicated`,
      row
    );
    // a decision's saving is fixed when it is first recorded (a later catalogue edition does not rewrite it)
    const earlier = new Map(
      (await sql.query<{ idx: number; decision: string; item: string | null; items: number | null; priced: number | null; saving: string | null }>(
        `SELECT idx, decision, item, items, priced, saving FROM monitoring_decision WHERE record_id = $1`,
        [issue.id]
      )).map((r) => [`${r.idx}|${r.decision}|${r.item ?? ''}`, r])
    );
    await sql.query(`DELETE FROM monitoring_decision WHERE record_id = $1`, [issue.id]);
    let idx = 0;
    for (const m of issue.mitigation ?? []) {
      const codings = m.action?.coding ?? [];
      const decision = codings.find((c) => c.system === DECISION_SYSTEM)?.code;
      if (!decision) continue;
      const reason = codings.find((c) => c.system === REASON_SYSTEM)?.code ?? null;
      const item = m.extension?.find((e) => e.url === EXT.decisionReport)?.valueReference?.reference ?? null;
      const before = earlier.get(`${idx}|${decision}|${item ?? ''}`);
      const saving = decision !== 'recognised' ? { items: null, priced: null, saving: null } : before && before.items !== null ? before : await this.savingOf(sql, item ? [item] : (issue.implicated ?? []).map((r) => r.reference ?? ''));
      await sql.query(`INSERT INTO monitoring_decision (record_id, idx, decision, reason, item, at, items, priced, saving) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, [
        issue.id,
        idx++,
        decision,
        reason,
        item,
        validTime(m.date) ?? null,
        saving.items,
        saving.priced,
        saving.saving,
      ]);
    }
  }

  /** The items a recognised decision covers (its reports), those with a catalogue price, and their sum (元). */
  private async savingOf(sql: Sql, reports: string[]): Promise<{ items: number; priced: number; saving: string }> {
    const ids = reports.map((r) => /^DiagnosticReport\/([A-Za-z0-9\-.]{1,64})$/.exec(r)?.[1]).filter((id): id is string => id !== undefined);
    const rows = ids.length
      ? await sql.query<{ code: CodeableConcept | string | null }>(`SELECT content->'code' AS code FROM resource WHERE type = 'DiagnosticReport' AND id = ANY($1::text[])`, [ids])
      : [];
    let priced = 0;
    let cents = 0;
    for (const r of rows) {
      const code = typeof r.code === 'string' ? (JSON.parse(r.code) as CodeableConcept) : (r.code ?? undefined);
      const price = await this.prices.priceOf(sql, code);
      if (price === undefined) continue;
      priced++;
      cents += Math.round(price * 100);
    }
    return { items: reports.length, priced, saving: (cents / 100).toFixed(2) };
  }

  private announce(writes: TxWrites): void {
    const per = new Map<string, Partial<Record<Counter, number>>>();
    const add = (institution: string | undefined, counter: Counter) => {
      if (!institution) return;
      const c = per.get(institution) ?? {};
      c[counter] = (c[counter] ?? 0) + 1;
      per.set(institution, c);
    };
    for (const { resource, method, isNew } of writes.versions) {
      // after the commit, so that a lookup racing the write cannot cache the district it had before (also a deletion)
      if (resource.resourceType === 'Organization') this.forget(`Organization/${resource.id}`);
      if (method === 'DELETE') continue;
      const r = resource as Resource;
      if (r.resourceType === 'DiagnosticReport') add((r.performer ?? []).map((p) => orgId(p.reference)).find(Boolean), 'reports');
      else if (r.resourceType === 'DetectedIssue') {
        const institution = orgId(r.extension?.find((e) => e.url === EXT.requestingInstitution)?.valueReference?.reference);
        if (isNew) add(institution, 'checks');
        else if ((r.mitigation ?? []).length > 0) add(institution, 'recognitions');
      } else if (r.resourceType === 'Provenance') {
        const target = r.target?.find((t) => t.reference?.startsWith('DiagnosticReport/'));
        if (target) add(orgId(r.agent?.find((a) => a.who?.reference?.startsWith('Organization/'))?.who?.reference), 'anchors');
      } else if (r.resourceType === 'Flag' && r.status === 'active') add(orgId(r.subject?.reference), 'alerts');
    }
    this.emitFor(per);
  }

  /** HTTP middleware: records each recognition call with its status once it answered (or failed). */
  callRecorder(): Koa.Middleware {
    return async (ctx, next) => {
      const operation = recognitionCall(ctx.method, ctx.path);
      if (!operation) return next();
      let status = 500;
      try {
        await next();
        status = ctx.status;
      } catch (err) {
        status = statusOf(err);
        throw err;
      } finally {
        // a 5xx is the platform's failure, not the institution's: not counted against it
        if (status < 500) {
          const institution = await this.callerInstitution(ctx).catch(() => undefined);
          if (institution) this.recordCall([institution, operation, new Date().toISOString(), status]);
        }
      }
    };
  }

  /** Calls answered and not written yet: [institution, operation, at, status]. */
  private calls: unknown[][] = [];
  private callTimer?: NodeJS.Timeout;
  private callsWritten: Promise<void> = Promise.resolve();

  private recordCall(row: unknown[]): void {
    this.calls.push(row);
    if (this.callTimer) return;
    this.callTimer = setTimeout(() => {
      this.callTimer = undefined;
      this.flushCalls().catch(() => undefined);
    }, CALL_WINDOW_MS);
    this.callTimer.unref();
  }

  /** Writes the calls answered so far, in one statement (a failed write loses them, as a lost connection would). */
  flushCalls(): Promise<void> {
    const run = this.callsWritten.then(async () => {
      const rows = this.calls.splice(0);
      if (rows.length > 0) await this.db.query(INSERT_CALLS_SQL, [JSON.stringify(rows)]);
    });
    this.callsWritten = run.catch(() => undefined);
    return run;
  }

  /** Writes what is pending (at stop). */
  async stop(): Promise<void> {
    clearTimeout(this.callTimer);
    this.callTimer = undefined;
    await this.flushCalls().catch(() => undefined);
  }

  /** The institution a call is made for: the caller's own, else a literal `requester` query parameter. */
  private async callerInstitution(ctx: Koa.Context): Promise<string | undefined> {
    const principal = ctx.state.principal as Principal | undefined;
    const bound = principal?.institution;
    if (bound) return this.resolveInstitution(bound);
    const requester = ctx.query.requester;
    return typeof requester === 'string' ? orgId(requester) : undefined;
  }

  private readonly resolved = new Map<string, string>();

  /** `Organization/<id>` of `Organization/<id>`, `<id>` or `Organization?identifier=system|value`. */
  async resolveInstitution(ref: string): Promise<string | undefined> {
    const literal = orgId(ref) ?? orgId(`Organization/${ref}`);
    if (literal && !ref.includes('?')) return literal;
    const cached = this.resolved.get(ref);
    if (cached) return cached;
    const m = /^Organization\?identifier=([^|]*)\|(.+)$/.exec(ref);
    if (!m) return undefined;
    const [row] = await this.db.query<{ id: string }>(
      `SELECT t.id FROM idx_token t JOIN resource r ON r.type = t.type AND r.id = t.id AND NOT r.deleted
        WHERE t.type = 'Organization' AND t.param = 'identifier' AND t.system = $1 AND t.code = $2 ORDER BY t.id LIMIT 1`,
      [decodeURIComponent(m[1]), decodeURIComponent(m[2])]
    );
    if (!row) return undefined;
    const out = `Organization/${row.id}`;
    this.resolved.set(ref, out);
    return out;
  }
}

/** Which recognition call a request is, if any. */
export function recognitionCall(method: string, path: string): string | undefined {
  if (/^\/fhir\/Patient(\/[^/]+)?\/\$recognition-check$/.test(path)) return '$recognition-check';
  if (/^\/fhir\/ServiceRequest\/\$duplicate-check$/.test(path)) return '$duplicate-check';
  if (method === 'POST' && /^\/cds-services\/[^/]+$/.test(path)) return 'cds-hooks';
  return undefined;
}

function validTime(v: string | undefined): string | null {
  return v && !Number.isNaN(Date.parse(v)) ? new Date(v).toISOString() : null;
}

/** A recognition record's monitoring_record row (id, institution, kind, at, implicated), if it is one. */
function recordRow(issue: DetectedIssue): unknown[] | undefined {
  const kind = issue.code?.coding?.find((c) => c.system === RECORD_KIND_SYSTEM)?.code;
  const institution = orgId(issue.extension?.find((e) => e.url === EXT.requestingInstitution)?.valueReference?.reference);
  if (!kind || !institution) return undefined;
  return [issue.id, institution, kind, validTime(issue.identifiedDateTime) ?? issue.meta?.lastUpdated ?? new Date().toISOString(), issue.implicated?.length ?? 0];
}

/**
 * Whether `alongside` keeps all that is kept for a version (`record` would do nothing for it): every version but a
 * recognition record that is not new or carries decisions (read from the store) and an Organization (a district
 * forgotten).
 */
function onlyAlongside({ resource, method, isNew }: NewVersion): boolean {
  if (method === 'DELETE') return true;
  if (resource.resourceType === 'DetectedIssue') return isNew && !hasDecisions(resource as DetectedIssue);
  return resource.resourceType !== 'Organization';
}

/** Whether a recognition record carries a doctor's decision (recorded in monitoring_decision). */
function hasDecisions(issue: DetectedIssue): boolean {
  return (issue.mitigation ?? []).some((m) => m.action?.coding?.some((c) => c.system === DECISION_SYSTEM));
}
