/**
 * A search costs what its answer costs, not what the table holds (issue 17): at a size where a sequential
 * scan shows (tens of thousands of Observations over thousands of patients, loaded through the repository's
 * write path, then VACUUM ANALYZE), the plan of each search shape, as the engine builds it
 * (Repository.searchStatements, includeQuery), reads the big tables only through the intended index. The
 * assertions are on the plan's shape (node types, relations, index names), never on costs or times.
 * Each shape's answer is checked too, so that the plans are those of searches that find the right rows.
 */
import test from 'ava';
import type { Resource } from '@medplum/fhirtypes';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { CODES, ID_SYSTEM, LOINC, loadSearchData, type SearchData } from './helpers/search-data.ts';
import { openDatabase } from '../server/db/database.ts';
import { Repository } from '../server/fhir/repository.ts';
import { parseSearch, type SearchRequest } from '../server/fhir/search/parse.ts';
import { includeQuery, type Query } from '../server/fhir/search/execute.ts';

const PATIENTS = 1500;
const PER_PATIENT = 12;
const BIG = new Set(['resource', 'idx_reference', 'idx_token', 'idx_date', 'idx_string', 'idx_quantity', 'idx_uri']);

let s: TestServer;
let repo: Repository;
let data: SearchData;

test.before(async () => {
  s = await startTestServer();
  data = await loadSearchData(s.huren.db, { patients: PATIENTS, observationsPerPatient: PER_PATIENT });
  // visibility map and statistics as autovacuum would leave them
  await s.huren.db.query('VACUUM ANALYZE');
  repo = new Repository(s.huren.db);
});
test.after.always(async () => {
  await s?.close();
});

interface Scan {
  node: string;
  relation?: string;
  index?: string;
  /** The index condition and the filter, as EXPLAIN prints them. */
  cond?: string;
  filter?: string;
}

/** The scans of a plan, outermost first (each node's children in order). */
async function scans(query: Query): Promise<Scan[]> {
  const rows = await s.huren.db.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${query.text}`, query.values);
  return scansOf(rows[0]['QUERY PLAN']);
}

function scansOf(raw: unknown): Scan[] {
  const doc = (typeof raw === 'string' ? JSON.parse(raw) : raw) as [{ Plan: PlanNode }];
  const out: Scan[] = [];
  const walk = (n: PlanNode) => {
    if (n['Relation Name'] || n['Index Name']) out.push({ node: n['Node Type'], relation: n['Relation Name'], index: n['Index Name'], cond: n['Index Cond'], filter: n.Filter });
    for (const c of n.Plans ?? []) walk(c);
  };
  walk(doc[0].Plan);
  return out;
}

/**
 * The scans of the generic plan of `query`: the plan PostgreSQL keeps for a prepared statement once it finds it
 * no dearer than those made for the values (after five runs), made without knowing any value. Forced here
 * (plan_cache_mode), on one connection; the arguments do not matter to a generic plan (NULLs).
 */
async function genericScans(query: Query): Promise<Scan[]> {
  return s.huren.db.transaction(async (sql) => {
    await sql.query('SET LOCAL plan_cache_mode = force_generic_plan');
    await sql.query(`PREPARE plan_test_generic AS ${query.text}`);
    try {
      const args = query.values.map(() => 'NULL').join(', ');
      const rows = await sql.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) EXECUTE plan_test_generic(${args})`);
      return scansOf(rows[0]['QUERY PLAN']);
    } finally {
      await sql.query('DEALLOCATE plan_test_generic');
    }
  });
}

/**
 * The plans a statement can run with: the one made for its values, and, when it is run prepared (a driven
 * search: QueryOptions.prepare), its generic plan too. Each must have the expected shape.
 */
async function plans(query: Query): Promise<[string, Scan[]][]> {
  const custom: [string, Scan[]] = ['custom', await scans(query)];
  return query.prepare ? [custom, ['generic', await genericScans(query)]] : [custom];
}

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Index Cond'?: string;
  Filter?: string;
  Plans?: PlanNode[];
}

function request(type: string, query: string): SearchRequest {
  return parseSearch(type, [...new URLSearchParams(query)] as [string, string][]);
}

async function matches(type: string, query: string): Promise<string[]> {
  const bundle = await repo.search(request(type, query), 'http://x/fhir');
  return (bundle.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource!.id as string);
}

