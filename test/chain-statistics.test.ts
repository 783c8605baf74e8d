/**
 * Chain statistics per institution and per day (issue 5), from real provenance records, and platform anchors
 * as FHIR Provenance. Two institutions, reports over three Asia/Shanghai days: anchored by the institution
 * (chain Provenance, consistent), tampered (inconsistent), anchored by the platform's outbox, pending,
 * unanchored. The exact counts are checked in the MeasureReports ($chain-statistics, FHIR search) and in the
 * monitoring API; the platform's anchors are read back as Provenance. The embedded chain; serial.
 */
import test from 'ava';
import { readChainAnchor } from '../server/fingerprint/index.ts';
import { verifyAnchorProof } from '../server/merkle/index.ts';
import { recordDigest } from '../server/provenance/index.ts';
import { STATISTIC_SYSTEM, STATISTICS_MEASURE_URL } from '../server/provenance/statistics.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { anchorOf, fingerprint, PERSON, reportBundle, testProvenanceConfig, withProvenance, type ReportBundle } from './helpers/chain.ts';

let s: TestServer;

test.before(async () => {
  s = await startTestServer({ provenance: testProvenanceConfig() });
});
test.after.always(async () => {
  await s?.close();
});

/** A report Bundle of institution `org` (gy1 or lw). */
function bundleOf(org: 'gy1' | 'lw', key: string): ReportBundle {
  const r = reportBundle(`${org}-${key}`);
  const orgEntry = r.bundle.entry[1];
  orgEntry.resource.identifier[0].value = org;
  orgEntry.resource.name = org === 'gy1' ? '广州医科大学附属第一医院' : '荔湾区人民医院';
  orgEntry.request.ifNoneExist = `identifier=urn:huren:org|${org}`;
  return r;
}

async function submit(bundle: unknown): Promise<string> {
  const res = await s.fhir('', { method: 'POST', json: bundle });
  const body = (await res.json()) as any;
  if (res.status !== 200) throw new Error(`submit: ${res.status} ${JSON.stringify(body)}`);
  const url: string = body.entry.map((e: any) => e.fullUrl).find((u: string) => u.includes('/DiagnosticReport/'));
  return url.split('/DiagnosticReport/')[1]!;
}

/** Submits with the institution's own anchor (the embedded chain, as the institution would anchor it). */
async function submitAnchored(r: ReportBundle, tamper = false): Promise<string> {
  const fp = fingerprint(r.bundle, 'sm3');
  const receipt = await s.huren.provenance.ledger.anchor({ records: [fp] });
  const sent = structuredClone(r);
  if (tamper) sent.bundle.entry[3].resource.valueQuantity.value = 9.1; // changed after anchoring
  return submit(withProvenance(sent, anchorOf(receipt, 0, fp)));
}

async function status(id: string): Promise<{ status: string; anchor_source: string | null }> {
  const [row] = await s.huren.db.query<{ status: string; anchor_source: string | null }>('SELECT status, anchor_source FROM report_version WHERE report_id = $1', [id]);
  return row!;
}

/** Sets when a report was received (the test's clock: fixed days). */
async function receivedAt(id: string, at: string): Promise<void> {
  await s.huren.db.query('UPDATE report_version SET created_at = $2::timestamptz WHERE report_id = $1', [id, at]);
}

async function json(path: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(`${s.huren.url}${path}`, { ...init, headers: { authorization: `Bearer ${s.token}`, ...(init.headers as Record<string, string>) } });
  return { status: res.status, body: await res.json() };
}

const org: Record<string, string> = {};
const ids: Record<string, string> = {};
let issueId = '';

const counts = (received: number, inst: number, platform: number, consistent: number, inconsistent: number, pending: number, unanchored: number) => ({
  received,
  'anchored-institution': inst,
  'anchored-platform': platform,
  consistent,
  inconsistent,
  pending,
  unanchored,
});

/** The expected counts per (institution key, day). */
const EXPECTED: Array<[string, string, ReturnType<typeof counts>]> = [
  ['gy1', '2024-06-14', counts(4, 3, 1, 3, 1, 0, 0)],
  ['gy1', '2024-06-15', counts(3, 0, 1, 1, 0, 1, 1)],
  ['lw', '2024-06-15', counts(2, 1, 0, 1, 0, 1, 0)],
  ['lw', '2024-06-16', counts(1, 0, 1, 1, 0, 0, 0)],
];

