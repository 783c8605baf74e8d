/**
 * The duplicate check (检验检查项目重复判断), at order saving: per ordered item, the recognisable results that
 * cover it, or why the near-matches do not count; writes the duplicate-order reminder.
 */
import type { CodeableConcept, Coding, DetectedIssue, OperationOutcomeIssue, Reference, ServiceRequest } from '@medplum/fhirtypes';
import { approvedMappingsOf, type ApprovedMapping, type ApprovedMappings } from '../dictionary/mappings.ts';
import { checkResource } from '../fhir/validate.ts';
import { CatalogueView, currentCatalogue, type CatalogueEntry } from './catalogue.ts';
import { RecognitionError } from './errors.ts';
import { candidatesOf, type Candidate } from './facts.ts';
import { describe, reminder, whyNot } from './records.ts';
import type { DuplicateCheckInput, DuplicateCheckResult, DuplicateItem, PatientSelector, ResultSummary, ServiceContext } from './model.ts';
import { assertOwnRequester, requireRequester } from './patients.ts';
import { patientRequesterReports } from './facts-query.ts';
import { pick, summaries, uniqueReports } from './results.ts';

interface ParsedOrder {
  index: number;
  order: ServiceRequest;
  items: CatalogueEntry[];
  /** The ordered coding shown when no catalogue item was found. */
  firstCoding: Coding;
  /** Set when the items come from a local code through the requester's approved dictionary entry. */
  mapping?: ApprovedMapping;
}

export async function duplicateCheck(ctx: ServiceContext, input: DuplicateCheckInput): Promise<DuplicateCheckResult> {
  const now = ctx.now ?? new Date();
  const catalogue = currentCatalogue();
  const requesterRef = requireRequester(ctx, input.requester);
  if (input.orders.length === 0) throw new RecognitionError(400, 'required', '$duplicate-check needs at least one order (a ServiceRequest)', 'order');
  const parsed = input.orders.map((o, i) => parseOrder(catalogue, o, i));
  const selector = input.patients?.length ? { ...sameSubject(parsed), resolved: input.patients } : sameSubject(parsed);
  const { patients, requester, loaded } = await patientRequesterReports(ctx.repo, selector, requesterRef, { param: 'order', index: 0, path: 'resource.subject' });
  await assertOwnRequester(ctx, requester.organization);
  ctx.found?.({ patients, requester });
  // orders coded with the requester's local codes: through its approved dictionary entries
  if (parsed.some((p) => p.items.length === 0)) {
    const local = await approvedMappingsOf(ctx.repo.db, requester.institution.id);
    for (const p of parsed) if (p.items.length === 0) Object.assign(p, localItems(catalogue, p.order, local));
  }
  const candidates = candidatesOf(loaded, catalogue, requester.institution, now);
  const byItem = new Map<string, Candidate[]>();
  for (const c of candidates) byItem.set(c.item.code, [...(byItem.get(c.item.code) ?? []), c]);

  const allMatches = candidates.filter((c) => c.verdict.recognisable && parsed.some((p) => p.items.some((i) => i.code === c.item.code)));
  const summaryOf = new Map<Candidate, ResultSummary>();
  summaries(allMatches).forEach((s, i) => summaryOf.set(allMatches[i], s));

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
        ...(p.mapping ? { orderMapping: p.mapping } : {}),
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
    reminder({ kind: 'duplicate-order-reminder', patient, requester: requester.reference, implicated: uniqueReports(allMatches), ordered, detail, now }),
    { own: true }
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

/** The items an order names by the requester's local codes (the first coding its approved entries map). */
function localItems(catalogue: CatalogueView, order: ServiceRequest, local: ApprovedMappings): { items: CatalogueEntry[]; mapping?: ApprovedMapping } {
  for (const coding of order.code?.coding ?? []) {
    const r = catalogue.resolve(coding, local);
    if ('items' in r && r.items.length > 0 && r.mapping) return { items: r.items, mapping: r.mapping };
  }
  return { items: [] };
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

