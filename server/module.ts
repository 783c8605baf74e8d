/**
 * The face every domain folder shows the application: one `module.ts` per domain exports a `ModuleFactory`, and
 * `server/app.ts` composes the list. A module brings what the FHIR engine should offer (operations, write
 * observers, answer decorators, repeat finders, response-only tags), its own HTTP routes outside `/fhir`, its
 * scheduled jobs (run once per tick across server processes, server/scheduler/), and its life cycle.
 *
 *   export const provenanceModule: ModuleFactory = (ctx) => ({ name: 'provenance', operations: [...], jobs: [...] });
 *
 * Adding a domain is a new folder and one line in app.ts's list; removing one is the reverse.
 */
import type Koa from 'koa';
import type client from 'prom-client';
import type { Config } from './config.ts';
import type { Database } from './db/database.ts';
import type { EngineParts } from './fhir/engine.ts';
import type { Logger } from './http/observability.ts';
import type { Authenticator, BootstrapToken } from './http/auth.ts';
import type { BodyLimits } from './http/body.ts';
import type { ScheduledJob } from './scheduler/scheduler.ts';

export interface ModuleContext {
  config: Config;
  db: Database;
  logger: Logger;
  /** The request-body limits every JSON endpoint applies. */
  limits: BodyLimits;
  /** The bootstrap token (server/http/auth.ts): the accounts module disables a generated one after first use. */
  bootstrap: BootstrapToken;
}

/**
 * A component's state for `/readyz`: `down` for what the platform cannot work without (only the database is
 * that: the app takes it out of the load balancer), `degraded` for what it works around (the chain: anchors
 * wait in the outbox; a partner city: checks answer without it).
 */
export interface Readiness {
  status: 'up' | 'degraded' | 'down';
  /** Figures for the operator: no personal data. */
  detail?: Record<string, unknown>;
}

export interface HurenModule extends Omit<EngineParts, 'access'> {
  /** Short and unique: `recognition`, `provenance`… */
  name: string;
  /**
   * Koa middleware mounted before the error mapping and authentication (in list order): it sees every request,
   * refused ones included, with its final status, principal (`ctx.state.principal`) and account event
   * (`ctx.state.audit`). For the audit trail; routes belong in `routes`.
   */
  edge?: readonly Koa.Middleware<any, any>[];
  /** Koa middleware for the module's routes outside `/fhir` (mounted in list order, after authentication). */
  routes?: readonly Koa.Middleware<any, any>[];
  /** Bearer tokens of the module's own (a person's session): tried by the authorisation seam, server/http/auth.ts. */
  authenticators?: readonly Authenticator[];
  /** Components this module watches, for `/readyz` (each check is cut off after 2 s and then counts as degraded). */
  readiness?: Readonly<Record<string, () => Promise<Readiness>>>;
  /** Registers the module's Prometheus metrics (served at `/metrics`). */
  metrics?(registry: client.Registry): void;
  /** Periodic jobs; names are prefixed with the module's name by convention (`provenance.anchor`). */
  jobs?: readonly ScheduledJob[];
  /** Before the server takes requests, in list order (load reference data, publish resources). */
  init?(): Promise<void>;
  /** After the server listens (timers that are not scheduled jobs). */
  start?(): void;
  /** Before the database closes, in reverse list order. */
  stop?(): Promise<void>;
}

export type ModuleFactory = (ctx: ModuleContext) => HurenModule;
