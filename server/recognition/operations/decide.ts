/**
 * `DetectedIssue/[id]/$decide`: the doctor's decision on a reminder, for HIS without CDS Hooks.
 */
import type { OperationDefinition } from '@medplum/fhirtypes';
import { badRequest } from '../../fhir/errors.ts';
import { recordDecision } from '../service.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { RecognitionInput } from './params.ts';


let decideDefinition: OperationDefinition | undefined;

export const decideOperation: Operation = {
  name: 'decide',
  get definition() {
    return (decideDefinition ??= loadDefinition('OperationDefinition-DetectedIssue-decide.json'));
  },
  methods: ['POST'],
  async handle(ctx, req, target) {
    const input = new RecognitionInput('decide', req, ['decision', 'reason', 'comment', 'report', 'author']);
    const decision = input.text('decision');
    if (!decision) throw badRequest('$decide needs decision: recognised or not-recognised', input.expr('decision'));
    const reason = input.codingParam('reason');
    const comment = input.string('comment');
    const report = input.reference('report');
    const author = input.reference('author');
    const issue = await input.guard(() =>
      recordDecision({ repo: ctx.repo, principal: ctx.principal }, { reminderId: target.id as string, decision, reason, comment, report, author })
    );
    return { status: 200, resource: issue, body: issue };
  },
};
