/**
 * The platform's keyed-hash secret (32 random bytes in `<dataDir>/chain-secret`, mode 0600, made on first
 * use). Whatever the platform derives from its own identifiers before it goes to a chain is a keyed hash
 * (HMAC-SHA256) under this secret, so it cannot be linked back without the secret: today the batch id of
 * each anchoring transaction.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSecretFile } from '../secret-file.ts';

const FILE = 'chain-secret';

export class PlatformSecret {
  private key?: Buffer;

  constructor(private readonly dataDir: string) {}

  private load(): Buffer {
    if (this.key) return this.key;
    const path = join(this.dataDir, FILE);
    if (existsSync(path)) {
      const hex = readFileSync(path, 'utf8').trim();
      if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${path} does not hold a 32-byte hex secret`);
      this.key = Buffer.from(hex, 'hex');
    } else {
      const key = randomBytes(32);
      writeSecretFile(path, key.toString('hex') + '\n');
      this.key = key;
    }
    return this.key;
  }

  /** HMAC-SHA256(secret, purpose ‖ 0x00 ‖ value) as 0x + 64 hex: a key safe to publish. */
  keyedHash(purpose: string, value: string): string {
    return '0x' + createHmac('sha256', this.load()).update(purpose).update('\u0000').update(value).digest('hex');
  }
}
