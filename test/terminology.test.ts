/**
 * The recognition catalogue and the terminology operations (issue 3, first slice): the generated
 * terminology matches its source CSV and the generator, and $expand, $lookup, $validate-code, $translate
 * and $subsumes answer over HTTP on a real server.
 */
import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CSV, DEFAULT_OUT, generate, CatalogueErrors } from '../scripts/generate-terminology.ts';
import { platformCode } from '../server/terminology/catalogue-source.ts';
import { loadTerminology } from '../server/terminology/load.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const BASE = 'https://fhir.huren.gz.cn';
const CATALOGUE = `${BASE}/CodeSystem/recognition-catalogue`;
const NATIONAL = `${BASE}/CodeSystem/nhsa-service-item`;
const LEGACY = `${BASE}/CodeSystem/legacy-price-item`;
const REASON = `${BASE}/CodeSystem/not-recognised-reason`;
const CATALOGUE_VS = `${BASE}/ValueSet/recognition-catalogue`;
const MAP = `${BASE}/ConceptMap/legacy-national-platform`;

/** The CSV read independently of the generator: one object per data line, by column name. */
const csvText = readFileSync(DEFAULT_CSV, 'utf8');
const [headerLine, ...dataLines] = csvText.split(/\r?\n/).filter((l) => l.trim() !== '');
const columns = headerLine.split(',');
const csvRows = dataLines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [columns[i], v])) as Record<string, string>);

const tmpDirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'huren-term-'));
  tmpDirs.push(d);
  return d;
};

let s: TestServer;
test.before(async () => {
  s = await startTestServer();
});
test.after.always(async () => {
  await s?.close();
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

const q = (params: Record<string, string | number>) => new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)])).toString();
async function get(path: string, params: Record<string, string | number> = {}) {
  const res = await s.fhir(`${path}?${q(params)}`);
  return { status: res.status, body: (await res.json()) as any };
}
async function post(path: string, parameter: unknown[]) {
  const res = await s.fhir(path, { method: 'POST', json: { resourceType: 'Parameters', parameter } });
  return { status: res.status, body: (await res.json()) as any };
}
const param = (body: any, name: string) => body.parameter?.find((p: any) => p.name === name);
const params = (body: any, name: string) => (body.parameter ?? []).filter((p: any) => p.name === name);
const part = (p: any, name: string) => p.part?.find((x: any) => x.name === name);
const properties = (body: any) => new Map<string, any[]>(params(body, 'property').reduce((m: Map<string, any[]>, p: any) => {
  const code = part(p, 'code').valueCode;
  const value = part(p, 'value');
  const v = value.valueString ?? value.valueCode ?? value.valueInteger ?? value.valueBoolean ?? value.valueDateTime;
  m.set(code, [...(m.get(code) ?? []), v]);
  return m;
}, new Map()));

function generatedFiles(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((f) => [f, readFileSync(join(dir, f))]));
}

/** The generated ValueSet whose compose filters on `property = value`. */
function valueSetFor(property: string, value: string): any {
  for (const f of readdirSync(DEFAULT_OUT).filter((f) => f.startsWith('ValueSet-'))) {
    const vs = JSON.parse(readFileSync(join(DEFAULT_OUT, f), 'utf8'));
    if (vs.compose.include.some((i: any) => i.filter?.some((x: any) => x.property === property && x.value === value))) return vs;
  }
  return undefined;
}

// ------------------------------------------------------------------------------------------------
// the generator

test('the generator is deterministic and the committed terminology/ is exactly its output', (t) => {
  const a = tempDir();
  const b = tempDir();
  const manifestA = generate(DEFAULT_CSV, a);
  generate(DEFAULT_CSV, b);
  const filesA = generatedFiles(a);
  const filesB = generatedFiles(b);
  t.deepEqual([...filesA.keys()], [...filesB.keys()]);
  for (const [f, bytes] of filesA) t.true(bytes.equals(filesB.get(f) as Buffer), `${f} differs between two runs`);
  generate(DEFAULT_CSV, a); // again, over its own output
  for (const [f, bytes] of generatedFiles(a)) t.true(bytes.equals(filesA.get(f) as Buffer), `${f} changed when regenerated in place`);

  t.is(manifestA.source.rows, csvRows.length);
  const committedManifest = JSON.parse(readFileSync(join(DEFAULT_OUT, 'manifest.json'), 'utf8'));
  t.deepEqual(committedManifest, manifestA, 'terminology/manifest.json is stale: run npm run terminology:generate');
  for (const { file } of manifestA.files) {
    t.true(readFileSync(join(DEFAULT_OUT, file)).equals(filesA.get(file) as Buffer), `terminology/${file} is not the generator's output (hand-edited or stale)`);
  }
});

