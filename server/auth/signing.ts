/**
 * The platform's own access-token signing keys: random 256-bit HS256 secrets, each with its `kid`, kept in
 * `$HUREN_DATA_DIR/token-signing-keys.json` (mode 0600, outside the database; generated on first start).
 * The newest key signs; older ones only verify, until every token they signed has expired, and are then
 * dropped at the next rotation. Servers that serve the same platform share the file (the same data
 * directory, or a copy); a server re-reads it when it changed (a rotation by another server).
 *
 * Nothing is derived from the bootstrap token: knowing it does not let anyone mint tokens.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createSecretFile, writeSecretFile } from '../secret-file.ts';

export const SIGNING_KEY_FILE = 'token-signing-keys.json';

interface StoredKey {
  kid: string;
  /** The secret, base64url. */
  k: string;
  created: string;
  /** When a newer key took over; the key verifies until then + the longest token lifetime. */
  retired?: string;
}

export class TokenKeys {
  private keys: StoredKey[] = [];
  private secrets = new Map<string, Uint8Array>();
  private mtimeMs = 0;

  private constructor(
    private readonly file: string,
    /** How long a retired key keeps verifying (the longest token lifetime plus the clock skew), ms. */
    private readonly graceMs: number
  ) {}

  /** The keys of a data directory, generated there on first use. */
  static open(dataDir: string, graceMs: number): TokenKeys {
    const store = new TokenKeys(join(dataDir, SIGNING_KEY_FILE), graceMs);
    // exclusive create: two servers starting together on one data directory end up with one key
    createSecretFile(store.file, serialise([newKey(new Date())]));
    store.load();
    return store;
  }

  /** The key that signs: its kid and secret. */
  current(): { kid: string; secret: Uint8Array } {
    this.refresh();
    const key = this.keys[this.keys.length - 1];
    return { kid: key.kid, secret: this.secrets.get(key.kid)! };
  }

  /** The secret of `kid` if it may still verify at `now`. */
  verifying(kid: string, now: Date): Uint8Array | undefined {
    if (!this.secrets.has(kid)) this.refresh();
    const key = this.keys.find((k) => k.kid === kid);
    if (!key || (key.retired && Date.parse(key.retired) + this.graceMs < now.getTime())) return undefined;
    return this.secrets.get(kid);
  }

  /** A new signing key (a new kid); the previous ones verify until their tokens have expired, older ones are dropped. */
  rotate(now = new Date()): string {
    this.refresh();
    const kept = this.keys
      .map((k) => (k.retired ? k : { ...k, retired: now.toISOString() }))
      .filter((k) => Date.parse(k.retired!) + this.graceMs >= now.getTime());
    const key = newKey(now);
    writeSecretFile(this.file, serialise([...kept, key]));
    this.load();
    return key.kid;
  }

  /** The kids held, oldest first (for tests and the rotation answer). */
  kids(): string[] {
    return this.keys.map((k) => k.kid);
  }

  private refresh(): void {
    if (statSync(this.file).mtimeMs !== this.mtimeMs) this.load();
  }

  private load(): void {
    const stat = statSync(this.file);
    if ((stat.mode & 0o077) !== 0) {
      // the file holds secrets: keep it to its owner, as when it was written
      chmodSync(this.file, 0o600);
    }
    let keys: StoredKey[];
    try {
      keys = (JSON.parse(readFileSync(this.file, 'utf8')) as { keys: StoredKey[] }).keys;
    } catch {
      throw new Error(`${this.file} is not a readable token signing key file`);
    }
    if (!Array.isArray(keys) || keys.length === 0 || keys.some((k) => typeof k?.kid !== 'string' || typeof k.k !== 'string' || Buffer.from(k.k, 'base64url').length < 32)) {
      throw new Error(`${this.file} holds no valid token signing key (each needs kid and a 256-bit k)`);
    }
    this.keys = keys;
    this.secrets = new Map(keys.map((k) => [k.kid, new Uint8Array(Buffer.from(k.k, 'base64url'))]));
    this.mtimeMs = stat.mtimeMs;
  }
}

function newKey(now: Date): StoredKey {
  return { kid: randomUUID(), k: randomBytes(32).toString('base64url'), created: now.toISOString() };
}

function serialise(keys: StoredKey[]): string {
  return `${JSON.stringify({ keys }, null, 2)}\n`;
}
