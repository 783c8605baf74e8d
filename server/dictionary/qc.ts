/**
 * The dictionary QC report of one institution (字典数据质控报告): what in its local item dictionary and its map
 * to the platform catalogue needs attention.
 *
 * - `unmapped`: a local code seen in the institution's uploaded reports (DiagnosticReport / Observation codings
 *   in one of its local systems, performed by the institution: its own performer, or for a result Observation the
 *   performer of the DiagnosticReport that lists it) without a usable mapping: no entry, an entry
 *   mapped to nothing that was not approved as such, or an entry rejected / retired;
 * - `not-in-map`: an item of its dictionary (CodeSystem) that its map does not list;
 * - `retired-target`: an entry (pending or approved) mapped to a catalogue item that is retired;
 * - `unknown-target`: an entry mapped to a code that is not an item of the catalogue;
 * - `no-window`: an entry mapped to a catalogue item without a validity window;
 * - `pending-overdue`: an entry pending review (待审核) for more than N days.
 *
 * The institution's maps and dictionaries are the ConceptMaps and CodeSystems whose `useContext` is the venue
 * Reference(Organization/<id>).
 */
import type { CodeSystem, CodeSystemConcept, ConceptMap } from '@medplum/fhirtypes';
import type { Database } from '../db/database.ts';
import { CATALOGUE_SYSTEM } from '../terminology/canonical.ts';
import { terminology } from '../terminology/load.ts';
import { DictionaryError, isDictionaryMap, listEntries, STATUSES, syncMap, type Entry, type EntryStatus } from './store.ts';

export const QC_KINDS = ['unmapped', 'not-in-map', 'retired-target', 'unknown-target', 'no-window', 'pending-overdue'] as const;
export type QcKind = (typeof QC_KINDS)[number];

export interface QcIssue {
  kind: QcKind;
  /** The map (ConceptMap id) of the entry, when there is one. */
  map?: string;
  system: string;
  code: string;
  display?: string;
  /** The catalogue item concerned (retired / unknown / without window). */
  target?: { code: string; display?: string };
  status?: EntryStatus;
  /** Last change of the entry (pending-overdue: since when it waits). */
  since?: string;
  /** Uploaded resources carrying the code (unmapped). */
  count?: number;
  example?: string;
}

export interface QcReport {
  organization: string;
  generated: string;
  pendingDays: number;
  maps: string[];
  dictionaries: string[];
  entries: number;
  byStatus: Record<EntryStatus, number>;
  summary: Record<QcKind, number>;
  issues: QcIssue[];
}

