/**
 * The briefings (数据分析简报, docs/monitoring.md "Briefing"): a weekly and a monthly document per city and
 * per district, made from the MeasureReports (briefing-data.ts), drawn as HTML with SVG charts
 * (briefing-render.ts) and printed to PDF (briefing-pdf.ts), kept as a FHIR DocumentReference whose attachments
 * point at the files (table monitoring_briefing_file) under /api/monitoring/briefings.
 *
 * One DocumentReference per (kind, period, area), id derived from the three. Regenerating with the same figures
 * writes nothing; with other figures (late uploads, decisions made afterwards) it writes a new version of the
 * DocumentReference with new files — the earlier versions and their files stay readable.
 */
import { createHash } from 'node:crypto';
import type { DocumentReference } from '@medplum/fhirtypes';
import type { Sql } from '../db/database.ts';
import type { Repository } from '../fhir/repository.ts';
import type { Logger } from '../http/observability.ts';
import { generateChainStatistics } from '../provenance/statistics.ts';
import { CANONICAL_BASE } from '../terminology/canonical.ts';
import { briefingData, type BriefingArea, type BriefingKind, type BriefingPeriod } from './briefing-data.ts';
import type { PdfPrinter } from './briefing-pdf.ts';
import { briefingTitle, renderBriefingHtml } from './briefing-render.ts';
import type { MonitoringFacts } from './facts.ts';
import { EXT_AREA } from './measures.ts';

export const BRIEFING_TYPE_SYSTEM = `${CANONICAL_BASE}/CodeSystem/monitoring-document`;
export const BRIEFING_IDENTIFIER_SYSTEM = `${CANONICAL_BASE}/monitoring-briefing`;
const DIVISION = `${CANONICAL_BASE}/CodeSystem/admin-division`;
export const HTML = 'text/html';
export const PDF = 'application/pdf';
const TYPE_DISPLAY: Record<BriefingKind, string> = { week: '数据分析简报（周报）', month: '数据分析简报（月报）' };

export function briefingId(kind: BriefingKind, period: string, area: string): string {
  return `briefing-${kind}-${period.toLowerCase()}-${area}`;
}

export interface BriefingResult {
  document: DocumentReference;
  /** Whether a new version was written (false: the figures were those of the current version). */
  written: boolean;
  /** Whether the current version has a PDF. */
  pdf: boolean;
}

export interface BriefingFile {
  data: Buffer;
  contentType: string;
  version: number;
}

interface Deps {
  facts: MonitoringFacts;
  printer: PdfPrinter;
  logger: Logger;
  /** (Re)generates the monitoring MeasureReports of [from, to] in the given repository's transaction. */
  generateReports(repo: Repository, from: string, to: string): Promise<unknown>;
}

async function latest(sql: Sql, id: string): Promise<{ version: number; sha: string; types: string[] } | undefined> {
  const rows = await sql.query<{ version: number; data_sha256: string; content_type: string }>(
    `SELECT version, data_sha256, content_type FROM monitoring_briefing_file WHERE document_id = $1 AND version = (SELECT max(version) FROM monitoring_briefing_file WHERE document_id = $1)`,
    [id]
  );
  if (rows.length === 0) return undefined;
  return { version: Number(rows[0].version), sha: rows[0].data_sha256, types: rows.map((r) => r.content_type) };
}

const attachment = (id: string, version: number, contentType: string, data: Buffer, title: string, at: string) => ({
  contentType,
  language: 'zh-CN',
  url: `/api/monitoring/briefings/${id}/${contentType === PDF ? 'pdf' : 'html'}?version=${version}`,
  size: data.length,
  hash: createHash('sha1').update(data).digest('base64'),
  title: `${title}.${contentType === PDF ? 'pdf' : 'html'}`,
  creation: at,
});

