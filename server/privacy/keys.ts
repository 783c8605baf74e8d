/**
 * The keys that protect personal data at rest: a JSON file **outside the database** (default
 * `<data dir>/privacy-keys.json`, mode 0600, made on first use; `HUREN_PRIVACY_KEY_FILE` puts it elsewhere, e.g.
 * a mounted secret shared by every server process), one 32-byte master key per key id:
 *
 *   { "version": 1, "current": "k2", "keys": { "k1": "<64 hex>", "k2": "<64 hex>" }, "created": "…" }
 *
 * From each master key three keys are derived with HMAC-SM3: an SM4 key (128 bits), a MAC key and a blind-index
 * key. Sealed text is encrypt-then-MAC — SM4-CBC with a random IV, then HMAC-SM3 over the key id, IV and
 * ciphertext — written `sm4:<kid>:<base64 of IV ‖ ciphertext ‖ MAC>`. A blind value is
 * `bi.<kid>.<first 128 bits of HMAC-SM3, hex>` of a normalised value.
 *
 * Rotation (`rotate()`): a new key becomes current; new writes seal and index with it, everything sealed with
 * an older key still opens, and searches look up the blind values of every key in the file, so nothing needs
 * rewriting at once. A key removed from the file makes what it sealed unreadable: remove one only after every
 * resource it sealed was written again.
 *
 * The database keeps a check value per key id (`checkValues()`, server/key-check.ts), so a server started with
 * a key file that is not this database's refuses to start.
 */
import { createCipheriv, createDecipheriv, createHmac, createSecretKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { keyCheckValue } from '../key-check.ts';
import { createSecretFile, writeSecretFile } from '../secret-file.ts';

interface KeyFile {
  version: 1;
  current: string;
  keys: Record<string, string>;
  created: string;
}

interface Derived {
  enc: KeyObject;
  mac: KeyObject;
  blind: KeyObject;
}

const KID = /^[a-z0-9_-]{1,16}$/;
const SEALED = /^sm4:([a-z0-9_-]{1,16}):([A-Za-z0-9+/=]+)$/;

/** The key file's path: HUREN_PRIVACY_KEY_FILE, or privacy-keys.json in the data directory. */
export function privacyKeyFile(dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.HUREN_PRIVACY_KEY_FILE || join(dataDir, 'privacy-keys.json');
}

export class PrivacyKeys {
  private file!: KeyFile;
  private readonly derived = new Map<string, Derived>();

  constructor(private readonly path: string) {
    this.load();
  }

  private load(): void {
    if (!existsSync(this.path)) {
      const fresh: KeyFile = { version: 1, current: 'k1', keys: { k1: randomBytes(32).toString('hex') }, created: new Date().toISOString() };
      createSecretFile(this.path, JSON.stringify(fresh, null, 2) + '\n'); // another process may have made it first: read what is there
    }
    const f = JSON.parse(readFileSync(this.path, 'utf8')) as KeyFile;
    if (f?.version !== 1 || typeof f.keys !== 'object' || !f.keys[f.current]) throw new Error(`${this.path} is not a privacy key file`);
    this.derived.clear();
    for (const [kid, hex] of Object.entries(f.keys)) {
      if (!KID.test(kid) || !/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${this.path}: key '${kid.slice(0, 16)}' is not a 32-byte hex key`);
      const master = Buffer.from(hex, 'hex');
      const derive = (purpose: string) => createHmac('sm3', master).update(`huren-privacy-${purpose}`).digest();
      this.derived.set(kid, { enc: createSecretKey(derive('enc').subarray(0, 16)), mac: createSecretKey(derive('mac')), blind: createSecretKey(derive('blind')) });
    }
    this.file = f;
  }

  get current(): string {
    return this.file.current;
  }

  /** The key ids in the file (searches look up a blind value under each). */
  get ids(): string[] {
    return [...this.derived.keys()];
  }

  /** The check value of each key (server/key-check.ts): what the database compares at start-up, not the keys. */
  checkValues(): Record<string, string> {
    return Object.fromEntries(Object.entries(this.file.keys).map(([kid, hex]) => [kid, keyCheckValue(Buffer.from(hex, 'hex'), 'privacy')]));
  }

  /** Adds a new key and makes it current; returns its id. What older keys sealed still opens. */
  rotate(): string {
    let n = Object.keys(this.file.keys).length + 1;
    while (this.file.keys[`k${n}`]) n++;
    const kid = `k${n}`;
    writeSecretFile(this.path, JSON.stringify({ ...this.file, current: kid, keys: { ...this.file.keys, [kid]: randomBytes(32).toString('hex') } }, null, 2) + '\n');
    this.load();
    return kid;
  }

  /** SM4-CBC + HMAC-SM3 under the current key. */
  seal(text: string): string {
    const kid = this.file.current;
    const k = this.derived.get(kid)!;
    const iv = randomBytes(16);
    const cipher = createCipheriv('sm4-cbc', k.enc, iv);
    const ct = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()]);
    const mac = createHmac('sm3', k.mac).update(`sm4:${kid}:`).update(iv).update(ct).digest();
    return `sm4:${kid}:${Buffer.concat([iv, ct, mac]).toString('base64')}`;
  }

  /** True when `text` has the form of sealed text. */
  isSealed(text: string): boolean {
    return SEALED.test(text);
  }

  /** The clear text; throws when the text was changed, is not sealed, or its key is not in the file. */
  open(sealed: string): string {
    const m = SEALED.exec(sealed);
    if (!m) throw new Error('not sealed text');
    const k = this.derived.get(m[1]!);
    if (!k) throw new Error(`sealed with key '${m[1]}', which is not in the privacy key file`);
    const bytes = Buffer.from(m[2]!, 'base64');
    if (bytes.length < 16 + 16 + 32) throw new Error('sealed text is too short');
    const iv = bytes.subarray(0, 16);
    const ct = bytes.subarray(16, bytes.length - 32);
    const mac = bytes.subarray(bytes.length - 32);
    const want = createHmac('sm3', k.mac).update(`sm4:${m[1]}:`).update(iv).update(ct).digest();
    if (!timingSafeEqual(mac, want)) throw new Error('sealed text was changed (its HMAC-SM3 does not match)');
    const decipher = createDecipheriv('sm4-cbc', k.enc, iv);
    return Buffer.concat([decipher.update(ct), decipher.final()]).toString('utf8');
  }

  /** The blind value of `value` (already normalised) for `purpose` under key `kid` (default: the current one). */
  blind(purpose: string, value: string, kid = this.file.current): string {
    const k = this.derived.get(kid)!;
    return `bi.${kid}.${createHmac('sm3', k.blind).update(purpose).update('\u0000').update(value, 'utf8').digest('hex').slice(0, 32)}`;
  }

  /** True when `value` has the form of a blind value. */
  static isBlind(value: string): boolean {
    return /^bi\.[a-z0-9_-]{1,16}\.[0-9a-f]{32}$/.test(value);
  }
}
