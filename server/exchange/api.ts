/**
 * The exchange's JSON API (docs/foshan-exchange.md):
 *
 *   GET /api/exchange/identity            public: what a partner registers about this platform — its code,
 *                                         name, city, FHIR base, token endpoint, client key (JWKS), credential
 *                                         key (Multikey), chain (ledger, contract, read node)
 *   GET /api/exchange/jwks                public: this platform's client key, for a partner's jwksUrl
 *   GET /api/exchange/partners            the partner registry (security administrator)
 *   PUT /api/exchange/partners/:code      create or replace a partner (security administrator): name, city,
 *                                         coverage, fhirBase, tokenUrl, clientId, partnerClientId, vcKey,
 *                                         chain, idKey (the agreement's national-ID hashing key, 64 hex), active
 *
 * Errors are OperationOutcomes naming the member (`vcKey.publicKeyMultibase`, `coverage[1]`…).
 */
import Router from '@koa/router';
import type Koa from 'koa';
import { badRequest, fail } from '../fhir/errors.ts';
import type { Principal } from '../http/auth.ts';
import { readBody, type BodyLimits } from '../http/body.ts';
import { ProvenanceService } from '../provenance/index.ts';
import type { ExchangeState } from './state.ts';
import type { Partner } from './registry.ts';
import { issuerKey } from './share.ts';

const CODE = /^[a-z][a-z0-9-]{1,31}$/;
const CITY = /^\d{6}$/;
const MEMBERS = ['name', 'city', 'coverage', 'fhirBase', 'tokenUrl', 'clientId', 'partnerClientId', 'vcKey', 'chain', 'idKey', 'active'];

/** The security administrator (or the operator's platform token) manages the partners. */
function requireSecurityAdmin(ctx: Koa.Context): void {
  const p = ctx.state.principal as Principal | undefined;
  if (p?.kind === 'user' && p.roles?.includes('security-admin')) return;
  if (p?.kind === 'bootstrap' && p.id === 'bootstrap') return;
  throw fail(403, 'forbidden', 'The partner registry is managed by the security administrator (安全管理员)');
}

