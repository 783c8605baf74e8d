/**
 * `POST Endpoint/$exchange-check` (docs/foshan-exchange.md): a partner platform's recognition check. Only a
 * registered partner's SMART client may call it (scope system/Endpoint.r; its client id is the one the
 * registry names); the patient is named by the national ID hashed as agreed; each recognisable, hash-consistent
 * result comes with its shared Bundle (original, chain Provenance with the hospital's signature, this
 * platform's credential). No reminder is written here (the requester's platform writes it); the exchange is
 * audited as incoming.
 */
import type { OperationDefinition, ParametersParameter } from '@medplum/fhirtypes';
import { badRequest, fail } from '../../fhir/errors.ts';
import { loadDefinition, type Operation } from '../../fhir/operations/registry.ts';
import { parametersResponse } from '../../fhir/operations/input.ts';
import { RecognitionInput } from '../../recognition/operations/params.ts';
import { resultParts } from '../../recognition/operations/answers.ts';
import { partnerRecognition } from '../../recognition/partner.ts';
import { ProvenanceService } from '../../provenance/index.ts';
import { recordExchange } from '../audit.ts';
import { shareReport, ShareError } from '../share.ts';
import type { ExchangeState } from '../state.ts';

let definition: OperationDefinition | undefined;

export function exchangeCheckOperation(state: ExchangeState): Operation {
  return {
    name: 'exchange-check',
    get definition() {
      return (definition ??= loadDefinition('OperationDefinition-Endpoint-exchange-check.json'));
    },
    methods: ['POST'],
    async handle(ctx, req, target) {
      if (target.id) throw badRequest('$exchange-check is called on the Endpoint type (POST Endpoint/$exchange-check)', 'Endpoint.id');
      const principal = ctx.principal;
      const clientId = principal.kind === 'client' ? principal.id.replace(/^client:/, '') : undefined;
      const partner = clientId ? await state.registry().byClient(clientId) : undefined;
      if (!partner) throw fail(403, 'forbidden', '$exchange-check is for registered partner platforms only (their SMART client, docs/foshan-exchange.md)');
      const input = new RecognitionInput('exchange-check', req, ['patient', 'requesterCity', 'purpose', 'code', 'category']);
      if (!input.posted) throw badRequest('$exchange-check takes a Parameters body', 'Parameters');
      const hashes = input.strings('patient');
      if (hashes.length === 0 || hashes.length > 5) throw badRequest('patient: one to five hashed national IDs', input.expr('patient'));
      const badHash = hashes.findIndex((h) => !/^[0-9a-f]{64}$/.test(h));
      if (badHash >= 0) throw badRequest('patient must be the HMAC-SM3 of the national ID, 64 lower-case hex digits', `${input.expr('patient')}[${badHash}]`);
      const city = input.string('requesterCity');
      if (!city || !/^\d{6}$/.test(city)) throw badRequest('requesterCity must be a 6-digit administrative division code', input.expr('requesterCity'));
      if (!partner.coverage.includes(city) && city !== partner.city) throw fail(403, 'forbidden', `the agreement with ${partner.code} does not cover requesters in ${city}`, input.expr('requesterCity'));
      const purpose = input.string('purpose') ?? 'recognition-check';
      if (purpose !== 'recognition-check' && purpose !== 'duplicate-check') throw badRequest('purpose must be recognition-check or duplicate-check', input.expr('purpose'));
      const codes = input.tokens('code');
      const categories = input.tokens('category');
      const patientIds = [...new Set((await Promise.all(hashes.map((h) => state.registry().patientsByHash(partner.code, h)))).flat())];
      const found = await input.guard(() => partnerRecognition(ctx.repo, { patientIds, requesterCity: city, codes, categories }));
      const service = ProvenanceService.of(ctx.repo.db);
      const parameter: ParametersParameter[] = [];
      let skipped = 0;
      const bundles = new Map<string, Promise<Record<string, unknown> | undefined>>();
      for (const { summary } of found) {
        const reportId = (summary.report.reference ?? '').replace(/^DiagnosticReport\//, '');
        if (!service || summary.hashStatus !== 'consistent') {
          skipped += 1;
          continue;
        }
        if (!bundles.has(reportId)) {
          bundles.set(
            reportId,
            shareReport(service, state.config.exchange, state.keys(), reportId).catch((e) => {
              if (e instanceof ShareError) return undefined;
              throw e;
            })
          );
        }
        const bundle = await bundles.get(reportId)!;
        if (!bundle) {
          skipped += 1;
          continue;
        }
        const parts = resultParts(summary).filter((p) => p.name !== 'mapping');
        parameter.push({ name: 'result', part: [...parts, { name: 'bundle', resource: bundle as never }] });
      }
      await recordExchange(ctx.repo, {
        direction: 'incoming',
        partner,
        ...(patientIds[0] ? { patient: `Patient/${patientIds[0]}` } : {}),
        kind: purpose,
        outcome: 'success',
        detail: `${parameter.length} result(s) shared${skipped ? `, ${skipped} not shared (not hash-consistent)` : ''}${patientIds.length === 0 ? ', patient not known here' : ''}`,
      });
      // what is shared was decided here (the agreement, the hashed national ID, the requester's city), audited above:
      // the answer is not filtered again by the hospitals' care rule, which does not know partner platforms
      return { ...parametersResponse(parameter), judged: true };
    },
  };
}
