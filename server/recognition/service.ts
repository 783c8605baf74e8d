/**
 * The recognition service: the public face that the FHIR operations (and, later, the CDS Hooks services)
 * call. It does the I/O through the Repository — find the patient, the requester, the patient's reports with
 * their Observations and performing institutions (a fixed, small number of queries whatever the number of
 * reports) — leaves the judging to the pure rules (rules.ts, facts.ts), and writes the records
 * (DetectedIssue reminders and decisions, AuditEvent access records).
 *
 *   recognitionCheck()  — at an encounter: the patient's recognisable results; writes an encounter reminder
 *   duplicateCheck()    — at order saving: per ordered item, the recognisable results covering it; writes a
 *                         duplicate-order reminder
 *   recordDecision()    — the doctor's decision on a reminder (DetectedIssue.mitigation)
 *   patientReports(), viewReport() — report viewing; each writes an access record
 *
 * Bad input is a RecognitionError naming the input at fault (param, index, path); callers map it to their
 * protocol (an OperationOutcome with a FHIRPath expression for the FHIR operations). Bad input never writes.
 */
import type {
  CodeableConcept,
  Coding,
  DetectedIssue,
  DiagnosticReport,
  Observation,
  OperationOutcomeIssue,
  Organization,
  Patient,
  Reference,
  Resource,
  ServiceRequest,
} from '@medplum/fhirtypes';
import type { Principal } from '../http/auth.ts';
import { prepared } from '../db/database.ts';
import type { Repository } from '../fhir/repository.ts';
import { FhirError, statusOf } from '../fhir/errors.ts';
import { parseSearch } from '../fhir/search/parse.ts';
import { parseReference } from '../fhir/search/references.ts';
import { checkResource } from '../fhir/validate.ts';
import { LEGACY_SYSTEM, NATIONAL_SYSTEM, REASON_SYSTEM } from '../terminology/canonical.ts';
import { terminology } from '../terminology/load.ts';
import { CatalogueView, currentCatalogue, type CatalogueEntry, type Token } from './catalogue.ts';
import {
  candidatesOf,
  cityOfDistrict,
  districtOf,
  hrMarkOf,
  isAbnormal,
  isCritical,
  itemsOfReport,
  kindOfReport,
  performerId,
  refId,
  resultIds,
  type Candidate,
  type LoadedReport,
  type Requester,
} from './facts.ts';
import {
  accessRecord,
  decisionMitigation,
  describe,
  encounterDetail,
  isRecognitionRecord,
  reminder,
  whyNot,
  type Decision,
} from './records.ts';
import { EXT } from '../profiles/canonical.ts';
import type { Verdict } from './rules.ts';

/** The most recent reports of a patient that a check considers. */
export const MAX_REPORTS = 500;
/** Longest comment of a decision (reason 08 requires one). */
export const MAX_COMMENT = 200;

// ---------------------------------------------------------------------------------------------------
// errors and pluggable parts

export class RecognitionError extends Error {
  constructor(
    readonly status: number,
    readonly code: OperationOutcomeIssue['code'],
    message: string,
    /** The input at fault (a parameter name of the operations). */
    readonly param?: string,
    /** Which repetition of the input (e.g. the second `order`). */
    readonly index?: number,
    /** A FHIRPath below the input, e.g. `resource.code.coding[0]`. */
    readonly path?: string
  ) {
    super(message);
  }
}

/** Hash consistency of a report with the chain (DESIGN.md §4). */
export type HashStatus = 'consistent' | 'inconsistent' | 'pending' | 'unanchored';
export type HashStatusProvider = (reports: DiagnosticReport[], repo: Repository) => Promise<Map<string, HashStatus>>;

const unanchored: HashStatusProvider = async (reports) => new Map(reports.map((r) => [r.id as string, 'unanchored' as const]));
let hashStatusProvider: HashStatusProvider = unanchored;

/** Plugs in the chain provenance's verdict on each report (default: every report is `unanchored`). */
export function setHashStatusProvider(provider: HashStatusProvider | undefined): void {
  hashStatusProvider = provider ?? unanchored;
}

/**
 * The requesting institution when the request names none: the caller's own institution (a CDS client's,
 * from its registration; the bootstrap token has none).
 */