test('platform codes are stable when rows are reordered or appended; stale files are removed', (t) => {
  const dir = tempDir();
  const [header, ...lines] = csvText.split('\n').filter((l) => l.trim() !== '');
  const shuffled = [header, ...lines.reverse(), '检查,超声,超声,乳腺彩色多普勒超声,Breast US,,,,30,I,,test row', ''].join('\n');
  const csv = join(dir, 'shuffled.csv');
  writeFileSync(csv, shuffled);
  const out = join(dir, 'out');
  generate(DEFAULT_CSV, out);
  const before = JSON.parse(readFileSync(join(out, 'CodeSystem-recognition-catalogue.json'), 'utf8'));
  // a file generated earlier for a category that no longer exists must go
  const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
  manifest.files.push({ file: 'ValueSet-recognition-category-000000.json' });
  writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest));
  writeFileSync(join(out, 'ValueSet-recognition-category-000000.json'), '{}');
  generate(csv, out);
  const after = JSON.parse(readFileSync(join(out, 'CodeSystem-recognition-catalogue.json'), 'utf8'));
  const items = (cs: any) => {
    const m = new Map<string, string>();
    const walk = (cs: any[]) => cs?.forEach((c) => (c.concept ? walk(c.concept) : m.set(c.display, c.code)));
    walk(cs.concept);
    return m;
  };
  const codesBefore = items(before);
  const codesAfter = items(after);
  t.is(codesBefore.size, csvRows.length);
  t.is(codesAfter.size, csvRows.length + 1);
  for (const [name, code] of codesBefore) t.is(codesAfter.get(name), code, `${name} kept its code`);
  t.regex(codesAfter.get('乳腺彩色多普勒超声') as string, /^E-[0-9A-F]{8}$/);
  t.false(readdirSync(out).includes('ValueSet-recognition-category-000000.json'));
});

test('the generator refuses a catalogue with errors and names the lines', (t) => {
  const dir = tempDir();
  const csv = join(dir, 'bad.csv');
  writeFileSync(
    csv,
    [
      'kind,field,category_zh,item_zh,abbr,nhsa_code,legacy_code,loinc_hint,window_days,window_source,on_lists,note',
      '检验,血液学,血常规,白细胞计数,WBC,00250101009000,,,7,I,,', // 14-digit national code
      '检验,血液学,血常规,白细胞计数,WBC,,,,7,I,,', // duplicate item
      '化验,血液学,血常规,红细胞计数,RBC,,2501010,,seven,X,,', // bad kind
      '检查,超声,超声,腹部超声,US,,250101015,,30,I,,',
    ].join('\n')
  );
  const err = t.throws(() => generate(csv, join(dir, 'out')), { instanceOf: CatalogueErrors }) as CatalogueErrors;
  const where = err.errors.map((e) => `${e.line}:${e.column}`);
  t.true(where.includes('2:nhsa_code'));
  t.true(where.includes('3:item_zh'));
  t.true(where.includes('4:kind'));
  t.false(where.some((w) => w.startsWith('5:')), 'a good row has no error');
});

// ------------------------------------------------------------------------------------------------
// $expand

test('$expand of the catalogue lists every item of the CSV, with zh-CN displays', async (t) => {
  const { status, body } = await get('ValueSet/$expand', { url: CATALOGUE_VS });
  t.is(status, 200);
  t.is(body.resourceType, 'ValueSet');
  t.is(body.expansion.total, csvRows.length);
  t.is(body.expansion.contains.length, csvRows.length);
  t.deepEqual(body.expansion.contains.map((c: any) => c.display).sort(), csvRows.map((r) => r.item_zh).sort());
  t.true(body.expansion.contains.every((c: any) => c.system === CATALOGUE && /^[LE]-[0-9A-F]{8}$/.test(c.code)));
  t.is(param({ parameter: body.expansion.parameter }, 'displayLanguage').valueCode, 'zh-CN');
});