/**
 * Every scan of `table` (an index table checked per candidate) descends to the candidate: the candidate's id is in
 * its index condition — through the owner index or the lookup index, whose last column is the id (migration 045).
 */
function assertProbed(t: import('ava').ExecutionContext, plan: Scan[], table: string, label: string) {
  const probes = plan.filter((p) => p.relation === table);
  t.true(probes.length > 0, `${label}: ${table} is probed: ${JSON.stringify(plan)}`);
  for (const p of probes) t.regex(p.cond ?? '', /\bid = (d1|r)\.id\b/, `${label}: ${table} is probed by the candidate's id, not read whole: ${JSON.stringify(p)}`);
}

/** No sequential scan of a big table, every expected index used, `resource` read by primary key only (when said). */
function assertShape(t: import('ava').ExecutionContext, plan: Scan[], expected: { uses: string[]; resourceByKey?: boolean }, label: string) {
  const shown = JSON.stringify(plan);
  for (const scan of plan) {
    t.false(scan.node === 'Seq Scan' && BIG.has(scan.relation ?? ''), `${label}: sequential scan of ${scan.relation}: ${shown}`);
  }
  const used = new Set(plan.map((p) => p.index).filter(Boolean));
  for (const index of expected.uses) t.true(used.has(index), `${label}: ${index} is used: ${shown}`);
  if (expected.resourceByKey) {
    const onResource = plan.filter((p) => p.relation === 'resource' || p.index?.startsWith('resource_'));
    t.true(onResource.length > 0, `${label}: resource rows are read: ${shown}`);
    for (const p of onResource) t.is(p.index, 'resource_pkey', `${label}: resource is read by primary key only: ${shown}`);
  }
}

const patient = (i: number) => `plan-pat-${i}`;
/** The Observations of patient p with code index k (as the generator makes them). */
const observationsOf = (p: number) => Array.from({ length: PER_PATIENT }, (_, k) => `plan-obs-${p * PER_PATIENT + k}`);

