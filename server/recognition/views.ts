/**
 * Report viewing (报告调阅): a patient's reports across institutions and one report with its Observations and
 * abnormal items, judged for the requester when one is known; each view writes an access record (AuditEvent).
 */
import type { DiagnosticReport, Observation, Organization, Reference } from '@medplum/fhirtypes';
import { approvedMappingsOf, type ApprovedMapping } from '../dictionary/mappings.ts';
import { CatalogueView, currentCatalogue, type CatalogueEntry, type Token } from './catalogue.ts';
import { RecognitionError } from './errors.ts';
import {
  candidatesOf,
  hrMarkOf,
  isAbnormal,
  isCritical,
  itemsOfReport,
  kindOfReport,
  performerId,
  refId,
  resultIds,
  type LoadedReport,
  type Requester,
} from './facts.ts';
import { accessRecord, actingForAgent } from './records.ts';
import type { Verdict } from './rules.ts';
import { defaultRequester, type ServiceContext } from './model.ts';
import { resolvePatients, resolveRequester, type ResolvedRequester } from './patients.ts';
import { loadReports } from './facts-query.ts';
import { categoryMatcher } from './results.ts';

export interface ReportItemView {
  item: CatalogueEntry;
  verdict?: Verdict;
  /** The performer's approved dictionary entry, when only a local code carries the item. */
  mapping?: ApprovedMapping;
}

export interface ReportView {
  report: DiagnosticReport;
  performer?: Organization;
  kind?: string;
  items: ReportItemView[];
  hrMark?: string;
  abnormalCount: number;
  /** With a requester: whether any item is recognisable, and the fewest days left among those. */
  recognisable?: boolean;
  daysRemaining?: number;
  /** The abnormal results (interpretation H, L, A, HH, LL…), critical ones flagged. */
  abnormal: { observation: Observation; critical: boolean }[];
}

export interface PatientReportsInput {
  patientId: string;
  requester?: Reference;
  /** 检验 / 检查 (or LAB / EXAM). */
  kinds?: string[];
  categories?: Token[];
  count: number;
  offset: number;
}

export async function patientReports(ctx: ServiceContext, input: PatientReportsInput): Promise<{ total: number; reports: ReportView[] }> {
  const now = ctx.now ?? new Date();
  const catalogue = currentCatalogue();
  const kinds = (input.kinds ?? []).map((k, i) => kindOf(k, i));
  const categoryFilter = categoryMatcher(catalogue, input.categories ?? []);
  const requesterRef = input.requester ?? defaultRequester(ctx.principal);
  const [patients, requester] = await Promise.all([
    resolvePatients(ctx.repo, { id: input.patientId }, 'patient'),
    requesterRef ? resolveRequester(ctx.repo, requesterRef) : Promise.resolve(undefined),
  ]);
  const views = (await reportViewsOf(ctx, patients.map((p) => p.id as string), requester, now))
    .filter((v) => kinds.length === 0 || (v.kind !== undefined && kinds.includes(v.kind)))
    .filter((v) => (input.categories ?? []).length === 0 || v.items.some((i) => categoryFilter({ report: v.report, item: i.item })) || (v.items.length === 0 && categoryFilter({ report: v.report })));
  await recordAccess(ctx, '$reports', [{ reference: `Patient/${patients[0].id}` }], requester?.reference);
  return { total: views.length, reports: views.slice(input.offset, input.offset + input.count) };
}

/**
 * Every report of the patients, as views judged for the requester (when known), newest first; no access
 * record (the caller writes it: $reports, and the patient-record reads, patient-record.ts).
 */
export async function reportViewsOf(ctx: ServiceContext, patientIds: string[], requester: ResolvedRequester | undefined, now = ctx.now ?? new Date()): Promise<ReportView[]> {
  const catalogue = currentCatalogue();
  const loaded = await loadReports(ctx.repo, patientIds);
  return loaded.map((l) => reportView(l, catalogue, requester?.institution, now));
}

export interface ReportDetail extends ReportView {
  observations: Observation[];
}

export async function viewReport(ctx: ServiceContext, input: { reportId: string; requester?: Reference }): Promise<ReportDetail> {
  const now = ctx.now ?? new Date();
  const requesterRef = input.requester ?? defaultRequester(ctx.principal);
  const [report, requester] = await Promise.all([
    ctx.repo.read('DiagnosticReport', input.reportId) as Promise<DiagnosticReport>,
    requesterRef ? resolveRequester(ctx.repo, requesterRef) : Promise.resolve(undefined),
  ]);
  const [observations, orgs] = await Promise.all([
    ctx.repo.readMany('Observation', resultIds(report)) as Promise<Observation[]>,
    ctx.repo.readMany('Organization', [performerId(report)].filter((x): x is string => !!x)) as Promise<Organization[]>,
  ]);
  const order = resultIds(report);
  observations.sort((a, b) => order.indexOf(a.id as string) - order.indexOf(b.id as string));
  const localCodes = await approvedMappingsOf(ctx.repo.db, performerId(report));
  const view = reportView({ report, observations, performer: orgs[0], localCodes }, currentCatalogue(), requester?.institution, now);
  const entities: Reference[] = [{ reference: `DiagnosticReport/${report.id}` }];
  const subject = refId(report.subject, 'Patient');
  if (subject) entities.push({ reference: `Patient/${subject}` });
  await recordAccess(ctx, '$view', entities, requester?.reference);
  return {
    ...view,
    observations,
  };
}

function reportView(l: LoadedReport, catalogue: CatalogueView, requester: Requester | undefined, now: Date): ReportView {
  const items = itemsOfReport(l.report, l.observations, catalogue, l.localCodes);
  const judged = requester ? candidatesOf([l], catalogue, requester, now) : [];
  const itemViews: ReportItemView[] = items.map(({ item, mapping }) => ({
    item,
    ...(requester ? { verdict: judged.find((c) => c.item.code === item.code)?.verdict } : {}),
    ...(mapping ? { mapping } : {}),
  }));
  const recognisable = judged.filter((c) => c.verdict.recognisable);
  const days = recognisable.map((c) => c.verdict.daysRemaining).filter((d): d is number => d !== undefined);
  return {
    report: l.report,
    performer: l.performer,
    kind: kindOfReport(l.report, items.map((i) => i.item)),
    items: itemViews,
    hrMark: hrMarkOf(l.report),
    abnormalCount: l.observations.filter(isAbnormal).length,
    abnormal: l.observations.filter(isAbnormal).map((o) => ({ observation: o, critical: isCritical(o) })),
    ...(requester ? { recognisable: recognisable.length > 0 } : {}),
    ...(days.length > 0 ? { daysRemaining: Math.min(...days) } : {}),
  };
}

function kindOf(value: string, index: number): string {
  const v = value.trim().toUpperCase();
  if (v === 'LAB' || value.trim() === '检验') return '检验';
  if (v === 'EXAM' || value.trim() === '检查') return '检查';
  throw new RecognitionError(400, 'code-invalid', `kind must be 检验 (LAB) or 检查 (EXAM), not '${value.slice(0, 20)}'`, 'kind', index);
}

/** Writes an AuditEvent for a view (type rest / read; agent = the principal; no personal data). */
export async function recordAccess(ctx: ServiceContext, operation: string, entities: Reference[], requester?: Reference): Promise<void> {
  const actingFor = ctx.principal?.actingFor ? actingForAgent(ctx.principal.actingFor) : undefined;
  await ctx.repo.create(accessRecord({ principalId: ctx.principal?.id ?? 'unknown', ...(actingFor ? { actingFor } : {}), requester, operation, entities, now: ctx.now ?? new Date() }));
}