/** Makes (or brings up to date) the briefing of a period and area. */
export async function generateBriefing(deps: Deps, repo: Repository, period: BriefingPeriod, area: BriefingArea, options: { refresh?: boolean } = {}): Promise<BriefingResult> {
  const id = briefingId(period.kind, period.key, area.code);
  if (options.refresh !== false) {
    // the period's indicators from the facts, and its chain statistics (both idempotent)
    await repo.transaction(async (tx) => {
      await deps.generateReports(tx, period.from, period.to);
      await generateChainStatistics(tx, { from: period.from, to: period.to });
    });
  }
  const data = await briefingData(repo.connection, deps.facts, period, area);
  const sha = createHash('sha256').update(JSON.stringify(data)).digest('hex');
  const current = await latest(repo.connection, id);
  const canPrint = deps.printer.available();
  if (current && current.sha === sha && (current.types.includes(PDF) || !canPrint)) {
    const [document] = (await repo.readMany('DocumentReference', [id])) as DocumentReference[];
    if (document) return { document, written: false, pdf: current.types.includes(PDF) };
  }
  const html = Buffer.from(renderBriefingHtml(data), 'utf8');
  let pdf: Buffer | undefined;
  if (canPrint) {
    try {
      pdf = await deps.printer.print(html.toString('utf8'));
    } catch (err) {
      // the HTML is kept; the PDF request will say there is none
      deps.logger.warn({ err: (err as Error).message.slice(0, 300), briefing: id }, 'briefing PDF could not be printed');
    }
  }
  return repo.transaction(async (tx) => {
    await tx.connection.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [id]);
    const again = await latest(tx.connection, id);
    const [existing] = (await tx.readMany('DocumentReference', [id])) as DocumentReference[];
    if (existing && again && again.sha === sha && (again.types.includes(PDF) || !pdf)) return { document: existing, written: false, pdf: again.types.includes(PDF) };
    const version = Math.max(Number(existing?.meta?.versionId ?? 0), again?.version ?? 0) + 1;
    const at = new Date().toISOString();
    const title = briefingTitle(data);
    const document: DocumentReference = {
      resourceType: 'DocumentReference',
      id,
      extension: [{ url: EXT_AREA, valueCoding: { system: DIVISION, code: area.code, display: area.name } }],
      identifier: [{ system: BRIEFING_IDENTIFIER_SYSTEM, value: `${period.kind}|${period.key}|${area.code}` }],
      status: 'current',
      docStatus: 'final',
      type: { coding: [{ system: BRIEFING_TYPE_SYSTEM, code: `briefing-${period.kind}`, display: TYPE_DISPLAY[period.kind] }], text: TYPE_DISPLAY[period.kind] },
      category: [{ coding: [{ system: BRIEFING_TYPE_SYSTEM, code: 'briefing', display: '数据分析简报' }] }],
      date: at,
      description: title,
      content: [
        { attachment: attachment(id, version, HTML, html, title, at) },
        ...(pdf ? [{ attachment: attachment(id, version, PDF, pdf, title, at) }] : []),
      ],
      context: { period: { start: `${period.from}T00:00:00+08:00`, end: `${period.to}T23:59:59+08:00` } },
    };
    const written = await tx.update(document);
    const stored = Number(written.resource.meta?.versionId ?? version);
    for (const [type, bytes] of [[HTML, html], ...(pdf ? [[PDF, pdf] as const] : [])] as const) {
      await tx.connection.query(
        `INSERT INTO monitoring_briefing_file (document_id, version, content_type, data, data_sha256) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (document_id, version, content_type) DO UPDATE SET data = EXCLUDED.data, data_sha256 = EXCLUDED.data_sha256`,
        [id, stored, type, bytes, sha]
      );
    }
    return { document: written.resource as DocumentReference, written: true, pdf: pdf !== undefined };
  });
}

/** A file of a briefing: of its current version, or of an earlier one. */
export async function briefingFile(sql: Sql, id: string, contentType: string, version?: number): Promise<BriefingFile | undefined> {
  const [row] = await sql.query<{ data: Uint8Array | Buffer | string; version: number }>(
    `SELECT data, version FROM monitoring_briefing_file WHERE document_id = $1 AND content_type = $2 AND ($3::int IS NULL OR version = $3)
      ORDER BY version DESC LIMIT 1`,
    [id, contentType, version ?? null]
  );
  if (!row) return undefined;
  const data = typeof row.data === 'string' ? Buffer.from(row.data.replace(/^\\x/, ''), 'hex') : Buffer.from(row.data);
  return { data, contentType, version: Number(row.version) };
}

/** The briefings kept, newest period first. */
export async function listBriefings(sql: Sql, filter: { kind?: BriefingKind; area?: string }): Promise<DocumentReference[]> {
  const rows = await sql.query<{ content: DocumentReference | string }>(
    `SELECT content FROM resource WHERE type = 'DocumentReference' AND NOT deleted AND content->'identifier'->0->>'system' = $1
        AND ($2::text IS NULL OR content->'type'->'coding'->0->>'code' = $2)
        AND ($3::text IS NULL OR content->'extension'->0->'valueCoding'->>'code' = $3)
      ORDER BY content->'context'->'period'->>'start' DESC, id`,
    [BRIEFING_IDENTIFIER_SYSTEM, filter.kind ? `briefing-${filter.kind}` : null, filter.area ?? null]
  );
  return rows.map((r) => (typeof r.content === 'string' ? (JSON.parse(r.content) as DocumentReference) : r.content));
}
