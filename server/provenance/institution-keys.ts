/**
 * The institutions' signing keys (docs/chain-provenance.md, "Hospital signatures"): SM2 public keys
 * registered with the platform like the SMART client keys of HUREN_CLIENTS — configuration, not database
 * rows, so that whoever can write the database cannot register a key and sign in an institution's name.
 *
 *   HUREN_INSTITUTION_KEYS='[{ "organization": "urn:huren:org|gy1", "kid": "gy1-2026", "publicKey": "04…" }]'
 *
 * (or the path of a file holding that array; default `<data dir>/institution-keys.json` when it exists).
 * `organization` is an identifier (`system|value`) of the Organization that performs the reports; several
 * keys per institution (rotation) are allowed.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadRegistrations } from '../auth/keys.ts';
import { isSm2PublicKey } from '../fingerprint/signature.ts';

export interface InstitutionKey {
  organization: string;
  kid: string;
  publicKey: string;
}

export class InstitutionKeys {
  private readonly byOrg = new Map<string, InstitutionKey[]>();

  constructor(keys: InstitutionKey[]) {
    keys.forEach((k, i) => {
      const where = `HUREN_INSTITUTION_KEYS[${i}]`;
      if (typeof k?.organization !== 'string' || !/^[^|\s]{1,200}\|[^|\s]{1,200}$/.test(k.organization)) throw new Error(`${where}.organization must be an identifier '<system>|<value>'`);
      if (typeof k.kid !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(k.kid)) throw new Error(`${where}.kid must be 1-64 letters, digits, '.', '_' or '-'`);
      if (!isSm2PublicKey(k.publicKey)) throw new Error(`${where}.publicKey must be an uncompressed SM2 public key (04 + 128 hex digits)`);
      this.byOrg.set(k.organization, [...(this.byOrg.get(k.organization) ?? []), { ...k, publicKey: k.publicKey.toLowerCase() }]);
    });
  }

  static load(value: string | undefined, dataDir: string): InstitutionKeys {
    const file = join(dataDir, 'institution-keys.json');
    const source = value ?? (existsSync(file) ? file : undefined);
    return new InstitutionKeys(loadRegistrations<InstitutionKey>(source, 'HUREN_INSTITUTION_KEYS', '{ organization, kid, publicKey }'));
  }

  /** The keys registered for any of these identifiers (`system|value`). */
  keysOf(identifiers: readonly string[]): InstitutionKey[] {
    return identifiers.flatMap((i) => this.byOrg.get(i) ?? []);
  }
}
