/**
 * The hash-consistent badge (哈希一致标识, issue 5): a setting in the database, read and changed through FHIR
 * ($badge-settings) and the monitoring API; report answers (read, vread, search, $view, $reports,
 * $recognition-check) carry it for the statuses it is shown for, and it is never stored. Real statuses: the
 * seeded reports anchored by the platform (consistent), a tampered Bundle (inconsistent), a report waiting for
 * platform anchoring (pending), a PUT version (unanchored). The embedded chain; serial.
 */
import test from 'ava';
import { HASH_BADGE_SYSTEM } from '../server/profiles/canonical.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { anchorOf, fingerprint, reportBundle, testProvenanceConfig, withProvenance } from './helpers/chain.ts';
import { param, params, part, parts, seedScenario, type Seeded } from './helpers/recognition-data.ts';

let s: TestServer;
let d: Seeded;
const id: Record<string, string> = {};

test.before(async () => {
  s = await startTestServer({ provenance: testProvenanceConfig() });
  d = await seedScenario(s);
});
test.after.always(async () => {
  await s?.close();
});

async function get(path: string): Promise<any> {
  const res = await s.fhir(path);
  const body = await res.json();
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

async function submit(bundle: unknown): Promise<string> {
  const res = await s.fhir('', { method: 'POST', json: bundle });
  const body = (await res.json()) as any;
  if (res.status !== 200) throw new Error(`submit: ${res.status} ${JSON.stringify(body)}`);
  return (body.entry.map((e: any) => e.fullUrl).find((u: string) => u.includes('/DiagnosticReport/')) as string).split('/DiagnosticReport/')[1]!;
}

const badge = (r: any) => (r.meta?.tag ?? []).filter((t: any) => t.system === HASH_BADGE_SYSTEM);
const badgeCode = (r: any) => badge(r).map((t: any) => t.code);
const stored = async (reportId: string) =>
  (await s.huren.db.query<{ tag: unknown }>("SELECT content->'meta'->'tag' AS tag FROM resource WHERE type = 'DiagnosticReport' AND id = $1", [reportId]))[0]!.tag;

async function settings(change?: Record<string, unknown>): Promise<{ status: number; body: any }> {
  const res = await fetch(`${s.huren.url}/api/settings/hash-badge`, {
    method: change ? 'PUT' : 'GET',
    headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
    ...(change ? { body: JSON.stringify(change) } : {}),
  });
  return { status: res.status, body: await res.json() };
}

test.serial('real statuses: platform-anchored (consistent), tampered (inconsistent), waiting (pending), PUT (unanchored)', async (t) => {
  const run = await s.huren.provenance.anchorNow();
  t.is(run.failed, 0);
  const r = reportBundle('badge-tampered');
  const fp = fingerprint(r.bundle, 'sm3');
  const receipt = await s.huren.provenance.ledger.anchor({ records: [fp] });
  const tampered = structuredClone(r);
  tampered.bundle.entry[3].resource.valueQuantity.value = 7.7;
  id.inconsistent = await submit(withProvenance(tampered, anchorOf(receipt, 0, fp)));
  id.pending = await submit(reportBundle('badge-pending').bundle);
  id.consistent = d.report.fresh!;
  id.unanchored = d.report.amended!;
  const statuses = await s.huren.db.query<{ report_id: string; status: string }>('SELECT report_id, status FROM report_version WHERE report_id = ANY($1::text[]) AND current', [Object.values(id)]);
  t.deepEqual(Object.fromEntries(Object.entries(id).map(([k, v]) => [k, statuses.find((x) => x.report_id === v)?.status])), {
    inconsistent: 'inconsistent',
    pending: 'pending',
    consistent: 'consistent',
    unanchored: 'unanchored',
  });
});

test.serial('the default setting (on, consistent) through FHIR and the API', async (t) => {
  const p = await get('$badge-settings');
  t.is(param(p, 'enabled').valueBoolean, true);
  t.deepEqual(params(p, 'status').map((x: any) => x.valueCode), ['consistent']);
  t.deepEqual(await settings(), { status: 200, body: { enabled: true, statuses: ['consistent'] } });
  const cs = await get('metadata');
  t.true(cs.rest[0].operation.some((o: any) => o.name === 'badge-settings'));
});

test.serial('on, consistent: a consistent report shows the badge in read, vread, search and the report views; the others do not', async (t) => {
  const read = await get(`DiagnosticReport/${id.consistent}`);
  t.deepEqual(badge(read), [{ system: HASH_BADGE_SYSTEM, code: 'consistent', display: '哈希一致' }]);
  t.deepEqual(badgeCode(await get(`DiagnosticReport/${id.consistent}/_history/1`)), ['consistent']);
  for (const k of ['inconsistent', 'pending', 'unanchored']) t.deepEqual(badgeCode(await get(`DiagnosticReport/${id[k]}`)), [], k);
  const search = await get(`DiagnosticReport?_id=${Object.values(id).join(',')}`);
  const byId = Object.fromEntries(search.entry.map((e: any) => [e.resource.id, badgeCode(e.resource)]));
  t.deepEqual(byId, { [id.consistent!]: ['consistent'], [id.inconsistent!]: [], [id.pending!]: [], [id.unanchored!]: [] });
  t.is(await stored(id.consistent!), null, 'added to the answer only, never stored');

  // $view: the report resource carries it
  const view = await get(`DiagnosticReport/${id.consistent}/$view`);
  t.deepEqual(badgeCode(param(view, 'report').resource), ['consistent']);
  t.deepEqual(badgeCode(param(await get(`DiagnosticReport/${id.inconsistent}/$view`), 'report').resource), []);

  // $reports: a badge part beside each report that shows it
  const reports = await get(`Patient/${d.patient}/$reports?requester=Organization/${d.org['req-gz']}&_count=100`);
  const badgeOf = (ref: string) => {
    const r = params(reports, 'report').find((x: any) => part(x, 'report').valueReference.reference === ref);
    return parts(r, 'badge').map((b: any) => b.valueCoding.code);
  };
  t.deepEqual(badgeOf(`DiagnosticReport/${id.consistent}`), ['consistent']);
  t.deepEqual(badgeOf(`DiagnosticReport/${id.unanchored}`), []);

  // $recognition-check: each result part
  const check = await get(`Patient/${d.patient}/$recognition-check?requester=Organization/${d.org['req-gz']}`);
  const fresh = params(check, 'result').find((r: any) => part(r, 'report').valueReference.reference === `DiagnosticReport/${id.consistent}`);
  t.is(part(fresh, 'hashStatus').valueCode, 'consistent');
  t.deepEqual(part(fresh, 'badge').valueCoding, { system: HASH_BADGE_SYSTEM, code: 'consistent', display: '哈希一致' });
  // each result's status is its version's, read in the statement that reads the reports (facts-query.ts)
  const statusOf = (key: string) => params(check, 'result').find((r: any) => part(r, 'report').valueReference.reference === `DiagnosticReport/${id[key]}`);
  for (const k of ['inconsistent', 'pending', 'unanchored']) {
    const result = statusOf(k);
    if (result) t.is(part(result, 'hashStatus').valueCode, k, k);
  }
  t.true(['inconsistent', 'pending', 'unanchored'].some((k) => statusOf(k) !== undefined), 'another status than consistent among the results');
});

test.serial('a client sending back what it read stores no badge and makes no new version', async (t) => {
  const read = await get(`DiagnosticReport/${id.consistent}`);
  t.is(badge(read).length, 1);
  const put = await s.fhir(`DiagnosticReport/${id.consistent}`, { method: 'PUT', json: read });
  t.is(put.status, 200);
  t.is(((await put.json()) as any).meta.versionId, '1', 'unchanged: the badge is not content');
  const created = await s.fhir('DiagnosticReport', {
    method: 'POST',
    json: { resourceType: 'DiagnosticReport', meta: { tag: [{ system: HASH_BADGE_SYSTEM, code: 'consistent' }, { system: 'urn:x', code: 'keep' }] }, status: 'final', code: { text: '伪造标识' } },
  });
  t.is(created.status, 201);
  const createdId = ((await created.json()) as any).id;
  t.deepEqual(await stored(createdId), [{ system: 'urn:x', code: 'keep' }], 'the badge is stripped, other tags kept');
  t.deepEqual(badgeCode(await get(`DiagnosticReport/${createdId}`)), [], 'unanchored: no badge');
  t.is((await get(`DiagnosticReport/${id.consistent}/$verify`)).parameter[0].valueCode, 'consistent');

  // a stored Bundle is content: a report inside it is shown exactly as stored
  const { meta: _meta, ...plain } = read;
  const bundle = await s.fhir('Bundle', { method: 'POST', json: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: plain }] } });
  t.is(bundle.status, 201);
  const back = await get(`Bundle/${((await bundle.json()) as any).id}`);
  t.deepEqual(back.entry[0].resource, plain);
});

