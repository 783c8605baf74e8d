/**
 * Assembles the service: database + migrations, the FHIR engine with the domain modules plugged in (MODULES
 * below: each domain folder's module.ts), the scheduler that runs their jobs once per tick across server
 * processes, the Koa application (error mapping, observability, the authorisation seam, the modules' routes,
 * FHIR REST, health and metrics), and its HTTP server. docs/architecture.md draws it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import Router from '@koa/router';
import { OperationOutcomeError } from '@medplum/core';
import { checkConfig, type Config } from './config.ts';
import { analyzeGrownTables, openDatabase, type Database } from './db/database.ts';
import { migrate } from './db/migrate.ts';
import { loadDefinitions } from './fhir/definitions.ts';
import { loadValidation } from './fhir/validate.ts';
import { asFhirError, fail, outcome, statusOf } from './fhir/errors.ts';
import { installEngine, uninstallEngine } from './fhir/engine.ts';
import { Repository } from './fhir/repository.ts';
import { route, type FhirContext, type FhirRequest, type Prefer } from './fhir/router.ts';
import { processBundle } from './fhir/bundle.ts';
import { limits, setLimits, tooCostly } from './fhir/limits.ts';
import { AsyncJobs } from './fhir/async/jobs.ts';
import { BackendAuth, TOKEN_LIFETIME_SECONDS } from './auth/backend.ts';
import { CLOCK_TOLERANCE_SECONDS } from './auth/keys.ts';
import { accessPolicy } from './auth/policy.ts';
import { configureCare, parsePurpose } from './auth/care.ts';
import { authRoutes } from './auth/routes.ts';
import { APP_TOKEN_LIFETIME_SECONDS, AppAuth } from './auth/app-auth.ts';
import { LaunchContexts } from './auth/launch.ts';
import { launchRoutes } from './auth/launch-routes.ts';
import { TokenKeys } from './auth/signing.ts';
import { AuthThrottle } from './auth/throttle.ts';
import { CdsTrust } from './cds/trust.ts';
import { authMiddleware, resolveBootstrapToken, type BootstrapToken, type Principal } from './http/auth.ts';
import { cors } from './http/cors.ts';
import { root } from './http/root.ts';
import { readBody, UNSTORABLE_TEXT } from './http/body.ts';
import { createLogger, createMetrics, metricsByToken, observe, type Logger } from './http/observability.ts';
import { securityHeaders } from './http/headers.ts';
import { apiLimit, loginLimit } from './http/rate-limit.ts';
import { Scheduler } from './scheduler/scheduler.ts';
import type { HurenModule, ModuleContext, ModuleFactory, Readiness } from './module.ts';
import { terminologyModule } from './terminology/module.ts';
import { recognitionModule } from './recognition/module.ts';
import { profilesModule } from './profiles/module.ts';
import { dictionaryModule } from './dictionary/module.ts';
import { provenanceModule } from './provenance/module.ts';
import { cdsModule } from './cds/module.ts';
import { webappModule } from './webapp/module.ts';
import { accountsModule } from './accounts/module.ts';
import { auditModule } from './audit/module.ts';
import { monitoringModule } from './monitoring/module.ts';
import { privacyModule } from './privacy/module.ts';
import { exchangeModule } from './exchange/module.ts';
import { ProvenanceService } from './provenance/service.ts';
import { startSharedSettings, stopSharedSettings } from './db/shared-settings.ts';

/**
 * The domains, in order: `init` runs in this order before the server takes requests (the terminology before
 * the profiles that validate against it), `stop` in reverse. A new domain is a folder with a module.ts and a line here.
 */
export const MODULES: readonly ModuleFactory[] = [privacyModule, terminologyModule, recognitionModule, profilesModule, dictionaryModule, provenanceModule, monitoringModule, exchangeModule, cdsModule, accountsModule, auditModule, webappModule];

export interface Huren {
  config: Config;
  db: Database;
  logger: Logger;
  server: Server;
  /** Base URL actually listened on, e.g. http://127.0.0.1:8080 */
  url: string;
  /** The bootstrap token ('' when there is none: a generated one was used up on this data directory). */
  bootstrapToken: string;
  generatedToken: boolean;
  modules: readonly HurenModule[];
  scheduler: Scheduler;
  /** Chain provenance: anchorNow(), verifyNow(), sweep(), the ledger (server/provenance/service.ts). */
  provenance: ProvenanceService;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Where JSON log lines go (default standard output). */
  logStream?: NodeJS.WritableStream;
}

