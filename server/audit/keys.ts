/**
 * The audit chain's MAC keys: a JSON file outside the database (default `<dataDir>/audit-keys.json`, or
 * `HUREN_AUDIT_KEY_FILE`), mode 0600, `{ "current": "<kid>", "keys": { "<kid>": "<base64 of 32 bytes>" } }`.
 * Each chain entry names the key id it was made with; `rotateAuditKey` adds a new key and makes it current, the
 * old ones stay to verify the entries made with them. Every server process on one database needs the same file.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { keyCheckValue } from '../key-check.ts';
import { createSecretFile, writeSecretFile } from '../secret-file.ts';

export interface AuditKeys {
  current: string;
  keys: Record<string, Buffer>;
}

interface KeyFile {
  current: string;
  keys: Record<string, string>;
}

export function auditKeyFile(dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.HUREN_AUDIT_KEY_FILE || join(dataDir, 'audit-keys.json');
}

/** The keys in the file, created with a first key when there is none. */
export function loadAuditKeys(file: string): AuditKeys {
  if (!existsSync(file)) createOnce(file);
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as KeyFile;
  const keys: Record<string, Buffer> = {};
  for (const [kid, b64] of Object.entries(parsed.keys ?? {})) {
    const key = Buffer.from(b64, 'base64');
    if (key.length < 16) throw new Error(`audit key ${kid} in ${file} is shorter than 16 bytes`);
    keys[kid] = key;
  }
  if (!keys[parsed.current]) throw new Error(`the current audit key ${String(parsed.current).slice(0, 40)} is not in ${file}`);
  return { current: parsed.current, keys };
}

/** The check value of each key (server/key-check.ts): what the database compares at start-up, not the keys. */
export function auditKeyChecks(keys: AuditKeys): Record<string, string> {
  return Object.fromEntries(Object.entries(keys.keys).map(([kid, key]) => [kid, keyCheckValue(key, 'audit')]));
}

/** Adds a new key and makes it current; returns its id. Restart the servers (or reload) to use it. */
export function rotateAuditKey(file: string): string {
  const existing = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as KeyFile) : { current: '', keys: {} };
  const kid = newKid(Object.keys(existing.keys));
  write(file, { current: kid, keys: { ...existing.keys, [kid]: randomBytes(32).toString('base64') } });
  return kid;
}

/** A first key file; when another process creates it at the same moment, its file wins (`wx`). */
function createOnce(file: string): void {
  const kid = newKid();
  createSecretFile(file, `${JSON.stringify({ current: kid, keys: { [kid]: randomBytes(32).toString('base64') } }, null, 2)}\n`);
}

function write(file: string, content: KeyFile): void {
  writeSecretFile(file, `${JSON.stringify(content, null, 2)}\n`);
}

function newKid(taken: string[] = []): string {
  const base = `k${new Date().toISOString().slice(0, 10).replaceAll('-', '')}`;
  let kid = base;
  for (let i = 2; taken.includes(kid); i++) kid = `${base}-${i}`;
  return kid;
}
