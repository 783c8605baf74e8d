/**
 * `GET /`: what a newcomer (or a browser) finds at the server's address — where the FHIR API and its
 * CapabilityStatement are, how to get a token, and the other public entry points. Public (server/http/auth.ts),
 * JSON by default, a small HTML page for a browser (Accept: text/html). Says nothing about the data.
 */
import type Koa from 'koa';
import { version } from '../version.ts';

interface Link {
  rel: string;
  path: string;
  title: string;
}

const LINKS: Link[] = [
  { rel: 'app', path: '/app', title: 'the monitoring app for the health commission and the report viewer for doctors (zh-CN)' },
  { rel: 'metadata', path: '/fhir/metadata', title: 'the FHIR R4 API: its CapabilityStatement (no token needed)' },
  { rel: 'fhir-base', path: '/fhir', title: 'the FHIR R4 base (needs a bearer token)' },
  { rel: 'smart-configuration', path: '/.well-known/smart-configuration', title: 'how hospital systems get an access token (SMART Backend Services) and open the report viewer for a patient (SMART EHR launch)' },
  { rel: 'cds-services', path: '/cds-services', title: 'CDS Hooks discovery' },
  { rel: 'health', path: '/healthz', title: 'health check' },
];

const AUTH =
  'Everything but these links needs Authorization: Bearer <token>. On its first start the server generates a ' +
  'bootstrap token and saves it in $HUREN_DATA_DIR/bootstrap-token (./data/bootstrap-token by default).';

export function rootDocument(origin: string) {
  return {
    name: 'Huren (互认)',
    description: 'FHIR R4 server with chain provenance for the mutual recognition of lab and examination results (检查检验结果互认)',
    version,
    fhir: `${origin}/fhir`,
    links: LINKS.map((l) => ({ rel: l.rel, href: `${origin}${l.path}`, title: l.title })),
    authentication: AUTH,
  };
}

const escape = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

function rootHtml(origin: string): string {
  const doc = rootDocument(origin);
  const items = doc.links.map((l) => `<li><a href="${escape(l.href)}">${escape(l.href)}</a> — ${escape(l.title)}</li>`).join('\n');
  return `<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>${escape(doc.name)}</title></head>
<body><h1>${escape(doc.name)}</h1><p>${escape(doc.description)} — ${escape(doc.version)}</p>
<ul>
${items}
</ul>
<p>${escape(doc.authentication)}</p></body></html>
`;
}

export function root(publicUrl: string | undefined): Koa.Middleware {
  return (ctx) => {
    const origin = publicUrl ?? `${ctx.protocol}://${ctx.host}`;
    if (ctx.accepts('json', 'html') === 'html') {
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = rootHtml(origin);
    } else {
      ctx.body = rootDocument(origin);
    }
  };
}
