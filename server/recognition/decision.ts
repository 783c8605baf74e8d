/**
 * The doctor's decision on a reminder (recognised, or re-tested with a reason code): a new mitigation on the
 * DetectedIssue, written with optimistic locking (a concurrent decision reads again).
 */
import type { Coding, DetectedIssue, Reference } from '@medplum/fhirtypes';
import { statusOf } from '../fhir/errors.ts';
import { parseReference } from '../fhir/search/references.ts';
import { REASON_SYSTEM } from '../terminology/canonical.ts';
import { terminology } from '../terminology/load.ts';
import { RecognitionError } from './errors.ts';
import { institutionsOf, isPlatform, namesOwn } from '../auth/institution.ts';
import { EXT } from '../profiles/canonical.ts';
import { refId } from './facts.ts';
import { decisionMitigation, isRecognitionRecord, type Decision } from './records.ts';
import { MAX_COMMENT, type DecisionRequest, type ServiceContext } from './model.ts';

/** A caller bound to an institution decides only on its own reminders (those it asked for as requester). */
async function assertOwnReminder(ctx: ServiceContext, issue: DetectedIssue): Promise<void> {
  if (!ctx.principal || isPlatform(ctx.principal) || !ctx.principal.institution) return;
  const own = await institutionsOf(ctx.repo, ctx.principal);
  const i = (issue.extension ?? []).findIndex((e) => e.url === EXT.requestingInstitution);
  const asked = i >= 0 ? issue.extension![i].valueReference : undefined;
  if (!asked || !namesOwn(asked, own)) {
    throw new RecognitionError(403, 'forbidden', `DetectedIssue/${issue.id} was asked for by another institution: only that institution records its decision`, 'reminder');
  }
}

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
      await assertOwnReminder({ ...ctx, repo }, issue);
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

