/**
 * The keys of the record seals: the chain-provenance records the platform keeps beside a report (its
 * original's digest, its fingerprint, its members' digests, each anchor) are sealed with HMAC-SM3 under a key
 * that is **not in the database** — a file in the data directory (`record-keys.json`, mode 0600, made on first
 * use; `HUREN_RECORD_KEY_FILE` puts it elsewhere, e.g. a mounted secret). Someone who can rewrite every row
 * of the database but not read that file cannot make a forged record whose seal holds.
 *
 *   { "version": 1, "current": "k2", "keys": { "k1": "<64 hex>", "k2": "<64 hex>" }, "created": "…" }
 *
 * A seal is written `<key id>:<64 hex>`. New seals use the current key; a seal made with any key in the file
 * verifies, so rotation (`rotate()`: a new key becomes current, the old ones stay to verify) needs no rewrite.
 * A key removed from the file makes its seals fail (`unknown-key`): remove one only after re-sealing.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { keyCheckValue } from '../key-check.ts';
import { writeSecretFile } from '../secret-file.ts';

interface KeyFile {
  version: 1;
  current: string;
  keys: Record<string, string>;
  created: string;
}

export type SealCheck = 'ok' | 'missing' | 'mismatch' | 'unknown-key';

const KID = /^[A-Za-z0-9_-]{1,32}$/;

export class RecordKeys {
  private file?: KeyFile;
  private readonly keys = new Map<string, Buffer>();
  /** True when this process made the key file (a fresh install, or a key lost). */
  created = false;

  constructor(private readonly path: string) {}

  private load(): KeyFile {
    if (this.file) return this.file;
    if (existsSync(this.path)) {
      const f = JSON.parse(readFileSync(this.path, 'utf8')) as KeyFile;
      if (f?.version !== 1 || typeof f.keys !== 'object' || !f.keys[f.current]) throw new Error(`${this.path} is not a record key file`);
      for (const [kid, hex] of Object.entries(f.keys)) {
        if (!KID.test(kid) || !/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${this.path}: key '${kid.slice(0, 32)}' is not a 32-byte hex key`);
      }
      this.file = f;
    } else {
      this.file = { version: 1, current: 'k1', keys: { k1: randomBytes(32).toString('hex') }, created: new Date().toISOString() };
      this.save(this.file);
      this.created = true;
    }
    this.keys.clear();
    for (const [kid, hex] of Object.entries(this.file.keys)) this.keys.set(kid, Buffer.from(hex, 'hex'));
    return this.file;
  }

  private save(f: KeyFile): void {
    writeSecretFile(this.path, JSON.stringify(f, null, 2) + '\n');
  }

  /** The current key id. */
  get current(): string {
    return this.load().current;
  }

  /** The check value of each key (server/key-check.ts): what the database compares at start-up, not the keys. */
  checkValues(): Record<string, string> {
    this.load();
    return Object.fromEntries([...this.keys].map(([kid, key]) => [kid, keyCheckValue(key, 'record')]));
  }

  /** Adds a new key and makes it current; returns its id. Earlier seals still verify. */
  rotate(): string {
    const f = this.load();
    let n = Object.keys(f.keys).length + 1;
    while (f.keys[`k${n}`]) n++;
    const kid = `k${n}`;
    this.file = { ...f, current: kid, keys: { ...f.keys, [kid]: randomBytes(32).toString('hex') } };
    this.save(this.file);
    this.keys.set(kid, Buffer.from(this.file.keys[kid]!, 'hex'));
    return kid;
  }

  /** HMAC-SM3 of the fields (as a JSON array, so no two field lists give the same text) under the current key. */
  seal(purpose: string, fields: readonly unknown[]): string {
    const kid = this.load().current;
    return `${kid}:${this.mac(this.keys.get(kid)!, purpose, fields)}`;
  }

  check(seal: string | null | undefined, purpose: string, fields: readonly unknown[]): SealCheck {
    return this.checkText(seal, purpose, JSON.stringify(fields));
  }

  /** `check` of fields already written as their JSON array text (exactly `JSON.stringify(fields)`). */
  checkText(seal: string | null | undefined, purpose: string, fieldsJson: string): SealCheck {
    if (!seal) return 'missing';
    this.load();
    const i = seal.indexOf(':');
    const key = i > 0 ? this.keys.get(seal.slice(0, i)) : undefined;
    if (!key) return 'unknown-key';
    const want = this.macBytes(key, purpose, fieldsJson);
    const got = Buffer.from(seal.slice(i + 1), 'hex');
    return got.length === want.length && timingSafeEqual(got, want) ? 'ok' : 'mismatch';
  }

  private mac(key: Buffer, purpose: string, fields: readonly unknown[]): string {
    return this.macBytes(key, purpose, JSON.stringify(fields)).toString('hex');
  }

  private macBytes(key: Buffer, purpose: string, fieldsJson: string): Buffer {
    return createHmac('sm3', key).update(purpose).update('\u0000').update(fieldsJson).digest();
  }
}

/** Why a seal check failed, for a reason text. */
export function sealProblem(check: SealCheck, what: string): string | undefined {
  switch (check) {
    case 'ok':
      return undefined;
    case 'missing':
      return `${what} has no keyed digest (seal): it was written behind the server's back, or its seal was removed`;
    case 'unknown-key':
      return `${what} is sealed with a key this server does not have (record-keys.json)`;
    case 'mismatch':
      return `${what} was changed in the database behind the server's back: its keyed digest (HMAC-SM3, key outside the database) no longer matches`;
  }
}