test('the data is large enough for a sequential scan to show', async (t) => {
  const [{ n }] = await s.huren.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM idx_reference WHERE type = 'Observation'`);
  t.true(n >= 2 * PATIENTS * PER_PATIENT, `${n} reference rows`);
  // the planner would read the whole table for a condition no index starts with
  const plan = await scans({ text: `SELECT id FROM idx_reference WHERE url = $1`, values: ['Patient/plan-pat-1'] });
  t.true(plan.some((p) => p.node === 'Seq Scan' && p.relation === 'idx_reference'), JSON.stringify(plan));
});

test('reference: subject=Patient/… reads that patient’s rows from idx_reference_target', async (t) => {
  const q = `subject=Patient/${patient(17)}`;
  const { page, count } = repo.searchStatements(request('Observation', q));
  t.true(page.prepare && count.prepare, 'a driven search is run prepared');
  for (const [mode, plan] of await plans(page)) assertShape(t, plan, { uses: ['idx_reference_target'], resourceByKey: true }, `page (${mode})`);
  for (const [mode, plan] of await plans(count)) assertShape(t, plan, { uses: ['idx_reference_target'], resourceByKey: true }, `count (${mode})`);
  t.deepEqual((await matches('Observation', q)).sort(), observationsOf(17).sort());
});

test('reference by a URL that is not Type/id uses the partial url index, and finds it whatever its length', async (t) => {
  const { page } = repo.searchStatements(request('Observation', 'subject=urn:oid:1.2.3.4'));
  for (const [mode, plan] of await plans(page)) assertShape(t, plan, { uses: ['idx_reference_url'] }, `page (${mode})`);
  // a long url of multi-byte characters is indexed by its start (a whole one would pass the B-tree's limit)
  const chars = Array.from({ length: 2000 }, (_, i) => String.fromCodePoint(0x4e00 + ((i * 7919) % 20000))); // hardly compressible
  const long = `urn:huren:${chars.join('')}`;
  const same = `urn:huren:${chars.slice(0, 1000).join('')}短${chars.slice(1001).join('')}`; // the same first 256 characters, another url
  await repo.createMany([
    { resourceType: 'Observation', id: 'plan-url-1', status: 'final', code: { text: 'x' }, subject: { reference: 'urn:oid:1.2.3.4' } },
    { resourceType: 'Observation', id: 'plan-url-2', status: 'final', code: { text: 'x' }, subject: { reference: long } },
    { resourceType: 'Observation', id: 'plan-url-3', status: 'final', code: { text: 'x' }, subject: { reference: same } },
  ] as Resource[]);
  t.deepEqual(await matches('Observation', 'subject=urn:oid:1.2.3.4'), ['plan-url-1']);
  t.deepEqual(await matches('Observation', `subject=${encodeURIComponent(long)}`), ['plan-url-2']);
  t.deepEqual(await matches('Observation', `subject=${encodeURIComponent(same)}`), ['plan-url-3']);
  t.deepEqual(await matches('Observation', 'subject=urn:oid:1.2.3'), [], 'a prefix is not a match');
});

test('token: identifier=system|value is a lookup; code=system|code never reads the whole table', async (t) => {
  const { page } = repo.searchStatements(request('Observation', 'identifier=urn:huren:plan-obs|obs-205'));
  assertShape(t, await scans(page), { uses: ['idx_token_lookup'], resourceByKey: true }, 'identifier');
  t.deepEqual(await matches('Observation', 'identifier=urn:huren:plan-obs|obs-205'), ['plan-obs-205']);
  // a code shared by a twelfth of the table: either its lookup or the page in (created, id) order, probed
  const broad = await scans(repo.searchStatements(request('Observation', `code=${LOINC}|2823-3`)).page);
  assertShape(t, broad, { uses: [] }, 'code');
  t.true(broad.some((p) => p.index === 'idx_token_lookup' || p.index === 'idx_token_owner'), JSON.stringify(broad));
  t.is((await matches('Observation', `code=${LOINC}|2823-3`)).length, 20);
});

test('subject + code: the subject drives, the code is probed per candidate before any resource row is read', async (t) => {
  // patient 17's Observations have the codes CODES[(17 + k) % 12]: code '2823-3' (index 0) is k = 7
  const q = `subject=Patient/${patient(17)}&code=${LOINC}|2823-3`;
  for (const [mode, plan] of await plans(repo.searchStatements(request('Observation', q)).page)) {
    assertShape(t, plan, { uses: ['idx_reference_target'], resourceByKey: true }, `page (${mode})`);
    assertProbed(t, plan, 'idx_token', `${mode}: the code's rows (a twelfth of the table) are not read`);
  }
  t.deepEqual(await matches('Observation', q), [`plan-obs-${17 * PER_PATIENT + 7}`]);
});

test('subject + code: a generic plan that probes a candidate through the code’s lookup index still descends to the candidate by id', async (t) => {
  // with the values unknown, both token indexes look alike to the planner for the check (seen at 50k Observations
  // after growth: the lookup index, reading every row of the code per candidate); without idx_token_owner it must
  // take the lookup — whose last column is the id, so the check stays one descent
  const q = `subject=Patient/${patient(17)}&code=${LOINC}|2823-3`;
  const page = repo.searchStatements(request('Observation', q)).page;
  const plan = await s.huren.db
    .transaction(async (sql) => {
      await sql.query('DROP INDEX idx_token_owner');
      await sql.query('SET LOCAL plan_cache_mode = force_generic_plan');
      await sql.query(`PREPARE plan_test_lookup AS ${page.text}`);
      const rows = await sql.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) EXECUTE plan_test_lookup(${page.values.map(() => 'NULL').join(', ')})`);
      await sql.query('DEALLOCATE plan_test_lookup'); // a prepared statement outlives the transaction's rollback
      throw Object.assign(new Error('roll back'), { plan: scansOf(rows[0]['QUERY PLAN']) });
    })
    .catch((e: Error & { plan?: Scan[] }) => {
      if (!e.plan) throw e;
      return e.plan;
    });
  const probes = plan.filter((p) => p.relation === 'idx_token' || p.index?.startsWith('idx_token'));
  t.true(probes.length > 0, JSON.stringify(plan));
  for (const p of probes) {
    t.is(p.index, 'idx_token_lookup', JSON.stringify(plan));
    t.regex(p.cond ?? '', /\bid = /, `the candidate's id is part of the index condition: ${JSON.stringify(p)}`);
    t.notRegex(p.filter ?? '', /\bid = /, `not a filter over every row of the code: ${JSON.stringify(p)}`);
  }
  t.deepEqual((await s.huren.db.query(`SELECT indexname FROM pg_indexes WHERE indexname = 'idx_token_owner'`)).length, 1, 'the index is back (rolled back)');
});

