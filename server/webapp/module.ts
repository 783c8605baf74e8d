/**
 * The monitoring app (web/, Vue 3) served at /app: the built files of web/dist, with the SPA fallback (every
 * /app/* path that is not a file answers index.html, so deep links and the CDS cards' report links work). Public:
 * the app signs its user in itself and calls the API with their token. Built by `npm install` (the prepare
 * script) or `npm run build:web`; a missing build answers 503 with what to run.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type Koa from 'koa';
import type { ModuleFactory } from '../module.ts';

export const APP_PREFIX = '/app';
const DIST = fileURLToPath(new URL('../../web/dist/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.ttf': 'font/ttf',
};

/** The app's Content-Security-Policy: its own scripts and styles only (Element Plus sets inline styles). */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/** Text files larger than this are sent gzip-compressed to a client that accepts it. */
const GZIP_MIN_BYTES = 1024;
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.json', '.svg']);

export function serveApp(dist = DIST): Koa.Middleware {
  // the hashed build assets never change while the server runs: each is compressed once, on first request
  const gzipped = new Map<string, Buffer>();
  return async (ctx, next) => {
    if (ctx.path !== APP_PREFIX && !ctx.path.startsWith(`${APP_PREFIX}/`)) return next();
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405;
      ctx.set('Allow', 'GET, HEAD');
      return;
    }
    ctx.set('Content-Security-Policy', CSP);
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Referrer-Policy', 'no-referrer');
    const index = join(dist, 'index.html');
    if (!existsSync(index)) {
      ctx.status = 503;
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = '<!doctype html><meta charset="utf-8"><title>互认平台</title><p>监管应用尚未构建：请运行 <code>npm run build:web</code>（或 <code>npm install</code>）后重启服务。</p>';
      return;
    }
    let rel: string;
    try {
      rel = decodeURIComponent(ctx.path.slice(APP_PREFIX.length)).replace(/^\/+/, '');
    } catch {
      rel = '';
    }
    const file = normalize(join(dist, rel));
    const inside = file.startsWith(dist.endsWith(sep) ? dist : dist + sep);
    const isFile = inside && rel !== '' && existsSync(file) && statSync(file).isFile();
    const target = isFile ? file : index;
    ctx.type = TYPES[extname(target)] ?? 'application/octet-stream';
    // hashed build assets never change; the page itself is always fetched afresh
    const immutable = isFile && rel.startsWith('assets/');
    ctx.set('Cache-Control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    const content = readFileSync(target);
    if (COMPRESSIBLE.has(extname(target)) && content.length > GZIP_MIN_BYTES) {
      ctx.vary('Accept-Encoding');
      if (ctx.acceptsEncodings('gzip', 'identity') === 'gzip') {
        let body = immutable ? gzipped.get(target) : undefined;
        if (!body) {
          body = gzipSync(content);
          if (immutable) gzipped.set(target, body);
        }
        ctx.set('Content-Encoding', 'gzip');
        ctx.body = body;
        return;
      }
    }
    ctx.body = content;
  };
}

export const webappModule: ModuleFactory = () => ({
  name: 'webapp',
  routes: [serveApp()],
});
