/**
 * The recognition check (互认信息是否存在), at an encounter: the patient's recognisable results now; writes the
 * encounter reminder (a DetectedIssue).
 */
import { currentCatalogue } from './catalogue.ts';
import { candidatesOf } from './facts.ts';
import { encounterDetail, reminder } from './records.ts';
import type { ServiceContext, RecognitionCheckInput, RecognitionCheckResult } from './model.ts';
import { assertOwnRequester, requireRequester } from './patients.ts';
import { patientRequesterReports } from './facts-query.ts';
import { categoryMatcher, itemCodes, summaries, uniqueReports } from './results.ts';
import type { DetectedIssue } from '@medplum/fhirtypes';

export async function recognitionCheck(ctx: ServiceContext, input: RecognitionCheckInput): Promise<RecognitionCheckResult> {
  const now = ctx.now ?? new Date();
  const catalogue = currentCatalogue();
  const requesterRef = requireRequester(ctx, input.requester);
  const itemFilter = itemCodes(catalogue, input.codes ?? [], 'code');
  const categoryFilter = categoryMatcher(catalogue, input.categories ?? []);
  const { patients, requester, loaded } = await patientRequesterReports(ctx.repo, input.patient, requesterRef, { param: input.patient.identifier ? 'identifier' : 'patient' });
  await assertOwnRequester(ctx, requester.organization);
  ctx.found?.({ patients, requester });
  const candidates = candidatesOf(loaded, catalogue, requester.institution, now).filter(
    (c) => (!itemFilter || itemFilter.has(c.item.code)) && categoryFilter(c)
  );
  const recognisable = candidates.filter((c) => c.verdict.recognisable);
  const results = summaries(recognisable);
  const patient = { reference: `Patient/${patients[0].id}` };
  const written = await ctx.repo.create(
    reminder({ kind: 'encounter-reminder', patient, requester: requester.reference, implicated: uniqueReports(recognisable), detail: encounterDetail(recognisable), now }),
    { own: true }
  );
  return { exists: results.length > 0, results, reminder: written.resource as DetectedIssue, patient, requester: requester.reference, candidates };
}

