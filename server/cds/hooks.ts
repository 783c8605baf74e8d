/**
 * Answering a hook call: resolve the requester and the patient on the platform, run the recognition service
 * (recognition check for patient-view, duplicate check for order-select / order-sign), build the cards, and
 * write the recognition record with them (server/cds/records.ts). Bad input is a 4xx naming the input at
 * fault; a patient the platform does not know, or a call without ServiceRequests, gets no cards and writes
 * nothing.
 */
import { randomUUID } from 'node:crypto';
import type { ServiceRequest } from '@medplum/fhirtypes';
import type { Repository } from '../fhir/repository.ts';
import { fail, type FhirError } from '../fhir/errors.ts';
import type { Principal } from '../http/auth.ts';
import { duplicateCheck, recognitionCheck, RecognitionError, type DuplicateItem } from '../recognition/service.ts';
import { duplicateOrderCard, encounterCard, type CdsCard, type DraftOrderView, type PlannedCard } from './cards.ts';
import { captureReminder, withCards } from './records.ts';
import { parseHookRequest, type DraftOrder, type HookRequest } from './request.ts';
import { patientOf, requesterOf, type ResolvedRequester } from './resolve.ts';
import type { CdsServiceDefinition } from './services.ts';

export interface CdsEnv {
  repo: Repository;
  principal?: Principal;
  /** Where the app lives, for links: `${publicBase}/app/reports/{id}`. */
  publicBase: string;
  /** The clock (tests); default now. */
  now?: Date;
}

export interface HookResponse {
  cards: CdsCard[];
}

export async function callService(env: CdsEnv, service: CdsServiceDefinition, body: unknown): Promise<HookResponse> {
  const req = parseHookRequest(service, body);
  const requester = await requesterOf(env.repo, env.principal, req);
  if (service.hook !== 'patient-view' && req.orders.length === 0) return { cards: [] };
  const patient = await patientOf(env.repo, req);
  if (!patient) return { cards: [] };
  const capture = captureReminder(env.repo);
  const ctx = { repo: capture.repo, principal: env.principal, now: env.now };
  let planned: PlannedCard[];
  try {
    if (service.hook === 'patient-view') {
      const result = await recognitionCheck(ctx, { patient: patient.selector, requester: requester.reference });
      planned = result.exists ? [encounterCard(randomUUID(), env.publicBase, result.results)] : [];
    } else {
      const orders: ServiceRequest[] = req.orders.map((o) => ({ ...o.order, subject: patient.subject as ServiceRequest['subject'] }));
      const result = await duplicateCheck(ctx, { orders, requester: requester.reference, patients: patient.selector.resolved });
      planned = orderCards(env.publicBase, req.orders, result.items);
    }
  } catch (err) {
    if (err instanceof RecognitionError) throw toCdsError(err, req, requester);
    throw err;
  }
  const reminder = capture.reminder();
  if (!reminder) throw new Error('The recognition service wrote no reminder');
  await env.repo.create(withCards(reminder, planned), { id: reminder.id, own: true });
  return { cards: planned.map((p) => p.card) };
}

/** One card per draft order that recognisable results cover; items keep their index (= evidence entry). */
function orderCards(publicBase: string, orders: DraftOrder[], items: DuplicateItem[]): PlannedCard[] {
  const out: PlannedCard[] = [];
  orders.forEach((o, i) => {
    const mine = items.map((item, index) => ({ index, item })).filter((x) => x.item.orderIndex === i);
    const view: DraftOrderView = { id: o.order.id, name: orderName(o.order, mine.map((x) => x.item)), items: mine };
    const card = duplicateOrderCard(randomUUID(), publicBase, view);
    if (card) out.push(card);
  });
  return out;
}

function orderName(order: ServiceRequest, items: DuplicateItem[]): string {
  return order.code?.text ?? order.code?.coding?.find((c) => c.display)?.display ?? items.map((i) => i.code.display ?? i.code.code).join('、');
}

/** A recognition service error, with the CDS request's input at fault as the expression. */
function toCdsError(err: RecognitionError, req: HookRequest, requester: ResolvedRequester): FhirError {
  let expression: string | undefined;
  switch (err.param) {
    case 'requester':
      expression = requester.expression;
      break;
    case 'order': {
      const entry = err.index !== undefined ? req.orders[err.index]?.entryIndex : undefined;
      expression = entry === undefined ? 'context.draftOrders' : `context.draftOrders.entry[${entry}]${err.path ? `.${err.path}` : '.resource'}`;
      break;
    }
    case 'patient':
    case 'identifier':
      expression = 'context.patientId';
      break;
  }
  return fail(err.status, err.code, err.message, expression);
}
