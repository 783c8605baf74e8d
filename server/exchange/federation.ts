/**
 * The federated checks (docs/foshan-exchange.md), on the requesting side: the federation hook the recognition
 * checks call (server/recognition/partner.ts). For a requester whose city an active partner's agreement covers,
 * it asks that partner's `Endpoint/$exchange-check` — with a SMART Backend Services token of this platform's
 * client there — for the patient's recognisable results, sending only the national ID hashed as agreed
 * (HMAC-SM3 under the agreement's key), the requester's city and the items; it verifies each shared result
 * (shared-bundle.ts) and answers within the time budget: a partner slow, down or refusing is a warning, a
 * result that does not verify is refused with the failing step named. Each exchange is audited.
 */
import { randomUUID } from 'node:crypto';
import type { OperationOutcomeIssue, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { importJWK, SignJWT } from 'jose';
import type { Database } from '../db/database.ts';
import type { Repository } from '../fhir/repository.ts';
import { EvmLedger, HttpRpcNode, type LedgerPort } from '../ledger/index.ts';
import type { Logger } from '../http/observability.ts';
import type { FederatedAnswer, FederatedQuery } from '../recognition/partner.ts';
import type { ExchangeConfig } from './config.ts';
import type { ExchangeKeyFile } from './keys.ts';
import { idHash, NATIONAL_ID_SYSTEM, type Partner, type PartnerRegistry } from './registry.ts';
import { verifySharedBundle, type SharedVerification } from './shared-bundle.ts';
import { recordExchange } from './audit.ts';

export const STEP_SYSTEM = 'https://fhir.huren.gz.cn/CodeSystem/exchange-verification-step';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

class BudgetExceeded extends Error {}

export class Federation {
  private readonly tokens = new Map<string, { token: string; until: number }>();
  private readonly ledgers = new Map<string, LedgerPort>();

  constructor(
    private readonly db: Database,
    private readonly registry: PartnerRegistry,
    private readonly config: ExchangeConfig,
    private readonly keys: ExchangeKeyFile,
    private readonly logger: Logger
  ) {}

  /** The hook: ask every partner the requester's city reaches, within the budget; undefined when none is reached. */
  async ask(q: FederatedQuery): Promise<FederatedAnswer | undefined> {
    const started = Date.now();
    const answer: FederatedAnswer = { origin: this.config.platform, results: [], issues: [] };
    const partners = (await this.registry.list()).filter((p) => p.active);
    if (partners.length === 0) return undefined;
    let city: string;
    let nationalIds: string[];
    let patientRef: string | undefined;
    try {
      // as the local check found them (it reads them once; its failure is the answer, no partner is asked)
      const { patients, requester } = await q.parties;
      city = requester.institution.city;
      patientRef = patients[0] ? `Patient/${patients[0].id}` : undefined;
      nationalIds = [...new Set(patients.flatMap((p) => (p.identifier ?? []).filter((i) => i.system === NATIONAL_ID_SYSTEM && i.value).map((i) => i.value as string)))];
    } catch {
      // the local check reports a bad patient or requester itself
      return undefined;
    }
    const reached = partners.filter((p) => p.coverage.includes(city));
    if (reached.length === 0) return undefined;
    if (nationalIds.length === 0) {
      answer.issues.push({ severity: 'information', code: 'informational', diagnostics: 'the patient has no national ID: the partner platforms were not asked' });
      return answer;
    }
    const remaining = () => Math.max(0, this.config.budgetMs - (Date.now() - started));
    await Promise.all(
      reached.map(async (partner) => {
        const work = this.askPartner(q, partner, city, nationalIds, remaining);
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new BudgetExceeded()), remaining());
        });
        try {
          const got = await Promise.race([work, deadline]);
          answer.results.push(...got.results);
          answer.issues.push(...got.issues);
          await recordExchange(q.repo, { direction: 'outgoing', partner, patient: patientRef, kind: q.kind, outcome: 'success', detail: `${got.results.length} verified result(s), ${got.refused} refused` }).catch((e: Error) =>
            this.logger.error({ partner: partner.code, error: e.message.slice(0, 120) }, 'exchange audit event not written')
          );
        } catch (e) {
          // the budget ran out: our deadline, or the fetch's own timeout (whichever fired first)
          const slow = e instanceof BudgetExceeded || (e as Error)?.name === 'TimeoutError' || (e as Error)?.name === 'AbortError';
          const text = slow
            ? `partner platform ${partner.name} (${partner.code}) did not answer within ${this.config.budgetMs} ms: its results are missing from this answer`
            : `partner platform ${partner.name} (${partner.code}) could not be asked: ${(e as Error).message.slice(0, 160)}`;
          answer.issues.push({ severity: 'warning', code: slow ? 'timeout' : 'transient', diagnostics: text, details: { coding: [{ system: `${STEP_SYSTEM}`, code: slow ? 'timeout' : 'unavailable' }], text: partner.code } });
          this.logger.warn({ partner: partner.code, slow }, 'partner platform not answering');
          // the budget is spent: written after the answer has gone (not in its way on the database connection)
          setTimeout(() => {
            void recordExchange(q.repo, { direction: 'outgoing', partner, patient: patientRef, kind: q.kind, outcome: 'failure', detail: slow ? 'timeout' : 'unavailable' }).catch((err: Error) =>
              this.logger.error({ partner: partner.code, error: err.message.slice(0, 120) }, 'exchange audit event not written')
            );
          }, 100);
          work.catch(() => undefined);
        } finally {
          clearTimeout(timer);
        }
      })
    );
    return answer;
  }

  private async askPartner(q: FederatedQuery, partner: Partner, city: string, nationalIds: string[], remaining: () => number): Promise<{ results: FederatedAnswer['results']; issues: OperationOutcomeIssue[]; refused: number }> {
    const idKey = await this.registry.idKey(partner.code);
    if (!idKey) throw new Error('no agreement key is registered for this partner');
    const body: Parameters = {
      resourceType: 'Parameters',
      parameter: [
        ...nationalIds.map((v) => ({ name: 'patient', valueString: idHash(idKey, v) })),
        { name: 'requesterCity', valueCode: city },
        { name: 'purpose', valueCode: q.kind },
        ...q.codes.map((c) => ({ name: 'code', valueString: c.system ? `${c.system}|${c.code}` : c.code })),
        ...q.categories.map((c) => ({ name: 'category', valueString: c.system ? `${c.system}|${c.code}` : c.code })),
      ],
    };
    const token = await this.token(partner, remaining);
    const res = await fetch(`${partner.fhirBase.replace(/\/$/, '')}/Endpoint/$exchange-check`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json', accept: 'application/fhir+json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(Math.max(1, remaining())),
    });
    const answer = (await res.json().catch(() => undefined)) as Parameters | undefined;
    if (res.status !== 200 || answer?.resourceType !== 'Parameters') {
      if (res.status === 401) this.tokens.delete(partner.code);
      throw new Error(`it answered ${res.status}${(answer as any)?.issue?.[0]?.diagnostics ? `: ${String((answer as any).issue[0].diagnostics).slice(0, 120)}` : ''}`);
    }
    const results: FederatedAnswer['results'] = [];
    const issues: OperationOutcomeIssue[] = [];
    let refused = 0;
    const ledger = this.ledgerOf(partner);
    for (const p of answer.parameter ?? []) {
      if (p.name !== 'result') continue;
      const parts = p.part ?? [];
      const bundle = parts.find((x) => x.name === 'bundle')?.resource;
      const item = parts.find((x) => x.name === 'item')?.valueCoding;
      const check: SharedVerification = await verifySharedBundle(bundle, { issuer: partner.vcKey, ...(ledger ? { ledger } : {}) });
      if (!check.verified) {
        refused += 1;
        const step = check.steps.find((s) => s.status === 'failed');
        issues.push({
          severity: 'warning',
          code: 'security',
          diagnostics: `a result from partner platform ${partner.name} (${partner.code}) was refused: the ${check.failed} step failed: ${step?.detail ?? ''}`.slice(0, 400),
          details: { coding: [{ system: STEP_SYSTEM, code: check.failed as string }], text: partner.code },
        });
        continue;
      }
      results.push({ itemCode: item?.code ?? '', parts: partnerResultParts(partner, parts, check) });
    }
    return { results, issues, refused };
  }

  /** A SMART Backend Services access token at the partner (client credentials, signed assertion), cached. */
  private async token(partner: Partner, remaining: () => number): Promise<string> {
    const cached = this.tokens.get(partner.code);
    if (cached && cached.until > Date.now()) return cached.token;
    const key = await importJWK(this.keys.client.privateJwk, 'ES384');
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES384', kid: this.keys.client.kid, typ: 'JWT' })
      .setIssuer(partner.clientId)
      .setSubject(partner.clientId)
      .setAudience(partner.tokenUrl)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime('2m')
      .sign(key);
    const res = await fetch(partner.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'system/Endpoint.r', client_assertion_type: ASSERTION_TYPE, client_assertion: assertion }).toString(),
      signal: AbortSignal.timeout(Math.max(1, remaining())),
    });
    const body = (await res.json().catch(() => ({}))) as { access_token?: string; expires_in?: number; error?: string };
    if (res.status !== 200 || !body.access_token) throw new Error(`its token endpoint refused this platform's client: ${res.status} ${body.error ?? ''}`.trim());
    this.tokens.set(partner.code, { token: body.access_token, until: Date.now() + Math.max(0, (body.expires_in ?? 60) - 30) * 1000 });
    return body.access_token;
  }

  /** The partner's chain, read only (its registered nodes); none registered: the anchor step is skipped. */
  ledgerOf(partner: Partner): LedgerPort | undefined {
    if (partner.chain.rpc.length === 0 || !partner.chain.contract) return undefined;
    const key = `${partner.code}|${partner.chain.ledger}|${partner.chain.contract}|${partner.chain.rpc.join(',')}`;
    let ledger = this.ledgers.get(key);
    if (!ledger) {
      ledger = new EvmLedger({ name: partner.chain.ledger, nodes: partner.chain.rpc.map((url, i) => new HttpRpcNode(`${partner.code}-${i}`, url, 5000)), contract: partner.chain.contract, pollIntervalMs: 100 });
      this.ledgers.set(key, ledger);
    }
    return ledger;
  }

  async close(): Promise<void> {
    for (const l of this.ledgers.values()) await l.close().catch(() => undefined);
    this.ledgers.clear();
  }
}