test('field ValueSets for 超声, 电生理, 生物学, 微生物学, 生物物理(学), 细胞学 are non-empty and hold the CSV rows', async (t) => {
  // the CSV (and Article 2 of the 2022 Measures) spell the field 生物物理学; the issue says 生物物理
  for (const field of ['超声', '电生理', '生物学', '微生物学', '生物物理学', '细胞学']) {
    const vs = valueSetFor('field', field);
    t.truthy(vs, `a ValueSet for the field ${field}`);
    const { status, body } = await get('ValueSet/$expand', { url: vs.url });
    t.is(status, 200);
    const expected = csvRows.filter((r) => r.field === field).map((r) => r.item_zh).sort();
    t.true(expected.length > 0, `the CSV has ${field} rows`);
    t.true(body.expansion.total > 0, `${field} is not empty`);
    t.deepEqual(body.expansion.contains.map((c: any) => c.display).sort(), expected, field);
  }
  // a category ValueSet gathers a category across fields (铁代谢: 化学 and 免疫学)
  const iron = valueSetFor('category', '铁代谢');
  const { body } = await get(`ValueSet/${iron.id}/$expand`);
  t.is(body.expansion.total, csvRows.filter((r) => r.category_zh === '铁代谢').length);
  t.true(new Set(csvRows.filter((r) => r.category_zh === '铁代谢').map((r) => r.field)).size > 1);
  // and one per kind
  const exam = await get('ValueSet/recognition-exam/$expand', { count: 0 });
  t.is(exam.body.expansion.total, csvRows.filter((r) => r.kind === '检查').length);
  t.is(exam.body.expansion.contains.length, 0);
});

test('$expand filter, offset and count (GET and POST)', async (t) => {
  const cbc = await get('ValueSet/$expand', { url: CATALOGUE_VS, filter: 'cbc' });
  t.deepEqual(cbc.body.expansion.contains.map((c: any) => c.display).sort(), ['血细胞分析', '血细胞分析(全血细胞计数+五分类)']);
  const zh = await get('ValueSet/$expand', { url: CATALOGUE_VS, filter: '肌钙蛋白' });
  t.is(zh.body.expansion.total, 2);

  const all = (await get('ValueSet/$expand', { url: CATALOGUE_VS })).body.expansion.contains.map((c: any) => c.code);
  const page = await post('ValueSet/$expand', [
    { name: 'url', valueUri: CATALOGUE_VS },
    { name: 'offset', valueInteger: 10 },
    { name: 'count', valueInteger: 5 },
  ]);
  t.is(page.status, 200);
  t.is(page.body.expansion.total, csvRows.length);
  t.is(page.body.expansion.offset, 10);
  t.deepEqual(page.body.expansion.contains.map((c: any) => c.code), all.slice(10, 15));
  const last = await get('ValueSet/$expand', { url: CATALOGUE_VS, offset: csvRows.length - 2, count: 10 });
  t.is(last.body.expansion.contains.length, 2);

  const designations = await get('ValueSet/$expand', { url: CATALOGUE_VS, filter: '血细胞分析', includeDesignations: 'true', count: 1 });
  t.truthy(designations.body.expansion.contains[0].designation?.length);
});

test('an inline ValueSet and one stored through REST can be expanded', async (t) => {
  const inline = {
    resourceType: 'ValueSet',
    status: 'active',
    compose: { include: [{ system: CATALOGUE, filter: [{ property: 'windowDays', op: '=', value: '365' }] }] },
  };
  const r = await post('ValueSet/$expand', [{ name: 'valueSet', resource: inline }]);
  t.is(r.status, 200);
  t.deepEqual(r.body.expansion.contains.map((c: any) => c.display), csvRows.filter((x) => x.window_days === '365').map((x) => x.item_zh));

  const url = 'https://hospital.example/ValueSet/lab-blood';
  const created = await s.fhir('ValueSet', {
    method: 'POST',
    json: { resourceType: 'ValueSet', url, status: 'active', compose: { include: [{ valueSet: [`${BASE}/ValueSet/recognition-lab`] }], exclude: [{ system: CATALOGUE, filter: [{ property: 'field', op: 'in', value: '化学,免疫学' }] }] } },
  });
  t.is(created.status, 201);
  const stored = await get('ValueSet/$expand', { url });
  t.is(stored.status, 200);
  t.is(stored.body.expansion.total, csvRows.filter((x) => x.kind === '检验' && !['化学', '免疫学'].includes(x.field)).length);
});

