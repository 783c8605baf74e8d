/**
 * Structured JSON logs (no personal data: no query strings, no bodies, no identifiers beyond resource
 * type and interaction) and Prometheus metrics.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type Koa from 'koa';
import pino from 'pino';
import client from 'prom-client';

export type Logger = pino.Logger;

export function createLogger(level: string, stream?: NodeJS.WritableStream): Logger {
  const options = { level, base: { service: 'huren' }, timestamp: pino.stdTimeFunctions.isoTime };
  return stream ? pino(options, stream as pino.DestinationStream) : pino(options);
}

export interface Metrics {
  registry: client.Registry;
  requests: client.Counter<'method' | 'route' | 'status'>;
  duration: client.Histogram<'method' | 'route'>;
}

export function createMetrics(): Metrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'huren_' });
  return {
    registry,
    requests: new client.Counter({
      name: 'huren_http_requests_total',
      help: 'HTTP requests by method, route pattern and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    duration: new client.Histogram({
      name: 'huren_http_request_duration_seconds',
      help: 'HTTP request duration by method and route pattern',
      labelNames: ['method', 'route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
  };
}

/** A low-cardinality route label: `/fhir/Patient/:id/_history/:vid`, never an id or a query. */
export function routeLabel(path: string): string {
  const s = path.split('/').filter(Boolean);
  if (s[0] !== 'fhir') return s.length ? `/${s[0]}` : '/';
  const out = ['fhir'];
  const t = s.slice(1);
  if (t[0]) out.push(/^[A-Z$_]/.test(t[0]) || t[0] === 'metadata' ? t[0] : ':unknown');
  if (t[1]) out.push(t[1].startsWith('$') || t[1].startsWith('_') ? t[1] : ':id');
  if (t[2]) out.push(t[2].startsWith('$') || t[2] === '_history' ? t[2] : ':x');
  if (t[3]) out.push(':vid');
  return `/${out.join('/')}`.slice(0, 80);
}

export function observe(logger: Logger, metrics: Metrics): Koa.Middleware {
  return async (ctx, next) => {
    const start = process.hrtime.bigint();
    const requestId = /^[\w-]{1,64}$/.test(ctx.get('x-request-id')) ? ctx.get('x-request-id') : randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    try {
      await next();
    } finally {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const route = routeLabel(ctx.path);
      metrics.requests.inc({ method: ctx.method, route, status: String(ctx.status) });
      metrics.duration.observe({ method: ctx.method, route }, seconds);
      logger.info(
        { requestId, method: ctx.method, route, status: ctx.status, ms: Math.round(seconds * 1e4) / 10, principal: ctx.state.principal?.kind },
        'request'
      );
    }
  };
}

/**
 * GET /metrics for the scraper's bearer token (HUREN_METRICS_TOKEN), compared in constant time; any other
 * request goes on (to the platform-token route, or a 401/403).
 */
export function metricsByToken(token: string, registry: client.Registry): Koa.Middleware {
  const want = createHash('sha256').update(token).digest();
  return async (ctx, next) => {
    if (ctx.path !== '/metrics' || ctx.method !== 'GET') return next();
    const header = ctx.get('authorization');
    const given = /^Bearer\s+(.+)$/i.exec(header)?.[1] ?? '';
    if (!given || !timingSafeEqual(createHash('sha256').update(given).digest(), want)) return next();
    ctx.type = registry.contentType;
    ctx.body = await registry.metrics();
  };
}
