/**
 * Reading CDS Hooks 2.0 request bodies defensively: a hook invocation (hook, hookInstance, context, prefetch,
 * extension) and a feedback post. Pure; every fault is a 400 whose OperationOutcome expression is the JSON
 * path of the input at fault (e.g. `context.draftOrders.entry[1].resource`).
 */
import type { Bundle, Coding, Resource, ServiceRequest } from '@medplum/fhirtypes';
import { badRequest, fail } from '../fhir/errors.ts';
import type { CdsServiceDefinition } from './services.ts';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const REFERENCE = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/;
const ID = /^[A-Za-z0-9\-.]{1,64}$/;
const UUID = /^(urn:uuid:)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Most feedback entries accepted in one post. */
export const MAX_FEEDBACK = 100;

export interface DraftOrder {
  order: ServiceRequest;
  /** Its position in context.draftOrders.entry. */
  entryIndex: number;
}

export interface HookRequest {
  hookInstance: string;
  userId: string;
  userType: string;
  userLocalId: string;
  patientId: string;
  encounterId?: string;
  /** order-select / order-sign: the draft ServiceRequests to check (for order-select, the selected ones). */
  orders: DraftOrder[];
  /** Prefetched data by key: a resource, or null when the client had none; absent when not prefetched. */
  prefetch: Record<string, Resource | null>;
  extension: Json;
}

function str(value: unknown, path: string, required: true): string;
function str(value: unknown, path: string, required?: false): string | undefined;
function str(value: unknown, path: string, required = false): string | undefined {
  if (value === undefined) {
    if (required) throw fail(400, 'required', `${path} is required`, path);
    return undefined;
  }
  if (typeof value !== 'string' || value.trim() === '') throw badRequest(`${path} must be a non-empty string`, path);
  if (value.length > 1000) throw badRequest(`${path} is too long`, path);
  return value;
}

export function parseHookRequest(service: CdsServiceDefinition, body: unknown): HookRequest {
  if (!isObject(body)) throw badRequest('The body must be a CDS Hooks request: a JSON object with hook, hookInstance and context');
  const hook = str(body.hook, 'hook', true);
  if (hook !== service.hook) throw badRequest(`Service ${service.id} answers the ${service.hook} hook, not '${hook.slice(0, 40)}'`, 'hook');
  const hookInstance = str(body.hookInstance, 'hookInstance', true);
  str(body.fhirServer, 'fhirServer');
  if (body.fhirAuthorization !== undefined && !isObject(body.fhirAuthorization)) throw badRequest('fhirAuthorization must be an object', 'fhirAuthorization');
  if (body.fhirAuthorization !== undefined && body.fhirServer === undefined) throw badRequest('fhirServer is required when fhirAuthorization is given', 'fhirServer');
  const context = body.context;
  if (context === undefined) throw fail(400, 'required', 'context is required', 'context');
  if (!isObject(context)) throw badRequest('context must be an object', 'context');
  const userId = str(context.userId, 'context.userId', true);
  const user = REFERENCE.exec(userId);
  if (!user) throw badRequest('context.userId must be [ResourceType]/[id], e.g. PractitionerRole/123', 'context.userId');
  const patientId = str(context.patientId, 'context.patientId', true);
  if (!ID.test(patientId)) throw badRequest('context.patientId must be a FHIR id (Patient.id)', 'context.patientId');
  const encounterId = str(context.encounterId, 'context.encounterId');
  const extension = body.extension === undefined ? {} : body.extension;
  if (!isObject(extension)) throw badRequest('extension must be an object', 'extension');
  const prefetch = parsePrefetch(service, body.prefetch);
  let orders: DraftOrder[] = [];
  if (service.hook !== 'patient-view') {
    orders = draftServiceRequests(context.draftOrders, patientId);
    if (service.hook === 'order-select') orders = selected(context.selections, orders, context.draftOrders as Bundle);
  }
  return { hookInstance, userId, userType: user[1], userLocalId: user[2], patientId, encounterId, orders, prefetch, extension };
}

function parsePrefetch(service: CdsServiceDefinition, raw: unknown): Record<string, Resource | null> {
  if (raw === undefined) return {};
  if (!isObject(raw)) throw badRequest('prefetch must be an object', 'prefetch');
  const out: Record<string, Resource | null> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (!(key in service.prefetch)) continue; // data the service did not ask for is not used
    if (value === null) {
      out[key] = null;
      continue;
    }
    if (!isObject(value) || typeof value.resourceType !== 'string') throw badRequest(`prefetch.${key} must be a FHIR resource or null`, `prefetch.${key}`);
    out[key] = value as unknown as Resource;
  }
  return out;
}

/** The ServiceRequests among context.draftOrders (other kinds of order are not the platform's business). */
function draftServiceRequests(raw: unknown, patientId: string): DraftOrder[] {
  const path = 'context.draftOrders';
  if (raw === undefined) throw fail(400, 'required', `${path} is required (a Bundle of the draft orders)`, path);
  if (!isObject(raw) || raw.resourceType !== 'Bundle') throw badRequest(`${path} must be a FHIR Bundle`, path);
  const entries = raw.entry === undefined ? [] : raw.entry;
  if (!Array.isArray(entries)) throw badRequest(`${path}.entry must be an array`, `${path}.entry`);
  const orders: DraftOrder[] = [];
  entries.forEach((entry, i) => {
    const at = `${path}.entry[${i}].resource`;
    if (!isObject(entry) || !isObject(entry.resource) || typeof entry.resource.resourceType !== 'string') throw badRequest('Each entry of draftOrders must hold a resource', at);
    const resource = entry.resource as unknown as Resource;
    if (resource.resourceType !== 'ServiceRequest') return;
    const subject = resource.subject?.reference;
    if (subject !== undefined) {
      const m = typeof subject === 'string' ? REFERENCE.exec(subject) : null;
      if (!m || m[1] !== 'Patient' || m[2] !== patientId) throw badRequest('A draft order is for another patient than context.patientId', `${at}.subject`);
    }
    orders.push({ order: resource, entryIndex: i });
  });
  return orders;
}