test.serial('a large expansion asked again is answered from its serialised cache; other options and _pretty are not confused with it', async (t) => {
  const first = await get('ValueSet/$expand', { url: CATALOGUE_VS });
  t.is(first.status, 200);
  t.true(JSON.stringify(first.body).length > 8 * 1024, 'large enough to be kept');
  const again = await get('ValueSet/$expand', { url: CATALOGUE_VS });
  t.deepEqual(again.body, first.body, 'the same expansion, identifier and timestamp included');
  const pretty = await get('ValueSet/$expand', { url: CATALOGUE_VS, _pretty: 'true' });
  t.deepEqual(pretty.body, first.body);
  const designations = await get('ValueSet/$expand', { url: CATALOGUE_VS, includeDesignations: 'true' });
  t.not(designations.body.expansion.identifier, first.body.expansion.identifier, 'other options, another answer');
  t.true(designations.body.expansion.contains.some((c: any) => c.designation));
  const page = await get('ValueSet/$expand', { url: CATALOGUE_VS, offset: 10, count: 5 });
  t.deepEqual(page.body.expansion.contains, first.body.expansion.contains.slice(10, 15));
  t.not(page.body.expansion.identifier, first.body.expansion.identifier);
  t.deepEqual((await get('ValueSet/$expand', { url: CATALOGUE_VS })).body, first.body, 'still kept after other requests');
});

// ------------------------------------------------------------------------------------------------
// $lookup

test('$lookup of national 002501010150000 returns 血细胞分析', async (t) => {
  const { status, body } = await get('CodeSystem/$lookup', { system: NATIONAL, code: '002501010150000' });
  t.is(status, 200);
  t.is(body.resourceType, 'Parameters');
  t.is(param(body, 'display').valueString, '血细胞分析');
  t.is(typeof param(body, 'name').valueString, 'string');
  const posted = await post('CodeSystem/$lookup', [{ name: 'coding', valueCoding: { system: NATIONAL, code: '002501010150000' } }]);
  t.is(posted.status, 200);
  t.is(param(posted.body, 'display').valueString, '血细胞分析');
});

test('$lookup of a platform code gives its catalogue properties and abbreviation', async (t) => {
  const code = platformCode('检验', '血细胞分析');
  const { status, body } = await get('CodeSystem/$lookup', { system: CATALOGUE, code });
  t.is(status, 200);
  t.is(param(body, 'display').valueString, '血细胞分析');
  const props = properties(body);
  const row = csvRows.find((r) => r.item_zh === '血细胞分析') as Record<string, string>;
  t.deepEqual(props.get('kind'), [row.kind]);
  t.deepEqual(props.get('field'), [row.field]);
  t.deepEqual(props.get('category'), [row.category_zh]);
  t.deepEqual(props.get('windowDays'), [Number(row.window_days)]);
  t.deepEqual(props.get('nationalCode'), [row.nhsa_code]);
  t.deepEqual(props.get('legacyCode'), [row.legacy_code]);
  t.deepEqual(props.get('loinc'), [row.loinc_hint]);
  t.deepEqual(props.get('hrLabel'), ['粤HR']);
  t.deepEqual(props.get('scope'), ['广州市']);
  t.deepEqual(props.get('status'), ['active']);
  t.is(props.get('parent')?.length, 1);
  t.deepEqual(params(body, 'designation').map((d: any) => part(d, 'value').valueString), [row.abbr]);

  // items without a national code still have a platform code; the not-time-limited ones have no window
  const abo = await get('CodeSystem/$lookup', { system: CATALOGUE, code: platformCode('检验', 'ABO血型鉴定') });
  t.is(abo.status, 200);
  t.false(properties(abo.body).has('nationalCode'));
  t.false(properties(abo.body).has('windowDays'));

  // only the properties asked for
  const some = await get('CodeSystem/$lookup', { system: CATALOGUE, code, property: 'windowDays' });
  t.deepEqual([...properties(some.body).keys()], ['windowDays']);
});