test('subject + code + date=ge + _sort=-date: the code probed by the candidate\'s id, the date on idx_date_owner, the sort key from idx_date_owner', async (t) => {
  const q = `subject=Patient/${patient(18)}&code=${LOINC}|2823-3,${LOINC}|2951-2,${LOINC}|2075-0&date=ge2024-01-01&_sort=-date`;
  for (const [mode, plan] of await plans(repo.searchStatements(request('Observation', q)).page)) {
    assertShape(t, plan, { uses: ['idx_reference_target', 'idx_date_owner'], resourceByKey: true }, `page (${mode})`);
    assertProbed(t, plan, 'idx_token', mode);
    t.false(plan.some((p) => p.index === 'idx_date_lookup'), `${mode}: ${JSON.stringify(plan)}`);
  }
  const found = await matches('Observation', q);
  t.is(found.length, 3, 'patient 18 has one Observation of each of the three codes');
  const dates = await Promise.all(found.map(async (id) => ((await repo.read('Observation', id)) as { effectiveDateTime: string }).effectiveDateTime));
  t.deepEqual(dates, [...dates].sort().reverse(), 'newest first');
});

test('a hospital’s rows: performer=Organization/… + code is driven by the hospital’s references, the code probed per candidate', async (t) => {
  // each hospital performs a twentieth of the Observations; its Observations of code CODES[0] are those with
  // (patient + k) a multiple of 60: 300 of its 900
  const q = `performer=Organization/${data.organizations[0]}&code=${LOINC}|${CODES[0]}&_total=accurate&_sort=-date`;
  const { page, count } = repo.searchStatements(request('Observation', q));
  for (const [mode, plan] of [...(await plans(page)), ...(await plans(count))]) {
    assertShape(t, plan, { uses: ['idx_reference_target'], resourceByKey: true }, mode);
    assertProbed(t, plan, 'idx_token', `${mode}: the code's rows are not read`);
  }
  const bundle = await repo.search(request('Observation', q), 'http://x/fhir');
  t.is(bundle.total, (PATIENTS / 60) * 12);
  t.is(bundle.entry?.length, 20);
});

test('a driven search runs as a prepared statement on PostgreSQL, and after five runs on its generic plan', async (t) => {
  const search = (r: Repository, p: number) => r.search(request('Observation', `subject=Patient/${patient(p)}&code=${LOINC}|${CODES[(p + 3) % CODES.length]}`), 'http://x/fhir');
  const url = s.store.databaseUrl;
  if (!url) {
    // the embedded store plans each statement for its values
    t.deepEqual((await search(repo, 50)).entry?.map((e) => e.resource!.id), [`plan-obs-${50 * PER_PATIENT + 3}`]);
    t.deepEqual(await s.huren.db.query(`SELECT name FROM pg_prepared_statements`), []);
    return;
  }
  // one connection, so that its prepared statements can be seen (pg_prepared_statements is per session)
  const db = await openDatabase({ url, poolSize: 1 });
  try {
    const own = new Repository(db);
    for (let p = 50; p < 58; p++) t.deepEqual((await search(own, p)).entry?.map((e) => e.resource!.id), [`plan-obs-${p * PER_PATIENT + 3}`]);
    const rows = await db.query<{ generic_plans: number; custom_plans: number }>(
      `SELECT generic_plans::int, custom_plans::int FROM pg_prepared_statements WHERE name LIKE 'huren_q_%'`
    );
    t.is(rows.length, 1, 'one statement for the eight searches of one shape');
    t.is(rows[0].custom_plans, 5, 'planned for its values five times');
    t.is(rows[0].generic_plans, 3, 'then the generic plan is kept');
  } finally {
    await db.close();
  }
});

test('subject + _lastUpdated: the subject drives, the last update is checked on the resource row read by primary key', async (t) => {
  const q = `subject=Patient/${patient(21)}&_lastUpdated=ge2020-01-01`;
  for (const [mode, plan] of await plans(repo.searchStatements(request('Observation', q)).page)) {
    assertShape(t, plan, { uses: ['idx_reference_target'], resourceByKey: true }, `page (${mode})`);
  }
  t.deepEqual((await matches('Observation', q)).sort(), observationsOf(21).sort());
});

