/**
 * CDS Hooks 2.0 cards for the recognition checks (pure: the results come in, cards go out).
 *
 * - patient-view: one `info` card when the patient has recognisable results (none otherwise): the results
 *   as a Markdown list (item, institution, date, days left), a link to each report in the report viewer, one
 *   suggestion without actions (互认既往结果 — accepting it records "recognised"), and the not-recognised
 *   reasons as `overrideReasons`.
 * - order-select / order-sign: one `warning` card per draft order that a recognisable result covers: the
 *   matches, links, and — when every item of the order is covered and the order has an id — the suggestion
 *   撤销重复医嘱 with a `delete` action on the draft ServiceRequest.
 *
 * Every summary is at most 140 characters (`MAX_SUMMARY`), in Chinese.
 */
import { createHash } from 'node:crypto';
import type { Coding } from '@medplum/fhirtypes';
import { RECORD_KIND_SYSTEM, REASON_SYSTEM } from '../terminology/canonical.ts';
import { terminology } from '../terminology/load.ts';
import { RECORD_KIND_DISPLAY, type RecordKind } from '../recognition/records.ts';
import type { DuplicateItem, HashStatus, ResultSummary } from '../recognition/service.ts';

export const MAX_SUMMARY = 140;
export const SOURCE_LABEL = '广州市检查检验结果互认平台';
/** Results listed in a card's detail, and report links, at most. */
const MAX_LISTED = 20;
const MAX_LINKS = 5;

// ---------------------------------------------------------------------------------------------------
// CDS Hooks 2.0 response types

export interface CdsCoding {
  system: string;
  code: string;
  display?: string;
}

export interface CdsAction {
  type: 'create' | 'update' | 'delete';
  description: string;
  /** 2.0: the relative reference of the resource to delete. */
  resourceId?: string;
  /** 1.0 clients read the id of a deleted resource here (deprecated in 2.0, kept for them). */
  resource?: unknown;
}

export interface CdsSuggestion {
  label: string;
  uuid: string;
  isRecommended?: boolean;
  actions?: CdsAction[];
}

export interface CdsLink {
  label: string;
  url: string;
  type: 'absolute' | 'smart';
}

export interface CdsCard {
  uuid: string;
  summary: string;
  detail?: string;
  indicator: 'info' | 'warning' | 'critical';
  source: { label: string; url?: string; topic?: CdsCoding };
  suggestions?: CdsSuggestion[];
  selectionBehavior?: 'at-most-one' | 'any';
  overrideReasons?: CdsCoding[];
  links?: CdsLink[];
}

/** A card with what the recognition record must remember of it: the reports its decision is about. */
export interface PlannedCard {
  card: CdsCard;
  /** The reports the card's decision is about (all those the reminder implicates when absent). */
  reports?: string[];
  /** Indexes of the reminder's evidence entries (ordered items) the card covers. */
  evidence?: number[];
}

// ---------------------------------------------------------------------------------------------------
// helpers