export function exchangeApi(state: ExchangeState, limits: BodyLimits): Router {
  const router = new Router({ prefix: '/api/exchange' });
  const json = (ctx: Koa.Context, body: unknown) => {
    ctx.body = body;
    ctx.type = 'application/json; charset=utf-8';
  };
  const base = (ctx: Koa.Context) => state.config.publicUrl ?? `${ctx.protocol}://${ctx.host}`;

  router.get('/identity', async (ctx) => {
    const service = ProvenanceService.of(state.db);
    const chain = service ? await service.chainIdentity().catch(() => ({ ledger: service.ledger.name })) : undefined;
    const rpc = service ? (await service.readRpc)?.url : undefined;
    json(ctx, {
      platform: state.config.exchange.platform,
      name: state.config.exchange.name,
      city: state.config.exchange.city,
      fhirBase: `${base(ctx)}/fhir`,
      tokenUrl: `${base(ctx)}/auth/token`,
      jwks: { keys: [state.keys().client.publicJwk] },
      vcKey: (({ secretKeyMultibase: _s, ...pub }) => pub)(issuerKey(state.config.exchange, state.keys())),
      ...(chain ? { chain: { ...chain, ...(rpc ? { rpc: [rpc] } : {}) } } : {}),
    });
  });

  router.get('/jwks', (ctx) => json(ctx, { keys: [state.keys().client.publicJwk] }));

  router.get('/partners', async (ctx) => {
    requireSecurityAdmin(ctx);
    json(ctx, { partners: await state.registry().list() });
  });

  router.put('/partners/:code', async (ctx) => {
    requireSecurityAdmin(ctx);
    const code = ctx.params.code ?? '';
    if (!CODE.test(code)) throw badRequest('the partner code is 2-32 lower-case letters, digits or -', 'code');
    if (code === state.config.exchange.platform) throw badRequest('a platform is not its own partner', 'code');
    const b = (await readBody(ctx, limits)) as Record<string, any> | undefined;
    if (!b || typeof b !== 'object' || Array.isArray(b)) throw badRequest('Send a JSON object describing the partner');
    const unknown = Object.keys(b).find((k) => !MEMBERS.includes(k));
    if (unknown) throw badRequest(`unknown member '${unknown.slice(0, 40)}' (known: ${MEMBERS.join(', ')})`, unknown.slice(0, 40));
    const text = (v: unknown, name: string, max = 300) => {
      if (typeof v !== 'string' || v.trim() === '' || v.length > max) throw badRequest(`${name} must be a non-empty string of at most ${max} characters`, name);
      return v.trim();
    };
    const url = (v: unknown, name: string) => {
      const s = text(v, name, 500);
      let u: URL;
      try {
        u = new URL(s);
      } catch {
        throw badRequest(`${name} must be an absolute URL`, name);
      }
      if (u.protocol !== 'https:' && !(state.config.mode !== 'production' && u.protocol === 'http:')) throw badRequest(`${name} must be an https URL`, name);
      return s.replace(/\/$/, '');
    };
    const city = text(b.city, 'city', 6);
    if (!CITY.test(city)) throw badRequest('city must be a 6-digit administrative division code', 'city');
    const coverage = b.coverage === undefined ? [state.config.exchange.city] : b.coverage;
    if (!Array.isArray(coverage) || coverage.length === 0 || coverage.length > 50) throw badRequest('coverage must list 1 to 50 requester cities (division codes)', 'coverage');
    coverage.forEach((c: unknown, i: number) => {
      if (typeof c !== 'string' || !CITY.test(c)) throw badRequest('a coverage entry is a 6-digit administrative division code', `coverage[${i}]`);
    });
    const vc = b.vcKey;
    if (!vc || typeof vc !== 'object') throw badRequest('vcKey { id, publicKeyMultibase[, controller] } is required: the partner’s credential key (its /api/exchange/identity)', 'vcKey');
    const vcKey = { controller: vc.controller === undefined ? `urn:huren:platform:${code}` : text(vc.controller, 'vcKey.controller'), id: text(vc.id, 'vcKey.id'), publicKeyMultibase: text(vc.publicKeyMultibase, 'vcKey.publicKeyMultibase', 100) };
    if (!/^z6Mk[1-9A-HJ-NP-Za-km-z]{40,60}$/.test(vcKey.publicKeyMultibase)) throw badRequest('vcKey.publicKeyMultibase must be an Ed25519 Multikey (z6Mk…)', 'vcKey.publicKeyMultibase');
    if (!vcKey.id.startsWith(`${vcKey.controller}#`)) throw badRequest('vcKey.id must be a fragment of vcKey.controller (…#vc)', 'vcKey.id');
    const ch = b.chain;
    if (!ch || typeof ch !== 'object') throw badRequest('chain { ledger, contract, rpc[] } is required: the partner chain’s identity', 'chain');
    const rpc = ch.rpc === undefined ? [] : ch.rpc;
    if (!Array.isArray(rpc) || rpc.length > 10) throw badRequest('chain.rpc lists at most 10 chain node URLs', 'chain.rpc');
    const chain = {
      ledger: text(ch.ledger, 'chain.ledger', 100),
      ...(ch.contract !== undefined ? { contract: text(ch.contract, 'chain.contract', 42) } : {}),
      rpc: rpc.map((r: unknown, i: number) => url(r, `chain.rpc[${i}]`)),
    };
    if (chain.contract && !/^0x[0-9a-fA-F]{40}$/.test(chain.contract)) throw badRequest('chain.contract is the anchor contract address, 0x + 40 hex digits', 'chain.contract');
    const idKey = text(b.idKey, 'idKey', 64);
    if (!/^[0-9a-f]{64}$/.test(idKey)) throw badRequest('idKey is the agreement’s national-ID hashing key: 64 lower-case hex digits, the same on both platforms', 'idKey');
    if (b.active !== undefined && typeof b.active !== 'boolean') throw badRequest('active must be true or false', 'active');
    const partner: Partner = {
      code,
      name: text(b.name, 'name', 100),
      city,
      coverage,
      fhirBase: url(b.fhirBase, 'fhirBase'),
      tokenUrl: url(b.tokenUrl, 'tokenUrl'),
      clientId: text(b.clientId, 'clientId', 100),
      partnerClientId: text(b.partnerClientId, 'partnerClientId', 100),
      vcKey,
      chain,
      active: b.active !== false,
    };
    json(ctx, await state.registry().put(partner, idKey));
  });
  return router;
}