test('quantity probed by the owner', async (t) => {
  for (const [mode, plan] of await plans(repo.searchStatements(request('Observation', `subject=Patient/${patient(19)}&value-quantity=gt4`)).page)) {
    assertShape(t, plan, { uses: ['idx_reference_target', 'idx_quantity_owner'], resourceByKey: true }, `page (${mode})`);
    t.false(plan.some((p) => p.index === 'idx_quantity_lookup'), `${mode}: ${JSON.stringify(plan)}`);
  }
});

test('string: name=… uses the name lookup (blind values under the privacy codec)', async (t) => {
  const plan = await scans(repo.searchStatements(request('Patient', 'name=Rare')).page);
  assertShape(t, plan, { uses: ['idx_string_lookup'], resourceByKey: true }, 'page');
  t.deepEqual(await matches('Patient', 'name=Rare'), [patient(0)]);
});

test('chained: subject.identifier=… finds the patient by its identifier, then its rows by target', async (t) => {
  const q = `subject:Patient.identifier=${ID_SYSTEM}|${data.identifierOf(23)}`;
  for (const [mode, plan] of await plans(repo.searchStatements(request('Observation', q)).page)) {
    assertShape(t, plan, { uses: ['idx_token_lookup', 'idx_reference_target'], resourceByKey: true }, `page (${mode})`);
  }
  t.deepEqual((await matches('Observation', q)).sort(), observationsOf(23).sort());
  // without the type modifier the chain reaches every target type of subject, still by lookup
  for (const [mode, plan] of await plans(repo.searchStatements(request('Observation', `subject.identifier=${ID_SYSTEM}|${data.identifierOf(23)}`)).page)) {
    assertShape(t, plan, { uses: ['idx_reference_target'], resourceByKey: true }, `untyped (${mode})`);
  }
});

test('_has: Patient?_has:Observation:subject:identifier=… from the Observation’s identifier to its subject', async (t) => {
  const q = `_has:Observation:subject:identifier=urn:huren:plan-obs|obs-${31 * PER_PATIENT}`;
  for (const [mode, plan] of await plans(repo.searchStatements(request('Patient', q)).page)) {
    assertShape(t, plan, { uses: ['idx_token_lookup', 'idx_reference_owner'], resourceByKey: true }, `page (${mode})`);
  }
  t.deepEqual(await matches('Patient', q), [patient(31)]);
});

test('_id: by primary key', async (t) => {
  const plan = await scans(repo.searchStatements(request('Observation', `_id=plan-obs-5,plan-obs-6&subject=Patient/${patient(0)}`)).page);
  assertShape(t, plan, { uses: ['resource_pkey'], resourceByKey: true }, 'page');
  t.deepEqual((await matches('Observation', `_id=plan-obs-5,plan-obs-6&subject=Patient/${patient(0)}`)).sort(), ['plan-obs-5', 'plan-obs-6']);
});

test('_include and _revinclude: the sources’ references by owner, the referrers by target, each resource by primary key', async (t) => {
  const page = await repo.search(request('Observation', `subject=Patient/${patient(40)}&_include=Observation:subject&_include=Observation:performer`), 'http://x/fhir');
  const sources = (page.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource as Resource);
  t.is(sources.length, PER_PATIENT);
  const included = (page.entry ?? []).filter((e) => e.search?.mode === 'include').map((e) => `${e.resource!.resourceType}/${e.resource!.id}`);
  t.true(included.includes(`Patient/${patient(40)}`), included.join());
  const [subject] = request('Observation', '_include=Observation:subject').includes;
  const forward = await scans(includeQuery(subject, sources.map((r) => ({ type: r.resourceType, id: r.id as string }))));
  assertShape(t, forward, { uses: ['idx_reference_owner'], resourceByKey: true }, '_include');

  const rev = request('Patient', `_id=${patient(40)}&_revinclude=Observation:subject`);
  const reverse = await scans(includeQuery(rev.includes[0], [{ type: 'Patient', id: patient(40) }]));
  assertShape(t, reverse, { uses: ['idx_reference_target'], resourceByKey: true }, '_revinclude');
  const bundle = await repo.search(rev, 'http://x/fhir');
  t.deepEqual(
    (bundle.entry ?? []).filter((e) => e.search?.mode === 'include').map((e) => e.resource!.id as string).sort(),
    observationsOf(40).sort()
  );
});
