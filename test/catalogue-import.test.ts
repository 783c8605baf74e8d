/**
 * Import of an official catalogue file (issue 3): a generated file of 5,000 rows becomes a new edition,
 * through the command talking to a running server, while the old edition stays readable; a file full of
 * errors is refused line by line and changes nothing; .xlsx files; the direct-store path.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ExcelJS from 'exceljs';
import { platformCode } from '../server/terminology/catalogue-source.ts';
import { importCatalogue, ImportRefused, ImportRejected } from '../server/terminology/import.ts';
import { DEFAULT_CSV } from '../scripts/generate-terminology.ts';
import { errorCatalogue, generateCatalogue, HEADER, shippedRows } from './helpers/catalogue.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const BASE = 'https://fhir.huren.gz.cn';
const CATALOGUE = `${BASE}/CodeSystem/recognition-catalogue`;
const CATALOGUE_VS = `${BASE}/ValueSet/recognition-catalogue`;
const NATIONAL = `${BASE}/CodeSystem/nhsa-service-item`;
const LEGACY = `${BASE}/CodeSystem/legacy-price-item`;

let s: TestServer;
let dir: string;
test.before(async () => {
  s = await startTestServer();
  dir = mkdtempSync(join(tmpdir(), 'huren-import-'));
});
test.after.always(async () => {
  await s?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/catalogue-import.ts', ...args], { env: { ...process.env, HUREN_TOKEN: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

async function get(path: string, params: Record<string, string | number> = {}) {
  const res = await s.fhir(`${path}?${new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)]))}`);
  return { status: res.status, body: (await res.json()) as any };
}
const param = (body: any, name: string) => body.parameter?.find((p: any) => p.name === name);
const prop = (body: any, code: string) =>
  (body.parameter ?? []).filter((p: any) => p.name === 'property' && p.part.find((x: any) => x.name === 'code').valueCode === code).map((p: any) => {
    const v = p.part.find((x: any) => x.name === 'value');
    return v.valueString ?? v.valueCode ?? v.valueDateTime ?? v.valueInteger;
  });

async function catalogueVersion(): Promise<{ versionId: string; version: string }> {
  const cs = (await get('CodeSystem/recognition-catalogue', { _elements: 'version' })).body;
  return { versionId: cs.meta.versionId, version: cs.version };
}

test.serial('a file full of errors: every error named with its line, exit code 1, nothing imported', async (t) => {
  const before = await catalogueVersion();
  const { csv, errors } = errorCatalogue();
  const file = join(dir, 'errors.csv');
  writeFileSync(file, csv);
  const cli = await runCli([file, '--server', s.base, '--token', s.token]);
  t.is(cli.code, 1, cli.stderr);
  for (const e of errors) {
    const line = cli.stderr.split('\n').find((l) => l.startsWith(`line ${e.line} [${e.column}]:`) && e.pattern.test(l));
    t.truthy(line, `no error reported at line ${e.line} [${e.column}] matching ${e.pattern}:\n${cli.stderr}`);
  }
  t.false(/^line 2 /m.test(cli.stderr), 'the valid row is not reported');
  t.regex(cli.stderr, /nothing was imported/);
  t.deepEqual(await catalogueVersion(), before, 'no new version');

  // the operation itself: 422, one issue per error, located at its line
  const res = await s.fhir('CodeSystem/$catalogue-import', {
    method: 'POST',
    json: { resourceType: 'Parameters', parameter: [{ name: 'file', valueAttachment: { contentType: 'text/csv', title: 'errors.csv', data: Buffer.from(csv).toString('base64') } }] },
  });
  t.is(res.status, 422);
  const outcome = (await res.json()) as any;
  t.is(outcome.resourceType, 'OperationOutcome');
  for (const e of errors) {
    const issue = outcome.issue.find((i: any) => i.location?.[0] === `line ${e.line}, column ${e.column}`);
    t.truthy(issue, `no issue located at line ${e.line}, column ${e.column}`);
    t.is(issue.extension[0].valueInteger, e.line);
    t.deepEqual(issue.expression, ["Parameters.parameter.where(name='file')"]);
  }
  t.deepEqual(await catalogueVersion(), before);
});

test.serial('the platform\'s own source file imports as it is: items without a window (ABO, Rh(D)) are valid and never expire', async (t) => {
  const before = await catalogueVersion();
  const source = readFileSync(DEFAULT_CSV);
  t.true(shippedRows().some((r) => r[3] === 'ABO血型鉴定' && r[8] === ''), 'the source leaves the ABO window empty');
  const dry = await importCatalogue(s.huren.db, source, { fileName: 'recognition-items.csv', dryRun: true });
  t.true(dry.noChange, 'the shipped source is the current edition');
  t.is(dry.items, shippedRows().length);
  // an edition that changes one item's window and keeps ABO/Rh(D) without one
  const changed = source.toString('utf8').replace(/^(检验,血液学,血常规,血细胞分析,CBC,[^,]*,[^,]*,[^,]*,)7,/m, '$110,');
  t.not(changed, source.toString('utf8'));
  const result = await importCatalogue(s.huren.db, Buffer.from(changed), { fileName: 'recognition-items.csv', dryRun: true });
  t.is(result.changed, 1);
  t.false(result.noChange);
  t.deepEqual(await catalogueVersion(), before, 'a dry run writes nothing');
  const abo = platformCode('检验', 'ABO血型鉴定');
  const lookup = await get('CodeSystem/$lookup', { system: CATALOGUE, code: abo, property: 'windowDays' });
  t.is(lookup.status, 200);
  t.deepEqual(prop(lookup.body, 'windowDays'), [], 'no window: never expires');
});

test.serial('direct-store mode: the import without a server; refusals are typed; the running server sees the edition', async (t) => {
  const before = await catalogueVersion();
  const rows = shippedRows();
  const csv = (list: string[][]) => Buffer.from(`${HEADER}\n${list.map((r) => r.join(',')).join('\n')}\n`);
  const notNewer = await importCatalogue(s.huren.db, csv(rows.slice(1)), { version: before.version }).catch((e) => e);
  t.true(notNewer instanceof ImportRefused);
  t.is(notNewer.option, 'version');
  const rejected = await importCatalogue(s.huren.db, Buffer.from(`${HEADER}\n检验,化学,肝功能,x,,123,,,30,I,,\n`)).catch((e) => e);
  t.true(rejected instanceof ImportRejected);
  t.is(rejected.errors[0].line, 2);
  // the shipped CSV is the current edition: nothing to do
  const same = await importCatalogue(s.huren.db, csv(rows));
  t.true(same.noChange);
  t.is(same.written, 0);
  t.deepEqual(await catalogueVersion(), before);
  // without its first row: a new edition (version bumped), one item retired
  const phases = new Set<string>();
  const result = await importCatalogue(s.huren.db, csv(rows.slice(1)), { fileName: 'recognition-items.csv', effectiveFrom: '2024-04-01' }, (phase) => phases.add(phase));
  t.is(result.previousVersion, before.version);
  t.is(result.version, '2024.1.1');
  t.is(result.items, rows.length - 1);
  t.is(result.retired, 1);
  t.is(result.unchanged, rows.length - 1);
  t.deepEqual([...phases], ['read', 'check', 'plan', 'write', 'load']);
  const expanded = (await get('ValueSet/$expand', { url: CATALOGUE_VS, count: 0 })).body;
  t.is(expanded.expansion.total, rows.length - 1, 'the running server sees the new edition at once');
  t.is(expanded.version, '2024.1.1');
});

test.serial('a generated file of 5,000 rows becomes a new edition; $expand counts it; the old edition stays readable', async (t) => {
  const before = await catalogueVersion();
  const oldTotal = (await get('ValueSet/$expand', { url: CATALOGUE_VS, count: 0 })).body.expansion.total;
  const g = generateCatalogue(5000, 2);
  t.is(g.rows, 5000);
  const file = join(dir, 'catalogue-2024.2.csv');
  writeFileSync(file, g.csv);

  // without admitting the new categories, the file is refused
  const refused = await importCatalogue(s.huren.db, Buffer.from(g.csv), { dryRun: true }).catch((e) => e);
  t.true(refused instanceof ImportRejected);
  t.true(refused.errors.some((e: any) => e.column === 'category_zh' && e.message.includes(`unknown category '${g.newCategories[0]}'`)));

  const cli = await runCli([file, '--server', s.base, '--token', s.token, '--version', '2024.2.0', '--effective-from', '2024-07-01', ...g.newCategories.flatMap((c) => ['--new-category', c])]);
  t.is(cli.code, 0, cli.stderr);
  t.regex(cli.stdout, new RegExp(`imported edition 2024\\.2\\.0 \\(replaces ${before.version.replaceAll('.', '\\.')}`));
  t.regex(cli.stdout, /items in the file: 5000/);
  t.regex(cli.stdout, /retired: 2/);
  t.regex(cli.stderr, /progress: \w+ \d+\/\d+/, 'the command shows its progress');

  const after = await catalogueVersion();
  t.is(after.version, '2024.2.0');
  t.is(Number(after.versionId), Number(before.versionId) + 1);

  // the new edition: every row of the file is in the catalogue value set, the retired items are not
  const expanded = (await get('ValueSet/$expand', { url: CATALOGUE_VS, count: 0 })).body;
  t.is(expanded.version, '2024.2.0');
  t.is(expanded.expansion.total, 5000);
  const national = (await get('CodeSystem/$lookup', { system: NATIONAL, code: g.sample.national })).body;
  t.is(param(national, 'display').valueString, g.sample.item);
  const translated = (await get('ConceptMap/$translate', { system: LEGACY, code: g.sample.legacy })).body;
  t.true(param(translated, 'result').valueBoolean);
  const concepts = translated.parameter.filter((p: any) => p.name === 'match').map((m: any) => m.part.find((x: any) => x.name === 'concept').valueCoding);
  t.true(concepts.some((c: any) => c.system === NATIONAL && c.code === g.sample.national));
  t.true(concepts.some((c: any) => c.system === CATALOGUE && c.code === platformCode('检验', g.sample.item)));
  const category = (await get('ValueSet', { 'title:contains': `分类 › ${g.newCategories[0]}`, _elements: 'url' })).body;
  t.is(category.entry?.length, 1, 'the new category has its value set');

  // an item the file no longer lists is retired, not deleted
  const droppedRow = shippedRows().find((r) => r[3] === g.dropped[0]) as string[];
  const droppedCode = platformCode(droppedRow[0] as '检验' | '检查', droppedRow[3]);
  const retired = (await get('CodeSystem/$lookup', { system: CATALOGUE, code: droppedCode })).body;
  t.deepEqual(prop(retired, 'status'), ['retired']);
  t.deepEqual(prop(retired, 'effectiveTo'), ['2024-07-01']);
  const notInSet = (await get('ValueSet/$validate-code', { url: CATALOGUE_VS, system: CATALOGUE, code: droppedCode })).body;
  t.false(param(notInSet, 'result').valueBoolean);
  // an item kept from the first edition keeps its effectiveFrom
  const kept = (await get('CodeSystem/$lookup', { system: CATALOGUE, code: platformCode('检验', '血细胞分析') })).body;
  t.deepEqual(prop(kept, 'effectiveFrom'), ['2024-01-01']);

  // the old edition: in the history, and still answered by version
  const old = (await get(`CodeSystem/recognition-catalogue/_history/${before.versionId}`)).body;
  t.is(old.version, before.version);
  const history = (await get('CodeSystem/recognition-catalogue/_history')).body;
  t.deepEqual(history.entry.map((e: any) => e.resource.version), ['2024.2.0', '2024.1.1', '2024.1.0']);
  const oldLookup = (await get('CodeSystem/$lookup', { system: CATALOGUE, code: droppedCode, version: '2024.1.0' })).body;
  t.is(param(oldLookup, 'version').valueString, '2024.1.0');
  t.deepEqual(prop(oldLookup, 'status'), ['active']);
  const oldExpansion = (await get('ValueSet/$expand', { url: CATALOGUE_VS, valueSetVersion: before.version, count: 0 })).body;
  t.is(oldExpansion.expansion.total, oldTotal, 'the earlier edition expands as it did');
  const firstExpansion = (await get('ValueSet/$expand', { url: CATALOGUE_VS, valueSetVersion: '2024.1.0', count: 0 })).body;
  t.is(firstExpansion.expansion.total, shippedRows().length, 'and so does the first');

  // a Provenance records the import with the file's hash
  const provenance = (await get('Provenance', { target: `CodeSystem/recognition-catalogue` })).body;
  const prov = provenance.entry?.map((e: any) => e.resource).find((p: any) => p.activity?.coding?.some((c: any) => c.code === 'catalogue-import'));
  t.truthy(prov, 'a Provenance of the import');
  t.regex(prov.entity[0].what.identifier.value, /^urn:sha256:[0-9a-f]{64}$/);

  // the same file again: nothing changes
  const again = await importCatalogue(s.huren.db, Buffer.from(g.csv), { version: '2024.3.0', newCategories: g.newCategories });
  t.true(again.noChange);
  t.deepEqual(await catalogueVersion(), after);
});

test.serial('.xlsx files: read from the first sheet; a code typed as a number is reported with a hint', async (t) => {
  const before = await catalogueVersion();
  const workbook = new ExcelJS.Workbook();
  const sheet = workbook.addWorksheet('目录');
  sheet.addRow(HEADER.split(','));
  for (const r of shippedRows().slice(0, 10)) sheet.addRow(r.map((v, i) => (i === 8 && v === '' ? '不限' : v)));
  sheet.addRow(['检验', '化学', '肝功能', '表格项目', '', 2501010150001, '', '', 30, 'I', '', '']); // a number cell: leading zeros lost
  const xlsx = Buffer.from(await workbook.xlsx.writeBuffer());
  const post = (data: Buffer, extra: unknown[] = []) =>
    s.fhir('CodeSystem/$catalogue-import', {
      method: 'POST',
      json: { resourceType: 'Parameters', parameter: [{ name: 'file', valueAttachment: { contentType: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', title: 'c.xlsx', data: data.toString('base64') } }, ...extra] },
    });
  const bad = await post(xlsx);
  t.is(bad.status, 422);
  const issue = ((await bad.json()) as any).issue.find((i: any) => i.location?.[0] === 'line 12, column nhsa_code');
  t.truthy(issue);
  t.regex(issue.details.text, /loses leading zeros/);

  sheet.spliceRows(12, 1);
  const good = Buffer.from(await workbook.xlsx.writeBuffer());
  const dry = await post(good, [{ name: 'dryRun', valueBoolean: true }, { name: 'version', valueString: '2099.1.0' }]);
  t.is(dry.status, 200);
  const body = (await dry.json()) as any;
  t.is(param(body, 'items').valueInteger, 10);
  t.true(param(body, 'dryRun').valueBoolean);
  t.is(param(body, 'written').valueInteger, 0);
  t.deepEqual(await catalogueVersion(), before, 'a dry run writes nothing');
});

test.serial('bad requests get 4xx OperationOutcomes naming the parameter', async (t) => {
  const csv = `${HEADER}\n${shippedRows()
    .slice(0, 3)
    .map((r) => r.join(','))
    .join('\n')}\n`;
  const post = (parameter: unknown[]) => s.fhir('CodeSystem/$catalogue-import', { method: 'POST', json: { resourceType: 'Parameters', parameter } });
  const file = { name: 'file', valueAttachment: { contentType: 'text/csv', data: Buffer.from(csv).toString('base64') } };
  const cases: [unknown[], number, string][] = [
    [[], 400, "Parameters.parameter.where(name='file')"],
    [[{ name: 'file', valueString: 'x' }], 400, "Parameters.parameter.where(name='file')"],
    [[{ name: 'file', valueAttachment: { contentType: 'text/csv', data: '@@@' } }], 400, "Parameters.parameter.where(name='file')"],
    [[file, { name: 'version', valueString: '2024.1.0' }], 422, "Parameters.parameter.where(name='version')"],
    [[file, { name: 'version', valueString: 'bad version!' }], 400, "Parameters.parameter.where(name='version')"],
    [[file, { name: 'effectiveFrom', valueString: '2024-13-45' }], 400, "Parameters.parameter.where(name='effectiveFrom')"],
  ];
  for (const [parameter, status, expression] of cases) {
    const res = await post(parameter);
    t.is(res.status, status, JSON.stringify(parameter).slice(0, 120));
    const body = (await res.json()) as any;
    t.is(body.resourceType, 'OperationOutcome');
    t.true(body.issue.some((i: any) => i.expression?.includes(expression)), JSON.stringify(body.issue));
  }
  t.is((await s.fhir('CodeSystem/$catalogue-import')).status, 405, 'GET is not accepted');
});


test.serial('price_cny column: each item’s price in 元 becomes its `price` property; a malformed price is refused at its line', async (t) => {
  const rows = shippedRows().map((r) => r.map((v, i) => (i === 8 && v === '' ? '不限' : v)));
  const priced = (r: string[], i: number) => [...r, i === 0 ? '25.5' : i === 1 ? '120' : ''].join(',');
  const bad = `${HEADER},price_cny\n${rows.map(priced).join('\n')}\n检验,化学,肝功能,价格有误项目,,,,,30,I,,,¥25\n`;
  const rejected = await importCatalogue(s.huren.db, Buffer.from(bad), { version: '2999.1.0' }).catch((e) => e);
  t.true(rejected instanceof ImportRejected);
  t.deepEqual(
    rejected.errors.map((e: any) => [e.line, e.column]),
    [[rows.length + 2, 'price_cny']]
  );
  t.regex(rejected.errors[0].message, /price '¥25' is not an amount in 元/);

  const good = `${HEADER},price_cny\n${rows.map(priced).join('\n')}\n`;
  const result = await importCatalogue(s.huren.db, Buffer.from(good), { version: '2999.1.0' });
  t.false(result.noChange);
  const price = async (item: string) => {
    const lookup = (await get('CodeSystem/$lookup', { system: CATALOGUE, code: platformCode(rows[0][0] as '检验', item), property: 'price' })).body;
    return (lookup.parameter ?? []).filter((p: any) => p.name === 'property').map((p: any) => p.part.find((x: any) => x.name === 'value').valueDecimal);
  };
  t.deepEqual(await price(rows[0][3]), [25.5]);
  t.deepEqual(await price(rows[1][3]), [120]);
  t.deepEqual(await price(rows[2][3]), [], 'an empty cell: no price');
  // a price change alone is a change of the item
  const cheaper = `${HEADER},price_cny\n${rows.map((r, i) => [...r, i === 0 ? '20' : i === 1 ? '120' : ''].join(',')).join('\n')}\n`;
  const again = await importCatalogue(s.huren.db, Buffer.from(cheaper), { version: '2999.2.0' });
  t.false(again.noChange);
  t.deepEqual(await price(rows[0][3]), [20]);
});
