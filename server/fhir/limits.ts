/**
 * The bounds on the work of one request (docs/fhir-api.md "Limits"). They come from the configuration
 * (server/config.ts, HUREN_MAX_…) and are installed once at start; the FHIR engine reads them here so that a
 * parser deep in the search code needs no configuration passed down to it.
 */
import { fail, type FhirError } from './errors.ts';

export interface Limits {
  /** Largest `_count` of a search or history page; beyond it: 400. */
  maxCount: number;
  /** Largest `_offset` of a search or history page; beyond it: 400 (deeper pages through the `next` links' cursor). */
  maxOffset: number;
  /** Entries of one batch or transaction Bundle; beyond it: 413. */
  maxBundleEntries: number;
  /** Resources in one answer (a page with its includes, or all the pages of a batch together); beyond it: 422. */
  maxAnswerEntries: number;
  /** Bytes of one answer (JSON, UTF-8); beyond it: 422. */
  maxAnswerBytes: number;
  /** Elements of any one JSON array in a request body; beyond it: 413. */
  maxArrayLength: number;
  /** Search-index rows of one resource version; beyond it: 422. */
  maxIndexRows: number;
  /** Levels of `_has` nested in one search parameter (`_has:A:p:_has:B:q:…`); beyond it: 400. */
  maxHasDepth: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxCount: 1000,
  maxOffset: 10_000,
  maxBundleEntries: 1000,
  maxAnswerEntries: 10_000,
  maxAnswerBytes: 64 * 1024 * 1024,
  maxArrayLength: 10_000,
  maxIndexRows: 20_000,
  maxHasDepth: 4,
};

let current: Limits = { ...DEFAULT_LIMITS };

/** The limits in force. */
export function limits(): Limits {
  return current;
}

/** Installs the configured limits (at start). */
export function setLimits(next: Partial<Limits>): void {
  current = { ...DEFAULT_LIMITS, ...next };
}

/** A request whose work or answer would exceed a limit. */
export function tooCostly(status: 400 | 413 | 422, text: string, expression?: string): FhirError {
  return fail(status, 'too-costly', text, expression);
}

/**
 * Counts the resources and bytes of one answer as it is assembled (a batch adds each entry's answer); throws
 * a 422 `too-costly` as soon as either limit is passed.
 */
export class AnswerBudget {
  private entries = 0;
  private bytes = 0;

  constructor(private readonly bounds: Limits = current) {}

  add(entries: number, bytes: number, where?: string): void {
    this.entries += entries;
    this.bytes += bytes;
    if (this.entries > this.bounds.maxAnswerEntries) {
      throw tooCostly(422, `The answer would hold more than ${this.bounds.maxAnswerEntries} resources; ask for fewer (smaller _count, fewer entries)`, where);
    }
    if (this.bytes > this.bounds.maxAnswerBytes) {
      throw tooCostly(422, `The answer would exceed ${this.bounds.maxAnswerBytes} bytes; ask for fewer resources`, where);
    }
  }
}