test.serial('real reports of two institutions over three days: anchored, tampered, platform-anchored, pending, unanchored', async (t) => {
  ids.a1 = await submitAnchored(bundleOf('gy1', 'a1'));
  const [a] = await s.huren.db.query<{ id: string; ident: string }>(
    "SELECT id FROM resource WHERE type = 'Organization' AND content->'identifier'->0->>'value' = 'gy1'"
  );
  org.gy1 = `Organization/${a!.id}`;
  ids.a2 = await submitAnchored(bundleOf('gy1', 'a2'));
  ids.aTampered = await submitAnchored(bundleOf('gy1', 'a3'), true);
  ids.aPlatform1 = await submit(bundleOf('gy1', 'a4').bundle);
  ids.aPlatform2 = await submit(bundleOf('gy1', 'a5').bundle);
  ids.b1 = await submitAnchored(bundleOf('lw', 'b1'));
  const [b] = await s.huren.db.query<{ id: string }>("SELECT id FROM resource WHERE type = 'Organization' AND content->'identifier'->0->>'value' = 'lw'");
  org.lw = `Organization/${b!.id}`;
  ids.bPlatform = await submit(bundleOf('lw', 'b2').bundle);
  // a recognition record: anchored by the platform too
  const [patient] = await s.huren.db.query<{ id: string }>("SELECT id FROM resource WHERE type = 'Patient' LIMIT 1");
  const issue = await s.fhir('DetectedIssue', {
    method: 'POST',
    json: { resourceType: 'DetectedIssue', status: 'final', patient: { reference: `Patient/${patient!.id}` }, detail: `${PERSON.name} 有可互认结果`, implicated: [{ reference: `DiagnosticReport/${ids.a1}` }] },
  });
  t.is(issue.status, 201);
  issueId = ((await issue.json()) as any).id;

  await s.huren.provenance.verifyNow();
  const run = await s.huren.provenance.anchorNow();
  t.is(run.failed, 0);
  t.is(run.records, 4, 'three reports and one recognition record in one batch');
  // after the platform's run: these wait (pending), and one report is not anchorable at all
  ids.aPending = await submit(bundleOf('gy1', 'a6').bundle);
  ids.bPending = await submit(bundleOf('lw', 'b3').bundle);
  ids.bLater = await submit(bundleOf('lw', 'b4').bundle);
  const alone = await s.fhir('DiagnosticReport', {
    method: 'POST',
    json: { resourceType: 'DiagnosticReport', status: 'final', code: { text: '单独提交' }, performer: [{ reference: org.gy1 }] },
  });
  t.is(alone.status, 201);
  ids.aUnanchored = ((await alone.json()) as any).id;

  for (const k of ['a1', 'a2', 'b1']) t.deepEqual(await status(ids[k]!), { status: 'consistent', anchor_source: 'institution' }, k);
  t.deepEqual(await status(ids.aTampered!), { status: 'inconsistent', anchor_source: 'institution' });
  for (const k of ['aPlatform1', 'aPlatform2', 'bPlatform']) t.deepEqual(await status(ids[k]!), { status: 'consistent', anchor_source: 'platform' }, k);
  for (const k of ['aPending', 'bPending', 'bLater']) t.deepEqual(await status(ids[k]!), { status: 'pending', anchor_source: null }, k);
  t.deepEqual(await status(ids.aUnanchored!), { status: 'unanchored', anchor_source: null });

  // when they were received (Asia/Shanghai days; the boundaries are +08:00 midnights)
  for (const k of ['a1', 'a2', 'aTampered', 'aPlatform1']) await receivedAt(ids[k]!, '2024-06-14T10:00:00+08:00');
  await receivedAt(ids.aPlatform2!, '2024-06-15T23:30:00+08:00'); // 15:30 UTC on the 15th
  await receivedAt(ids.aPending!, '2024-06-15T08:00:00+08:00');
  await receivedAt(ids.aUnanchored!, '2024-06-15T00:00:00+08:00'); // 16:00 UTC on the 14th: the 15th in Guangzhou
  await receivedAt(ids.b1!, '2024-06-15T00:00:00+08:00');
  await receivedAt(ids.bPending!, '2024-06-15T12:00:00+08:00');
  await receivedAt(ids.bPlatform!, '2024-06-16T00:10:00+08:00'); // still the 15th in UTC
  await receivedAt(ids.bLater!, '2024-06-17T00:00:00+08:00'); // outside the range asked below
});

