/**
 * Terminology workload (issue 3): a generated 5,000-item recognition catalogue imported through the real
 * import path (`npm run catalogue:import -- file --server … --token …`, i.e. `CodeSystem/$catalogue-import`
 * over HTTP), then the five terminology operations over HTTP:
 *
 *   tx-lookup         CodeSystem/$lookup of a platform item code or a national code
 *   tx-expand-filter  ValueSet/$expand of the whole catalogue with a text filter and count/offset paging
 *   tx-expand-full    ValueSet/$expand of the whole catalogue, every code in one answer
 *   tx-validate-code  ValueSet/$validate-code of a platform code (a few unknown ones too)
 *   tx-translate      ConceptMap/$translate legacy price code → national / platform
 *   tx-subsumes       CodeSystem/$subsumes field vs item in the catalogue hierarchy
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Sender, RequestSpec } from './client.ts';
import { round } from './client.ts';
import type { Rng } from './data.ts';
import { generateCatalogue } from '../test/helpers/catalogue.ts';

const BASE = 'https://fhir.huren.gz.cn';
const CATALOGUE = `${BASE}/CodeSystem/recognition-catalogue`;
const NATIONAL = `${BASE}/CodeSystem/nhsa-service-item`;
const LEGACY = `${BASE}/CodeSystem/legacy-price-item`;
const CATALOGUE_VS = `${BASE}/ValueSet/recognition-catalogue`;
const LEGACY_MAP = `${BASE}/ConceptMap/legacy-national-platform`;

export const TERMINOLOGY = ['tx-lookup', 'tx-expand-filter', 'tx-expand-full', 'tx-validate-code', 'tx-translate', 'tx-subsumes'];

export interface TerminologyFixture {
  items: { code: string; display: string }[];
  groups: string[];
  nationals: string[];
  legacies: string[];
  filters: string[];
  total: number;
}

const q = (params: Record<string, string | number>) =>
  Object.entries(params)
    .map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`)
    .join('&');

export async function loadTerminologyFixture(client: Sender, server: { baseUrl: string; token: string }, items: number, log: (m: string) => void) {
  const g = generateCatalogue(items, 2);
  const dir = mkdtempSync(join(tmpdir(), 'huren-bench-catalogue-'));
  const file = join(dir, 'catalogue-5000.csv');
  writeFileSync(file, g.csv);
  const t0 = performance.now();
  const { main } = await import('../scripts/catalogue-import.ts');
  let out = '';
  let err = '';
  const sink = (f: (s: string) => void) => ({ write: (s: string) => (f(s), true) }) as unknown as NodeJS.WriteStream;
  const code = await main(
    [file, '--server', `${server.baseUrl}/fhir`, '--token', server.token, '--version', '2099.1.0', ...g.newCategories.flatMap((c) => ['--new-category', c])],
    sink((s) => (out += s)),
    sink((s) => (err += s.includes('\r') ? '' : s))
  );
  rmSync(dir, { recursive: true, force: true });
  if (code !== 0) throw new Error(`catalogue import failed (${code}): ${err.slice(0, 1000)}`);
  const importSeconds = round((performance.now() - t0) / 1000, 1);
  log(`  terminology: imported ${g.rows} catalogue rows in ${importSeconds} s: ${out.trim().split('\n').join('; ')}`);

  // the codes to ask about: the whole expansion of the catalogue, read once in pages
  const fixture: TerminologyFixture = { items: [], groups: [], nationals: [], legacies: [], filters: [], total: 0 };
  for (let offset = 0; ; offset += 1000) {
    const reply = await client.send({ method: 'GET', path: `/fhir/ValueSet/$expand?${q({ url: CATALOGUE_VS, offset, count: 1000 })}`, keepBody: true });
    if (reply.status !== 200) throw new Error(`$expand for the fixture: ${reply.status} ${(reply.body ?? '').slice(0, 300)}`);
    const vs = JSON.parse(reply.body as string);
    fixture.total = vs.expansion.total;
    for (const c of vs.expansion.contains ?? []) fixture.items.push({ code: c.code, display: c.display });
    if ((vs.expansion.contains ?? []).length < 1000) break;
  }
  const cs = JSON.parse((await client.send({ method: 'GET', path: `/fhir/CodeSystem?url=${encodeURIComponent(CATALOGUE)}`, keepBody: true })).body as string);
  const walk = (c: any) => {
    const level = (c.property ?? []).find((p: any) => p.code === 'level')?.valueCode;
    if (level && level !== 'item') fixture.groups.push(c.code);
    for (const x of c.concept ?? []) walk(x);
  };
  for (const c of cs.entry?.[0]?.resource?.concept ?? []) walk(c);
  const rows = g.csv.trim().split('\n').slice(1).map((l) => l.split(','));
  fixture.nationals = rows.map((r) => r[5]).filter(Boolean);
  fixture.legacies = rows.map((r) => r[6]).filter(Boolean);
  // filters as a user types them: a category name, a generated item number, an abbreviation-like word
  fixture.filters = [...new Set(rows.map((r) => r[2]))].slice(0, 40).concat(['测定项目1', '测定项目25', '项目400', '血', '肝功能', '钾', 'G12']);
  log(`  terminology: ${fixture.total} codes in the catalogue value set, ${fixture.groups.length} grouping concepts, ${fixture.nationals.length} national and ${fixture.legacies.length} legacy codes`);
  return { fixture, summary: { rows: g.rows, importSeconds, valueSetTotal: fixture.total, importOutput: out.trim() } };
}

export function terminologyRequests(name: string, f: TerminologyFixture, rng: Rng): (i: number) => RequestSpec {
  const get = (path: string): RequestSpec => ({ method: 'GET', path: `/fhir/${path}` });
  switch (name) {
    case 'tx-lookup':
      return () =>
        rng.next() < 0.5
          ? get(`CodeSystem/$lookup?${q({ system: CATALOGUE, code: rng.pick(f.items).code })}`)
          : get(`CodeSystem/$lookup?${q({ system: NATIONAL, code: rng.pick(f.nationals) })}`);
    case 'tx-expand-filter':
      return () => get(`ValueSet/$expand?${q({ url: CATALOGUE_VS, filter: rng.pick(f.filters), count: 20, offset: 20 * rng.int(0, 2) })}`);
    case 'tx-expand-full':
      return () => get(`ValueSet/$expand?${q({ url: CATALOGUE_VS })}`);
    case 'tx-validate-code':
      return () => get(`ValueSet/$validate-code?${q({ url: CATALOGUE_VS, system: CATALOGUE, code: rng.next() < 0.95 ? rng.pick(f.items).code : `L-${rng.int(0x10000000, 0x7fffffff).toString(16).toUpperCase()}` })}`);
    case 'tx-translate':
      return () => get(`ConceptMap/$translate?${q({ url: LEGACY_MAP, system: LEGACY, code: rng.pick(f.legacies) })}`);
    case 'tx-subsumes':
      return () => get(`CodeSystem/$subsumes?${q({ system: CATALOGUE, codeA: rng.pick(f.groups), codeB: rng.pick(f.items).code })}`);
  }
  throw new Error(`unknown terminology scenario ${name}`);
}