test.serial('off: no badge anywhere', async (t) => {
  const res = await s.fhir('$badge-settings', { method: 'POST', json: { resourceType: 'Parameters', parameter: [{ name: 'enabled', valueBoolean: false }] } });
  t.is(res.status, 200);
  const p = (await res.json()) as any;
  t.is(param(p, 'enabled').valueBoolean, false);
  t.deepEqual(params(p, 'status').map((x: any) => x.valueCode), ['consistent'], 'the statuses are kept');
  t.truthy(param(p, 'updated').valueInstant);
  t.deepEqual(badgeCode(await get(`DiagnosticReport/${id.consistent}`)), []);
  const view = await get(`DiagnosticReport/${id.consistent}/$view`);
  t.deepEqual(badgeCode(param(view, 'report').resource), []);
  const reports = await get(`Patient/${d.patient}/$reports?_count=100`);
  t.true(params(reports, 'report').every((r: any) => parts(r, 'badge').length === 0));
  const [row] = await s.huren.db.query<{ updated_by: string }>("SELECT updated_by FROM platform_setting WHERE key = 'hash-badge'");
  t.is(row!.updated_by, 'bootstrap');
});

test.serial('on, for consistent and pending (set through the API): a pending report shows its badge too', async (t) => {
  const res = await settings({ enabled: true, statuses: ['consistent', 'pending'] });
  t.is(res.status, 200);
  t.like(res.body, { enabled: true, statuses: ['consistent', 'pending'] });
  t.deepEqual(badge(await get(`DiagnosticReport/${id.pending}`)), [{ system: HASH_BADGE_SYSTEM, code: 'pending', display: '哈希待核验' }]);
  t.deepEqual(badgeCode(await get(`DiagnosticReport/${id.consistent}`)), ['consistent']);
  t.deepEqual(badgeCode(await get(`DiagnosticReport/${id.inconsistent}`)), []);
  const p = await get('$badge-settings');
  t.deepEqual(params(p, 'status').map((x: any) => x.valueCode), ['consistent', 'pending']);
});