/** order-select: only the newly selected orders (context.selections, e.g. ServiceRequest/123). */
function selected(raw: unknown, orders: DraftOrder[], bundle: Bundle): DraftOrder[] {
  const path = 'context.selections';
  if (raw === undefined) throw fail(400, 'required', `${path} is required`, path);
  if (!Array.isArray(raw) || raw.length === 0) throw badRequest(`${path} must be a non-empty array of references`, path);
  const keys = new Set<string>();
  raw.forEach((s, i) => {
    if (typeof s !== 'string' || !REFERENCE.test(s)) throw badRequest(`${path}[${i}] must be [ResourceType]/[id]`, `${path}[${i}]`);
    const inBundle = (bundle.entry ?? []).some((e) => e.resource && `${e.resource.resourceType}/${e.resource.id}` === s);
    if (!inBundle) throw badRequest(`${path}[${i}] names no resource of context.draftOrders`, `${path}[${i}]`);
    keys.add(s);
  });
  return orders.filter((o) => keys.has(`ServiceRequest/${o.order.id}`));
}

// ---------------------------------------------------------------------------------------------------
// feedback

export interface FeedbackEntry {
  card: string;
  outcome: 'accepted' | 'overridden';
  acceptedSuggestions: string[];
  reason?: Coding;
  comment?: string;
  outcomeTimestamp: Date;
}

/** How far in the future an outcome timestamp may be (clock skew). */
const SKEW_MS = 5 * 60_000;

export function parseFeedback(body: unknown, now: Date): FeedbackEntry[] {
  if (!isObject(body)) throw badRequest('The body must be a CDS Hooks feedback request: {"feedback": [ … ]}');
  const list = body.feedback;
  if (list === undefined) throw fail(400, 'required', 'feedback is required', 'feedback');
  if (!Array.isArray(list) || list.length === 0) throw badRequest('feedback must be a non-empty array', 'feedback');
  if (list.length > MAX_FEEDBACK) throw fail(400, 'too-costly', `At most ${MAX_FEEDBACK} feedback entries per request`, 'feedback');
  return list.map((raw, i) => {
    const at = `feedback[${i}]`;
    if (!isObject(raw)) throw badRequest('Each feedback entry must be an object', at);
    const card = str(raw.card, `${at}.card`, true);
    if (!UUID.test(card)) throw badRequest(`${at}.card must be the uuid of a card this service returned`, `${at}.card`);
    const outcome = str(raw.outcome, `${at}.outcome`, true);
    if (outcome !== 'accepted' && outcome !== 'overridden') throw badRequest(`${at}.outcome must be accepted or overridden`, `${at}.outcome`);
    const stamp = str(raw.outcomeTimestamp, `${at}.outcomeTimestamp`, true);
    const when = new Date(stamp);
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(stamp) || Number.isNaN(when.getTime())) {
      throw badRequest(`${at}.outcomeTimestamp must be an ISO 8601 date and time with a zone, e.g. 2024-06-17T03:12:45Z`, `${at}.outcomeTimestamp`);
    }
    if (when.getTime() > now.getTime() + SKEW_MS) throw badRequest(`${at}.outcomeTimestamp is in the future`, `${at}.outcomeTimestamp`);
    const accepted: string[] = [];
    if (raw.acceptedSuggestions !== undefined) {
      if (!Array.isArray(raw.acceptedSuggestions)) throw badRequest(`${at}.acceptedSuggestions must be an array`, `${at}.acceptedSuggestions`);
      raw.acceptedSuggestions.forEach((s, j) => {
        const p = `${at}.acceptedSuggestions[${j}].id`;
        if (!isObject(s)) throw badRequest('Each accepted suggestion must be an object with an id', p);
        accepted.push(str(s.id, p, true));
      });
    }
    let reason: Coding | undefined;
    let comment: string | undefined;
    if (raw.overrideReason !== undefined) {
      const o = raw.overrideReason;
      if (!isObject(o)) throw badRequest(`${at}.overrideReason must be an object`, `${at}.overrideReason`);
      if (outcome === 'accepted') throw badRequest('An accepted card has no override reason', `${at}.overrideReason`);
      if (o.reason !== undefined) {
        if (!isObject(o.reason)) throw badRequest(`${at}.overrideReason.reason must be a Coding`, `${at}.overrideReason.reason`);
        const code = str(o.reason.code, `${at}.overrideReason.reason.code`, true);
        const system = str(o.reason.system, `${at}.overrideReason.reason.system`);
        reason = { ...(system ? { system } : {}), code };
      }
      comment = o.userComment === undefined ? undefined : typeof o.userComment === 'string' ? o.userComment : undefined;
      if (o.userComment !== undefined && typeof o.userComment !== 'string') throw badRequest(`${at}.overrideReason.userComment must be a string`, `${at}.overrideReason.userComment`);
    }
    if (outcome === 'overridden' && !reason) {
      throw fail(400, 'required', 'Not recognising a result needs a reason (不予互认原因): give overrideReason.reason, one of the card\'s overrideReasons', `${at}.overrideReason.reason`);
    }
    return { card: card.replace(/^urn:uuid:/i, '').toLowerCase(), outcome, acceptedSuggestions: accepted, reason, comment, outcomeTimestamp: when };
  });
}
