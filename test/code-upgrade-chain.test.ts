/**
 * The code upgrade keeps the chain status (issue 10, item 8): the report and result versions the platform
 * writes in a code upgrade are its own revisions, anchored by the platform (reason "code upgrade", through the
 * outbox), so the upgraded report keeps its badge, and `$verify` proves the upgraded version, says it is a
 * platform code upgrade of the institution's submission, and proves that submission too. A revision changed
 * behind the server's back is inconsistent. The embedded chain; serial.
 */
import test from 'ava';
import { HASH_BADGE_SYSTEM } from '../server/profiles/canonical.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { fingerprint, reportBundle, testProvenanceConfig } from './helpers/chain.ts';
import { runScript } from './helpers/command.ts';

const BASE = 'https://fhir.huren.gz.cn';
const LEGACY = `${BASE}/CodeSystem/legacy-price-item`;
const CATALOGUE = `${BASE}/CodeSystem/recognition-catalogue`;
const CBC_LEGACY = '250101015';

let s: TestServer;
test.before(async () => {
  s = await startTestServer({ provenance: testProvenanceConfig() });
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
const param = (p: any, name: string) => p.parameter?.find((x: any) => x.name === name);
const params = (p: any, name: string) => (p.parameter ?? []).filter((x: any) => x.name === name);
const part = (p: any, name: string) => p.part?.find((x: any) => x.name === name);
const badge = (r: any) => (r.meta?.tag ?? []).filter((t: any) => t.system === HASH_BADGE_SYSTEM).map((t: any) => t.code);

/** A report Bundle whose report and results carry only the legacy price code (before the national catalogue). */
function legacyBundle(key: string) {
  const r = reportBundle(key);
  r.bundle.entry[2].resource.code = { coding: [{ system: LEGACY, code: CBC_LEGACY, display: '血细胞分析' }], text: '血常规' };
  r.bundle.entry[3].resource.code = { coding: [{ system: LEGACY, code: CBC_LEGACY }], text: '白细胞' };
  return r;
}

async function submit(bundle: unknown): Promise<{ report: string; observations: string[] }> {
  const res = await s.fhir('', { method: 'POST', json: bundle });
  const body = (await res.json()) as any;
  if (res.status !== 200) throw new Error(`submit: ${res.status} ${JSON.stringify(body)}`);
  const ids = (type: string) => body.entry.map((e: any) => e.fullUrl as string).filter((u: string) => u.includes(`/${type}/`)).map((u: string) => u.split(`/${type}/`)[1]!.split('/')[0]!);
  return { report: ids('DiagnosticReport')[0]!, observations: ids('Observation') };
}

async function upgrade(): Promise<any> {
  const res = await s.fhir('$code-upgrade', { method: 'POST', json: { resourceType: 'Parameters', parameter: [{ name: 'restart', valueBoolean: true }] } });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`upgrade: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

const statusOf = async (id: string, version: number) =>
  (await s.huren.db.query<{ status: string }>('SELECT status FROM report_version WHERE report_id = $1 AND version = $2', [id, version]))[0]?.status;

test.serial('an upgraded report keeps its chain status and badge; $verify proves it and the submission it came from', async (t) => {
  const r = legacyBundle('upgrade-chain');
  const submittedFp = fingerprint(r.bundle, 'sm3');
  const { report, observations } = await submit(r.bundle);
  t.is((await s.huren.provenance.anchorNow()).failed, 0);
  t.is(await statusOf(report, 1), 'consistent', 'the submission was anchored by the platform');

  const up = await upgrade();
  t.is(param(up, 'upgraded').valueInteger, 2, 'the report and its legacy-coded result');
  const current = await get(`DiagnosticReport/${report}`);
  t.is(current.meta.versionId, '2');
  t.true(current.code.coding.some((c: any) => c.system === CATALOGUE));
  t.is(await statusOf(report, 2), 'pending', 'the platform revision waits for platform anchoring, it is not unanchored');

  t.is((await s.huren.provenance.anchorNow()).failed, 0);
  t.is(await statusOf(report, 2), 'consistent');
  t.deepEqual(badge(await get(`DiagnosticReport/${report}`)), ['consistent'], 'the badge stays');

  // the platform's anchor of the new version, readable through FHIR: reason "code upgrade", derived from version 1
  const provs = (await get(`Provenance?target=${encodeURIComponent(`DiagnosticReport/${report}/_history/2`)}`)).entry.map((e: any) => e.resource);
  const platformAnchorOf = (list: any[], ref: string) => list.find((p: any) => p.id.startsWith('platform-anchor-') && p.target[0].reference === ref);
  const anchor = platformAnchorOf(provs, `DiagnosticReport/${report}/_history/2`);
  t.truthy(anchor, JSON.stringify(provs.map((p: any) => p.id)));
  t.deepEqual(anchor.reason, [{ text: 'code upgrade' }]);
  t.deepEqual(anchor.entity, [{ role: 'revision', what: { reference: `DiagnosticReport/${report}/_history/1` } }]);
  const obsRef = `Observation/${observations[0]}/_history/2`;
  const obsAnchor = platformAnchorOf((await get(`Provenance?target=${encodeURIComponent(obsRef)}`)).entry.map((e: any) => e.resource), obsRef);
  t.deepEqual(obsAnchor?.reason, [{ text: 'code upgrade' }], 'the upgraded result is anchored by the platform too');

  const v = await get(`DiagnosticReport/${report}/$verify`);
  t.is(param(v, 'status').valueCode, 'consistent', JSON.stringify(params(v, 'reason')));
  t.is(param(v, 'version').valueInteger, 2);
  t.is(param(v, 'anchoredBy').valueCode, 'platform');
  const revisions = params(v, 'revision').map((p: any) => p.valueString);
  t.true(revisions.some((x: string) => /version 2 is a platform code upgrade of version 1, which is consistent \(the institution's submission\)/.test(x)), revisions.join(' | '));
  t.true(revisions.some((x: string) => x === `Observation/${observations[0]} version 2 is a platform code upgrade of version 1`), revisions.join(' | '));
  const from = param(v, 'derivedFrom');
  t.is(part(from, 'version').valueInteger, 1);
  t.is(part(from, 'reason').valueString, 'code upgrade');
  t.is(part(from, 'status').valueCode, 'consistent');
  t.is(part(from, 'fingerprint').valueString, submittedFp, 'the institution’s submission, proven by its own fingerprint');
  t.is(part(from, 'recomputedFingerprint').valueString, submittedFp);
  t.is(part(from, 'anchoredBy').valueCode, 'platform');

  // the chain statistics count what the institution sent, not the platform's revisions of it
  const stats = (await (await fetch(`${s.huren.url}/api/statistics/chain`, { headers: { authorization: `Bearer ${s.token}` } })).json()) as any;
  t.is(stats.totals.received, 1, JSON.stringify(stats.totals));

  // the sweep agrees (member records follow the upgraded result, seals hold)
  await s.huren.provenance.sweep({ deep: true, chain: false });
  t.is(await statusOf(report, 2), 'consistent');
});

test.serial('an upgraded version changed behind the server’s back is inconsistent', async (t) => {
  const { report } = await submit(legacyBundle('upgrade-tampered').bundle);
  await s.huren.provenance.anchorNow();
  await upgrade();
  await s.huren.provenance.anchorNow();
  t.is(await statusOf(report, 2), 'consistent');
  await s.huren.db.query(
    `UPDATE resource_history SET content = jsonb_set(content, '{conclusion}', '"改过的结论"') WHERE type = 'DiagnosticReport' AND id = $1 AND version = 2`,
    [report]
  );
  const v = await get(`DiagnosticReport/${report}/$verify`);
  t.is(param(v, 'status').valueCode, 'inconsistent');
  t.true(params(v, 'reason').some((p: any) => /is not what the platform wrote in its code upgrade/.test(p.valueString)), JSON.stringify(params(v, 'reason')));
});

test.serial('the command in direct mode (server stopped) records the revisions too; the restarted server anchors them', async (t) => {
  const own = await startTestServer({ provenance: testProvenanceConfig() }, { persistent: true });
  let restarted: TestServer | undefined;
  try {
    const res = await own.fhir('', { method: 'POST', json: legacyBundle('upgrade-direct').bundle });
    t.is(res.status, 200);
    const report = ((await res.json()) as any).entry.map((e: any) => e.fullUrl as string).find((u: string) => u.includes('/DiagnosticReport/')).split('/DiagnosticReport/')[1];
    await own.huren.provenance.anchorNow();
    await own.close({ keepStore: true });
    const cli = await runScript('scripts/catalogue-upgrade.ts', ['--restart'], { HUREN_DATA_DIR: own.store.dataDir, ...(own.store.databaseUrl ? { DATABASE_URL: own.store.databaseUrl } : {}) });
    t.is(cli.code, 0, cli.stderr);
    restarted = await startTestServer({ provenance: testProvenanceConfig() }, { store: own.store });
    const status = async () => (await restarted!.huren.db.query<{ status: string }>('SELECT status FROM report_version WHERE report_id = $1 AND version = 2', [report]))[0]?.status;
    t.is(await status(), 'pending', 'recorded as the platform’s revision, waiting for anchoring');
    // queued with the command's own delay (HUREN_PLATFORM_ANCHOR_DELAY_SECONDS, 600 s by default): anchored
    // by the next run after it, or at once by an operator's anchor-now
    t.is((await restarted.huren.provenance.anchorNow()).records, 0, 'still within its delay');
    await restarted.huren.provenance.anchorNow({ includeWaiting: true });
    t.is(await status(), 'consistent');
  } finally {
    await (restarted ?? own).close();
  }
});
