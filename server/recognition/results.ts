/**
 * Filters by item and category, and the result summaries the checks answer with (with each report's hash status).
 */
import type { Coding, DiagnosticReport, Reference } from '@medplum/fhirtypes';
import { LEGACY_SYSTEM, NATIONAL_SYSTEM } from '../terminology/canonical.ts';
import { CatalogueView, type CatalogueEntry, type Token } from './catalogue.ts';
import { RecognitionError } from './errors.ts';
import type { Candidate } from './facts.ts';
import type { ResultSummary } from './model.ts';

export function itemCodes(catalogue: CatalogueView, tokens: Token[], param: string): Set<string> | undefined {
  if (tokens.length === 0) return undefined;
  const out = new Set<string>();
  tokens.forEach((t, i) => {
    const r = t.system === undefined ? resolveAnySystem(catalogue, t.code) : catalogue.resolve({ system: t.system, code: t.code });
    if ('invalid' in r) throw new RecognitionError(400, 'code-invalid', `Unknown item code: ${r.invalid}`, param, i);
    for (const item of r.items) out.add(item.code);
  });
  return out;
}

/** A code without a system: a platform code, else a national or legacy code by its shape. */
function resolveAnySystem(catalogue: CatalogueView, code: string): ReturnType<CatalogueView['resolve']> {
  if (catalogue.item(code)) return { items: [catalogue.item(code) as CatalogueEntry] };
  if (/^[LE]-[0-9A-F]{8}$/.test(code)) return { invalid: `unknown code '${code}' in the recognition catalogue` };
  if (/^\d{15}$/.test(code)) return catalogue.resolve({ system: NATIONAL_SYSTEM, code });
  if (/^(\d{9}|\d{11})$/.test(code)) return catalogue.resolve({ system: LEGACY_SYSTEM, code });
  return { invalid: `'${code.slice(0, 40)}' is neither a platform, a national nor a legacy item code (give system|code for other systems)` };
}

/** A predicate for category tokens: catalogue groupings by code or name, or report categories by system|code. */
export function categoryMatcher(catalogue: CatalogueView, tokens: Token[]): (c: { report: DiagnosticReport; item?: CatalogueEntry }) => boolean {
  if (tokens.length === 0) return () => true;
  const groups = new Set<string>();
  const reportCategories: Token[] = [];
  tokens.forEach((t, i) => {
    const codes = catalogue.groupCodes(t);
    if (codes) for (const c of codes) groups.add(c);
    else if (t.system !== undefined && t.system !== '' && !t.system.startsWith('https://fhir.huren.gz.cn/')) reportCategories.push(t);
    else throw new RecognitionError(400, 'code-invalid', `Unknown category '${t.code.slice(0, 40)}': not a kind, field or category of the recognition catalogue`, 'category', i);
  });
  return ({ report, item }) =>
    (item !== undefined && CatalogueView.within(item, groups)) ||
    reportCategories.some((t) => (report.category ?? []).some((cc) => (cc.coding ?? []).some((c) => c.system === t.system && c.code === t.code)));
}

/** The results as the checks answer them; each report's hash status as read with it (facts-query.ts). */
export function summaries(candidates: Candidate[]): ResultSummary[] {
  return candidates.map((c) => ({
    report: { reference: `DiagnosticReport/${c.report.id}`, ...(c.report.code?.text ? { display: c.report.code.text } : {}) },
    item: c.item.coding,
    ...(c.performer ? { performer: { reference: `Organization/${c.performer.id}`, ...(c.performer.name ? { display: c.performer.name } : {}) } } : {}),
    ...(c.report.issued ? { issued: c.report.issued } : {}),
    ...(c.verdict.daysRemaining !== undefined ? { daysRemaining: c.verdict.daysRemaining } : {}),
    ...(c.verdict.expires ? { expires: c.verdict.expires } : {}),
    ...(c.hrMark ? { hrMark: c.hrMark } : {}),
    hashStatus: c.hashStatus ?? 'unanchored',
    abnormalCount: c.abnormalCount,
    ...(c.mapping ? { mapping: c.mapping } : {}),
  }));
}

export function uniqueReports(candidates: Candidate[]): Reference[] {
  return [...new Set(candidates.map((c) => c.report.id as string))].map((id) => ({ reference: `DiagnosticReport/${id}` }));
}

export function pick(c: Coding): Coding {
  return { ...(c.system ? { system: c.system } : {}), ...(c.code ? { code: c.code } : {}), ...(c.display ? { display: c.display } : {}) };
}