/**
 * Stops `modules` (the last first), the engine, the shared-settings listener and the database: at close, and
 * after a failed start for what it had started (`tolerate`: a step that fails does not stop the others).
 */
async function release(db: Database, modules: readonly HurenModule[], tolerate = false): Promise<void> {
  const step = (f: () => unknown) =>
    Promise.resolve()
      .then(f)
      .catch((e: unknown) => {
        if (!tolerate) throw e;
      });
  for (const m of [...modules].reverse()) await step(() => m.stop?.());
  await step(() => uninstallEngine(db));
  await step(() => stopSharedSettings(db));
  await step(() => db.close());
}

export async function start(config: Config, options: StartOptions = {}): Promise<Huren> {
  checkConfig(config);
  const logger = createLogger(config.logLevel, options.logStream);
  setLimits(config.limits);
  // before anything opens: production mode refuses an operator-set bootstrap token
  const bootstrap = resolveBootstrapToken(config.bootstrapToken, config.dataDir, config.mode);
  if (bootstrap.source === 'operator') logger.warn({ mode: config.mode }, 'the operator-set bootstrap token (HUREN_BOOTSTRAP_TOKEN) is on: full rights for whoever holds it; unset it once accounts are set up');
  if (bootstrap.source === 'generated' && bootstrap.active) logger.warn('a generated bootstrap token is on until the first security administrator is created with it (POST /api/accounts)');
  loadDefinitions();
  loadValidation();
  const db = await openDatabase({ url: config.databaseUrl, readUrl: config.databaseReadUrl, dataDir: config.inMemory ? undefined : `${config.dataDir}/pglite`, statementTimeoutMs: config.statementTimeoutMs });
  const applied = await migrate(db);
  if (applied.length > 0) logger.info({ applied, engine: db.engine }, 'migrations applied');
  // rarely-changing settings the checks read, cached while this process hears every change (db/shared-settings.ts)
  await startSharedSettings(db);
  const context: ModuleContext = { config, db, logger, limits: { maxBytes: config.maxBodyBytes, maxDepth: config.maxJsonDepth }, bootstrap };
  const modules = MODULES.map((factory) => factory(context));
  configureCare(db, { windowHours: config.careWindowHours });
  installEngine(db, {
    operations: modules.flatMap((m) => m.operations ?? []),
    writeObservers: modules.flatMap((m) => m.writeObservers ?? []),
    responseDecorators: modules.flatMap((m) => m.responseDecorators ?? []),
    repeatFinders: modules.flatMap((m) => m.repeatFinders ?? []),
    responseOnlyTags: modules.flatMap((m) => m.responseOnlyTags ?? []),
    access: accessPolicy(),
    codec: oneCodec(modules),
    identity: { name: 'Huren', description: 'Huren FHIR R4 server for mutual recognition of lab and examination results' },
    // the platform's own records (recognition records) are validated under test only (AVA sets NODE_ENV=test)
    assertOwnRecords: process.env.NODE_ENV === 'test',
  });
  const inited: typeof modules = [];
  try {
    for (const m of modules) {
      await m.init?.();
      inited.push(m);
    }
  } catch (err) {
    // e.g. key files that are not this database's (server/key-check.ts): refuse to start, leave nothing open —
    // the modules already initialised (their listeners), the settings listener, the engine, the database
    await release(db, inited, true);
    throw err;
  }
  const scheduler = new Scheduler(db, logger);
  // planner statistics for the engines that keep none themselves (database.ts)
  scheduler.register({ name: 'db.analyze', cron: config.analyzeCron, run: () => analyzeGrownTables(db) });
  // spent and expired SMART launch contexts and codes (server/auth/launch.ts)
  scheduler.register({ name: 'auth.prune-launches', cron: '0 17 * * * *', run: () => new LaunchContexts(db).prune() });
  for (const m of modules) for (const job of m.jobs ?? []) scheduler.register(job);
  const repo = new Repository(db);
  const jobs = new AsyncJobs(db, (request, principal, baseUrl, progress) => route({ repo, baseUrl, principal, processBundle, progress }, request), {
    retentionSeconds: config.asyncRetentionSeconds,
    leaseSeconds: 120,
    pollMs: 500,
    concurrency: config.asyncConcurrency,
  });
  // the JWT audiences: HUREN_PUBLIC_URL, else the address listened on (known once listening)
  let listening = '';
  const app = createApp(config, db, logger, bootstrap, modules, jobs, () => config.publicUrl ?? listening, scheduler);
  // long FHIR search URLs are normal: allow 64 KiB of request line + headers (Node's default is 16 KiB)
  const server = createServer({ maxHeaderSize: 64 * 1024 }, app.callback());
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  jobs.start();
  for (const m of modules) m.start?.();
  scheduler.start();
  const address = server.address() as AddressInfo;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  listening = `http://${host}:${address.port}`;
  return {
    config,
    db,
    logger,
    server,
    url: `http://${host}:${address.port}`,
    bootstrapToken: bootstrap.token ?? '',
    generatedToken: bootstrap.generated,
    modules,
    scheduler,
    provenance: ProvenanceService.of(db) as ProvenanceService,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await scheduler.stop();
      await jobs.stop();
      await release(db, modules);
    },
  };
}

