/**
 * The authorisation seam: one middleware resolves the principal of every request; nothing behind it runs
 * without one. Credentials: the static bootstrap token (full rights), a backend client's access token
 * (server/auth/backend.ts), and — for the CDS Hooks calls only — a registered CDS client's signed JWT
 * (server/cds/trust.ts), which makes the call on behalf of the client's institution; its audience is the
 * server's own base URL (`base()`: HUREN_PUBLIC_URL or the listen address), never the request's Host.
 * Refused bearer tokens are throttled per source address and per claimed client (server/auth/throttle.ts).
 * Besides: the bootstrap token (full rights; see BootstrapToken), the modules'
 * authenticators (a signed-in person's session, server/accounts/), a backend client's access token, and — for
 * the CDS Hooks calls only — a registered CDS client's signed JWT (server/cds/trust.ts), which makes the call
 * on behalf of the client's institution.
 */
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Koa from 'koa';
import { fail } from '../fhir/errors.ts';
import { ANONYMOUS, type Principal } from '../fhir/principal.ts';
import { CdsTrustError, type CdsTrust } from '../cds/trust.ts';
import type { BackendAuth } from '../auth/backend.ts';
import { TOKEN_PATH } from '../auth/routes.ts';
import type { AuthThrottle } from '../auth/throttle.ts';

export { ANONYMOUS, type Principal } from '../fhir/principal.ts';

