/**
 * A catalogue edition that withdraws an item (issue 3/4): once a new edition without 钾 is imported, a fresh
 * potassium report is no longer recognisable — $recognition-check leaves it out and $duplicate-check says
 * why (移出互认目录) — while the other items are unaffected.
 */
import test from 'ava';
import { HEADER, shippedRows } from './helpers/catalogue.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { CATALOGUE, ITEM, NATIONAL_ID, param, params, part, parts, seedScenario, type Seeded } from './helpers/recognition-data.ts';

let s: TestServer;
let d: Seeded;

test.before(async () => {
  s = await startTestServer();
  d = await seedScenario(s, 'edition');
});
test.after.always(async () => {
  await s?.close();
});

async function recognised(): Promise<string[]> {
  const res = await s.fhir(`Patient/${d.patient}/$recognition-check?requester=Organization/${d.org['req-gz']}`);
  must(res.status === 200, `$recognition-check ${res.status}`);
  const body = await res.json();
  return params(body, 'result').map((r: any) => part(r, 'item').valueCoding.code);
}

function must(ok: boolean, message: string): asserts ok {
  if (!ok) throw new Error(message);
}

async function duplicateCheck(code: string): Promise<any> {
  const res = await s.fhir('ServiceRequest/$duplicate-check', {
    method: 'POST',
    json: {
      resourceType: 'Parameters',
      parameter: [
        { name: 'order', resource: { resourceType: 'ServiceRequest', status: 'draft', intent: 'order', code: { coding: [{ system: CATALOGUE, code }] }, subject: { identifier: { system: NATIONAL_ID, value: d.nationalId } } } },
        { name: 'requester', valueReference: { reference: `Organization/${d.org['req-gz']}` } },
      ],
    },
  });
  must(res.status === 200, `$duplicate-check ${res.status}`);
  return param(await res.json(), 'item');
}

test.serial('an item withdrawn by a new catalogue edition stops being recognised, with the reason', async (t) => {
  const before = await recognised();
  t.true(before.includes(ITEM.potassium), 'the fresh potassium report counts under the shipped edition');
  t.true(before.includes(ITEM.glucose));
  t.true(part(await duplicateCheck(ITEM.potassium), 'duplicate').valueBoolean);

  const rows = shippedRows()
    .filter((r) => r[3] !== '钾')
    .map((r) => (r[8] === '' ? [...r.slice(0, 8), '不限', ...r.slice(9)] : r));
  const csv = `${HEADER}\n${rows.map((r) => r.join(',')).join('\n')}\n`;
  const imported = await s.fhir('CodeSystem/$catalogue-import', {
    method: 'POST',
    json: { resourceType: 'Parameters', parameter: [{ name: 'file', valueAttachment: { contentType: 'text/csv', title: 'edition.csv', data: Buffer.from(csv).toString('base64') } }] },
  });
  t.is(imported.status, 200, await imported.clone().text());

  const after = await recognised();
  t.false(after.includes(ITEM.potassium), 'the withdrawn item is no longer offered');
  t.deepEqual(after.filter((c) => c !== ITEM.potassium).sort(), before.filter((c) => c !== ITEM.potassium).sort(), 'the other items are unaffected');

  const item = await duplicateCheck(ITEM.potassium);
  t.false(part(item, 'duplicate').valueBoolean);
  const reasons = parts(item, 'reason').map((r: any) => r.valueString).join('\n');
  t.regex(reasons, /钾 已于 \d{4}-\d{2}-\d{2} 移出互认目录/);
});
