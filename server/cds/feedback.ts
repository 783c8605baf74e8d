/**
 * The CDS Hooks feedback endpoint: the doctor's decision on a card becomes a decision on the recognition
 * record (DetectedIssue.mitigation, through the recognition service's recordDecision):
 *
 *   accepted                                   → recognised (已互认)
 *   overridden + overrideReason.reason (01–99) → not recognised (不予互认) with that reason; the userComment
 *                                                is the comment (≤ 200 characters; required for reason 08)
 *   overridden without a reason                → 400: not recognising a result needs a reason
 *
 * A duplicate-order card's decision is recorded once per report the card names (mitigation extension
 * decision-report); an encounter card's decision covers every implicated report. The decision time is the
 * feedback's outcomeTimestamp. The same feedback posted again records nothing new; a post is all or nothing.
 */
import type { DetectedIssue, DetectedIssueMitigation, Reference } from '@medplum/fhirtypes';
import { fail, type FhirError } from '../fhir/errors.ts';
import { EXT } from '../profiles/canonical.ts';
import { recordKindOf } from '../recognition/records.ts';
import { RecognitionError, recordDecision } from '../recognition/service.ts';
import { DECISION_SYSTEM, REASON_SYSTEM } from '../terminology/canonical.ts';
import { suggestionUuid } from './cards.ts';
import type { CdsEnv } from './hooks.ts';
import { recordOfCard, reportsOfCard } from './records.ts';
import { parseFeedback, type FeedbackEntry } from './request.ts';
import type { CdsServiceDefinition } from './services.ts';

export interface FeedbackOutcome {
  card: string;
  reminder: string;
  decision: 'recognised' | 'not-recognised';
  /** Decisions written (0 when the same feedback was recorded before). */
  recorded: number;
}

export async function recordFeedback(env: CdsEnv, service: CdsServiceDefinition, body: unknown): Promise<{ feedback: FeedbackOutcome[] }> {
  const entries = parseFeedback(body, env.now ?? new Date());
  const feedback = await env.repo.transaction(async (tx) => {
    const out: FeedbackOutcome[] = [];
    for (const [i, fb] of entries.entries()) {
      const at = `feedback[${i}]`;
      const record = await recordOfCard(tx, fb.card);
      if (!record) throw fail(404, 'not-found', `No card ${fb.card} was returned by this platform`, `${at}.card`);
      if (recordKindOf(record) !== service.kind) throw fail(400, 'invalid', `Card ${fb.card} was not returned by the ${service.id} service`, `${at}.card`);
      const expected = suggestionUuid(fb.card, 0);
      fb.acceptedSuggestions.forEach((id, j) => {
        if (id.replace(/^urn:uuid:/i, '').toLowerCase() !== expected) throw fail(400, 'invalid', `Suggestion ${id.slice(0, 64)} is not one of the card's`, `${at}.acceptedSuggestions[${j}].id`);
      });
      const decision = fb.outcome === 'accepted' ? 'recognised' : 'not-recognised';
      const reports = reportsOfCard(record, fb.card);
      const targets: (Reference | undefined)[] = reports && reports.length > 0 ? reports.map((id) => ({ reference: `DiagnosticReport/${id}` })) : [undefined];
      let current: DetectedIssue = record;
      let recorded = 0;
      for (const report of targets) {
        if (alreadyRecorded(current, fb, decision, report)) continue;
        try {
          current = await recordDecision(
            { repo: tx, principal: env.principal, now: fb.outcomeTimestamp },
            { reminderId: record.id as string, decision, reason: fb.reason, comment: fb.comment, report }
          );
        } catch (err) {
          if (err instanceof RecognitionError) throw feedbackError(err, at);
          throw err;
        }
        recorded += 1;
      }
      out.push({ card: fb.card, reminder: `DetectedIssue/${record.id}`, decision, recorded });
    }
    return out;
  });
  return { feedback };
}

/** Whether this very decision (same time, decision, reason, comment and report) is on the record already. */
function alreadyRecorded(record: DetectedIssue, fb: FeedbackEntry, decision: string, report: Reference | undefined): boolean {
  const date = fb.outcomeTimestamp.toISOString();
  const comment = fb.comment?.trim() || undefined;
  return (record.mitigation ?? []).some((m: DetectedIssueMitigation) => {
    const codes = m.action?.coding ?? [];
    const reportRef = m.extension?.find((e) => e.url === EXT.decisionReport)?.valueReference?.reference;
    return (
      m.date === date &&
      codes.find((c) => c.system === DECISION_SYSTEM)?.code === decision &&
      codes.find((c) => c.system === REASON_SYSTEM)?.code === fb.reason?.code &&
      (m.action?.text || undefined) === comment &&
      reportRef === report?.reference
    );
  });
}

function feedbackError(err: RecognitionError, at: string): FhirError {
  const where: Record<string, string> = {
    reason: `${at}.overrideReason.reason`,
    comment: `${at}.overrideReason.userComment`,
    decision: `${at}.outcome`,
    reminder: `${at}.card`,
    report: `${at}.card`,
  };
  return fail(err.status, err.code, err.message, err.param ? where[err.param] : undefined);
}