export function defaultRequester(principal: Principal | undefined): Reference | undefined {
  const institution = principal?.institution;
  return institution ? { reference: institution.startsWith('Organization') ? institution : `Organization/${institution}` } : undefined;
}

// ---------------------------------------------------------------------------------------------------
// inputs and outputs

export interface ServiceContext {
  repo: Repository;
  principal?: Principal;
  /** The clock (tests); default now. */
  now?: Date;
}

/** A patient: by id, by reference (literal, conditional `Patient?identifier=…`, or logical), or by identifier. */
export interface PatientSelector {
  id?: string;
  reference?: Reference;
  identifier?: { system?: string; value: string };
}

export interface ResultSummary {
  report: Reference;
  item: Coding;
  performer?: Reference;
  issued?: string;
  /** Whole days left in the window; absent for items that never expire. */
  daysRemaining?: number;
  expires?: string;
  hrMark?: string;
  hashStatus: HashStatus;
  abnormalCount: number;
}

export interface RecognitionCheckInput {
  patient: PatientSelector;
  requester?: Reference;
  /** Catalogue groupings (kind, field, category: code or name) or report categories (system|code). */
  categories?: Token[];
  /** Items: platform, national, legacy or LOINC codes. */
  codes?: Token[];
}

export interface RecognitionCheckResult {
  exists: boolean;
  results: ResultSummary[];
  reminder: DetectedIssue;
  patient: Reference;
  requester: Reference;
  /** The judged candidates (recognisable and not), for callers that explain more (CDS cards). */
  candidates: Candidate[];
}

export interface DuplicateCheckInput {
  /** ServiceRequests (not stored); all for the same patient. */
  orders: unknown[];
  requester?: Reference;
}

export interface DuplicateItem {
  /** The order's id, or its position (0-based) among the orders. */
  order: string;
  orderIndex: number;
  code: Coding;
  duplicate: boolean;
  matches: ResultSummary[];
  /** zh-CN: why the near-matches do not count (or that there is none); absent when duplicate. */
  reason?: string;
  /** The near-matches (same item, not recognisable) with their verdicts. */
  nearMatches: Candidate[];
}

export interface DuplicateCheckResult {
  items: DuplicateItem[];
  reminder: DetectedIssue;
  patient: Reference;
  requester: Reference;
}

export interface DecisionRequest {
  reminderId: string;
  decision: string;
  reason?: Coding;
  comment?: string;
  report?: Reference;
  author?: Reference;
}

// ---------------------------------------------------------------------------------------------------
// recognition check

export async function recognitionCheck(ctx: ServiceContext, input: RecognitionCheckInput): Promise<RecognitionCheckResult> {
  const now = ctx.now ?? new Date();
  const catalogue = currentCatalogue();
  const requesterRef = requireRequester(ctx, input.requester);
  const itemFilter = itemCodes(catalogue, input.codes ?? [], 'code');
  const categoryFilter = categoryMatcher(catalogue, input.categories ?? []);
  const { patients, requester, loaded } = await patientRequesterReports(ctx.repo, input.patient, requesterRef, { param: input.patient.identifier ? 'identifier' : 'patient' });
  const candidates = candidatesOf(loaded, catalogue, requester.institution, now).filter(
    (c) => (!itemFilter || itemFilter.has(c.item.code)) && categoryFilter(c)
  );
  const recognisable = candidates.filter((c) => c.verdict.recognisable);
  const results = await summaries(ctx.repo, recognisable);
  const patient = { reference: `Patient/${patients[0].id}` };
  const written = await ctx.repo.create(
    reminder({ kind: 'encounter-reminder', patient, requester: requester.reference, implicated: uniqueReports(recognisable), detail: encounterDetail(recognisable), now })
  );
  return { exists: results.length > 0, results, reminder: written.resource as DetectedIssue, patient, requester: requester.reference, candidates };
}

// ---------------------------------------------------------------------------------------------------
// duplicate check

interface ParsedOrder {
  index: number;
  order: ServiceRequest;
  items: CatalogueEntry[];
  /** The ordered coding shown when no catalogue item was found. */
  firstCoding: Coding;
}

