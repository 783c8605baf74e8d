/**
 * The registered clients as the security administrator sees them (GET /api/clients, read only): the hospital
 * systems that get access tokens (SMART Backend Services, HUREN_CLIENTS) and the CDS clients whose signed JWTs
 * are accepted on CDS Hooks calls (HUREN_CDS_CLIENTS), each with the institution it speaks for, its scopes and
 * its public keys' ids. Registrations are the server's configuration, not data: this view only reads them.
 * Nothing secret is shown — of a key only kid, kty, alg, crv and use (an inline JWK carrying a private part
 * is named as such, never copied); of a key URL only the URL.
 */
import type { JSONWebKeySet } from 'jose';
import type { BackendClient } from '../auth/backend.ts';
import type { CdsClient } from '../cds/trust.ts';
import type { Repository } from '../fhir/repository.ts';
import type { ClientKeyView, RegisteredClientView } from './client-view.ts';

export type { ClientKeyView, RegisteredClientView } from './client-view.ts';

const PRIVATE_PARTS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];

function keyViews(jwks: JSONWebKeySet | undefined): ClientKeyView[] {
  return (jwks?.keys ?? []).map((k) => {
    const key = k as Record<string, unknown>;
    const view: ClientKeyView = {};
    for (const field of ['kid', 'kty', 'alg', 'crv', 'use'] as const) if (typeof key[field] === 'string') view[field] = key[field] as string;
    if (PRIVATE_PARTS.some((p) => key[p] !== undefined)) view.privatePartRegistered = true;
    return view;
  });
}

/** The institution a registration names, with its Organization's id and name where the platform holds it. */
async function institution(repo: Repository, reference: string): Promise<RegisteredClientView['institution']> {
  try {
    let id: string | undefined;
    if (reference.startsWith('Organization/')) id = reference.slice('Organization/'.length);
    else {
      const ids = await repo.conditionalMatch('Organization', reference.slice('Organization?'.length), 'organization');
      id = ids.length === 1 ? ids[0] : undefined;
    }
    if (!id) return { reference };
    const [org] = (await repo.readMany('Organization', [id])) as { id?: string; name?: string }[];
    return org ? { reference, organization: `Organization/${id}`, ...(org.name ? { name: org.name } : {}) } : { reference };
  } catch {
    // a registration naming an id or identifier the store refuses: shown as registered, unresolved
    return { reference };
  }
}

export async function registeredClients(repo: Repository, backend: readonly BackendClient[], cds: readonly CdsClient[]): Promise<RegisteredClientView[]> {
  const views: RegisteredClientView[] = [];
  for (const c of backend) {
    views.push({
      kind: 'backend',
      clientId: c.clientId,
      institution: await institution(repo, c.organization),
      scopes: c.scope.split(/\s+/).filter(Boolean),
      keys: keyViews(c.jwks),
      ...(c.jwksUrl ? { jwksUrl: c.jwksUrl } : {}),
    });
  }
  for (const c of cds) {
    views.push({
      kind: 'cds',
      clientId: c.iss,
      institution: await institution(repo, c.organization),
      scopes: ['cds-hooks'],
      keys: keyViews(c.jwks),
      ...(c.jwksUrl ? { jwksUrl: c.jwksUrl } : {}),
    });
  }
  return views.sort((a, b) => a.kind.localeCompare(b.kind) || a.clientId.localeCompare(b.clientId));
}
