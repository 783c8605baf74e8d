/**
 * The platform's exchange keys, kept in a file outside the database (`HUREN_EXCHANGE_KEY_FILE`, default
 * `<data dir>/exchange-keys.json`, mode 0600, created once on first start):
 *
 *   vc      an Ed25519 key (Multikey) that signs the Verifiable Credentials over the results this platform shares
 *   client  an ES384 key that signs this platform's SMART Backend Services client assertions at its partners
 *
 * Their public halves are what a partner registers (GET /api/exchange/identity); see docs/foshan-exchange.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import { createSecretFile } from '../secret-file.ts';

export interface ExchangeKeyFile {
  vc: { publicKeyMultibase: string; secretKeyMultibase: string };
  client: { kid: string; privateJwk: JWK; publicJwk: JWK };
}

/** The controller (issuer) id of a platform and its credential key's id. */
export const platformId = (code: string) => `urn:huren:platform:${code}`;
export const vcKeyId = (code: string) => `${platformId(code)}#vc`;

export function exchangeKeyFile(dataDir: string, keyFile?: string): string {
  return keyFile ?? join(dataDir, 'exchange-keys.json');
}

/** Reads the key file, creating it first when there is none. */
export async function ensureExchangeKeys(file: string): Promise<ExchangeKeyFile> {
  if (!existsSync(file)) {
    const vc = await Ed25519Multikey.generate({});
    const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
    const kid = `client-${Date.now().toString(36)}`;
    const keys: ExchangeKeyFile = {
      vc: { publicKeyMultibase: vc.publicKeyMultibase, secretKeyMultibase: vc.secretKeyMultibase as string },
      client: { kid, privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'ES384' }, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES384', use: 'sig' } },
    };
    // another process may have created it meanwhile: the file on disk wins
    createSecretFile(file, JSON.stringify(keys, null, 2));
  }
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as ExchangeKeyFile;
  if (!parsed?.vc?.publicKeyMultibase || !parsed.vc.secretKeyMultibase || !parsed.client?.privateJwk || !parsed.client.publicJwk) {
    throw new Error(`${file}: not an exchange key file (vc and client keys)`);
  }
  return parsed;
}
