/**
 * What the application plugs into the FHIR engine for one database. The engine itself knows no domain: the
 * app (server/app.ts) collects these parts from its modules and installs them once, before it takes requests.
 *
 *   installEngine(db, { operations, writeObservers, responseDecorators, repeatFinders, responseOnlyTags, access })
 *   engineOf(db)   // what the router, the Bundle processor and the repository read
 *
 * Parts are per database (a WeakMap), so several servers in one process (tests) keep their own.
 */
import type { Resource } from '@medplum/fhirtypes';
import type { Database } from '../db/database.ts';
import { fail } from './errors.ts';
import { OperationRegistry, type Operation } from './operations/registry.ts';
import { validateOperation } from './operations/validate.ts';
import type { Principal } from './principal.ts';
import type { ParamDef } from './definitions.ts';
import type { IndexRows } from './search/indexer.ts';
import type { Repository, WriteChange, WriteObserver } from './repository.ts';
import type { FhirContext, FhirRequest, FhirResponse } from './router.ts';

/** Post-processes every answer (e.g. a badge on the resources shown); must not change what was stored. */
export type ResponseDecorator = (ctx: FhirContext, req: FhirRequest, res: FhirResponse) => Promise<FhirResponse>;

/**
 * Recognises a transaction entry that repeats what is already stored (an exact retry), so the Bundle answers
 * with the stored resource instead of writing it again: returns its id, or undefined.
 */
export type RepeatFinder = (repo: Repository, resource: Resource, retried: ReadonlySet<string>) => Promise<string | undefined>;

/**
 * Decides whether a caller may make an interaction: throws a 403 FhirError when not. `segments` is the path
 * below the FHIR base (`['Patient', '123', '$everything']`). Called for every request and for every entry of a
 * batch or transaction before anything is written.
 */
export interface AccessPolicy {
  authorize(principal: Principal, method: string, segments: readonly string[]): void;
  /**
   * Decides whether the caller may make one write the REST interactions make (create, update, patch, delete,
   * conditional forms, each entry of a batch or transaction): `next` is what would be stored, `current` what is
   * stored now. Throws a 403 FhirError naming the element when not. Operations' own writes are not asked.
   */
  authorizeWrite?(principal: Principal, change: WriteChange, repo: Repository): Promise<void>;
  /**
   * Sees every answer before it leaves (also each entry of a batch, and an asynchronous job's result): removes
   * what the caller may not see from a Bundle, or throws a 403 for a single resource it may not see.
   */
  filterAnswer?(ctx: FhirContext, req: FhirRequest, res: FhirResponse): Promise<FhirResponse>;
}

/**
 * How resources and their index rows are kept at rest (e.g. personal data encrypted, with a blind index): the
 * store passes every new version through `seal` (once per write: the same stored form goes to the current row
 * and the history) and its index rows through `index`; every row read back passes through `open`; every
 * search value of a parameter through `search`. `sealText`/`openText` do the same for other stored text that
 * may hold what a resource holds (an async job's answer, a module's copy of a submission). The engine knows no
 * rule itself: without an installed codec, everything is stored as given.
 */
export interface StorageCodec {
  /** The form to store (a new object; the argument is not changed). */
  seal(resource: Resource): Resource;
  /** The resource as it was given, from its stored form (a stored form without anything sealed is returned as is). */
  open(resource: Resource): Resource;
  /** Rewrites (in place) the index rows of a resource before they are stored. */
  index(resource: Resource, rows: IndexRows): void;
  /**
   * The values to look up for a search clause of `param` on `resourceType` (undefined: as given). May throw a
   * 400 FhirError when the modifier cannot work on what is stored (e.g. `:contains` over a blind index).
   */
  search(resourceType: string, param: ParamDef, modifier: string | undefined, values: readonly string[]): string[] | undefined;
  sealText(text: string): string;
  openText(text: string): string;
}

/** Stores everything as given. */
export const CLEAR_CODEC: StorageCodec = {
  seal: (r) => r,
  open: (r) => r,
  index: () => undefined,
  search: () => undefined,
  sealText: (t) => t,
  openText: (t) => t,
};

