/**
 * The security headers of every answer (docs/security.md 入侵防范), set before anything else runs so errors,
 * refusals (401, 403, 429) and the app's files carry them too:
 *
 *   X-Content-Type-Options: nosniff       no content sniffing
 *   X-Frame-Options: DENY                 never framed (with CSP frame-ancestors 'none')
 *   Referrer-Policy: no-referrer          no URL (a query may name a patient) leaves in a Referer
 *   Content-Security-Policy               the API's answers load nothing; /app sets its own (server/webapp/)
 *   Cross-Origin-Opener-Policy: same-origin
 *   Strict-Transport-Security             on https only (HUREN_PUBLIC_URL https, or TLS seen through a trusted
 *                                         proxy): max-age HUREN_HSTS_MAX_AGE (default one year; 0 turns it off)
 *   Cache-Control: no-store               answers hold personal data (the app's hashed assets override it)
 */
import type Koa from 'koa';

/** The CSP of everything that is not the app: JSON answers load and frame nothing. */
export const API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

export function securityHeaders(options: { hstsMaxAge: number; publicUrl?: string }): Koa.Middleware {
  const httpsBase = !!options.publicUrl && options.publicUrl.startsWith('https://');
  return async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('Content-Security-Policy', API_CSP);
    ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
    ctx.set('Cache-Control', 'no-store');
    if (options.hstsMaxAge > 0 && (httpsBase || ctx.secure)) ctx.set('Strict-Transport-Security', `max-age=${options.hstsMaxAge}; includeSubDomains`);
    await next();
  };
}
