/**
 * The health-record summary (健康档案, `Patient/[id]/$summary`) as a FHIR document, shaped after the International
 * Patient Summary (IPS): a Bundle of type `document` whose first entry is a Composition (LOINC 60591-5 Patient
 * summary Document) with these sections, built from the report views (views.ts — the same judging as $reports):
 *
 *   检验结果 / 检查结果   per kind (laboratory: LOINC 30954-2; examinations: 18748-4), one sub-section per
 *                        catalogue category with the latest report of each item (newest first);
 *   异常结果              the abnormal results of those reports (interpretation H, L, A, HH, LL…; critical flagged);
 *   可互认结果            the recognisable reports for the requester, with the days left in their window.
 *
 * Each section has a generated narrative (zh-CN); an empty one has an emptyReason. The other entries are the
 * Patient, the reports, their results and their performing institutions, each with its fullUrl.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, Composition, CompositionSection, Observation, Organization, Patient, Reference, Resource } from '@medplum/fhirtypes';
import { CANONICAL_BASE } from '../terminology/canonical.ts';
import { interpretationCodes } from './facts.ts';
import type { ReportView } from './views.ts';
import { valueText } from './operations/report-parts.ts';

const LOINC = 'http://loinc.org';
const EMPTY_REASON = 'http://terminology.hl7.org/CodeSystem/list-empty-reason';
/** The platform's own section codes (the IPS has none for these two views). */
export const SUMMARY_SECTION_SYSTEM = `${CANONICAL_BASE}/CodeSystem/summary-section`;
/** On a recognisable section's entry: whole days left in the window (absent: the item does not expire). */
export const DAYS_REMAINING_EXTENSION = `${CANONICAL_BASE}/StructureDefinition/days-remaining`;

const KINDS = [
  { kind: '检验', title: '检验结果 (Laboratory results)', code: { system: LOINC, code: '30954-2', display: 'Relevant diagnostic tests/laboratory data' } },
  { kind: '检查', title: '检查结果 (Examination results)', code: { system: LOINC, code: '18748-4', display: 'Diagnostic imaging study' } },
] as const;

export interface SummaryInput {
  patient: Patient;
  views: ReportView[];
  /** The requester judged for (its display), or undefined: then the recognisable section says it was not judged. */
  requester?: Reference;
  baseUrl: string;
  now: Date;
}

export function summaryDocument({ patient, views, requester, baseUrl, now }: SummaryInput): Bundle {
  const latest = latestPerItem(views);
  const sections: CompositionSection[] = KINDS.map((k) => kindSection(k, latest.filter((g) => g.kind === k.kind)));
  const shown = uniqueViews(latest.flatMap((g) => g.views));
  const abnormal = shown.flatMap((v) => v.abnormal.map((a) => ({ ...a, view: v })));
  sections.push(abnormalSection(abnormal));
  sections.push(recognisableSection(shown.filter((v) => v.recognisable), requester));

  const composition: Composition = {
    resourceType: 'Composition',
    id: randomUUID(),
    status: 'final',
    type: { coding: [{ system: LOINC, code: '60591-5', display: 'Patient summary Document' }] },
    subject: { reference: `Patient/${patient.id}` },
    date: now.toISOString(),
    author: [{ identifier: { system: `${CANONICAL_BASE}/sid/system`, value: 'huren' }, display: 'Huren 互认平台' }],
    title: '健康档案摘要 (Patient summary)',
    section: sections,
  };
  const resources: Resource[] = [patient];
  const performers = new Map<string, Organization>();
  for (const v of shown) {
    resources.push(v.report);
    if (v.performer?.id) performers.set(v.performer.id, v.performer);
  }
  for (const a of abnormal) resources.push(a.observation);
  resources.push(...performers.values());
  const seen = new Set<string>();
  const entry: BundleEntry[] = [{ fullUrl: `${baseUrl}/Composition/${composition.id}`, resource: composition }];
  for (const r of resources) {
    const key = `${r.resourceType}/${r.id}`;
    if (seen.has(key)) continue;
    seen.add(key);
    entry.push({ fullUrl: `${baseUrl}/${key}`, resource: r });
  }
  return { resourceType: 'Bundle', identifier: { system: 'urn:ietf:rfc:3986', value: `urn:uuid:${randomUUID()}` }, type: 'document', timestamp: now.toISOString(), entry };
}

interface CategoryGroup {
  kind: string;
  category: { code: string; display: string; system?: string };
  views: ReportView[];
}

/**
 * Per kind and category, the latest report of each item (views come newest first): a report is kept in a
 * category when it carries an item of it no newer report carried. Reports outside the catalogue are grouped
 * under 其他, latest per report code.
 */