test('not-recognised reason codes: 01–08, 98, 99; 98 and 99 excluded from statistics', async (t) => {
  const { body } = await get('ValueSet/$expand', { url: `${BASE}/ValueSet/not-recognised-reason` });
  t.deepEqual(body.expansion.contains.map((c: any) => c.code), ['01', '02', '03', '04', '05', '06', '07', '08', '98', '99']);
  for (const [code, excluded] of [['01', false], ['08', false], ['98', true], ['99', true]] as const) {
    const r = await get('CodeSystem/$lookup', { system: REASON, code });
    t.deepEqual(properties(r.body).get('excludedFromStatistics'), [excluded], code);
  }
  const other = await get('CodeSystem/$lookup', { system: REASON, code: '08' });
  t.deepEqual(properties(other.body).get('maxTextLength'), [200]);
  const en = await get('CodeSystem/$lookup', { system: REASON, code: '98', displayLanguage: 'en' });
  t.is(param(en.body, 'display').valueString, 'External images not available');
});

// ------------------------------------------------------------------------------------------------
// $translate

test('$translate of legacy 250101015 returns 002501010150000 and the platform code', async (t) => {
  const platform = platformCode('检验', '血细胞分析');
  const { status, body } = await get('ConceptMap/$translate', { system: LEGACY, code: '250101015' });
  t.is(status, 200);
  t.true(param(body, 'result').valueBoolean);
  const concepts = params(body, 'match').map((m: any) => part(m, 'concept').valueCoding);
  t.deepEqual(
    concepts.map((c: any) => `${c.system}|${c.code}`).sort(),
    [`${CATALOGUE}|${platform}`, `${NATIONAL}|002501010150000`].sort()
  );
  t.true(params(body, 'match').every((m: any) => part(m, 'equivalence').valueCode === 'equivalent' && part(m, 'source').valueUri === MAP));

  const onlyNational = await post('ConceptMap/$translate', [
    { name: 'url', valueUri: MAP },
    { name: 'coding', valueCoding: { system: LEGACY, code: '250101015' } },
    { name: 'targetsystem', valueUri: NATIONAL },
  ]);
  t.deepEqual(params(onlyNational.body, 'match').map((m: any) => part(m, 'concept').valueCoding.code), ['002501010150000']);

  const back = await get('ConceptMap/legacy-national-platform/$translate', { system: CATALOGUE, code: platform, reverse: 'true', targetsystem: LEGACY });
  t.deepEqual(params(back.body, 'match').map((m: any) => part(m, 'concept').valueCoding.code), ['250101015']);

  const national = await get('ConceptMap/$translate', { system: NATIONAL, code: '002501010150000', targetsystem: CATALOGUE });
  t.deepEqual(params(national.body, 'match').map((m: any) => part(m, 'concept').valueCoding.code), [platform]);

  const none = await get('ConceptMap/$translate', { system: LEGACY, code: '999999999' });
  t.is(none.status, 200);
  t.false(param(none.body, 'result').valueBoolean);
  t.truthy(param(none.body, 'message').valueString);
});

// ------------------------------------------------------------------------------------------------
// $validate-code