/** A name-based (version 5) UUID under a namespace UUID, RFC 9562 §5.5. */
export function uuidV5(namespace: string, name: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  const h = createHash('sha1').update(ns).update(name, 'utf8').digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** The uuid of the i-th suggestion of a card: derived from the card's, so feedback can be checked. */
export function suggestionUuid(cardUuid: string, index: number): string {
  return uuidV5(cardUuid, `suggestion-${index}`);
}

/** Length in characters (code points), as a reader counts them. */
export function charLength(text: string): number {
  return [...text].length;
}

export function clip(text: string, max: number): string {
  const chars = [...text];
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : text;
}

/**
 * Escapes inline text for GitHub-flavoured Markdown (names come from hospitals' data). The text never
 * starts a line (the card's own markup does), so only the inline metacharacters need escaping.
 */
export function md(text: string): string {
  return text.replace(/[\\`*_[\]<>|~]/g, '\\$&').replace(/\s+/g, ' ');
}

const dateOf = (iso: string | undefined) => (iso ? iso.slice(0, 10) : '日期不详');
const itemName = (c: Coding) => c.display ?? c.code ?? '项目';
const orgName = (r: ResultSummary) => r.performer?.display ?? '出具机构不详';
const daysText = (r: ResultSummary) => (r.daysRemaining === undefined ? '长期有效' : `剩余 ${r.daysRemaining} 天`);
const reportId = (r: ResultSummary) => r.report.reference?.replace(/^DiagnosticReport\//, '') ?? '';

const HASH_TEXT: Record<HashStatus, string | undefined> = {
  consistent: '链上校验一致',
  inconsistent: '⚠ 链上哈希不一致',
  pending: undefined,
  unanchored: undefined,
};

function resultLine(r: ResultSummary): string {
  const parts = [orgName(r), dateOf(r.issued), daysText(r)];
  if (r.abnormalCount > 0) parts.push(`异常 ${r.abnormalCount} 项`);
  const hash = HASH_TEXT[r.hashStatus];
  if (hash) parts.push(hash);
  return `- **${md(itemName(r.item))}** — ${md(parts.join('，'))}`;
}

function resultList(results: ResultSummary[]): string {
  const lines = results.slice(0, MAX_LISTED).map(resultLine);
  if (results.length > MAX_LISTED) lines.push(`- …另有 ${results.length - MAX_LISTED} 项，请在互认平台调阅`);
  return lines.join('\n');
}

/** One link per report (newest first), to the report viewer. */
function reportLinks(publicBase: string, results: ResultSummary[]): CdsLink[] {
  const seen = new Map<string, ResultSummary[]>();
  for (const r of results) {
    const id = reportId(r);
    if (id) seen.set(id, [...(seen.get(id) ?? []), r]);
  }
  return [...seen.entries()].slice(0, MAX_LINKS).map(([id, rs]) => ({
    label: clip(`调阅报告：${rs[0].report.display ?? itemName(rs[0].item)}（${orgName(rs[0])}，${dateOf(rs[0].issued)}）`, 80),
    url: `${publicBase}/app/reports/${encodeURIComponent(id)}`,
    type: 'absolute' as const,
  }));
}

function source(publicBase: string, kind: RecordKind): CdsCard['source'] {
  return { label: SOURCE_LABEL, url: `${publicBase}/app`, topic: { system: RECORD_KIND_SYSTEM, code: kind, display: RECORD_KIND_DISPLAY[kind] } };
}

/** The not-recognised reasons (不予互认原因), as the doctor chooses among them when overriding. */
export function overrideReasons(): CdsCoding[] {
  const cs = terminology.codeSystem(REASON_SYSTEM);
  return (cs?.ordered ?? []).filter((c) => !c.inactive).map((c) => ({ system: REASON_SYSTEM, code: c.code, display: c.display ?? c.code }));
}

const OVERRIDE_HINT = '如不予互认，请选择不予互认原因（选择“其他”须填写说明，不超过 200 字）。';

// ---------------------------------------------------------------------------------------------------
// patient-view

export function encounterCard(cardUuid: string, publicBase: string, results: ResultSummary[]): PlannedCard {
  const reports = new Set(results.map(reportId)).size;
  const institutions = new Set(results.map(orgName)).size;
  const summary = clip(`患者有 ${results.length} 项可互认的检查检验结果（${reports} 份报告，${institutions} 家机构），请先调阅，避免重复检查`, MAX_SUMMARY);
  const detail = [`以下结果在互认有效期内，依规应予互认（国卫医发〔2022〕6号）：`, '', resultList(results), '', OVERRIDE_HINT].join('\n');
  return {
    card: {
      uuid: cardUuid,
      summary,
      detail,
      indicator: 'info',
      source: source(publicBase, 'encounter-reminder'),
      suggestions: [{ label: '互认既往结果，不重复开单', uuid: suggestionUuid(cardUuid, 0), isRecommended: true }],
      selectionBehavior: 'at-most-one',
      overrideReasons: overrideReasons(),
      links: reportLinks(publicBase, results),
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// order-select / order-sign

export interface DraftOrderView {
  /** The ServiceRequest's id in the CDS client, if it has one. */
  id?: string;
  /** A name for the order (its code's text or display). */
  name: string;
  /** The check's items of this order, with their indexes among all items (= the reminder's evidence). */
  items: { index: number; item: DuplicateItem }[];
}

/** A card for a draft order that recognisable results cover, or undefined when none does. */
export function duplicateOrderCard(cardUuid: string, publicBase: string, order: DraftOrderView): PlannedCard | undefined {
  const covered = order.items.filter((i) => i.item.duplicate);
  if (covered.length === 0) return undefined;
  const uncovered = order.items.filter((i) => !i.item.duplicate);
  const matches = covered.flatMap((i) => i.item.matches);
  const best = [...matches].sort((a, b) => (b.daysRemaining ?? Number.MAX_SAFE_INTEGER) - (a.daysRemaining ?? Number.MAX_SAFE_INTEGER))[0];
  const names = covered.map((i) => itemName(i.item.code)).join('、');
  const where = `${orgName(best)}，${dateOf(best.issued)}，${daysText(best)}`;
  const full = uncovered.length === 0;
  const summary = clip(
    full ? `重复检查提醒：${names}已有可互认结果（${where}），建议撤销本医嘱` : `部分开单项目已有可互认结果：${names}（${where}），请调整医嘱`,
    MAX_SUMMARY
  );
  const lines = [`医嘱「${md(order.name)}」中以下项目已有可互认结果（国卫医发〔2022〕6号）：`, '', resultList(matches)];
  if (!full) {
    lines.push('', '以下项目无可互认结果，仍需检查：', '');
    for (const u of uncovered) lines.push(`- **${md(itemName(u.item.code))}**${u.item.reason ? ` — ${md(u.item.reason)}` : ''}`);
  }
  lines.push('', OVERRIDE_HINT);
  const suggestion: CdsSuggestion =
    full && order.id
      ? {
          label: '撤销重复医嘱',
          uuid: suggestionUuid(cardUuid, 0),
          isRecommended: true,
          actions: [
            {
              type: 'delete',
              description: clip(`撤销医嘱「${order.name}」，互认${orgName(best)} ${dateOf(best.issued)} 的结果`, 200),
              resourceId: `ServiceRequest/${order.id}`,
              resource: `ServiceRequest/${order.id}`,
            },
          ],
        }
      : { label: '互认已有结果', uuid: suggestionUuid(cardUuid, 0), isRecommended: true };
  return {
    card: {
      uuid: cardUuid,
      summary,
      detail: lines.join('\n'),
      indicator: 'warning',
      source: source(publicBase, 'duplicate-order-reminder'),
      suggestions: [suggestion],
      selectionBehavior: 'at-most-one',
      overrideReasons: overrideReasons(),
      links: reportLinks(publicBase, matches),
    },
    reports: [...new Set(matches.map(reportId).filter(Boolean))],
    evidence: covered.map((i) => i.index),
  };
}
