/**
 * The exchange module (docs/foshan-exchange.md): federated recognition between partner platforms (Guangzhou
 * and Foshan). It keeps the partner registry (FHIR Organization + Endpoint, written through its API by the
 * security administrator), plugs the federation into the recognition checks (they ask the partners in parallel
 * within HUREN_EXCHANGE_BUDGET_MS), answers partners' `Endpoint/$exchange-check` with shared results that
 * verify offline (the submitted Bundle, the chain Provenance with the hospital's signature, a Verifiable
 * Credential of this platform), and verifies what partners share before showing it.
 */
import { Repository } from '../fhir/repository.ts';
import type { ModuleFactory } from '../module.ts';
import { setFederation } from '../recognition/partner.ts';
import { exchangeApi } from './api.ts';
import { Federation } from './federation.ts';
import { ensureExchangeKeys, exchangeKeyFile, type ExchangeKeyFile } from './keys.ts';
import { exchangeCheckOperation } from './operations/exchange-check.ts';
import { partnerReadiness } from './readiness.ts';
import { PartnerRegistry, registryObserver } from './registry.ts';
import type { ExchangeState } from './state.ts';

export const exchangeModule: ModuleFactory = ({ db, config, logger, limits }) => {
  let keys: ExchangeKeyFile | undefined;
  const registry = new PartnerRegistry(db, new Repository(db));
  let federation: Federation | undefined;
  const state: ExchangeState = {
    db,
    config,
    keys() {
      if (!keys) throw new Error('the exchange keys are not loaded yet');
      return keys;
    },
    registry: () => registry,
  };
  const api = exchangeApi(state, limits);
  return {
    name: 'exchange',
    operations: [exchangeCheckOperation(state)],
    writeObservers: [registryObserver],
    routes: [api.routes(), api.allowedMethods()],
    readiness: { partners: partnerReadiness(() => registry) },
    async init() {
      keys = await ensureExchangeKeys(exchangeKeyFile(config.dataDir, config.exchange.keyFile));
      federation = new Federation(db, registry, config.exchange, keys, logger);
      const f = federation;
      setFederation(db, (q) => f.ask(q));
    },
    async stop() {
      setFederation(db, undefined);
      await federation?.close();
    },
  };
};
