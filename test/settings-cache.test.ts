/**
 * The settings every recognition check reads — the hash-badge setting and the exchange partner list — are
 * cached in the process (server/db/shared-settings.ts). A change made through the API is seen by the very next
 * check; a change made by another server process on the database is seen once its NOTIFY arrives (the other
 * process is played here by a change this process did not make — written to the tables directly — followed by
 * the notification that process sends). Serial: the settings are the server's.
 */
import test from 'ava';
import { param, params, parts, seededServer } from './helpers/recognition-data.ts';

const server = seededServer(test);

async function check(): Promise<any> {
  const res = await server.s.fhir(`Patient/${server.d.patient}/$recognition-check?requester=Organization/${server.d.org['req-gz']}`);
  const body = await res.json();
  if (res.status !== 200) throw new Error(`check: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** The badge codes of the check's results (the seeded reports are not anchored: `unanchored`). */
const badges = (body: any): string[] => params(body, 'result').flatMap((r: any) => parts(r, 'badge').map((b: any) => b.valueCoding.code));
const warnings = (body: any): string[] => ((param(body, 'outcome')?.resource?.issue ?? []) as any[]).map((i) => i.diagnostics as string);

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.s.huren.url}${path}`, { method, headers: { authorization: `Bearer ${server.s.token}`, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, body: await res.json() };
}

/** What another server process sends after it changed a setting (db/shared-settings.ts). */
const notifyAsOtherProcess = (key: string) => server.s.huren.db.query('SELECT pg_notify($1, $2)', ['huren_settings', key]);

/** The check, again until `seen` holds: a notification arrives asynchronously (at most ~5 s, else the last answer). */
async function checkUntil(seen: (body: any) => boolean): Promise<any> {
  let body = await check();
  for (let i = 0; i < 100 && !seen(body); i++) {
    await new Promise((r) => setTimeout(r, 50));
    body = await check();
  }
  return body;
}

test.serial('the badge setting changed through $badge-settings or the API: the next check shows it', async (t) => {
  const before = await check();
  t.true(params(before, 'result').length > 0);
  t.deepEqual(badges(before), []); // default: shown for consistent only
  const on = await server.s.fhir('$badge-settings', { method: 'POST', json: { resourceType: 'Parameters', parameter: [{ name: 'status', valueCode: 'consistent,unanchored' }] } });
  t.is(on.status, 200);
  const shown = badges(await check());
  t.true(shown.length > 0);
  t.true(shown.every((c) => c === 'unanchored'));
  const off = await api('PUT', '/api/settings/hash-badge', { enabled: false });
  t.is(off.status, 200);
  t.deepEqual(badges(await check()), []);
  t.is((await api('PUT', '/api/settings/hash-badge', { enabled: true, statuses: ['consistent'] })).status, 200);
  t.deepEqual(badges(await check()), []);
});

test.serial('the badge setting changed by another server process: seen once its notification arrives', async (t) => {
  t.deepEqual(badges(await check()), []);
  // the other process's write (this process did not make it, so it has not dropped its cached value) ...
  await server.s.huren.db.query(`UPDATE platform_setting SET value = '{"enabled": true, "statuses": ["unanchored"]}'::jsonb, updated_at = now() WHERE key = 'hash-badge'`);
  t.deepEqual(badges(await check()), [], 'cached until told');
  // ... and its notification
  await notifyAsOtherProcess('provenance.hash-badge');
  const body = await checkUntil((b) => badges(b).length > 0);
  t.true(badges(body).length > 0);
  t.is((await api('PUT', '/api/settings/hash-badge', { enabled: true, statuses: ['consistent'] })).status, 200);
  t.deepEqual(badges(await check()), []);
});

/** A partner platform covering the requester's city (Guangzhou, the default coverage) that refuses connections. */
async function putPartner(active: boolean): Promise<void> {
  const identity = (await api('GET', '/api/exchange/identity')).body;
  const dead = 'http://127.0.0.1:1';
  const r = await api('PUT', '/api/exchange/partners/deadcity', {
    name: '测试合作平台',
    city: '440600',
    fhirBase: `${dead}/fhir`,
    tokenUrl: `${dead}/oauth2/token`,
    clientId: 'huren-test',
    partnerClientId: 'huren-deadcity',
    vcKey: { controller: 'urn:huren:platform:deadcity', id: 'urn:huren:platform:deadcity#vc', publicKeyMultibase: identity.vcKey.publicKeyMultibase },
    chain: { ledger: identity.chain.ledger, rpc: [] },
    idKey: 'ab'.repeat(32),
    active,
  });
  if (r.status !== 200) throw new Error(`partner: ${r.status} ${JSON.stringify(r.body)}`);
}

const asksPartner = (body: any) => warnings(body).some((w) => /partner platform 测试合作平台 \(deadcity\)/.test(w));

test.serial('a partner registered or switched off through the registry API: the next check asks it, or no longer', async (t) => {
  t.false(asksPartner(await check()));
  await putPartner(true);
  t.true(asksPartner(await check()));
  await putPartner(false);
  t.false(asksPartner(await check()));
  await putPartner(true);
  t.true(asksPartner(await check()));
});

test.serial('a partner switched off by another server process: no longer asked once the notification arrives', async (t) => {
  await putPartner(true);
  t.true(asksPartner(await check()));
  // the other process's write of the registry entry (the Endpoint no longer active) ...
  await server.s.huren.db.query(`UPDATE resource SET content = jsonb_set(content, '{status}', '"off"') WHERE type = 'Endpoint' AND id = 'partner-deadcity'`);
  t.true(asksPartner(await check()), 'cached until told');
  // ... and its notification
  await notifyAsOtherProcess('exchange.partners');
  t.false(asksPartner(await checkUntil((b) => !asksPartner(b))));
  await putPartner(false);
});
