/**
 * Files that hold secrets outside the database (signing keys, seal and audit keys, the platform secret, the
 * embedded chain's state): written for their owner only (mode 0600), atomically (a temporary file renamed over
 * the old one), or created exactly once when several processes start together.
 */
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Replaces `path` with `text` (0600), so a reader sees the old content or the new, never half of it. */
export function writeSecretFile(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600); // the mode of an existing temporary file is not changed by writeFileSync
  renameSync(tmp, path);
}

/** Creates `path` with `text` (0600) unless it exists; false when another process made it first. */
export function createSecretFile(path: string, text: string): boolean {
  mkdirSync(dirname(path), { recursive: true });
  try {
    writeFileSync(path, text, { mode: 0o600, flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}