/** The storage codec of the one module that brings it (server/privacy/), if any. */
function oneCodec(modules: readonly HurenModule[]): HurenModule['codec'] {
  const codecs = modules.filter((m) => m.codec);
  if (codecs.length > 1) throw new Error(`only one module may bring a storage codec: ${codecs.map((m) => m.name).join(', ')}`);
  return codecs[0]?.codec;
}

export function createApp(
  config: Config,
  db: Database,
  logger: Logger,
  bootstrap: BootstrapToken,
  modules: readonly HurenModule[],
  jobs?: AsyncJobs,
  base = () => config.publicUrl ?? `http://${config.host}:${config.port}`,
  scheduler?: Scheduler
): Koa {
  // behind a proxy, the source address is the X-Forwarded-For entry the proxy added (the last), not one a client wrote
  const app = new Koa({ proxy: config.trustProxy, maxIpsCount: 1 });
  const metrics = createMetrics();
  for (const m of modules) m.metrics?.(metrics.registry);
  scheduler?.registerMetrics(metrics.registry);
  const repo = new Repository(db);

  app.use(securityHeaders({ hstsMaxAge: config.edge.hstsMaxAge, publicUrl: config.publicUrl }));
  app.use(observe(logger, metrics));
  // the modules' edge middleware (the audit trail) wraps everything below, so it sees every request's final answer
  for (const m of modules) for (const middleware of m.edge ?? []) app.use(middleware);
  app.use(errors(logger));
  app.use(cors(config.corsOrigins));
  // the scraper's own token (HUREN_METRICS_TOKEN), answered before the bearer tokens of people and systems are looked at
  if (config.edge.metricsToken) app.use(metricsByToken(config.edge.metricsToken, metrics.registry));
  app.use(loginLimit(db, config.rateLimits));
  const production = config.mode === 'production';
  const keys = TokenKeys.open(config.dataDir, (Math.max(TOKEN_LIFETIME_SECONDS, APP_TOKEN_LIFETIME_SECONDS) + CLOCK_TOLERANCE_SECONDS) * 1000);
  const backend = new BackendAuth(config.clients, { db, keys, production });
  // SMART App Launch (EHR launch) of the platform's registered apps: the report viewer
  const launches = new LaunchContexts(db);
  const apps = new AppAuth({ db, keys, launches, base, mayLaunch: (clientId) => backend.mayLaunch(clientId) });
  const throttle = new AuthThrottle(config.rateLimits);
  const authenticators = [...modules.flatMap((m) => m.authenticators ?? []), (token: string) => apps.principal(token)];
  app.use(authMiddleware(bootstrap, { cds: new CdsTrust(config.cdsClients, { db, production }), backend, base, throttle, authenticators }));
  app.use(apiLimit(config.rateLimits));
  app.use(authRoutes({ backend, keys, throttle, base, apps }));
  app.use(launchRoutes({ db, apps, launches, limits: { maxBytes: 64 * 1024, maxDepth: 8 } }));

  const router = new Router();
  router.get('/', root(config.publicUrl));
  // liveness: the process answers (a restart is the cure for a no); nothing else is asked
  const live = (ctx: Koa.Context) => {
    ctx.body = { status: 'ok' };
  };
  router.get('/healthz', live);
  router.get('/livez', live);
  // readiness: can this instance serve? 503 takes it out of the load balancer — only when the database is down;
  // the chain, partner platforms and the scheduler are reported (degraded) but are worked around
  router.get('/readyz', async (ctx) => {
    const checks: [string, () => Promise<Readiness>][] = [
      ['database', async () => (await db.query('SELECT 1'), { status: 'up', detail: { engine: db.engine } })],
      ...(scheduler ? [['scheduler', async () => schedulerReadiness(scheduler)] as [string, () => Promise<Readiness>]] : []),
      ...modules.flatMap((m) => Object.entries(m.readiness ?? {})),
    ];
    const components: Record<string, Readiness> = {};
    await Promise.all(checks.map(async ([name, check]) => (components[name] = await withTimeout(check, name === 'database' ? 'down' : 'degraded'))));
    const states = Object.values(components).map((c) => c.status);
    const status = components.database.status === 'down' ? 'unavailable' : states.every((s) => s === 'up') ? 'ready' : 'degraded';
    ctx.status = status === 'unavailable' ? 503 : 200;
    if (ctx.status === 503) ctx.set('Retry-After', String(RETRY_AFTER_SECONDS));
    ctx.body = { status, database: db.engine, components };
  });
  router.get('/metrics', async (ctx) => {
    // operational figures are for the platform's operators (HUREN_METRICS_TOKEN, above, or the platform token), not for hospital clients
    if ((ctx.state.principal as Principal | undefined)?.kind !== 'bootstrap') throw fail(403, 'forbidden', 'The metrics need the metrics token (HUREN_METRICS_TOKEN) or the platform token');
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  // each module's own routes (the app's JSON APIs, CDS Hooks)
  for (const m of modules) for (const middleware of m.routes ?? []) app.use(middleware);

  app.use(async (ctx, next) => {
    if (ctx.path !== '/fhir' && !ctx.path.startsWith('/fhir/')) return next();
    const format = ctx.query._format;
    if ((typeof format === 'string' && /xml/i.test(format)) || (/xml/i.test(ctx.get('accept')) && !/json|\*\/\*/i.test(ctx.get('accept')))) {
      throw fail(406, 'not-supported', 'Only JSON is supported (application/fhir+json)');
    }
    const baseUrl = `${config.publicUrl ?? `${ctx.protocol}://${ctx.host}`}/fhir`;
    const body = ['POST', 'PUT', 'PATCH'].includes(ctx.method)
      ? await readBody(ctx, { maxBytes: config.maxBodyBytes, maxDepth: config.maxJsonDepth })
      : undefined;
    const query = [...new URLSearchParams(ctx.querystring)] as [string, string][];
    if (query.some(([k, v]) => UNSTORABLE_TEXT.test(k) || UNSTORABLE_TEXT.test(v))) {
      throw fail(400, 'invalid', 'Query parameters must not contain NUL characters');
    }
    const request: FhirRequest = {
      method: ctx.method === 'HEAD' ? 'GET' : ctx.method,
      path: decodePath(ctx.path.slice('/fhir'.length)),
      query,
      body,
      ...(ctx.method === 'POST' && (ctx.path === '/fhir' || ctx.path === '/fhir/') && typeof ctx.state.rawBody === 'string' ? { raw: ctx.state.rawBody } : {}),
      ifMatch: ctx.get('if-match') || undefined,
      ifNoneExist: ctx.get('if-none-exist') || undefined,
      ifNoneMatch: ctx.get('if-none-match') || undefined,
      prefer: parsePrefer(ctx.get('prefer')),
    };
    // the purpose of use the request states, for reads of other institutions' personal data (server/auth/care.ts)
    const purposeOfUse = parsePurpose(ctx.get('x-purpose-of-use') || undefined);
    const caller = ctx.state.principal as Principal;
    // an app launched for a patient reads for treatment, the purpose of its launch, whatever the header says
    const principal: Principal = { ...caller, ...(purposeOfUse && caller.patient === undefined ? { purposeOfUse } : {}) };
    const fctx: FhirContext = { repo, baseUrl, principal, processBundle, jobs, cors: config.corsOrigins.length > 0 };
    const res = await route(fctx, request);
    ctx.status = res.status;
    if (res.resource?.meta?.versionId) ctx.set('ETag', `W/"${res.resource.meta.versionId}"`);
    if (res.resource?.meta?.lastUpdated) ctx.set('Last-Modified', new Date(res.resource.meta.lastUpdated).toUTCString());
    if (res.location) {
      ctx.set('Location', res.location);
      if (res.status === 201) ctx.set('Content-Location', res.location);
    }
    for (const [k, v] of Object.entries(res.headers ?? {})) ctx.set(k, v);
    if (res.body) {
      ctx.type = 'application/fhir+json; charset=utf-8';
      const text = ctx.query._pretty === 'true' ? JSON.stringify(res.body, null, 2) : (res.bytes ?? JSON.stringify(res.body));
      if ((typeof text === 'string' ? Buffer.byteLength(text) : text.length) > limits().maxAnswerBytes) {
        throw tooCostly(422, `The answer would exceed ${limits().maxAnswerBytes} bytes; ask for fewer resources`);
      }
      ctx.body = text;
      // the answer as it was before it was serialised, for the edge middleware (the audit trail): not parsed back
      ctx.state.answer = res.body;
    }
  });

  app.use(async (ctx) => {
    throw fail(404, 'not-found', `Nothing at ${ctx.method} ${ctx.path.slice(0, 100)}`);
  });
  return app;
}

const RETRY_AFTER_SECONDS = 2;
const READINESS_TIMEOUT_MS = 2000;

/** A readiness check that throws or takes longer than 2 s counts as `failed` (down for the database, degraded otherwise). */
async function withTimeout(check: () => Promise<Readiness>, failed: 'down' | 'degraded'): Promise<Readiness> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Readiness>((resolve) => (timer = setTimeout(() => resolve({ status: failed, detail: { error: 'no answer within 2 s' } }), READINESS_TIMEOUT_MS)));
  try {
    return await Promise.race([check().catch((e: unknown) => ({ status: failed, detail: { error: String((e as Error)?.name ?? 'error') } }) as Readiness), late]);
  } finally {
    clearTimeout(timer);
  }
}

function schedulerReadiness(scheduler: Scheduler): Readiness {
  const state = scheduler.state();
  const failing = Object.entries(state.lastRuns).filter(([, r]) => !r.ok).map(([job]) => job);
  return { status: state.running && failing.length === 0 ? 'up' : 'degraded', detail: { running: state.running, jobs: state.jobs, failing } };
}

/** Maps every error to an OperationOutcome; unknown errors are 500s, logged without their data. */
function errors(logger: Logger): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (thrown) {
      const err = asFhirError(thrown);
      let status = statusOf(err);
      let body;
      if (err instanceof OperationOutcomeError) {
        body = err.outcome;
      } else {
        const httpStatus = (err as { status?: number; expose?: boolean }).status;
        if (httpStatus && httpStatus >= 400 && httpStatus < 500) {
          status = httpStatus;
          body = outcome('error', 'invalid', (err as Error).message.slice(0, 200));
        } else {
          const e = err as Error & { code?: string };
          logger.error({ requestId: ctx.state.requestId, err: { name: e.name, code: e.code, stack: e.stack?.split('\n').slice(0, 6).join('\n') } }, 'unhandled error');
          body = outcome('fatal', 'exception', `Internal error (request ${ctx.state.requestId ?? 'unknown'})`);
        }
      }
      ctx.status = status;
      // a 503 is transient (statement timeout, failover, shortage): say when to come back
      if (status === 503 && !ctx.response.get('Retry-After')) ctx.set('Retry-After', String(RETRY_AFTER_SECONDS));
      ctx.type = 'application/fhir+json; charset=utf-8';
      ctx.body = JSON.stringify(body);
      ctx.state.answer = body;
    }
  };
}

function decodePath(path: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    throw fail(400, 'invalid', 'Malformed URL encoding in the path');
  }
  if (UNSTORABLE_TEXT.test(decoded)) throw fail(400, 'invalid', 'The path must not contain NUL characters');
  return decoded;
}

export function parsePrefer(header: string): Prefer {
  const prefer: Prefer = {};
  for (const part of header.split(/[,;]/).map((s) => s.trim())) {
    const [k, v] = part.split('=').map((s) => s?.trim().replace(/^"|"$/g, ''));
    if (k === 'return' && (v === 'minimal' || v === 'representation' || v === 'OperationOutcome')) prefer.return = v;
    if (k === 'handling' && (v === 'strict' || v === 'lenient')) prefer.handling = v;
    if (k === 'respond-async') prefer.respondAsync = true;
  }
  return prefer;
}
