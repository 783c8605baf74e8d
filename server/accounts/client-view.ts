/**
 * What GET /api/clients answers for each registered client (clients.ts makes it; the app's 接入客户端 page
 * reads it). Pure types: the web app imports them.
 */
export interface ClientKeyView {
  kid?: string;
  kty?: string;
  alg?: string;
  crv?: string;
  use?: string;
  /** The registration holds a private key part here (a mistake to correct: only public keys belong there). */
  privatePartRegistered?: true;
}

export interface RegisteredClientView {
  kind: 'backend' | 'cds';
  clientId: string;
  institution: { reference: string; organization?: string; name?: string };
  /** The SMART system scopes it may be granted; a CDS client's calls carry the CDS Hooks right only. */
  scopes: string[];
  keys: ClientKeyView[];
  jwksUrl?: string;
}