test.serial('a bad setting is a 400 OperationOutcome naming it, and changes nothing', async (t) => {
  const post = async (parameter: unknown[]) => {
    const res = await s.fhir('$badge-settings', { method: 'POST', json: { resourceType: 'Parameters', parameter } });
    return { status: res.status, body: (await res.json()) as any };
  };
  const green = await post([{ name: 'status', valueCode: 'consistent' }, { name: 'status', valueCode: 'green' }]);
  t.is(green.status, 400);
  t.is(green.body.issue[0].expression[0], "Parameters.parameter.where(name='status')[1]");
  t.regex(green.body.issue[0].details.text, /'green' is not a hash-consistency status/);
  const twice = await post([{ name: 'status', valueCode: 'pending' }, { name: 'status', valueCode: 'pending' }]);
  t.is(twice.status, 400);
  const maybe = await post([{ name: 'enabled', valueString: 'maybe' }]);
  t.is(maybe.status, 400);
  t.is(maybe.body.issue[0].expression[0], "Parameters.parameter.where(name='enabled')");
  const unknown = await post([{ name: 'colour', valueString: 'gold' }]);
  t.is(unknown.status, 400);
  t.is(unknown.body.issue[0].expression[0], "Parameters.parameter.where(name='colour')");
  const viaGet = await s.fhir('$badge-settings?enabled=false');
  t.is(viaGet.status, 400);
  t.is(((await viaGet.json()) as any).issue[0].expression[0], 'enabled');

  const api = await settings({ statuses: ['consistent', 'shiny'] });
  t.is(api.status, 400);
  t.is(api.body.resourceType, 'OperationOutcome');
  t.is(api.body.issue[0].expression[0], 'statuses[1]');
  t.is((await settings({ enabled: 'yes' })).body.issue[0].expression[0], 'enabled');
  t.is((await settings({ statuses: 'consistent' })).status, 400);
  t.is((await settings({ colour: 'gold' })).body.issue[0].expression[0], 'colour');
  const now = await settings();
  t.like(now.body, { enabled: true, statuses: ['consistent', 'pending'] }, 'unchanged');
});