export async function dictionaryQc(db: Database, organizationId: string, options: { pendingDays?: number; now?: Date } = {}): Promise<QcReport> {
  const pendingDays = options.pendingDays ?? 7;
  const now = options.now ?? new Date();
  const org = await db.query<{ deleted: boolean }>("SELECT deleted FROM resource WHERE type = 'Organization' AND id = $1", [organizationId]);
  if (!org[0] || org[0].deleted) throw new DictionaryError(404, 'not-found', `Organization/${organizationId.slice(0, 64)} not found`);

  const venue = JSON.stringify([{ valueReference: { reference: `Organization/${organizationId}` } }]);
  const maps = (
    await db.query<{ id: string; content: ConceptMap }>(
      "SELECT id, content FROM resource WHERE type = 'ConceptMap' AND NOT deleted AND content->'useContext' @> $1::jsonb ORDER BY id",
      [venue]
    )
  ).filter((m) => isDictionaryMap(m.content));
  const dictionaries = await db.query<{ id: string; content: CodeSystem }>(
    "SELECT id, content FROM resource WHERE type = 'CodeSystem' AND NOT deleted AND content->'useContext' @> $1::jsonb ORDER BY id",
    [venue]
  );

  const entries: Entry[] = [];
  for (const m of maps) {
    await syncMap(db, m.id);
    entries.push(...(await listEntries(db, m.id)));
  }
  const systems = new Set<string>([...entries.map((e) => e.system), ...dictionaries.map((d) => d.content.url).filter((u): u is string => !!u)]);
  for (const m of maps) for (const g of m.content.group ?? []) if (g.target === CATALOGUE_SYSTEM && g.source) systems.add(g.source);
  const byKey = new Map(entries.map((e) => [`${e.system}|${e.code}`, e]));
  const issues: QcIssue[] = [];
  const catalogue = terminology.codeSystem(CATALOGUE_SYSTEM);

  // local codes seen in the institution's reports and results
  const seen =
    systems.size === 0
      ? []
      : await db.query<{ system: string; code: string; n: number; example: string }>(
          `WITH mine AS (
             SELECT r.type, r.id FROM idx_reference r
              WHERE r.type IN ('DiagnosticReport', 'Observation') AND r.param = 'performer' AND r.target_type = 'Organization' AND r.target_id = $2
             UNION
             SELECT 'Observation', res.target_id FROM idx_reference p
               JOIN idx_reference res ON res.type = 'DiagnosticReport' AND res.id = p.id AND res.param = 'result' AND res.target_type = 'Observation'
              WHERE p.type = 'DiagnosticReport' AND p.param = 'performer' AND p.target_type = 'Organization' AND p.target_id = $2)
           SELECT t.system, t.code, count(DISTINCT t.type || '/' || t.id)::int AS n, min(t.type || '/' || t.id) AS example
           FROM idx_token t JOIN mine m ON m.type = t.type AND m.id = t.id
           WHERE t.type IN ('DiagnosticReport', 'Observation') AND t.param = 'code' AND t.system = ANY($1::text[])
           GROUP BY t.system, t.code ORDER BY t.system, t.code`,
          [[...systems], organizationId]
        );
  for (const s of seen) {
    const e = byKey.get(`${s.system}|${s.code}`);
    const usable = e && e.inMap && (e.status === 'approved' || (e.status === 'pending' && e.target));
    if (usable) continue;
    issues.push({
      kind: 'unmapped',
      ...(e ? { map: e.map, status: e.status, ...(e.display ? { display: e.display } : {}) } : {}),
      system: s.system,
      code: s.code,
      count: Number(s.n),
      example: s.example,
    });
  }

  // dictionary items the map does not list
  for (const d of dictionaries) {
    const url = d.content.url;
    if (!url) continue;
    for (const c of flatten(d.content.concept)) {
      if (!c.code || byKey.has(`${url}|${c.code}`)) continue;
      issues.push({ kind: 'not-in-map', system: url, code: c.code, ...(c.display ? { display: c.display } : {}) });
    }
  }

  // entries under review or in use: their targets, and how long they wait
  const cutoff = now.getTime() - pendingDays * 86_400_000;
  for (const e of entries) {
    if (!e.inMap || (e.status !== 'pending' && e.status !== 'approved')) continue;
    const base = { map: e.map, system: e.system, code: e.code, ...(e.display ? { display: e.display } : {}), status: e.status, since: e.changedAt };
    for (const code of e.target?.split(' ') ?? []) {
      const concept = catalogue?.get(code);
      const target = { code, ...(concept?.display ? { display: concept.display } : {}) };
      if (!concept || concept.abstract) issues.push({ kind: 'unknown-target', ...base, target });
      else if (concept.inactive) issues.push({ kind: 'retired-target', ...base, target });
      else if (!concept.properties.some((p) => p.code === 'windowDays' && p.valueInteger !== undefined)) issues.push({ kind: 'no-window', ...base, target });
    }
    if (e.status === 'pending' && Date.parse(e.changedAt) < cutoff) issues.push({ kind: 'pending-overdue', ...base });
  }

  const byStatus = Object.fromEntries(STATUSES.map((s) => [s, entries.filter((e) => e.status === s).length])) as Record<EntryStatus, number>;
  const summary = Object.fromEntries(QC_KINDS.map((k) => [k, issues.filter((i) => i.kind === k).length])) as Record<QcKind, number>;
  issues.sort((a, b) => QC_KINDS.indexOf(a.kind) - QC_KINDS.indexOf(b.kind) || (a.code < b.code ? -1 : a.code > b.code ? 1 : 0));
  return {
    organization: organizationId,
    generated: now.toISOString(),
    pendingDays,
    maps: maps.map((m) => m.id),
    dictionaries: dictionaries.map((d) => d.id),
    entries: entries.length,
    byStatus,
    summary,
    issues,
  };
}

function flatten(concepts: CodeSystemConcept[] | undefined): CodeSystemConcept[] {
  return (concepts ?? []).flatMap((c) => [c, ...flatten(c.concept)]);
}
