/**
 * The layering of server/ (docs/architecture.md), read from the code's own imports: the FHIR engine
 * (server/fhir/) knows no domain, every domain shows one module face that app.ts composes, and each FHIR
 * operation lives in its own file beside its domain.
 */
import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MODULES } from '../server/app.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SERVER = join(ROOT, 'server');

/** The domain folders: each has a module.ts that app.ts lists. */
const DOMAINS = ['terminology', 'recognition', 'profiles', 'dictionary', 'provenance', 'monitoring', 'cds', 'webapp', 'accounts', 'audit', 'exchange', 'privacy'];
/** Domain folders the next issues add: named here so the engine never learns them. */
const LATER_DOMAINS: string[] = [];
/** What the engine may import besides itself: the database seam and the version string. */
const ENGINE_MAY_IMPORT = ['server/db/', 'server/version.ts'];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Every relative import of a file (static, re-export, dynamic), resolved to a path below the repository. */
export function importsOf(file: string, text = readFileSync(file, 'utf8')): string[] {
  const out: string[] = [];
  const re = /(?:^|\n)\s*(?:import|export)\s[^;]*?\sfrom\s+'([^']+)'|(?:^|\n)\s*import\s+'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/g;
  for (const m of text.matchAll(re)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (spec?.startsWith('.')) out.push(relative(ROOT, resolve(dirname(file), spec)).split('\\').join('/'));
  }
  return out;
}

test('the import reader sees static, type-only, re-export and dynamic imports (and nothing in strings)', (t) => {
  const file = join(SERVER, 'fhir', 'x.ts');
  const text = [
    "import { a } from '../recognition/a.ts';",
    "import type { B } from './b.ts';",
    "export { c } from '../provenance/c.ts';",
    "import '../side-effect.ts';",
    "const d = await import('../dictionary/d.ts');",
    "const s = \"from '../not-an-import.ts'\";",
  ].join('\n');
  t.deepEqual(importsOf(file, text), ['server/recognition/a.ts', 'server/fhir/b.ts', 'server/provenance/c.ts', 'server/side-effect.ts', 'server/dictionary/d.ts']);
});

test('the FHIR engine imports nothing outside itself but the database seam', (t) => {
  const engine = files(join(SERVER, 'fhir'));
  t.true(engine.length > 30, 'the engine files are found');
  const offending = engine.flatMap((f) =>
    importsOf(f)
      .filter((target) => !target.startsWith('server/fhir/') && !ENGINE_MAY_IMPORT.some((ok) => target.startsWith(ok)))
      .map((target) => `${relative(ROOT, f)} → ${target}`)
  );
  t.deepEqual(offending, []);
});

test('no domain is named in the FHIR engine', (t) => {
  const domainPath = new RegExp(`server/(${[...DOMAINS, ...LATER_DOMAINS].join('|')})/`);
  const words = /\b(recognition|互认|dictionary|catalogue|hash[- ]badge|hospital|monitoring)\b/i;
  const hits = files(join(SERVER, 'fhir')).flatMap((f) =>
    readFileSync(f, 'utf8')
      .split('\n')
      .map((line, i) => ({ line, i }))
      .filter(({ line }) => words.test(line) || domainPath.test(line))
      .map(({ i, line }) => `${relative(ROOT, f)}:${i + 1}: ${line.trim().slice(0, 100)}`)
  );
  t.deepEqual(hits, []);
});

test('app.ts composes one module per domain folder, each with a module.ts', (t) => {
  const names = MODULES.map((factory) => factory.name);
  t.is(names.length, DOMAINS.length);
  for (const d of DOMAINS) t.true(statSync(join(SERVER, d, 'module.ts')).isFile(), `${d}/module.ts exists`);
  // each domain's module.ts is imported by app.ts and by nothing else in server/
  const importers = files(SERVER).filter((f) => importsOf(f).some((target) => /^server\/[a-z]+\/module\.ts$/.test(target)));
  t.deepEqual(importers.map((f) => relative(ROOT, f)), ['server/app.ts']);
  const fromApp = importsOf(join(SERVER, 'app.ts')).filter((target) => /^server\/[a-z]+\/module\.ts$/.test(target));
  t.deepEqual(fromApp.sort(), DOMAINS.map((d) => `server/${d}/module.ts`).sort());
});

test('each FHIR operation has a file of its own beside its domain, and the engine keeps only generic ones', (t) => {
  const opFiles = files(SERVER).filter((f) => /\/operations\/[^/]+\.ts$/.test(f));
  const perFile = opFiles.map((f) => ({ f: relative(ROOT, f), n: [...readFileSync(f, 'utf8').matchAll(/export const \w+: Operation = \{/g)].length }));
  t.deepEqual(perFile.filter((x) => x.n > 1), [], 'at most one operation per file');
  const engineOps = perFile.filter((x) => x.n === 1 && x.f.startsWith('server/fhir/')).map((x) => x.f);
  t.deepEqual(engineOps, ['server/fhir/operations/validate.ts']);
  const domainOps = perFile.filter((x) => x.n === 1 && !x.f.startsWith('server/fhir/'));
  t.true(domainOps.length >= 20, `${domainOps.length} domain operations`);
  for (const { f } of domainOps) t.true(DOMAINS.includes(f.split('/')[1]!), `${f} is in a domain folder`);
  // each operation file finds its own OperationDefinition
  for (const { f } of [...domainOps, { f: 'server/fhir/operations/validate.ts' }]) {
    t.regex(readFileSync(join(ROOT, f), 'utf8'), /loadDefinition\('OperationDefinition-[^']+\.json'\)/, `${f} loads its definition`);
  }
});