test('$validate-code: yes, no, wrong display, CodeableConcept', async (t) => {
  const cbc = platformCode('检验', '血细胞分析');
  const yes = await get('ValueSet/$validate-code', { url: CATALOGUE_VS, system: CATALOGUE, code: cbc });
  t.is(yes.status, 200);
  t.true(param(yes.body, 'result').valueBoolean);
  t.is(param(yes.body, 'display').valueString, '血细胞分析');

  const usField = valueSetFor('field', '超声');
  const no = await get('ValueSet/$validate-code', { url: usField.url, system: CATALOGUE, code: cbc });
  t.is(no.status, 200);
  t.false(param(no.body, 'result').valueBoolean);
  t.regex(param(no.body, 'message').valueString, /not in the value set/);

  const unknown = await get(`ValueSet/recognition-catalogue/$validate-code`, { system: CATALOGUE, code: 'L-00000000' });
  t.false(param(unknown.body, 'result').valueBoolean);
  t.regex(param(unknown.body, 'message').valueString, /Unknown code/);

  const wrongDisplay = await get('ValueSet/$validate-code', { url: CATALOGUE_VS, system: CATALOGUE, code: cbc, display: '尿液分析' });
  t.false(param(wrongDisplay.body, 'result').valueBoolean);
  t.is(param(wrongDisplay.body, 'display').valueString, '血细胞分析');
  const abbr = await get('ValueSet/$validate-code', { url: CATALOGUE_VS, system: CATALOGUE, code: cbc, display: 'CBC' });
  t.true(param(abbr.body, 'result').valueBoolean);

  const cc = await post('ValueSet/$validate-code', [
    { name: 'url', valueUri: CATALOGUE_VS },
    { name: 'codeableConcept', valueCodeableConcept: { coding: [{ system: LEGACY, code: '250101015' }, { system: CATALOGUE, code: cbc }] } },
  ]);
  t.is(cc.status, 200);
  t.true(param(cc.body, 'result').valueBoolean);

  const legacyOnly = await post('ValueSet/$validate-code', [
    { name: 'url', valueUri: CATALOGUE_VS },
    { name: 'coding', valueCoding: { system: LEGACY, code: '250101015' } },
  ]);
  t.false(param(legacyOnly.body, 'result').valueBoolean);
});

// ------------------------------------------------------------------------------------------------
// $subsumes

test('$subsumes follows kind › field › category › item', async (t) => {
  const cbc = platformCode('检验', '血细胞分析');
  const lk = await get('CodeSystem/$lookup', { system: CATALOGUE, code: cbc });
  const category = properties(lk.body).get('parent')?.[0];
  const catLookup = await get('CodeSystem/$lookup', { system: CATALOGUE, code: category });
  t.is(param(catLookup.body, 'display').valueString, '血常规');
  const field = properties(catLookup.body).get('parent')?.[0];
  const fieldLookup = await get('CodeSystem/$lookup', { system: CATALOGUE, code: field });
  t.is(param(fieldLookup.body, 'display').valueString, '血液学');

  const outcome = async (codeA: string, codeB: string) => param((await get('CodeSystem/$subsumes', { system: CATALOGUE, codeA, codeB })).body, 'outcome').valueCode;
  t.is(await outcome(field, cbc), 'subsumes');
  t.is(await outcome('LAB', cbc), 'subsumes');
  t.is(await outcome(cbc, category), 'subsumed-by');
  t.is(await outcome(cbc, cbc), 'equivalent');
  t.is(await outcome(cbc, platformCode('检验', '白细胞计数')), 'not-subsumed');
  t.is(await outcome('EXAM', cbc), 'not-subsumed');

  const posted = await post('CodeSystem/recognition-catalogue/$subsumes', [
    { name: 'codingA', valueCoding: { system: CATALOGUE, code: field } },
    { name: 'codingB', valueCoding: { system: CATALOGUE, code: cbc } },
  ]);
  t.is(posted.status, 200);
  t.is(param(posted.body, 'outcome').valueCode, 'subsumes');
});

// ------------------------------------------------------------------------------------------------
// bad input

