/**
 * The link between CDS Hooks cards and the recognition record (DetectedIssue) a hook call writes, so that
 * feedback can find, for a card uuid, the record and the reports the doctor decided on:
 *
 * - every card's uuid is an identifier of the record: `{ system: CARD_SYSTEM, value: <uuid> }`
 *   (`GET /fhir/DetectedIssue?identifier=https://fhir.huren.gz.cn/NamingSystem/cds-card|<uuid>`);
 * - a duplicate-order card also marks the ordered items it covers (`DetectedIssue.evidence`, one per ordered
 *   item): their `detail` lists the matching reports and a logical reference to the card
 *   (`{ identifier: { system: CARD_SYSTEM, value: <uuid> } }`). The card's decision is about those reports;
 *   an encounter card's decision is about every implicated report.
 *
 * The record is written once, with its cards: the recognition service builds the reminder and "creates" it
 * through `captureReminder`'s repository, which keeps it (with the id it will have) instead of writing it;
 * the hook then adds the cards and writes it. A call that fails writes nothing.
 */
import { newResourceId } from '../fhir/ids.ts';
import type { DetectedIssue, DetectedIssueEvidence, Reference, Resource } from '@medplum/fhirtypes';
import type { Repository, WriteResult } from '../fhir/repository.ts';
import { parseSearch } from '../fhir/search/parse.ts';
import { CANONICAL_BASE } from '../terminology/canonical.ts';
import type { PlannedCard } from './cards.ts';

export const CARD_SYSTEM = `${CANONICAL_BASE}/NamingSystem/cds-card`;

export interface ReminderCapture {
  /** The repository to hand to the recognition service. */
  repo: Repository;
  /** The reminder the service built (with its future id); undefined if it built none. */
  reminder(): DetectedIssue | undefined;
}

/** A view of `repo` that keeps the one DetectedIssue the service creates instead of writing it. */
export function captureReminder(repo: Repository): ReminderCapture {
  let kept: DetectedIssue | undefined;
  const create = async (resource: Resource, options: { ifNoneExist?: string; id?: string; own?: boolean } = {}): Promise<WriteResult> => {
    if (resource.resourceType !== 'DetectedIssue' || options.ifNoneExist) return repo.create(resource, options);
    if (kept) throw new Error('The recognition service created more than one reminder in one call');
    kept = { ...(resource as DetectedIssue), id: options.id ?? newResourceId() };
    return { resource: kept, status: 201 } as WriteResult;
  };
  const view = new Proxy(repo, {
    get(target, prop) {
      if (prop === 'create') return create;
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { repo: view, reminder: () => kept };
}

const cardRef = (uuid: string): Reference => ({ identifier: { system: CARD_SYSTEM, value: uuid }, display: 'CDS Hooks 卡片' });

/** The reminder with its cards: identifiers, and the evidence entries each card covers. */
export function withCards(reminder: DetectedIssue, planned: PlannedCard[]): DetectedIssue {
  if (planned.length === 0) return reminder;
  const evidence: DetectedIssueEvidence[] = (reminder.evidence ?? []).map((e) => ({ ...e }));
  for (const p of planned) {
    for (const k of p.evidence ?? []) {
      if (!evidence[k]) throw new Error(`The reminder has no evidence entry ${k} for card ${p.card.uuid}`);
      const reports = (p.reports ?? []).map((id) => ({ reference: `DiagnosticReport/${id}` }));
      evidence[k] = { ...evidence[k], detail: [...(evidence[k].detail ?? []), ...reports, cardRef(p.card.uuid)] };
    }
  }
  return {
    ...reminder,
    identifier: [...(reminder.identifier ?? []), ...planned.map((p) => ({ system: CARD_SYSTEM, value: p.card.uuid }))],
    ...(evidence.length > 0 ? { evidence } : {}),
  };
}

/** The recognition record that holds a card, or undefined. */
export async function recordOfCard(repo: Repository, uuid: string): Promise<DetectedIssue | undefined> {
  const req = parseSearch('DetectedIssue', [
    ['identifier', `${CARD_SYSTEM}|${uuid}`],
    ['_count', '2'],
  ]);
  const found = ((await repo.search(req, '')).entry ?? []).map((e) => e.resource as DetectedIssue).filter((r) => r?.resourceType === 'DetectedIssue');
  return found[0];
}

/**
 * The reports a card's decision is about: those of the evidence entries that name the card, or undefined
 * (every implicated report) when the card covers the whole record.
 */
export function reportsOfCard(record: DetectedIssue, uuid: string): string[] | undefined {
  const out = new Set<string>();
  let marked = false;
  for (const e of record.evidence ?? []) {
    const details = e.detail ?? [];
    if (!details.some((d) => d.identifier?.system === CARD_SYSTEM && d.identifier.value === uuid)) continue;
    marked = true;
    for (const d of details) {
      const m = /^DiagnosticReport\/([A-Za-z0-9\-.]{1,64})$/.exec(d.reference ?? '');
      if (m) out.add(m[1]);
    }
  }
  return marked ? [...out] : undefined;
}
