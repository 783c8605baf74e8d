/**
 * `Patient/[id]/$summary` (DESIGN.md §6 报告调阅): the health-record summary (健康档案) as a FHIR document
 * Bundle shaped after the International Patient Summary — per kind and category the latest results, the
 * abnormal ones, the recognisable ones with days left (server/recognition/summary.ts). Authorised and
 * audited exactly like `$everything`: the same scope entry (auth/scopes.ts) and the same service path
 * (patient-record.ts: 404 for an unknown patient, one access record per call).
 */
import type { OperationDefinition } from '@medplum/fhirtypes';
import { defaultRequester, RecognitionError, resolveRequester, type ResolvedRequester } from '../service.ts';
import { readPatientRecord } from '../patient-record.ts';
import { reportViewsOf } from '../views.ts';
import { summaryDocument } from '../summary.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { RecognitionInput } from './params.ts';

let definition: OperationDefinition | undefined;

export const summaryOperation: Operation = {
  name: 'summary',
  get definition() {
    return (definition ??= loadDefinition('OperationDefinition-Patient-summary.json'));
  },
  methods: ['GET', 'POST'],
  async handle(ctx, req, target) {
    const input = new RecognitionInput('summary', req, ['requester']);
    const given = input.reference('requester');
    const requesterRef = given ?? defaultRequester(ctx.principal);
    const service = { repo: ctx.repo, principal: ctx.principal };
    const now = new Date();
    let requester: ResolvedRequester | undefined;
    const bundle = await input.guard(() =>
      readPatientRecord(
        service,
        '$summary',
        target.id as string,
        async (patient) => {
          // a requester asked for must exist (404/422); the caller's own institution, when it cannot be judged
          // for (not registered, no district), leaves the recognisable section unjudged rather than failing the read
          requester = requesterRef ? await resolveRequester(ctx.repo, requesterRef).catch((e) => (given || !(e instanceof RecognitionError) ? Promise.reject(e) : undefined)) : undefined;
          const views = await reportViewsOf(service, [patient.id as string], requester, now);
          return summaryDocument({ patient, views, requester: requester?.reference, baseUrl: ctx.baseUrl, now });
        },
        () => requester?.reference
      )
    );
    return { status: 200, body: bundle };
  },
};