test('the terminology of FHIR R4 itself: $expand, $validate-code and $lookup answer for the core value sets and code systems the validator uses', async (t) => {
  const GENDER_VS = 'http://hl7.org/fhir/ValueSet/administrative-gender';
  const GENDER = 'http://hl7.org/fhir/administrative-gender';
  const expanded = await get('ValueSet/$expand', { url: GENDER_VS });
  t.is(expanded.status, 200);
  t.deepEqual(expanded.body.expansion.contains.map((c: any) => `${c.system}|${c.code}`).sort(), ['female', 'male', 'other', 'unknown'].map((c) => `${GENDER}|${c}`));
  t.is(expanded.body.expansion.contains.find((c: any) => c.code === 'female').display, 'Female');
  // the same value set the validator checks Patient.gender against
  const invalid = await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', gender: 'woman' } });
  t.is(invalid.status, 400);

  const yes = await get('ValueSet/$validate-code', { url: GENDER_VS, system: GENDER, code: 'female' });
  t.is(yes.status, 200);
  t.true(param(yes.body, 'result').valueBoolean);
  const no = await get('ValueSet/$validate-code', { url: GENDER_VS, system: GENDER, code: 'woman' });
  t.false(param(no.body, 'result').valueBoolean);

  const looked = await get('CodeSystem/$lookup', { system: GENDER, code: 'male' });
  t.is(looked.status, 200);
  t.is(param(looked.body, 'display').valueString, 'Male');
  t.is((await get('CodeSystem/$lookup', { system: GENDER, code: 'woman' })).status, 404);

  // a value set over a v3 code system (v3-codesystems.json), with a filter
  const marital = await get('ValueSet/$expand', { url: 'http://hl7.org/fhir/ValueSet/marital-status', filter: 'married' });
  t.is(marital.status, 200);
  t.true(marital.body.expansion.contains.some((c: any) => c.system === 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus' && c.code === 'M'));
  // a core value set over an HL7 v2 table: DiagnosticReport.category's sections
  const sections = await get('ValueSet/$expand', { url: 'http://hl7.org/fhir/ValueSet/diagnostic-service-sections' });
  t.is(sections.status, 200);
  t.true(sections.body.expansion.contains.some((c: any) => c.system === 'http://terminology.hl7.org/CodeSystem/v2-0074' && c.code === 'LAB'));
  // with the version R4 publishes, and not with another
  t.is((await get('ValueSet/$expand', { url: `${GENDER_VS}|4.0.1` })).status, 200);
  t.is((await get('ValueSet/$expand', { url: `${GENDER_VS}|9.9.9` })).status, 404);
  // a core value set whose content is not in R4 (LOINC) is a 4xx naming the missing code system; an unknown URL a 404
  const loinc = await get('ValueSet/$expand', { url: 'http://hl7.org/fhir/ValueSet/observation-codes' });
  t.true(loinc.status >= 400 && loinc.status < 500);
  t.regex(JSON.stringify(loinc.body), /loinc/i);
  t.is((await get('ValueSet/$expand', { url: 'http://hl7.org/fhir/ValueSet/no-such-value-set' })).status, 404);
});

test('bad input gets a 4xx OperationOutcome naming the parameter, never a 5xx', async (t) => {
  const cases: [string, () => Promise<Response>, number, string | undefined][] = [
    ['lookup unknown system', () => s.fhir(`CodeSystem/$lookup?${q({ system: 'http://example.org/nope', code: '1' })}`), 404, 'system'],
    ['lookup unknown code', () => s.fhir(`CodeSystem/$lookup?${q({ system: NATIONAL, code: '000000000000000' })}`), 404, 'code'],
    ['lookup missing code', () => s.fhir(`CodeSystem/$lookup?${q({ system: NATIONAL })}`), 400, 'code'],
    ['lookup missing system', () => s.fhir(`CodeSystem/$lookup?${q({ code: '002501010150000' })}`), 400, 'system'],
    ['lookup POST missing code', () => s.fhir('CodeSystem/$lookup', { method: 'POST', json: { resourceType: 'Parameters', parameter: [{ name: 'system', valueUri: NATIONAL }] } }), 400, "Parameters.parameter.where(name='code')"],
    ['lookup POST not Parameters', () => s.fhir('CodeSystem/$lookup', { method: 'POST', json: { resourceType: 'Patient' } }), 400, 'resourceType'],
    ['expand unknown value set', () => s.fhir(`ValueSet/$expand?${q({ url: `${BASE}/ValueSet/nope` })}`), 404, 'url'],
    ['expand without value set', () => s.fhir('ValueSet/$expand'), 400, 'url'],
    ['expand bad count', () => s.fhir(`ValueSet/$expand?${q({ url: CATALOGUE_VS, count: '-1' })}`), 400, 'count'],
    ['expand bad offset', () => s.fhir(`ValueSet/$expand?${q({ url: CATALOGUE_VS, offset: 'x' })}`), 400, 'offset'],
    ['expand unknown system', () => s.fhir('ValueSet/$expand', { method: 'POST', json: { resourceType: 'Parameters', parameter: [{ name: 'valueSet', resource: { resourceType: 'ValueSet', status: 'active', compose: { include: [{ system: 'http://example.org/nope' }] } } }] } }), 422, undefined],
    ['expand unknown instance', () => s.fhir('ValueSet/nope/$expand'), 404, undefined],
    ['validate-code missing code', () => s.fhir(`ValueSet/$validate-code?${q({ url: CATALOGUE_VS, system: CATALOGUE })}`), 400, 'code'],
    ['validate-code missing system', () => s.fhir(`ValueSet/$validate-code?${q({ url: CATALOGUE_VS, code: 'L-00000000' })}`), 400, 'system'],
    ['translate missing code', () => s.fhir(`ConceptMap/$translate?${q({ system: LEGACY })}`), 400, 'code'],
    ['translate unknown map', () => s.fhir(`ConceptMap/$translate?${q({ url: `${BASE}/ConceptMap/nope`, system: LEGACY, code: '250101015' })}`), 404, 'url'],
    ['subsumes unknown system', () => s.fhir(`CodeSystem/$subsumes?${q({ system: 'http://example.org/nope', codeA: 'a', codeB: 'b' })}`), 404, 'system'],
    ['subsumes unknown code', () => s.fhir(`CodeSystem/$subsumes?${q({ system: CATALOGUE, codeA: 'LAB', codeB: 'nope' })}`), 400, 'codeB'],
    ['subsumes missing codeB', () => s.fhir(`CodeSystem/$subsumes?${q({ system: CATALOGUE, codeA: 'LAB' })}`), 400, 'codeB'],
    ['lookup on an instance', () => s.fhir(`CodeSystem/recognition-catalogue/$lookup?${q({ code: 'LAB' })}`), 404, undefined],
  ];
  for (const [name, call, status, expression] of cases) {
    const res = await call();
    t.is(res.status, status, name);
    const body = (await res.json()) as any;
    t.is(body.resourceType, 'OperationOutcome', name);
    t.is(body.issue[0].severity, 'error', name);
    if (expression) t.deepEqual(body.issue[0].expression, [expression], name);
  }
});

// ------------------------------------------------------------------------------------------------
// REST and start-up

test('the terminology is readable and searchable through REST, and loading it again changes nothing', async (t) => {
  const cs = await s.fhir('CodeSystem/recognition-catalogue');
  t.is(cs.status, 200);
  const body = (await cs.json()) as any;
  t.is(body.url, CATALOGUE);
  t.is(body.meta.versionId, '1');

  const found = await get('ValueSet', { url: CATALOGUE_VS });
  t.is(found.body.total, 1);
  const national = await get('CodeSystem', { code: '002501010150000' });
  t.deepEqual(national.body.entry.map((e: any) => e.resource.url), [NATIONAL]);
  const maps = await get('ConceptMap', { url: MAP });
  t.is(maps.body.total, 1);

  const again = await loadTerminology(s.huren.db);
  t.is(again.written, 0);
  t.true(again.resources > 0);
  const after = (await (await s.fhir('CodeSystem/recognition-catalogue')).json()) as any;
  t.is(after.meta.versionId, '1', 'no new version on a second load');
  const count = await get('CodeSystem', { url: CATALOGUE, _summary: 'count' });
  t.is(count.body.total, 1, 'no duplicate');
});

test('the CapabilityStatement lists the terminology operations with their standard definitions', async (t) => {
  const cs = (await (await fetch(`${s.base}/metadata`)).json()) as any;
  const ops = (type: string) => new Map<string, string>(cs.rest[0].resource.find((r: any) => r.type === type).operation.map((o: any) => [o.name, o.definition]));
  t.is(ops('CodeSystem').get('lookup'), 'http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup');
  t.is(ops('CodeSystem').get('subsumes'), 'http://hl7.org/fhir/OperationDefinition/CodeSystem-subsumes');
  t.is(ops('ValueSet').get('expand'), 'http://hl7.org/fhir/OperationDefinition/ValueSet-expand');
  t.is(ops('ValueSet').get('validate-code'), 'http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code');
  t.is(ops('ConceptMap').get('translate'), 'http://hl7.org/fhir/OperationDefinition/ConceptMap-translate');
  t.false(ops('Patient').has('expand'));
});
