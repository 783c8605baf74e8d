/**
 * The recognition service's inputs and outputs, its context, limits, and the one pluggable part (the hash
 * status of reports, given by the chain provenance).
 */
import type { Coding, DetectedIssue, Patient, Reference } from '@medplum/fhirtypes';
import type { ApprovedMapping } from '../dictionary/mappings.ts';
import type { Principal } from '../fhir/principal.ts';
import type { Repository } from '../fhir/repository.ts';
import type { Token } from './catalogue.ts';
import type { Candidate } from './facts.ts';
import type { ResolvedRequester } from './patients.ts';

/** The most recent reports of a patient that a check considers. */
export const MAX_REPORTS = 500;
/** Longest comment of a decision (reason 08 requires one). */
export const MAX_COMMENT = 200;

/** Hash consistency of a report with the chain (DESIGN.md §4). */
export type HashStatus = 'consistent' | 'inconsistent' | 'pending' | 'unanchored';
export const HASH_STATUSES: readonly HashStatus[] = ['consistent', 'inconsistent', 'pending', 'unanchored'];

/**
 * Where the hash status of a report version is kept, as the chain provenance gives it: a scalar SQL expression
 * over the resource row `r` of the report (its `id` and `version` columns) that is the version's status, or NULL
 * for `unanchored`. The facts statement (facts-query.ts) reads it beside each report, so a check needs no
 * statement of its own for the statuses. Default: NULL (every report is `unanchored`).
 */
let hashStatusColumn = 'NULL';

/** Plugs in the chain provenance's status of each report version (see `hashStatusColumn`); undefined: none. */
export function setHashStatusColumn(sql: string | undefined): void {
  hashStatusColumn = sql ?? 'NULL';
}

export function currentHashStatusColumn(): string {
  return hashStatusColumn;
}

/**
 * The requesting institution when the request names none: the caller's own institution (a CDS client's,
 * from its registration; the bootstrap token has none).
 */
export function defaultRequester(principal: Principal | undefined): Reference | undefined {
  const institution = principal?.institution;
  return institution ? { reference: institution.startsWith('Organization') ? institution : `Organization/${institution}` } : undefined;
}

export interface ServiceContext {
  repo: Repository;
  principal?: Principal;
  /** The clock (tests); default now. */
  now?: Date;
  /** Told whom the check is about once they are found (and the requester may ask): the federation (partner.ts) waits for it. */
  found?: (parties: { patients: Patient[]; requester: ResolvedRequester }) => void;
}

/** A patient: by id, by reference (literal, conditional `Patient?identifier=…`, or logical), or by identifier. */
export interface PatientSelector {
  id?: string;
  reference?: Reference;
  identifier?: { system?: string; value: string };
  /**
   * The patients this selector names, already resolved by the caller in this request (the CDS hooks find
   * the patient before they call the service): not looked up a second time.
   */
  resolved?: Patient[];
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
  /** When the report carries the item by a local code only: the performer's approved dictionary entry used. */
  mapping?: ApprovedMapping;
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
  /** The patients the orders' subject names, already resolved by the caller (see PatientSelector.resolved). */
  patients?: Patient[];
}

export interface DuplicateItem {
  /** The order's id, or its position (0-based) among the orders. */
  order: string;
  orderIndex: number;
  code: Coding;
  /** When the order names the item by a local code: the requester's approved dictionary entry used. */
  orderMapping?: ApprovedMapping;
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