export async function duplicateCheck(ctx: ServiceContext, input: DuplicateCheckInput): Promise<DuplicateCheckResult> {
  const now = ctx.now ?? new Date();
  const catalogue = currentCatalogue();
  const requesterRef = requireRequester(ctx, input.requester);
  if (input.orders.length === 0) throw new RecognitionError(400, 'required', '$duplicate-check needs at least one order (a ServiceRequest)', 'order');
  const parsed = input.orders.map((o, i) => parseOrder(catalogue, o, i));
  const selector = sameSubject(parsed);
  const { patients, requester, loaded } = await patientRequesterReports(ctx.repo, selector, requesterRef, { param: 'order', index: 0, path: 'resource.subject' });
  const candidates = candidatesOf(loaded, catalogue, requester.institution, now);
  const byItem = new Map<string, Candidate[]>();
  for (const c of candidates) byItem.set(c.item.code, [...(byItem.get(c.item.code) ?? []), c]);

  const allMatches = candidates.filter((c) => c.verdict.recognisable && parsed.some((p) => p.items.some((i) => i.code === c.item.code)));
  const summaryOf = new Map<Candidate, ResultSummary>();
  (await summaries(ctx.repo, allMatches)).forEach((s, i) => summaryOf.set(allMatches[i], s));

  const items: DuplicateItem[] = [];
  for (const p of parsed) {
    const orderKey = p.order.id ?? String(p.index);
    if (p.items.length === 0) {
      items.push({ order: orderKey, orderIndex: p.index, code: p.firstCoding, duplicate: false, matches: [], reason: '该项目不在互认目录中，不适用互认', nearMatches: [] });
      continue;
    }
    for (const item of p.items) {
      const same = byItem.get(item.code) ?? [];
      const matches = same.filter((c) => c.verdict.recognisable);
      const near = same.filter((c) => !c.verdict.recognisable);
      items.push({
        order: orderKey,
        orderIndex: p.index,
        code: item.coding,
        duplicate: matches.length > 0,
        matches: matches.map((c) => summaryOf.get(c) as ResultSummary),
        ...(matches.length > 0 ? {} : { reason: near.length > 0 ? near.map(whyNot).join('。') : '未找到该患者此项目的既往结果' }),
        nearMatches: near,
      });
    }
  }
  const duplicates = items.filter((i) => i.duplicate);
  const detail =
    duplicates.length === 0
      ? '开单项目均无可互认的既往结果。'
      : `开单项目中 ${duplicates.length} 项已有可互认结果：${duplicates
          .map((d) => `${d.code.display ?? d.code.code} — ${allMatches.filter((c) => c.item.code === d.code.code).map(describe).join('、')}`)
          .join('；')}。`;
  const ordered: CodeableConcept[] = parsed.flatMap((p) =>
    p.items.length > 0 ? p.items.map((i) => ({ coding: [i.coding], text: i.display })) : [{ coding: [p.firstCoding] }]
  );
  const patient = { reference: `Patient/${patients[0].id}` };
  const written = await ctx.repo.create(
    reminder({ kind: 'duplicate-order-reminder', patient, requester: requester.reference, implicated: uniqueReports(allMatches), ordered, detail, now })
  );
  return { items, reminder: written.resource as DetectedIssue, patient, requester: requester.reference };
}

function parseOrder(catalogue: CatalogueView, raw: unknown, index: number): ParsedOrder {
  const fail = (message: string, path = 'resource', code: OperationOutcomeIssue['code'] = 'invalid') => new RecognitionError(400, code, message, 'order', index, path);
  if (!raw || typeof raw !== 'object' || Array.isArray(raw) || (raw as { resourceType?: unknown }).resourceType !== 'ServiceRequest') {
    throw fail('Each order must be a ServiceRequest resource');
  }
  const order = raw as ServiceRequest;
  const error = checkResource(order).find((i) => i.severity === 'error' || i.severity === 'fatal');
  if (error) {
    const where = error.expression?.[0]?.replace(/^ServiceRequest/, 'resource') ?? 'resource';
    throw fail(`Invalid order: ${error.details?.text ?? 'invalid ServiceRequest'}`, where, error.code);
  }
  const codings = order.code?.coding ?? [];
  if (codings.length === 0) throw fail('The order has no code (ServiceRequest.code.coding)', 'resource.code', 'required');
  if (!order.subject) throw fail('The order has no subject (the patient)', 'resource.subject', 'required');
  const items = new Map<string, CatalogueEntry>();
  codings.forEach((coding, j) => {
    const r = catalogue.resolve(coding);
    if ('invalid' in r) throw fail(`Unknown ordered code: ${r.invalid}`, `resource.code.coding[${j}]`, 'code-invalid');
    for (const item of r.items) items.set(item.code, item);
  });
  return { index, order, items: [...items.values()], firstCoding: pick(codings[0]) };
}