/** Paths anyone may call (DESIGN.md §6a). */
export function isPublic(method: string, path: string): boolean {
  if (path === TOKEN_PATH) return true;
  // a SMART app's authorization request (server/auth/app-auth.ts): the browser comes without a token
  if (method === 'GET' && path === '/auth/authorize') return true;
  // the two sign-in steps of a person (server/accounts/): the password, then the second factor
  if (method === 'POST' && (path === '/api/session/login' || path === '/api/session/second-factor')) return true;
  if (method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS') return false;
  return (
    path === '/' ||
    path === '/fhir/metadata' ||
    path === '/healthz' ||
    path === '/readyz' ||
    path === '/livez' ||
    path === '/.well-known/smart-configuration' ||
    path === '/fhir/.well-known/smart-configuration' ||
    // a platform's public keys for its partner platforms (server/exchange/api.ts)
    path === '/api/exchange/identity' ||
    path === '/api/exchange/jwks' ||
    path === '/cds-services' ||
    path === '/app' ||
    path.startsWith('/app/') ||
    method === 'OPTIONS'
  );
}

/** A CDS service call or its feedback: `POST /cds-services/{id}[/feedback]` → the URLs a client may name as `aud`. */
function cdsAudiences(method: string, path: string, base: string): string[] | undefined {
  const m = /^\/cds-services\/([^/]+)(\/feedback)?$/.exec(path);
  if (method !== 'POST' || !m) return undefined;
  const service = `${base}/cds-services/${m[1]}`;
  return m[2] ? [`${service}/feedback`, service] : [service];
}

export interface AuthOptions {
  /** The registered CDS clients, whose JWTs are accepted on the CDS Hooks calls. */
  cds?: CdsTrust;
  /** The registered backend clients (SMART Backend Services), whose access tokens are accepted everywhere else. */
  backend?: BackendAuth;
  /** The server's own base URL for the JWT audience: HUREN_PUBLIC_URL, else the listen address — never the request's Host. */
  base?: () => string;
  /** Refused bearer tokens are throttled per source address and per claimed client (server/auth/throttle.ts). */
  throttle?: AuthThrottle;
  /** The modules' own bearer tokens (a person's session): each answers the principal of a token it knows. */
  authenticators?: readonly Authenticator[];
}

/** A module's bearer-token check: the principal the token stands for, or undefined when it is not one of its own. */
export type Authenticator = (token: string) => Promise<Principal | undefined>;

export function authMiddleware(bootstrap: BootstrapToken, options: AuthOptions = {}): Koa.Middleware {
  const expected = digest(bootstrap.token ?? randomBytes(32).toString('hex'));
  /** The principal a bearer token stands for here, or undefined when it stands for none. */
  const resolve = async (ctx: Koa.Context, token: string): Promise<Principal | undefined> => {
    if (timingSafeEqual(digest(token), expected)) {
      if (!bootstrap.active) return undefined;
      return { kind: 'bootstrap', id: bootstrap.source === 'generated' ? 'bootstrap:generated' : 'bootstrap', scopes: ['system/*.*'] };
    }
    for (const authenticate of options.authenticators ?? []) {
      const principal = await authenticate(token);
      if (principal) return principal;
    }
    if (token.split('.').length !== 3) return undefined;
    // a backend client's access token (server/auth/backend.ts) …
    const client = options.backend?.size ? await options.backend.principal(token) : undefined;
    if (client) return { kind: 'client', id: `client:${client.clientId}`, scopes: client.scopes, institution: client.organization };
    // … or, on a CDS Hooks call, a CDS client's own signed JWT (server/cds/trust.ts)
    const audiences = options.cds?.size && options.base ? cdsAudiences(ctx.method, ctx.path, options.base()) : undefined;
    if (audiences) {
      try {
        const caller = await options.cds!.verify(token, audiences);
        return { kind: 'cds-client', id: `cds-client:${caller.iss}`, scopes: ['cds-hooks'], institution: caller.organization };
      } catch (err) {
        if (!(err instanceof CdsTrustError)) throw err;
        refused(ctx, token, `CDS client JWT refused: ${err.message}`);
      }
    }
    return undefined;
  };
  /** A refused bearer token: 401, or 429 once its source or its claimed client has been refused too often. */
  const refused = (ctx: Koa.Context, token: string, message: string): never => {
    const wait = options.throttle?.bearerRefused(ctx.ip, token) ?? 0;
    if (wait > 0) {
      ctx.set('Retry-After', String(wait));
      throw fail(429, 'throttled', `Too many refused bearer tokens: retry after ${wait} s`);
    }
    ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
    throw fail(401, 'login', message);
  };
  return async (ctx, next) => {
    const header = ctx.get('authorization');
    const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
    if (header && !isPublic(ctx.method, ctx.path)) {
      // a source that sent too many refused tokens waits, whatever it sends now
      const wait = options.throttle?.bearerAllowed(ctx.ip) ?? 0;
      if (wait > 0) {
        ctx.set('Retry-After', String(wait));
        throw fail(429, 'throttled', `Too many refused bearer tokens from this address: retry after ${wait} s`);
      }
    }
    const principal = (token && (await resolve(ctx, token))) || ANONYMOUS;
    if (principal.kind === 'anonymous' && header && !isPublic(ctx.method, ctx.path)) refused(ctx, token ?? header, 'Invalid or expired bearer token');
    if (principal.kind === 'anonymous' && !isPublic(ctx.method, ctx.path)) {
      ctx.set('WWW-Authenticate', 'Bearer');
      throw fail(401, 'login', 'A bearer token is required (Authorization: Bearer …)');
    }
    // an app launched for one patient (server/auth/app-auth.ts) reads that patient's FHIR data, and nothing else here
    ctx.state.principal = principal;
    if (principal.patient !== undefined && !isPublic(ctx.method, ctx.path) && ctx.path !== '/fhir' && !ctx.path.startsWith('/fhir/')) {
      throw fail(403, 'forbidden', 'A SMART app launched for a patient may only read that patient\'s FHIR data');
    }
    await next();
  };
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/**
 * The bootstrap token, in one of two forms:
 * - set by the operator (`HUREN_BOOTSTRAP_TOKEN`, for automation and tests): full rights, accepted only outside
 *   production mode (`HUREN_MODE=production` refuses to start with it), and the server warns at start while it is on;
 * - generated on a fresh install (kept in `<data dir>/bootstrap-token`, mode 0600, printed once): it serves to
 *   create the first security administrator (server/accounts/) and is then disabled — the file is renamed to
 *   `bootstrap-token.used` without the token in it, and no token is generated again on that data directory.
 */
export class BootstrapToken {
  private disabled = false;
  constructor(
    readonly token: string | undefined,
    readonly source: 'operator' | 'generated' | 'none',
    /** True when this start generated the token (print it once). */
    readonly generated = false,
    private readonly file?: string
  ) {}

  /** Accepted now: a generated token only while its file is there (another process may have disabled it). */
  get active(): boolean {
    if (this.token === undefined || this.disabled) return false;
    if (this.source === 'generated' && this.file && !existsSync(this.file)) this.disabled = true;
    return !this.disabled;
  }

  /** Disables a generated token for good (the operator's token is switched off by unsetting it). */
  disable(at = new Date()): void {
    if (this.source !== 'generated' || !this.file) return;
    this.disabled = true;
    if (existsSync(this.file)) {
      writeFileSync(this.file, `used ${at.toISOString()}: the first security administrator was created with it\n`, { mode: 0o600 });
      renameSync(this.file, `${this.file}.used`);
    }
  }
}

/**
 * The bootstrap token: `HUREN_BOOTSTRAP_TOKEN` (refused in production mode), else the generated one kept in the
 * data directory, else — unless one was generated and used there before — a new one (mode 0600).
 */
export function resolveBootstrapToken(configured: string | undefined, dataDir: string, mode: 'production' | 'development' = 'development'): BootstrapToken {
  if (configured) {
    if (mode === 'production') throw new Error('HUREN_BOOTSTRAP_TOKEN is refused in production mode (HUREN_MODE=production): unset it and sign in as a security administrator');
    return new BootstrapToken(configured, 'operator');
  }
  const file = join(dataDir, 'bootstrap-token');
  if (existsSync(file)) return new BootstrapToken(readFileSync(file, 'utf8').trim(), 'generated', false, file);
  if (existsSync(`${file}.used`)) return new BootstrapToken(undefined, 'none');
  mkdirSync(dataDir, { recursive: true });
  const token = randomBytes(32).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return new BootstrapToken(token, 'generated', true, file);
}