/** EXPECTED in the order of the answers: by day, then institution reference. */
const ordered = () => [...EXPECTED].sort(([oa, da], [ob, db]) => (da === db ? (org[oa]! < org[ob]! ? -1 : 1) : da < db ? -1 : 1));

test.serial('Measure/$chain-statistics: one MeasureReport per institution and day with the exact counts; idempotent', async (t) => {
  const res = await s.fhir('Measure/$chain-statistics?from=2024-06-14&to=2024-06-16');
  const bundle = (await res.json()) as any;
  t.is(res.status, 200, JSON.stringify(bundle));
  t.is(bundle.resourceType, 'Bundle');
  const reports = bundle.entry.map((e: any) => e.resource);
  t.is(reports.length, 4);
  const seen = reports.map((r: any) => [r.reporter.reference, r.period.start]);
  t.deepEqual(seen, ordered().map(([o, day]) => [org[o], `${day}T00:00:00+08:00`]), 'by day, then institution');
  for (const [i, [o, day, expected]] of ordered().entries()) {
    const r = reports[i];
    t.is(r.resourceType, 'MeasureReport');
    t.is(r.status, 'complete');
    t.is(r.type, 'summary');
    t.is(r.measure, STATISTICS_MEASURE_URL);
    t.is(r.reporter.reference, org[o]);
    t.deepEqual(r.period, { start: `${day}T00:00:00+08:00`, end: `${day}T23:59:59+08:00` });
    const got = Object.fromEntries(r.group.map((g: any) => {
      t.is(g.code.coding[0].system, STATISTIC_SYSTEM);
      return [g.code.coding[0].code, g.population[0].count];
    }));
    t.deepEqual(got, expected, `${o} ${day}`);
  }

  // again: the same resources, no new versions
  const again = (await (await s.fhir('Measure/$chain-statistics?from=2024-06-14&to=2024-06-16')).json()) as any;
  t.deepEqual(again.entry.map((e: any) => [e.resource.id, e.resource.meta.versionId]), reports.map((r: any) => [r.id, '1']));

  // the Measure is published
  const measure = (await (await s.fhir(`Measure?url=${encodeURIComponent(STATISTICS_MEASURE_URL)}`)).json()) as any;
  t.is(measure.entry.length, 1);
  t.deepEqual(measure.entry[0].resource.group.map((g: any) => g.code.coding[0].code), Object.keys(EXPECTED[0]![2]));
});

test.serial('MeasureReports are found by normal FHIR search: reporter, period, measure', async (t) => {
  const search = async (q: string) => ((await (await s.fhir(`MeasureReport?${q}`)).json()) as any).entry?.map((e: any) => e.resource) ?? [];
  const ofA = await search(`reporter=${org.gy1}&_sort=period`);
  t.deepEqual(ofA.map((r: any) => r.period.start), ['2024-06-14T00:00:00+08:00', '2024-06-15T00:00:00+08:00']);
  const day15 = await search(`period=ge${encodeURIComponent('2024-06-15T00:00:00+08:00')}&period=le${encodeURIComponent('2024-06-15T23:59:59+08:00')}`);
  t.deepEqual(day15.map((r: any) => r.reporter.reference).sort(), [org.gy1, org.lw].sort());
  const bOn16 = await search(`reporter=${org.lw}&period=ge${encodeURIComponent('2024-06-16T00:00:00+08:00')}&measure=${encodeURIComponent(STATISTICS_MEASURE_URL)}`);
  t.is(bOn16.length, 1);
  t.is(bOn16[0].period.start, '2024-06-16T00:00:00+08:00');
});

test.serial('a later generation updates the same MeasureReport when a count changed', async (t) => {
  // the pending reports get anchored by the platform
  const run = await s.huren.provenance.anchorNow();
  t.is(run.records, 3);
  const res = await s.fhir(`Measure/$chain-statistics`, {
    method: 'POST',
    json: { resourceType: 'Parameters', parameter: [{ name: 'from', valueDate: '2024-06-15' }, { name: 'to', valueDate: '2024-06-15' }, { name: 'institution', valueReference: { reference: org.lw } }] },
  });
  t.is(res.status, 200);
  const [r] = ((await res.json()) as any).entry.map((e: any) => e.resource);
  t.is(r.meta.versionId, '2');
  const got = Object.fromEntries(r.group.map((g: any) => [g.code.coding[0].code, g.population[0].count]));
  t.deepEqual(got, counts(2, 1, 1, 2, 0, 0, 0));
  const all = (await (await s.fhir(`MeasureReport?measure=${encodeURIComponent(STATISTICS_MEASURE_URL)}&_total=accurate`)).json()) as any;
  t.is(all.total, 4, 'still one per institution and day');
});

