/**
 * Key files and the database that belong together (docs/running.md, Key files): the privacy, record and audit
 * keys live in files outside the database, and rows sealed under them are unreadable (or fail their checks)
 * with any other keys. So that a server started on a database with another data directory's keys (a restored
 * database without its key files, a database reused with a fresh data directory) refuses to start rather
 * than answering 500 on every read, the database keeps a **check value** per key file purpose and key id
 * (table key_check): an HMAC-SM3 of a fixed label under the key — never the key itself.
 *
 * At start-up (`checkKeyFile`): a key id in both whose check value differs, or a database with check values
 * of which none has its key id in the file, is refused with `KeyMismatchError`; key ids the database has not
 * seen are recorded (rotation: a new id is simply added, older ones stay). Several processes starting at
 * once each insert with ON CONFLICT DO NOTHING and compare with what was kept.
 */
import { createHmac } from 'node:crypto';
import type { Sql } from './db/database.ts';

/** The check value of one key: HMAC-SM3 of a fixed label (with the purpose) under the key, hex. */
export function keyCheckValue(key: Buffer, purpose: string): string {
  return createHmac('sm3', key).update(`huren-key-check-v1\u0000${purpose}`).digest('hex');
}

export interface KeyFileFacts {
  /** `privacy`, `record`, `audit`. */
  purpose: string;
  /** The key file's path (named in the error). */
  path: string;
  /** The environment variable that puts the file elsewhere (named in the error). */
  envVar: string;
  /** Check value per key id (keyCheckValue). */
  checks: Readonly<Record<string, string>>;
}

export class KeyMismatchError extends Error {
  constructor(f: KeyFileFacts, expected: string[], problem: string) {
    super(
      `the ${f.purpose} key file ${f.path} does not hold the keys this database's data was sealed with: ${problem}. ` +
        `The database expects key ids ${expected.join(', ')}. Start with this database's own data directory (its key files), ` +
        `or set ${f.envVar} to the key file that belongs to this database; a database without its key files cannot be read.`
    );
    this.name = 'KeyMismatchError';
  }
}

/** Compares the keys of a key file with the check values in the database and records new key ids (see above). */
export async function checkKeyFile(db: Sql, f: KeyFileFacts): Promise<void> {
  const read = async () =>
    new Map((await db.query<{ kid: string; check_value: string }>('SELECT kid, check_value FROM key_check WHERE purpose = $1', [f.purpose])).map((r) => [r.kid, r.check_value]));
  const compare = (kept: Map<string, string>) => {
    const expected = [...kept.keys()].sort();
    const changed = expected.filter((kid) => f.checks[kid] !== undefined && f.checks[kid] !== kept.get(kid));
    if (changed.length > 0) throw new KeyMismatchError(f, expected, `key id${changed.length > 1 ? 's' : ''} ${changed.join(', ')} in the file ${changed.length > 1 ? 'are' : 'is'} another key than the one recorded`);
    if (expected.length > 0 && !expected.some((kid) => f.checks[kid] !== undefined)) {
      throw new KeyMismatchError(f, expected, `none of those key ids is in the file (it has ${Object.keys(f.checks).sort().join(', ') || 'none'})`);
    }
  };
  const kept = await read();
  compare(kept);
  const fresh = Object.keys(f.checks).filter((kid) => !kept.has(kid));
  if (fresh.length === 0) return;
  const now = new Date().toISOString();
  for (const kid of fresh) {
    await db.query('INSERT INTO key_check (purpose, kid, check_value, recorded_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [f.purpose, kid, f.checks[kid], now]);
  }
  // another process may have recorded the same key id at the same moment: what is kept must be this key
  compare(await read());
}