/** A verified partner result: the partner's parts (report as an absolute URL), origin, verification, the Bundle. */
function partnerResultParts(partner: Partner, parts: ParametersParameter[], check: SharedVerification): ParametersParameter[] {
  const keep = new Set(['item', 'issued', 'daysRemaining', 'hrMark', 'hashStatus', 'abnormalCount']);
  // the partner's references are to its own resources: made absolute, so they are never read as local ones
  const absolute = (name: string): ParametersParameter[] => {
    const ref = parts.find((x) => x.name === name)?.valueReference;
    return ref?.reference && /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(ref.reference) ? [{ name, valueReference: { ...ref, reference: `${partner.fhirBase.replace(/\/$/, '')}/${ref.reference}` } }] : [];
  };
  return [
    ...absolute('report'),
    ...parts.filter((x) => x.name === 'item'),
    ...absolute('performer'),
    ...parts.filter((x) => keep.has(x.name) && x.name !== 'item'),
    { name: 'origin', valueCode: partner.code },
    { name: 'originName', valueString: partner.name },
    { name: 'verified', valueBoolean: true },
    ...check.steps.map((s) => ({ name: 'verification', part: [{ name: 'step', valueCode: s.step }, { name: 'status', valueCode: s.status }, { name: 'detail', valueString: s.detail }] })),
    ...parts.filter((x) => x.name === 'bundle'),
  ];
}