test.serial('the monitoring API: per-day rows and totals, counted live', async (t) => {
  const { status: st, body } = await json('/api/statistics/chain?from=2024-06-14&to=2024-06-16');
  t.is(st, 200);
  t.is(body.timeZone, 'Asia/Shanghai');
  const after = (key: string, day: string) => (key === 'gy1' && day === '2024-06-15' ? counts(3, 0, 2, 2, 0, 0, 1) : key === 'lw' && day === '2024-06-15' ? counts(2, 1, 1, 2, 0, 0, 0) : EXPECTED.find(([o, d]) => o === key && d === day)![2]);
  t.deepEqual(body.rows, ordered().map(([o, day]) => ({ institution: org[o], day, ...after(o, day) })));
  t.deepEqual(body.totals, counts(10, 4, 5, 8, 1, 0, 1));
  const one = await json(`/api/statistics/chain?from=2024-06-14&to=2024-06-17&institution=${org.lw}`);
  t.deepEqual(one.body.rows.map((r: any) => [r.day, r.received, r.pending]), [['2024-06-15', 2, 0], ['2024-06-16', 1, 0], ['2024-06-17', 1, 0]]);
  t.is(one.body.totals.received, 4);
  t.is(one.body.institution, org.lw);
});

test.serial('bad input is a 400 naming the parameter, never a 5xx; the API needs the token', async (t) => {
  for (const [q, where] of [
    ['from=2024-13-01', 'from'],
    ['from=2024-06-16&to=2024-06-14', 'from'],
    ['from=2020-01-01&to=2024-01-01', 'to'],
    ['institution=Patient/x%20y', 'institution'],
    ['colour=blue', 'colour'],
  ] as const) {
    const api = await json(`/api/statistics/chain?${q}`);
    t.is(api.status, 400, q);
    t.is(api.body.resourceType, 'OperationOutcome');
    t.is(api.body.issue[0].expression[0], where, q);
    const op = await s.fhir(`Measure/$chain-statistics?${q}`);
    t.is(op.status, 400, q);
    t.is(((await op.json()) as any).issue[0].expression[0], where, q);
  }
  const posted = await s.fhir('Measure/$chain-statistics', { method: 'POST', json: { resourceType: 'Parameters', parameter: [{ name: 'to', valueDate: '15.06.2024' }] } });
  t.is(posted.status, 400);
  t.is(((await posted.json()) as any).issue[0].expression[0], "Parameters.parameter.where(name='to')");
  const anonymous = await fetch(`${s.huren.url}/api/statistics/chain`);
  t.is(anonymous.status, 401);
});

test.serial('platform anchors are FHIR Provenances: target = the version, agent = the platform, chain anchor with its proof', async (t) => {
  const [{ fingerprint: fp }] = (await s.huren.db.query<{ fingerprint: string }>('SELECT fingerprint FROM report_version WHERE report_id = $1', [ids.aPlatform1])) as any;
  const found = (await (await s.fhir(`Provenance?target=DiagnosticReport/${ids.aPlatform1}`)).json()) as any;
  t.is(found.entry.length, 1);
  const prov = found.entry[0].resource;
  t.regex(prov.id, /^platform-anchor-\d+$/);
  t.deepEqual(prov.target, [{ reference: `DiagnosticReport/${ids.aPlatform1}/_history/1` }]);
  t.deepEqual(prov.meta.profile, ['https://fhir.huren.gz.cn/StructureDefinition/chain-provenance']);
  t.is(prov.agent[0].who.identifier.system, 'https://fhir.huren.gz.cn/platform');
  const anchor = readChainAnchor(prov);
  t.is(anchor.fingerprint, fp);
  t.is(anchor.alg, 'sm3');
  const verify = (await (await s.fhir(`DiagnosticReport/${ids.aPlatform1}/$verify`)).json()) as any;
  const v = (name: string) => verify.parameter.find((p: any) => p.name === name);
  t.is(v('status').valueCode, 'consistent');
  t.is(v('anchoredBy').valueCode, 'platform');
  t.is(anchor.transaction, v('txId').valueString);
  t.is(anchor.height, v('height').valueInteger);
  t.is(anchor.ledger, v('ledger').valueString);
  t.is(anchor.proof!.treeSize, 4);
  t.deepEqual(verifyAnchorProof(fp, anchor.proof), { ok: true, root: v('root').valueString });
  // valid against the chain-provenance profile
  const validated = (await (await s.fhir('Provenance/$validate', { method: 'POST', json: prov })).json()) as any;
  t.deepEqual(validated.issue.filter((i: any) => i.severity === 'error' || i.severity === 'fatal'), []);
  // $trace names it
  const trace = JSON.stringify(await (await s.fhir(`DiagnosticReport/${ids.aPlatform1}/$trace`)).json());
  t.true(trace.includes(`Provenance/${prov.id}/_history/1`));

  // the recognition record's anchor
  const issueProv = ((await (await s.fhir(`Provenance?target=DetectedIssue/${issueId}`)).json()) as any).entry.map((e: any) => e.resource);
  t.is(issueProv.length, 1);
  const issue = await (await s.fhir(`DetectedIssue/${issueId}`)).json();
  const issueAnchor = readChainAnchor(issueProv[0]);
  t.is(issueAnchor.fingerprint, recordDigest(issue as any));
  t.is(issueAnchor.transaction, anchor.transaction, 'the same batch');
  t.deepEqual(verifyAnchorProof(issueAnchor.fingerprint, issueAnchor.proof).ok, true);

  // an institution's own anchor gets none from the platform
  const own = (await (await s.fhir(`Provenance?target=DiagnosticReport/${ids.a1}`)).json()) as any;
  t.true(own.entry.every((e: any) => !e.resource.id.startsWith('platform-anchor-')));
});

