/**
 * The recognition check for a partner platform's requester (docs/foshan-exchange.md): the requester is not
 * an institution here, only a city — the rules judge this platform's reports for a requester in that city
 * (so a qualification whose coverage includes the partner city makes a result recognisable there). No
 * reminder is written here: the requester's own platform writes it. And the federation hook: a module that
 * knows partner platforms (server/exchange/) plugs in what the checks ask them.
 */
import type { OperationOutcomeIssue, ParametersParameter, Patient } from '@medplum/fhirtypes';
import type { Repository } from '../fhir/repository.ts';
import type { Principal } from '../fhir/principal.ts';
import { currentCatalogue, type Token } from './catalogue.ts';
import { candidatesOf, type Candidate } from './facts.ts';
import { loadReports } from './facts-query.ts';
import { categoryMatcher, itemCodes, summaries } from './results.ts';
import type { PatientSelector, ResultSummary } from './model.ts';
import type { ResolvedRequester } from './patients.ts';
import type { Reference } from '@medplum/fhirtypes';

export interface PartnerCheckInput {
  patientIds: string[];
  requesterCity: string;
  codes?: Token[];
  categories?: Token[];
  now?: Date;
}

/** The recognisable results of these patients for a requester in `requesterCity`. */
export async function partnerRecognition(repo: Repository, input: PartnerCheckInput): Promise<Array<{ summary: ResultSummary; candidate: Candidate }>> {
  if (input.patientIds.length === 0) return [];
  const now = input.now ?? new Date();
  const catalogue = currentCatalogue();
  const itemFilter = itemCodes(catalogue, input.codes ?? [], 'code');
  const categoryFilter = categoryMatcher(catalogue, input.categories ?? []);
  const loaded = await loadReports(repo, input.patientIds);
  const recognisable = candidatesOf(loaded, catalogue, { id: '', city: input.requesterCity }, now).filter(
    (c) => c.verdict.recognisable && (!itemFilter || itemFilter.has(c.item.code)) && categoryFilter(c)
  );
  const list = summaries(recognisable);
  return list.map((summary, i) => ({ summary, candidate: recognisable[i]! }));
}

/** Whom a check is about, as the local check found them: the patient's registrations and the requester. */
export interface CheckParties {
  patients: Patient[];
  requester: ResolvedRequester;
}

/**
 * The parties the local check finds, handed on to the federation so that neither the patient nor the requester
 * is read a second time: `found` is given to the local check (ServiceContext.found), `failed` is called when it
 * throws (the federation then asks no partner: the answer is the local check's error).
 */
export function checkParties(): { parties: Promise<CheckParties>; found: (p: CheckParties) => void; failed: () => void } {
  let found!: (p: CheckParties) => void;
  let failed!: (e: Error) => void;
  const parties = new Promise<CheckParties>((resolve, reject) => {
    found = resolve;
    failed = reject;
  });
  parties.catch(() => undefined); // no federation plugged in: nobody waits for it
  return { parties, found, failed: () => failed(new Error('the local check failed')) };
}

/** What a check asks the partners (the federation hook's input). */
export interface FederatedQuery {
  kind: 'recognition-check' | 'duplicate-check';
  repo: Repository;
  principal?: Principal;
  patient: PatientSelector;
  requester?: Reference;
  /** The patient and the requester, once the local check has found them (rejected when it failed). */
  parties: Promise<CheckParties>;
  /** Item tokens (for $duplicate-check: the ordered items' codes). */
  codes: Token[];
  categories: Token[];
}

/** What the partners answered: result parts per item code, and the warnings (a partner slow, down, refused). */
export interface FederatedAnswer {
  /** This platform's code, the origin of the local results. */
  origin: string;
  /** One `result`-shaped parameter per partner result, each with its catalogue item code. */
  results: Array<{ itemCode: string; parts: ParametersParameter[] }>;
  issues: OperationOutcomeIssue[];
}

/** What the partners answered, or undefined when no partner is reached (the answer is then the local one, unchanged). */
export type Federation = (query: FederatedQuery) => Promise<FederatedAnswer | undefined>;

/** Per database, so that several servers in one process (the tests) keep their own. */
const federations = new WeakMap<object, Federation>();

/** Plugs in the partner platforms of a database's server (default: none: the checks answer from this platform only). */
export function setFederation(db: object, f: Federation | undefined): void {
  if (f) federations.set(db, f);
  else federations.delete(db);
}

/** Asks the partners, if any are plugged in; never throws (a failure is a warning). */
export async function askPartners(query: FederatedQuery): Promise<FederatedAnswer | undefined> {
  const federation = federations.get(query.repo.db);
  if (!federation) return undefined;
  try {
    return await federation(query);
  } catch (e) {
    return { origin: 'local', results: [], issues: [{ severity: 'warning', code: 'transient', diagnostics: `partner platforms not asked: ${(e as Error).message.slice(0, 160)}` }] };
  }
}

/** The catalogue items an order names (by any coding the catalogue resolves); what the partners are asked for. */
export function orderedItems(orders: unknown[]): Token[] {
  const catalogue = currentCatalogue();
  const codes = new Set<string>();
  for (const order of orders) {
    const codings = ((order as { code?: { coding?: unknown[] } } | null)?.code?.coding ?? []) as Array<{ system?: string; code?: string }>;
    for (const c of codings) for (const item of catalogue.itemsFor(c)) codes.add(item.code);
  }
  return [...codes].map((code) => ({ code }));
}

/** The patient the orders are for (the first order's subject), as a selector. */
export function orderPatient(orders: unknown[]): PatientSelector | undefined {
  const subject = (orders[0] as { subject?: Reference } | null)?.subject;
  return subject?.reference || subject?.identifier ? { reference: subject } : undefined;
}
