/**
 * Traceability of one report (`$trace`): every version with its fingerprint, status and anchors; what each
 * configured chain node holds for each anchored root (transaction, block hash, height); whether the nodes
 * agree (block by block, with the first divergence); and the access history (AuditEvents naming the report).
 * The chain is read now; when it cannot be reached, that is said, not thrown.
 */
import type { AuditEvent, Bundle } from '@medplum/fhirtypes';
import type { Database } from '../db/database.ts';
import { notFound } from '../fhir/errors.ts';
import type { Repository } from '../fhir/repository.ts';
import { parseSearch } from '../fhir/search/parse.ts';
import { LedgerError, type CompareResult, type LedgerPort, type LookupResult } from '../ledger/port.ts';
import { anchorsOf, reportVersions, type AnchorRow, type ReportVersionRow } from './records.ts';

export interface TraceAnchor {
  row: AnchorRow;
  lookup?: LookupResult;
  /** The chain could not be read for this anchor. */
  error?: string;
}

export interface TraceVersion {
  version: number;
  lastUpdated: string;
  method: string;
  deleted: boolean;
  row?: ReportVersionRow;
  original?: { receivedAt: string; exact: boolean };
  anchors: TraceAnchor[];
}

export interface TraceResult {
  reportId: string;
  ledger: string;
  versions: TraceVersion[];
  compare?: CompareResult;
  compareError?: string;
  access: AuditEvent[];
}

export const MAX_ACCESS = 100;

export async function traceReport(db: Database, ledger: LedgerPort, repo: Repository, baseUrl: string, reportId: string): Promise<TraceResult> {
  const history = await db.query<{ version: number; last_updated: string | Date; method: string; deleted: boolean }>(
    "SELECT version, last_updated, method, deleted FROM resource_history WHERE type = 'DiagnosticReport' AND id = $1 ORDER BY version",
    [reportId]
  );
  if (history.length === 0) throw notFound(`DiagnosticReport/${reportId.slice(0, 64)} not found`);
  const rows = new Map((await reportVersions(db, reportId)).map((r) => [Number(r.version), r]));
  const anchors = await anchorsOf(db, reportId);
  const originals = new Map(
    (
      await db.query<{ id: string; received_at: string | Date; raw_exact: boolean }>(
        'SELECT id, received_at, raw_exact FROM report_original WHERE id = ANY($1::text[])',
        [[...rows.values()].map((r) => r.original_id).filter((x): x is string => !!x)]
      )
    ).map((o) => [o.id, o])
  );

  // what the nodes hold, once per root
  const lookups = new Map<string, Promise<LookupResult | { error: string }>>();
  const lookup = (root: string) => {
    let p = lookups.get(root);
    if (!p) {
      p = ledger.lookup(root).catch((e: unknown) => ({ error: e instanceof LedgerError ? `the chain is not reachable (${e.code}): ${e.message.slice(0, 200)}` : 'the chain could not be read' }));
      lookups.set(root, p);
    }
    return p;
  };
  const versions: TraceVersion[] = [];
  for (const h of history) {
    const version = Number(h.version);
    const row = rows.get(version);
    const original = row?.original_id ? originals.get(row.original_id) : undefined;
    const traced: TraceAnchor[] = [];
    for (const a of anchors.filter((x) => Number(x.version) === version)) {
      const held = await lookup(a.root);
      traced.push('error' in held ? { row: a, error: held.error } : { row: a, lookup: held });
    }
    versions.push({
      version,
      lastUpdated: new Date(h.last_updated).toISOString(),
      method: h.method,
      deleted: h.deleted,
      ...(row ? { row } : {}),
      ...(original ? { original: { receivedAt: new Date(original.received_at).toISOString(), exact: original.raw_exact } } : {}),
      anchors: traced,
    });
  }

  let compare: CompareResult | undefined;
  let compareError: string | undefined;
  try {
    compare = await ledger.compare();
  } catch (e) {
    compareError = e instanceof LedgerError ? `the chain nodes could not be compared (${e.code}): ${e.message.slice(0, 200)}` : 'the chain nodes could not be compared';
  }

  const search = parseSearch('AuditEvent', [
    ['entity', `DiagnosticReport/${reportId}`],
    ['_sort', '-date'],
    ['_count', String(MAX_ACCESS)],
  ]);
  const found: Bundle = await repo.search(search, baseUrl);
  const access = (found.entry ?? []).map((e) => e.resource as AuditEvent).filter((r) => r?.resourceType === 'AuditEvent');

  return { reportId, ledger: ledger.name, versions, compare, compareError, access };
}