function latestPerItem(views: ReportView[]): CategoryGroup[] {
  const sorted = [...views].sort((a, b) => (b.report.issued ?? '').localeCompare(a.report.issued ?? ''));
  const groups = new Map<string, CategoryGroup & { seen: Set<string> }>();
  const group = (kind: string, category: CategoryGroup['category']) => {
    const key = `${kind}|${category.code}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { kind, category, views: [], seen: new Set() }));
    return g;
  };
  for (const v of sorted) {
    if (v.items.length === 0) {
      const g = group(v.kind ?? '检验', { code: 'other', display: '其他 (not in the recognition catalogue)' });
      const code = v.report.code?.coding?.[0] ? `${v.report.code.coding[0].system}|${v.report.code.coding[0].code}` : (v.report.code?.text ?? v.report.id!);
      if (!g.seen.has(code)) {
        g.seen.add(code);
        g.views.push(v);
      }
      continue;
    }
    for (const { item } of v.items) {
      const g = group(item.kind, { code: item.field.code, display: item.field.display ?? item.field.code, system: item.coding.system });
      if (g.seen.has(item.code)) continue;
      g.seen.add(item.code);
      if (!g.views.includes(v)) g.views.push(v);
    }
  }
  return [...groups.values()].map(({ seen: _seen, ...g }) => g);
}

function uniqueViews(views: ReportView[]): ReportView[] {
  return [...new Map(views.map((v) => [v.report.id, v])).values()];
}

const reportRef = (v: ReportView, display?: string): Reference => ({
  reference: `DiagnosticReport/${v.report.id}`,
  ...(display ?? v.report.code?.text ?? v.report.code?.coding?.[0]?.display ? { display: display ?? v.report.code?.text ?? v.report.code?.coding?.[0]?.display } : {}),
});

function kindSection(k: (typeof KINDS)[number], groups: CategoryGroup[]): CompositionSection {
  if (groups.length === 0) return empty(k.title, { coding: [k.code] }, `无${k.kind}结果`);
  return {
    title: k.title,
    code: { coding: [k.code] },
    text: narrative(`${k.kind}：${groups.length} 个类别的最新结果`),
    section: groups.map((g) => ({
      title: g.category.display,
      code: { coding: [{ ...(g.category.system ? { system: g.category.system } : {}), code: g.category.code, display: g.category.display }] },
      text: table(['报告', '机构', '报告时间', '异常项'], g.views.map((v) => [title(v), v.performer?.name ?? '', day(v.report.issued), String(v.abnormalCount)])),
      entry: g.views.map((v) => reportRef(v)),
    })),
  };
}

function abnormalSection(abnormal: Array<{ observation: Observation; critical: boolean; view: ReportView }>): CompositionSection {
  const code = { coding: [{ system: SUMMARY_SECTION_SYSTEM, code: 'abnormal', display: '异常结果' }] };
  if (abnormal.length === 0) return empty('异常结果 (Abnormal results)', code, '最新结果中无异常项');
  return {
    title: '异常结果 (Abnormal results)',
    code,
    text: table(
      ['项目', '结果', '标识', '危急值', '报告'],
      abnormal.map((a) => [a.observation.code?.text ?? a.observation.code?.coding?.[0]?.display ?? '', valueText(a.observation) ?? '', interpretationCodes(a.observation).join(','), a.critical ? '是' : '', title(a.view)])
    ),
    entry: abnormal.map((a) => ({ reference: `Observation/${a.observation.id}`, ...(a.observation.code?.text ? { display: a.observation.code.text } : {}) })),
  };
}

function recognisableSection(views: ReportView[], requester: Reference | undefined): CompositionSection {
  const code = { coding: [{ system: SUMMARY_SECTION_SYSTEM, code: 'recognisable', display: '可互认结果' }] };
  if (!requester) return empty('可互认结果 (Recognisable results)', code, '未指定请求机构，未判断互认', 'notasked');
  if (views.length === 0) return empty('可互认结果 (Recognisable results)', code, `对${requester.display ?? '请求机构'}无可互认结果`);
  return {
    title: '可互认结果 (Recognisable results)',
    code,
    text: table(['报告', '机构', '报告时间', '剩余天数'], views.map((v) => [title(v), v.performer?.name ?? '', day(v.report.issued), v.daysRemaining === undefined ? '长期有效' : String(v.daysRemaining)])),
    entry: views.map((v) => ({
      ...reportRef(v, `${title(v)}：${v.daysRemaining === undefined ? '长期有效' : `剩余 ${v.daysRemaining} 天`}`),
      ...(v.daysRemaining !== undefined ? { extension: [{ url: DAYS_REMAINING_EXTENSION, valueInteger: v.daysRemaining }] } : {}),
    })),
  };
}

function empty(title: string, code: CompositionSection['code'], text: string, reason = 'nilknown'): CompositionSection {
  return { title, code, text: narrative(text), emptyReason: { coding: [{ system: EMPTY_REASON, code: reason }] } };
}

const title = (v: ReportView) => v.report.code?.text ?? v.report.code?.coding?.[0]?.display ?? v.items[0]?.item.coding.display ?? '报告';
const day = (iso: string | undefined) => (iso ? iso.slice(0, 10) : '');

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function narrative(text: string): CompositionSection['text'] {
  return { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml"><p>${esc(text)}</p></div>` };
}

function table(head: string[], rows: string[][]): CompositionSection['text'] {
  const tr = (cells: string[], tag: string) => `<tr>${cells.map((c) => `<${tag}>${esc(c)}</${tag}>`).join('')}</tr>`;
  return { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml"><table><thead>${tr(head, 'th')}</thead><tbody>${rows.map((r) => tr(r, 'td')).join('')}</tbody></table></div>` };
}