export interface EngineParts {
  /** Operations beyond the engine's own ($validate). */
  operations?: readonly Operation[];
  /** See every transaction's writes before it commits (a throw rolls it back); run in order. */
  writeObservers?: readonly WriteObserver[];
  /** Applied to every answer, in order. */
  responseDecorators?: readonly ResponseDecorator[];
  /** Asked in order; the first id found wins. */
  repeatFinders?: readonly RepeatFinder[];
  /** `meta.tag` systems that answers may carry but that are never stored (stripped from every write). */
  responseOnlyTags?: readonly string[];
  access?: AccessPolicy;
  /** How resources are kept at rest (default: as given). */
  codec?: StorageCodec;
  /** How the CapabilityStatement names the server (publisher and software name, implementation description). */
  identity?: ServerIdentity;
  /**
   * Validate the records the platform's own code builds (written with `create(…, { own: true })`) as a
   * client's are validated. Default on; the app turns it off except under test, so that a record an
   * operation writes on every call is not validated on every call while the tests still assert it.
   */
  assertOwnRecords?: boolean;
}

export interface ServerIdentity {
  name: string;
  description: string;
}

export interface FhirEngine {
  readonly operations: OperationRegistry;
  readonly writeObservers: readonly WriteObserver[];
  readonly responseDecorators: readonly ResponseDecorator[];
  readonly repeatFinders: readonly RepeatFinder[];
  readonly responseOnlyTags: ReadonlySet<string>;
  readonly access: AccessPolicy;
  readonly codec: StorageCodec;
  readonly identity: ServerIdentity;
  readonly assertOwnRecords: boolean;
}

/** The engine's generic operations. */
export const ENGINE_OPERATIONS: readonly Operation[] = [validateOperation];

/** Without an installed policy nothing is allowed (deny by default). */
const DENY_ALL: AccessPolicy = {
  authorize() {
    throw fail(403, 'forbidden', 'No access policy is installed on this server');
  },
};

const engines = new WeakMap<Database, FhirEngine>();

function build(parts: EngineParts): FhirEngine {
  return {
    operations: new OperationRegistry([...ENGINE_OPERATIONS, ...(parts.operations ?? [])]),
    writeObservers: [...(parts.writeObservers ?? [])],
    responseDecorators: [...(parts.responseDecorators ?? [])],
    repeatFinders: [...(parts.repeatFinders ?? [])],
    responseOnlyTags: new Set(parts.responseOnlyTags ?? []),
    access: parts.access ?? DENY_ALL,
    codec: parts.codec ?? CLEAR_CODEC,
    identity: parts.identity ?? { name: 'FHIR server', description: 'FHIR R4 server' },
    assertOwnRecords: parts.assertOwnRecords ?? true,
  };
}

const BARE = build({});

/** Installs the parts of the engine for a database (replacing any earlier installation). */
export function installEngine(db: Database, parts: EngineParts): FhirEngine {
  const engine = build(parts);
  engines.set(db, engine);
  return engine;
}

/** Removes the installation (the database is closing). */
export function uninstallEngine(db: Database): void {
  engines.delete(db);
}

/** The engine installed for a database; a bare one (generic operations, no observers, deny-all) otherwise. */
export function engineOf(db: Database): FhirEngine {
  return engines.get(db) ?? BARE;
}

/** Runs the access policy's answer filter, then the decorators of an engine, over an answer. */
export async function decorate(engine: FhirEngine, ctx: FhirContext, req: FhirRequest, res: FhirResponse): Promise<FhirResponse> {
  if (engine.access.filterAnswer) res = await engine.access.filterAnswer(ctx, req, res);
  for (const d of engine.responseDecorators) res = await d(ctx, req, res);
  return res;
}

/** A resource read from the store by a module's own SQL, as it was given (the installed codec's `open`). */
export function openStored<T extends Resource>(db: Database, content: T): T {
  return engineOf(db).codec.open(content) as T;
}