function sameSubject(orders: ParsedOrder[]): PatientSelector {
  const key = (r: Reference) => r.reference ?? `${r.identifier?.system ?? ''}|${r.identifier?.value ?? ''}`;
  const first = orders[0].order.subject as Reference;
  for (const o of orders.slice(1)) {
    if (key(o.order.subject as Reference) !== key(first)) {
      throw new RecognitionError(400, 'invalid', 'All orders of one $duplicate-check must be for the same patient', 'order', o.index, 'resource.subject');
    }
  }
  return { reference: first };
}

// ---------------------------------------------------------------------------------------------------
// decisions

export async function recordDecision(ctx: ServiceContext, input: DecisionRequest): Promise<DetectedIssue> {
  const now = ctx.now ?? new Date();
  if (input.decision !== 'recognised' && input.decision !== 'not-recognised') {
    throw new RecognitionError(400, 'code-invalid', `decision must be recognised or not-recognised, not '${String(input.decision).slice(0, 40)}'`, 'decision');
  }
  const decision = input.decision as Decision;
  let reason: Coding | undefined;
  const comment = input.comment?.trim() ? input.comment.trim() : undefined;
  if (comment && [...comment].length > MAX_COMMENT) throw new RecognitionError(400, 'too-long', `The comment has ${[...comment].length} characters; at most ${MAX_COMMENT}`, 'comment');
  if (decision === 'recognised') {
    if (input.reason) throw new RecognitionError(400, 'invalid', 'A reason is given only when the result is not recognised', 'reason');
  } else {
    if (!input.reason?.code) throw new RecognitionError(400, 'required', 'A not-recognised decision needs a reason code (不予互认原因)', 'reason');
    if (input.reason.system !== undefined && input.reason.system !== REASON_SYSTEM) {
      throw new RecognitionError(400, 'code-invalid', `The reason must be a code of ${REASON_SYSTEM}`, 'reason');
    }
    const cs = terminology.codeSystem(REASON_SYSTEM);
    const concept = cs?.get(input.reason.code);
    if (!cs || !concept) throw new RecognitionError(400, 'code-invalid', `Unknown not-recognised reason '${input.reason.code.slice(0, 20)}'`, 'reason');
    const textRequired = concept.properties.some((p) => p.code === 'textRequired' && p.valueBoolean === true);
    const max = concept.properties.find((p) => p.code === 'maxTextLength')?.valueInteger;
    if (textRequired && !comment) throw new RecognitionError(400, 'required', `Reason ${concept.code} (${concept.display}) needs a comment of at most ${max ?? MAX_COMMENT} characters`, 'comment');
    if (max !== undefined && comment && [...comment].length > max) throw new RecognitionError(400, 'too-long', `The comment has more than ${max} characters`, 'comment');
    reason = { system: REASON_SYSTEM, code: concept.code, display: concept.display };
  }
  if (input.author && !['Practitioner', 'PractitionerRole'].includes(parseReference(input.author.reference ?? '')?.type ?? '')) {
    throw new RecognitionError(400, 'invalid', 'author must refer to a Practitioner or PractitionerRole', 'author');
  }
  const attempt = () =>
    ctx.repo.transaction(async (repo) => {
      let issue: DetectedIssue;
      try {
        issue = (await repo.read('DetectedIssue', input.reminderId)) as DetectedIssue;
      } catch (err) {
        if (statusOf(err) === 404 || statusOf(err) === 410) throw new RecognitionError(404, 'not-found', `No reminder DetectedIssue/${input.reminderId.slice(0, 64)}`, 'reminder');
        throw err;
      }
      if (!isRecognitionRecord(issue)) throw new RecognitionError(400, 'invalid', `DetectedIssue/${issue.id} is not a recognition reminder`, 'reminder');
      const implicated = (issue.implicated ?? []).map((r) => refId(r, 'DiagnosticReport')).filter(Boolean);
      if (implicated.length === 0) throw new RecognitionError(400, 'business-rule', 'The reminder names no recognisable result: there is nothing to decide', 'reminder');
      let report: Reference | undefined;
      if (input.report) {
        const id = refId(input.report, 'DiagnosticReport');
        if (!id || !implicated.includes(id)) throw new RecognitionError(400, 'invalid', 'report must be one of the reports the reminder implicates', 'report');
        report = { reference: `DiagnosticReport/${id}` };
      }
      const mitigation = decisionMitigation({ decision, reason, comment, report, author: input.author, now });
      const updated = await repo.update({ ...issue, mitigation: [...(issue.mitigation ?? []), mitigation] }, { ifMatch: issue.meta?.versionId });
      return updated.resource as DetectedIssue;
    });
  try {
    return await attempt();
  } catch (err) {
    if (statusOf(err) === 412) return attempt(); // a concurrent decision on the same reminder: read again
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------
// report viewing

export interface ReportItemView {
  item: CatalogueEntry;
  verdict?: Verdict;
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
  const loaded = await loadReports(ctx.repo, patients.map((p) => p.id as string));
  const views = loaded
    .map((l) => reportView(l, catalogue, requester?.institution, now))
    .filter((v) => kinds.length === 0 || (v.kind !== undefined && kinds.includes(v.kind)))
    .filter((v) => (input.categories ?? []).length === 0 || v.items.some((i) => categoryFilter({ report: v.report, item: i.item })) || (v.items.length === 0 && categoryFilter({ report: v.report })));
  await recordAccess(ctx, '$reports', [{ reference: `Patient/${patients[0].id}` }], requester?.reference);
  return { total: views.length, reports: views.slice(input.offset, input.offset + input.count) };
}

export interface ReportDetail extends ReportView {
  observations: Observation[];
  abnormal: { observation: Observation; critical: boolean }[];
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
  const view = reportView({ report, observations, performer: orgs[0] }, currentCatalogue(), requester?.institution, now);
  const entities: Reference[] = [{ reference: `DiagnosticReport/${report.id}` }];
  const subject = refId(report.subject, 'Patient');
  if (subject) entities.push({ reference: `Patient/${subject}` });
  await recordAccess(ctx, '$view', entities, requester?.reference);
  return {
    ...view,
    observations,
    abnormal: observations.filter(isAbnormal).map((o) => ({ observation: o, critical: isCritical(o) })),
  };
}

function reportView(l: LoadedReport, catalogue: CatalogueView, requester: Requester | undefined, now: Date): ReportView {
  const items = itemsOfReport(l.report, l.observations, catalogue);
  const judged = requester ? candidatesOf([l], catalogue, requester, now) : [];
  const itemViews: ReportItemView[] = items.map(({ item }) => ({ item, ...(requester ? { verdict: judged.find((c) => c.item.code === item.code)?.verdict } : {}) }));
  const recognisable = judged.filter((c) => c.verdict.recognisable);
  const days = recognisable.map((c) => c.verdict.daysRemaining).filter((d): d is number => d !== undefined);
  return {
    report: l.report,
    performer: l.performer,
    kind: kindOfReport(l.report, items.map((i) => i.item)),
    items: itemViews,
    hrMark: hrMarkOf(l.report),
    abnormalCount: l.observations.filter(isAbnormal).length,
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
  await ctx.repo.create(accessRecord({ principalId: ctx.principal?.id ?? 'unknown', requester, operation, entities, now: ctx.now ?? new Date() }));
}

// ---------------------------------------------------------------------------------------------------
// loading

function requireRequester(ctx: ServiceContext, given: Reference | undefined): Reference {
  const ref = given ?? defaultRequester(ctx.principal);
  if (!ref) throw new RecognitionError(400, 'required', 'requester (the requesting institution, Reference(Organization)) is required', 'requester');
  return ref;
}

/** Escapes a search value (`,` `|` `$` `\`). */
function esc(value: string): string {
  return value.replace(/([,|$\\])/g, '\\$1');
}

async function byIdentifier(repo: Repository, type: string, system: string | undefined, value: string, limit: number): Promise<string[]> {
  const req = parseSearch(type, [['identifier', system !== undefined ? `${esc(system)}|${esc(value)}` : esc(value)], ['_count', String(limit)], ['_sort', '_id']]);
  const bundle = await repo.search(req, '');
  return (bundle.entry ?? []).map((e) => e.resource?.id as string).filter(Boolean);
}

/** Reads `Type?identifier=sys|value` from a conditional reference string, if it is one. */
function conditionalIdentifier(reference: string, type: string): { system?: string; value: string } | undefined {
  if (!reference.startsWith(`${type}?`)) return undefined;
  const q = new URLSearchParams(reference.slice(type.length + 1));
  const keys = [...q.keys()];
  const v = q.get('identifier');
  if (keys.length !== 1 || !v) return undefined;
  const i = v.indexOf('|');
  return i < 0 ? { value: v } : { system: v.slice(0, i) || undefined, value: v.slice(i + 1) };
}

/**
 * The Patient(s) a selector names. By identifier every Patient carrying it is returned (one person may be
 * registered by several institutions); by id or literal reference exactly one.
 */
export async function resolvePatients(repo: Repository, sel: PatientSelector, param: string, index?: number, path?: string): Promise<Patient[]> {
  const notFound = (what: string) => new RecognitionError(404, 'not-found', `No patient ${what}`, param, index, path);
  let id = sel.id;
  let identifier = sel.identifier;
  const ref = sel.reference;
  if (ref) {
    if (ref.reference) {
      const conditional = ref.reference.includes('?');
      identifier = conditional ? conditionalIdentifier(ref.reference, 'Patient') : undefined;
      const parsed = conditional ? undefined : parseReference(ref.reference);
      if (parsed?.type === 'Patient') id = parsed.id;
      else if (!identifier) throw new RecognitionError(400, 'invalid', 'The patient must be a reference to a Patient (Patient/[id] or Patient?identifier=system|value)', param, index, path);
    } else if (ref.identifier?.value) {
      identifier = { system: ref.identifier.system, value: ref.identifier.value };
    } else throw new RecognitionError(400, 'invalid', 'The patient reference has neither a reference nor an identifier', param, index, path);
  }
  if (id) {
    const found = (await repo.readMany('Patient', [id])) as Patient[];
    if (found.length === 0) throw notFound(`Patient/${id.slice(0, 64)}`);
    return found;
  }
  if (identifier) {
    if (!identifier.value.trim()) throw new RecognitionError(400, 'invalid', 'The patient identifier has no value', param, index, path);
    const ids = await byIdentifier(repo, 'Patient', identifier.system, identifier.value, 20);
    if (ids.length === 0) throw notFound('with that identifier');
    return (await repo.readMany('Patient', ids)) as Patient[];
  }
  throw new RecognitionError(400, 'required', 'A patient is required: call Patient/[id]/$… or give patient or identifier', param, index, path);
}

export interface ResolvedRequester {
  organization: Organization;
  reference: Reference;
  institution: Requester;
}

export async function resolveRequester(repo: Repository, ref: Reference): Promise<ResolvedRequester> {
  const bad = (message: string) => new RecognitionError(400, 'invalid', message, 'requester');
  let id: string | undefined;
  if (ref.reference) {
    const conditional = ref.reference.includes('?');
    const ident = conditional ? conditionalIdentifier(ref.reference, 'Organization') : undefined;
    const parsed = conditional ? undefined : parseReference(ref.reference);
    if (parsed?.type === 'Organization') id = parsed.id;
    else if (ident) [id] = await byIdentifier(repo, 'Organization', ident.system, ident.value, 1);
    else throw bad('requester must be a reference to an Organization (Organization/[id] or Organization?identifier=system|value)');
  } else if (ref.identifier?.value) {
    [id] = await byIdentifier(repo, 'Organization', ref.identifier.system, ref.identifier.value, 1);
  } else throw bad('requester has neither a reference nor an identifier');
  const [organization] = id ? ((await repo.readMany('Organization', [id])) as Organization[]) : [];
  return requesterOf(organization);
}

/** The requesting institution as the rules need it; 404 when unknown, 422 without a district. */
function requesterOf(organization: Organization | undefined): ResolvedRequester {
  if (!organization) throw new RecognitionError(404, 'not-found', 'The requesting institution is not registered on the platform', 'requester');
  const district = districtOf(organization);
  if (!district) {
    throw new RecognitionError(422, 'business-rule', `Organization/${organization.id} has no district extension (${EXT.district}): its region, and so the recognition scope, is unknown`, 'requester');
  }
  const reference = { reference: `Organization/${organization.id}`, ...(organization.name ? { display: organization.name } : {}) };
  return { organization, reference, institution: { id: organization.id as string, city: cityOfDistrict(district) } };
}

/**
 * The patient's most recent reports (newest first, by `issued`, as `_sort=-issued` orders them) with their
 * Observations and performing institutions, in ONE statement (one round trip), whatever their number: the
 * reports through the `subject` reference index, their results and performers through the reports' own
 * reference index rows (`result` → Observation, `performer` → Organization). Rows come back tagged (0 report,
 * 1 Observation, 2 Organization) with the reports in order. It used to be three round trips (a search, then
 * the Observations and the Organizations) — on loopback the round trips, not the rows, were the cost.
 */
export const FACTS_SQL = prepared(`
WITH rep AS MATERIALIZED (
  SELECT r.id, r.content,
         row_number() OVER (ORDER BY (SELECT max(s.high) FROM idx_date s WHERE s.id = r.id AND s.type = r.type AND s.param = 'issued') DESC NULLS LAST,
                                     r.created, r.id) AS n
    FROM resource r
   WHERE r.type = 'DiagnosticReport' AND NOT r.deleted
     AND r.id IN (SELECT i.id FROM idx_reference i
                   WHERE i.target_id = ANY($1::text[]) AND i.param = 'subject' AND i.type = 'DiagnosticReport' AND i.target_type = 'Patient')
   ORDER BY n LIMIT $2),
refs AS MATERIALIZED (
  SELECT DISTINCT x.param, x.target_id FROM idx_reference x JOIN rep ON x.id = rep.id AND x.type = 'DiagnosticReport'
   WHERE (x.param = 'result' AND x.target_type = 'Observation') OR (x.param = 'performer' AND x.target_type = 'Organization'))
SELECT 0 AS k, rep.n, rep.content FROM rep
UNION ALL
SELECT CASE WHEN o.type = 'Observation' THEN 1 ELSE 2 END, 0, o.content
  FROM refs JOIN resource o ON o.id = refs.target_id AND o.type = CASE WHEN refs.param = 'result' THEN 'Observation' ELSE 'Organization' END
 WHERE NOT o.deleted
UNION ALL
SELECT 3, 0, p.content FROM resource p WHERE $3::boolean AND p.type = 'Patient' AND p.id = ANY($1::text[]) AND NOT p.deleted
UNION ALL
SELECT 4, 0, g.content FROM resource g WHERE g.type = 'Organization' AND g.id = $4::text AND NOT g.deleted
ORDER BY 1, 2`);

interface Facts {
  reports: LoadedReport[];
  /** With `withPatients`: the patients themselves (the ids that exist and are not deleted). */
  patients: Patient[];
  /** The Organization `requesterId` names, if it exists. */
  requester?: Organization;
}

async function queryFacts(repo: Repository, patientIds: string[], options: { withPatients?: boolean; requesterId?: string } = {}): Promise<Facts> {
  const rows = await repo.connection.query<{ k: number; content: Resource }>(FACTS_SQL, [patientIds, MAX_REPORTS, options.withPatients === true, options.requesterId ?? null]);
  const reports: DiagnosticReport[] = [];
  const obs = new Map<string, Observation>();
  const orgs = new Map<string, Organization>();
  const patients: Patient[] = [];
  let requester: Organization | undefined;
  for (const { k, content } of rows) {
    const kind = Number(k);
    if (kind === 0) reports.push(content as DiagnosticReport);
    else if (kind === 1) obs.set(content.id as string, content as Observation);
    else if (kind === 2) orgs.set(content.id as string, content as Organization);
    else if (kind === 3) patients.push(content as Patient);
    else requester = content as Organization;
  }
  return {
    patients,
    requester,
    reports: reports.map((report) => ({
      report,
      observations: resultIds(report).map((id) => obs.get(id)).filter((o): o is Observation => !!o),
      performer: orgs.get(performerId(report) ?? ''),
    })),
  };
}

/**
 * The patient(s), the requesting institution and the patient's reports. When both are named by literal id
 * (`Patient/[id]/$recognition-check?requester=Organization/[id]`, the usual call), one statement finds all
 * three; otherwise (identifiers, conditional references) the patient and the requester are resolved first.
 * Errors are the same either way (resolvePatients, resolveRequester).
 */
async function patientRequesterReports(
  repo: Repository,
  selector: PatientSelector,
  requesterRef: Reference,
  where: { param: string; index?: number; path?: string }
): Promise<{ patients: Patient[]; requester: ResolvedRequester; loaded: LoadedReport[] }> {
  const patientId = selector.id ?? literalId(selector.reference?.reference, 'Patient');
  const requesterId = literalId(requesterRef.reference, 'Organization');
  if (patientId === undefined || requesterId === undefined || selector.identifier) {
    const [patients, requester] = await Promise.all([resolvePatients(repo, selector, where.param, where.index, where.path), resolveRequester(repo, requesterRef)]);
    return { patients, requester, loaded: await loadReports(repo, patients.map((p) => p.id as string)) };
  }
  const facts = await queryFacts(repo, [patientId], { withPatients: true, requesterId });
  if (facts.patients.length === 0) throw new RecognitionError(404, 'not-found', `No patient Patient/${patientId.slice(0, 64)}`, where.param, where.index, where.path);
  return { patients: facts.patients, requester: requesterOf(facts.requester), loaded: facts.reports };
}

/** The id of a literal relative reference `Type/[id]` (not conditional), if it is one. */
function literalId(reference: string | undefined, type: string): string | undefined {
  if (!reference || reference.includes('?')) return undefined;
  const parsed = parseReference(reference);
  return parsed?.type === type ? parsed.id : undefined;
}

export async function loadReports(repo: Repository, patientIds: string[]): Promise<LoadedReport[]> {
  if (patientIds.length === 0) return [];
  return (await queryFacts(repo, patientIds)).reports;
}

// ---------------------------------------------------------------------------------------------------
// filters and outputs

function itemCodes(catalogue: CatalogueView, tokens: Token[], param: string): Set<string> | undefined {
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
function categoryMatcher(catalogue: CatalogueView, tokens: Token[]): (c: { report: DiagnosticReport; item?: CatalogueEntry }) => boolean {
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

async function summaries(repo: Repository, candidates: Candidate[]): Promise<ResultSummary[]> {
  const reports = [...new Map(candidates.map((c) => [c.report.id as string, c.report])).values()];
  const hashes = reports.length > 0 ? await hashStatusProvider(reports, repo) : new Map<string, HashStatus>();
  return candidates.map((c) => ({
    report: { reference: `DiagnosticReport/${c.report.id}`, ...(c.report.code?.text ? { display: c.report.code.text } : {}) },
    item: c.item.coding,
    ...(c.performer ? { performer: { reference: `Organization/${c.performer.id}`, ...(c.performer.name ? { display: c.performer.name } : {}) } } : {}),
    ...(c.report.issued ? { issued: c.report.issued } : {}),
    ...(c.verdict.daysRemaining !== undefined ? { daysRemaining: c.verdict.daysRemaining } : {}),
    ...(c.verdict.expires ? { expires: c.verdict.expires } : {}),
    ...(c.hrMark ? { hrMark: c.hrMark } : {}),
    hashStatus: hashes.get(c.report.id as string) ?? 'unanchored',
    abnormalCount: c.abnormalCount,
  }));
}

function uniqueReports(candidates: Candidate[]): Reference[] {
  return [...new Set(candidates.map((c) => c.report.id as string))].map((id) => ({ reference: `DiagnosticReport/${id}` }));
}

function pick(c: Coding): Coding {
  return { ...(c.system ? { system: c.system } : {}), ...(c.code ? { code: c.code } : {}), ...(c.display ? { display: c.display } : {}) };
}

/** Maps a RecognitionError to the FHIR error the operations throw (the expression built by `expr`). */
export function toFhirError(err: RecognitionError, expr: (param: string) => string): FhirError {
  const base = err.param ? expr(err.param) : undefined;
  const expression = base ? `${base}${err.index !== undefined ? `[${err.index}]` : ''}${err.path ? `.${err.path}` : ''}` : undefined;
  return new FhirError(err.status, {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code: err.code, details: { text: err.message }, ...(expression ? { expression: [expression] } : {}) }],
  });
}