test.serial('platform Provenances do not loop: no outbox record, no institution anchor, nothing personal; clients cannot write them', async (t) => {
  const provs = await s.huren.db.query<{ id: string; content: unknown }>("SELECT id, content FROM resource WHERE type = 'Provenance' AND id LIKE 'platform-anchor-%'");
  t.is(provs.length, 7, 'four records of the first batch, three of the second');
  const [{ n: outboxed }] = (await s.huren.db.query<{ n: number }>("SELECT count(*)::int AS n FROM anchor_outbox WHERE key LIKE 'Provenance/%'")) as any;
  t.is(outboxed, 0);
  const [{ n: asInstitution }] = (await s.huren.db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM report_anchor WHERE source = 'institution' AND provenance_id LIKE 'platform-anchor-%'"
  )) as any;
  t.is(asInstitution, 0);
  const again = await s.huren.provenance.anchorNow();
  t.deepEqual(again, { formed: 0, anchored: 0, records: 0, failed: 0 }, 'nothing new to anchor');
  const text = JSON.stringify(provs);
  for (const value of Object.values(PERSON)) t.false(text.includes(value));

  const prov = provs[0]!.content as any;
  const put = await s.fhir(`Provenance/${prov.id}`, { method: 'PUT', json: { ...prov, recorded: '2024-01-01T00:00:00Z' } });
  t.is(put.status, 403);
  t.is(((await put.json()) as any).issue[0].expression[0], 'Provenance.id');
  const { id: _id, meta: _meta, ...copy } = prov;
  const post = await s.fhir('Provenance', { method: 'POST', json: copy });
  t.is(post.status, 403);
  t.is(((await post.json()) as any).issue[0].expression[0], 'Provenance.agent[0].who.identifier');
  t.is((await s.fhir(`Provenance/${prov.id}`, { method: 'DELETE' })).status, 403);
  t.is((await s.fhir(`Provenance/${prov.id}`)).status, 200, 'still there');
});

test.serial('the schedule generates the MeasureReports by itself (node-schedule)', async (t) => {
  const s2 = await startTestServer({ provenance: testProvenanceConfig({ statisticsCron: '* * * * * *' }) });
  try {
    const id = await (async () => {
      const res = await s2.fhir('', { method: 'POST', json: bundleOf('gy1', 'scheduled').bundle });
      t.is(res.status, 200);
      return ((await res.json()) as any).entry.map((e: any) => e.fullUrl).find((u: string) => u.includes('/DiagnosticReport/'));
    })();
    t.truthy(id);
    const t0 = Date.now();
    let found: any[] = [];
    while (Date.now() - t0 < 20_000) {
      found = ((await (await s2.fhir('MeasureReport')).json()) as any).entry ?? [];
      if (found.length > 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    t.is(found.length, 1);
    const got = Object.fromEntries(found[0].resource.group.map((g: any) => [g.code.coding[0].code, g.population[0].count]));
    t.deepEqual(got, counts(1, 0, 0, 0, 0, 1, 0));
  } finally {
    await s2.close();
  }
});
