/**
 * The SQL of a search depends on its shape only (issue 17): two searches with the same parameters, modifiers
 * and prefixes but other values give byte-identical statement text and other `$n` values, so that PostgreSQL
 * can keep the statement prepared (server/db/database.ts, QueryOptions.prepare). Only driven searches are
 * marked to be prepared: their plan is fixed by the text (test/search-plans.test.ts checks their generic plans).
 */
import test from 'ava';
import { parseSearch } from '../server/fhir/search/parse.ts';
import { searchQueries } from '../server/fhir/search/execute.ts';
import { openDatabase, PREPARED_PER_CONNECTION } from '../server/db/database.ts';
import { startTestServer } from './helpers/server.ts';

function statements(type: string, query: string, snapshot = '2026-01-01T00:00:00.000Z') {
  return searchQueries({ ...parseSearch(type, [...new URLSearchParams(query)] as [string, string][]), snapshot });
}

const SHAPES: [string, string, string][] = [
  ['Observation', 'subject=Patient/p-1&code=http://loinc.org|2823-3', 'subject=Patient/p-2&code=http://loinc.org|718-7'],
  [
    'Observation',
    'subject=Patient/p-1&code=http://loinc.org|2823-3&date=ge2024-01-01&_sort=-date',
    'subject=Patient/p-9&code=http://loinc.org|1742-6&date=ge2025-06-30&_sort=-date',
  ],
  ['Observation', 'subject:Patient.identifier=urn:oid:1|id-44&value-quantity=gt4', 'subject:Patient.identifier=urn:oid:1|id-45&value-quantity=gt7.5'],
  ['Patient', '_has:Observation:subject:identifier=urn:x|o-1&name=Chen', '_has:Observation:subject:identifier=urn:x|o-2&name=Li'],
  ['Observation', 'code=http://loinc.org|2823-3&date=lt2024-02-01&_lastUpdated=gt2020-01-01', 'code=http://loinc.org|718-7&date=lt2023-02-01&_lastUpdated=gt2021-01-01'],
];

for (const [type, a, b] of SHAPES) {
  test(`one shape, other values: the same text, other parameters (${type}?${a})`, (t) => {
    const first = statements(type, a);
    const second = statements(type, b, '2026-02-02T00:00:00.000Z');
    t.is(first.page.text, second.page.text);
    t.is(first.count.text, second.count.text);
    t.notDeepEqual(first.page.values, second.page.values);
    t.notDeepEqual(first.count.values, second.count.values);
    t.is(first.page.values.length, second.page.values.length);
    // no value of either search (ids, codes, dates: those with a digit; not one of the $n) is in the text
    for (const v of [...first.page.values, ...second.page.values]) {
      if (typeof v === 'string' && v.length >= 3 && /\d/.test(v)) t.false(first.page.text.includes(v), `${v} is a parameter, not text`);
    }
    // building the same search again gives the same text (no counter carried from one statement to the next)
    t.is(statements(type, a).page.text, first.page.text);
  });
}

test('other shapes give other text', (t) => {
  const base = statements('Observation', 'subject=Patient/p-1&code=http://loinc.org|2823-3').page.text;
  t.not(statements('Observation', 'subject=Patient/p-1&code:not=http://loinc.org|2823-3').page.text, base, 'a modifier');
  t.not(statements('Observation', 'subject=Patient/p-1&code=http://loinc.org|2823-3&date=ge2024-01-01').page.text, base, 'a parameter');
  t.not(statements('Observation', 'subject=Patient/p-1&code=http://loinc.org|2823-3,http://loinc.org|718-7').page.text, base, 'two values');
  t.not(
    statements('Observation', 'subject=Patient/p-1&date=ge2024-01-01').page.text,
    statements('Observation', 'subject=Patient/p-1&date=le2024-01-01').page.text,
    'a prefix'
  );
});

test('driven searches are marked to be prepared, the others are planned for their values', (t) => {
  for (const q of ['subject=Patient/p-1&code=http://loinc.org|2823-3', 'subject:Patient.identifier=urn:oid:1|44', 'performer=Organization/o-1']) {
    const { page, count } = statements('Observation', q);
    t.true(page.prepare, q);
    t.true(count.prepare, q);
  }
  for (const q of ['code=http://loinc.org|2823-3', 'date=ge2024-01-01', '_id=o-1&subject=Patient/p-1', 'subject:missing=true']) {
    const { page, count } = statements('Observation', q);
    t.false(page.prepare, q);
    t.false(count.prepare, q);
  }
});

test('a PostgreSQL connection keeps its most recently used statements marked prepare, at most PREPARED_PER_CONNECTION', async (t) => {
  const server = await startTestServer();
  const url = server.store.databaseUrl;
  // one connection, so that its prepared statements can be seen (pg_prepared_statements is per session)
  const db = url ? await openDatabase({ url, poolSize: 1 }) : server.huren.db;
  try {
    const text = (k: number) => `SELECT $1::int + ${k} AS n`;
    const total = PREPARED_PER_CONNECTION + 6;
    for (let k = 0; k < total; k++) t.deepEqual(await db.query(text(k), [1], { prepare: true }), [{ n: k + 1 }]);
    // the first six were deallocated (node-postgres forgets them too): they run again, prepared again
    for (let k = 0; k < 3; k++) t.deepEqual(await db.query(text(k), [2], { prepare: true }), [{ n: k + 2 }]);
    t.deepEqual(await db.query(text(total - 1), [3], { prepare: true }), [{ n: total + 2 }]);
    const kept = await db.query<{ statement: string }>(`SELECT statement FROM pg_prepared_statements WHERE name LIKE 'huren_q_%'`);
    if (url) {
      const expected = [0, 1, 2, ...Array.from({ length: total - 9 }, (_, i) => i + 9)].map(text);
      t.deepEqual(kept.map((r) => r.statement).sort(), expected.sort());
    } else {
      t.deepEqual(kept, [], 'the embedded store prepares nothing');
    }
  } finally {
    if (url) await db.close();
    await server.close();
  }
});
