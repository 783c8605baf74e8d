/**
 * The audit trail (issue 11, docs/security.md 安全审计): every request — success, 400, 401, 403, 404 — has its
 * AuditEvent with the right outcome, who and what; no personal data in clear in them; the API and the database
 * refuse to change one; the HMAC-SM3 chain check finds an AuditEvent edited or deleted behind the triggers (as a
 * superuser would) and names the sequence number; the head goes to the anchoring outbox; archived entries stay
 * verifiable. Runs on both stores.
 */
import test from 'ava';
import { backendToken } from './helpers/backend-token.ts';
import { exportJWK, generateKeyPair } from 'jose';
import type { AuditEvent } from '@medplum/fhirtypes';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { NATIONAL_ID, ORG_ID } from './helpers/recognition-data.ts';
import { requestEvent, outcomeOf, sanitiseQuery } from '../server/audit/event.ts';
import { archiveChain } from '../server/audit/chain.ts';
import { assertValid } from '../server/fhir/validate.ts';

const ID_NUMBER = '440101199003071234';
const NAME = '审计测试患者';
const PHONE = '13912345678';
const NARROW = 'his-audit-narrow';
const AUDITOR = 'audit-admin-client';

let s: TestServer;
let key: Awaited<ReturnType<typeof generateKeyPair>>;
let patientId: string;
/** requestId → the status the request got */
const sent = new Map<string, number>();

test.before(async () => {
  key = await generateKeyPair('ES384', { extractable: true });
  const jwks = { keys: [{ ...(await exportJWK(key.publicKey)), kid: 'k1', alg: 'ES384' }] };
  s = await startTestServer({
    clients: [
      { clientId: NARROW, organization: `Organization?identifier=${ORG_ID}|audit-hospital`, scope: 'system/Observation.rs', jwks },
      { clientId: AUDITOR, organization: `Organization?identifier=${ORG_ID}|health-commission`, scope: 'system/AuditEvent.rs', jwks },
    ],
  });
});
test.after.always(async () => {
  await s?.close();
});

/** A token of a registered client (test/helpers/backend-token.ts, the key registered at start). */
const tokenFor = (clientId: string, scope: string): Promise<string> => backendToken(`${s.huren.url}/auth/token`, clientId, key.privateKey, scope);

/** A request with its own X-Request-Id (remembered with its status), the platform token unless `token` says otherwise. */
async function call(label: string, path: string, init: RequestInit & { json?: unknown; token?: string | null } = {}): Promise<Response> {
  const requestId = `${label}-${crypto.randomUUID()}`;
  const { json, token, headers, ...rest } = init;
  const res = await fetch(`${s.base}/${path}`, {
    ...rest,
    headers: {
      accept: 'application/fhir+json',
      'x-request-id': requestId,
      ...(token === null ? {} : { authorization: `Bearer ${token ?? s.token}` }),
      ...(json !== undefined ? { 'content-type': 'application/fhir+json' } : {}),
      ...(headers as Record<string, string>),
    },
    body: json !== undefined ? JSON.stringify(json) : rest.body,
  });
  sent.set(requestId, res.status);
  return res;
}

/** Every AuditEvent, read as the audit administrator would (the read flushes the trail's queue first). */
async function allEvents(): Promise<AuditEvent[]> {
  const events: AuditEvent[] = [];
  let url: string | undefined = `${s.base}/AuditEvent?_count=500`;
  while (url) {
    const page: any = await (await fetch(url, { headers: { authorization: `Bearer ${s.token}` } })).json();
    for (const e of page.entry ?? []) events.push(e.resource);
    url = page.link?.find((l: any) => l.relation === 'next')?.url;
  }
  return events;
}

const detail = (e: AuditEvent, type: string) => e.entity?.[0]?.detail?.find((d) => d.type === type)?.valueString;
const byRequest = (events: AuditEvent[], requestId: string) => events.filter((e) => detail(e, 'requestId') === requestId);
const startsWith = (prefix: string) => [...sent.keys()].find((k) => k.startsWith(`${prefix}-`)) as string;

async function verify(): Promise<any> {
  const res = await s.fhir('AuditEvent/$verify-chain');
  if (res.status !== 200) throw new Error(`$verify-chain: ${res.status}`);
  return res.json();
}
const value = (p: any, name: string) => {
  const found = p.parameter?.find((x: any) => x.name === name);
  return found?.valueBoolean ?? found?.valueInteger;
};
const breaks = (p: any) =>
  (p.parameter ?? [])
    .filter((x: any) => x.name === 'break')
    .map((b: any) => ({ seq: b.part.find((x: any) => x.name === 'seq')?.valueInteger, problem: b.part.find((x: any) => x.name === 'problem').valueCode }));

test.serial('every kind of request has its AuditEvent with the right outcome, who and what', async (t) => {
  const created = await call('create', 'Patient', {
    method: 'POST',
    json: { resourceType: 'Patient', identifier: [{ system: NATIONAL_ID, value: ID_NUMBER }], name: [{ text: NAME }], telecom: [{ system: 'phone', value: PHONE }] },
  });
  t.is(created.status, 201);
  const patient: any = await created.json();
  patientId = patient.id;
  t.is((await call('read', `Patient/${patientId}`, { headers: { 'x-purpose-of-use': 'TREAT' } })).status, 200);
  t.is((await call('search-national-id', `Patient?identifier=${encodeURIComponent(`${NATIONAL_ID}|${ID_NUMBER}`)}`)).status, 200);
  t.is((await call('search-name', `Patient?name=${encodeURIComponent(NAME)}&_count=5`)).status, 200);
  t.is((await call('update', `Patient/${patientId}`, { method: 'PUT', json: { ...patient, gender: 'female' } })).status, 200);
  t.is((await call('no-token', `Patient/${patientId}`, { token: null })).status, 401);
  t.is((await call('bad-token', `Patient/${patientId}`, { token: 'not-a-token' })).status, 401);
  const narrow = await tokenFor(NARROW, 'system/Observation.rs');
  t.is((await call('narrow-403', `Patient/${patientId}`, { token: narrow })).status, 403);
  t.is((await call('narrow-audit-403', 'AuditEvent', { token: narrow })).status, 403, 'a hospital client does not read the audit trail');
  t.is((await call('not-found', 'Patient/no-such-patient')).status, 404);
  t.is((await call('bad-input', 'Patient?birthdate=not-a-date')).status, 400);
  t.is((await call('observation-search', `Observation?patient=${patientId}`, { token: narrow })).status, 200);

  const events = await allEvents();
  for (const [requestId, status] of sent) {
    const mine = byRequest(events, requestId);
    t.is(mine.length, 1, `one AuditEvent for ${requestId}`);
    t.is(mine[0]?.outcome, outcomeOf(status), `${requestId}: outcome for HTTP ${status}`);
    t.true(mine[0]?.outcomeDesc?.startsWith(`HTTP ${status}`), requestId);
  }
  const one = (label: string) => byRequest(events, startsWith(label))[0];
  const sub = (e: AuditEvent) => e.subtype?.[0]?.code;
  const who = (e: AuditEvent) => e.agent[0].who?.identifier?.value;
  const patientOf = (e: AuditEvent) => e.entity?.find((x) => x.role?.code === '1')?.what?.reference;

  t.is(sub(one('create')), 'create');
  t.is(one('create').action, 'C');
  t.is(one('create').entity?.[0].what?.reference, `Patient/${patientId}`, 'the created resource, from the Location');
  t.is(one('create').entity?.[0].role?.code, '1', 'a Patient: the answer is the patient it is about (the answer as it was before it was serialised)');
  t.is(sub(one('read')), 'read');
  t.is(one('read').action, 'R');
  t.is(patientOf(one('read')), `Patient/${patientId}`);
  t.is(one('read').purposeOfEvent?.[0].coding?.[0].code, 'TREAT', 'the purpose the request states');
  t.is(one('read').agent[0].purposeOfUse?.[0].coding?.[0].code, 'TREAT');
  t.is(one('read').agent[0].network?.address?.includes('127.0.0.1'), true, 'the source IP');
  t.is(sub(one('search-national-id')), 'search-type');
  t.is(one('search-national-id').entity?.[0].role?.code, '24', 'a query entity');
  t.is(sub(one('update')), 'update');
  t.is(one('update').action, 'U');
  t.is(who(one('create')), 'bootstrap');
  t.is(who(one('no-token')), 'anonymous');
  t.is(who(one('narrow-403')), `client:${NARROW}`, 'which client');
  t.is(one('narrow-403').agent[0].altId, NARROW);
  t.deepEqual(one('narrow-403').agent[1].who?.identifier, { system: ORG_ID, value: 'audit-hospital' }, 'the client’s institution');
  t.is(patientOf(one('narrow-403')), `Patient/${patientId}`, 'the patient, from the path, even when refused');
  t.is(patientOf(one('observation-search')), `Patient/${patientId}`, 'the patient, from the search');
  t.is(one('bad-input').outcomeDesc, 'HTTP 400 invalid');
  const token = events.filter((e) => e.entity?.[0].detail?.some((d) => d.type === 'path' && d.valueString === '/auth/token'));
  t.true(token.length >= 1 && token.every((e) => e.outcome === '0'), 'the token requests are audited too');

  for (const e of events.slice(0, 20)) t.notThrows(() => assertValid(e as any), 'a valid R4 AuditEvent');
});

test.serial('no personal data in clear in the AuditEvents: a search by national ID leaves a keyed hash', async (t) => {
  const events = await allEvents();
  const text = events.map((e) => JSON.stringify(e) + (e.entity ?? []).map((x) => (x.query ? Buffer.from(x.query, 'base64').toString('utf8') : '')).join('')).join('\n');
  for (const personal of [ID_NUMBER, NAME, encodeURIComponent(NAME), PHONE]) t.false(text.includes(personal), `no ${personal.slice(0, 4)}… in clear`);
  const search = byRequest(events, startsWith('search-national-id'))[0];
  const query = Buffer.from(search.entity?.[0].query as string, 'base64').toString('utf8');
  t.regex(query, /^identifier=hmac-sm3:[\w-]+:[0-9a-f]{24}$/);
  const byName = Buffer.from(byRequest(events, startsWith('search-name'))[0].entity?.[0].query as string, 'base64').toString('utf8');
  t.regex(byName, /^name=hmac-sm3:[\w-]+:[0-9a-f]{24}&_count=5$/, 'codes and paging stay readable');
  t.false(sanitiseQuery([['patient', ID_NUMBER]], () => 'masked').includes(ID_NUMBER), 'a national ID in a kept parameter is masked too');
});

test.serial('search for the audit administrator: by patient, by outcome; its scope reads them, nothing else', async (t) => {
  const auditor = await tokenFor(AUDITOR, 'system/AuditEvent.rs');
  const res = await call('auditor-search', `AuditEvent?patient=Patient/${patientId}&_count=100`, { token: auditor });
  t.is(res.status, 200);
  const bundle: any = await res.json();
  t.true(bundle.entry.length >= 4, 'the requests about the patient');
  t.true(bundle.entry.every((e: any) => e.resource.entity.some((x: any) => x.what?.reference === `Patient/${patientId}`)));
  const failed: any = await (await call('auditor-outcome', 'AuditEvent?outcome=4&_count=100', { token: auditor })).json();
  t.true(failed.entry.length >= 5 && failed.entry.every((e: any) => e.resource.outcome === '4'));
  t.is((await call('auditor-patient', `Patient/${patientId}`, { token: auditor })).status, 403, 'the audit administrator reads the trail only');
  t.is((await call('auditor-verify', 'AuditEvent/$verify-chain', { token: auditor })).status, 200);
});

test.serial('account events (ctx.state.audit) and server failures are shaped as BALP says', (t) => {
  const now = new Date();
  const mask = (v: string) => `masked:${v.length}`;
  const login = requestEvent({ method: 'POST', path: '/api/login', query: [], status: 401, now, account: { action: 'login-failed', outcome: 'failure', detail: 'wrong TOTP' } }, mask);
  t.is(login.type.code, '110114');
  t.is(login.subtype?.[0].code, '110122');
  t.is(login.outcome, '4');
  t.false(JSON.stringify(login).includes('wrong TOTP'), 'the detail is kept masked');
  const role = requestEvent({ method: 'PUT', path: '/api/accounts/7/roles', query: [], status: 200, now, account: { action: 'role-change', outcome: 'success' } }, mask);
  t.is(role.type.code, '110136');
  t.is(role.outcome, '0');
  const crash = requestEvent({ method: 'GET', path: '/fhir/Observation', query: [], status: 500, now }, mask);
  t.is(crash.outcome, '8');
  t.notThrows(() => assertValid(login as any));
});

test.serial('the API refuses to create, update, patch or delete an AuditEvent, even with the platform token', async (t) => {
  const [event] = await allEvents();
  const before = await verify();
  t.true(value(before, 'ok'), JSON.stringify(breaks(before)));
  const refused = [
    await call('api-create', 'AuditEvent', { method: 'POST', json: { ...event, id: undefined } }),
    await call('api-update', `AuditEvent/${event.id}`, { method: 'PUT', json: { ...event, outcome: '0', outcomeDesc: 'forged' } }),
    await call('api-put-new', 'AuditEvent/forged-one', { method: 'PUT', json: { ...event, id: 'forged-one' } }),
    await call('api-patch', `AuditEvent/${event.id}`, { method: 'PATCH', headers: { 'content-type': 'application/json-patch+json' }, body: JSON.stringify([{ op: 'replace', path: '/outcome', value: '0' }]) }),
    await call('api-delete', `AuditEvent/${event.id}`, { method: 'DELETE' }),
    await call('api-conditional-delete', 'AuditEvent?outcome=4', { method: 'DELETE' }),
    await call('api-transaction', '', {
      method: 'POST',
      json: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { ...event, id: undefined }, request: { method: 'POST', url: 'AuditEvent' } }] },
    }),
  ];
  for (const res of refused) t.is(res.status, 403, res.url);
  const stored: any = await (await s.fhir(`AuditEvent/${event.id}`)).json();
  t.is(stored.meta.versionId, '1');
  t.is(stored.outcomeDesc, event.outcomeDesc);
  t.is((await s.fhir('AuditEvent/forged-one')).status, 404);
  t.true(value(await verify(), 'ok'));
});

test.serial('the database refuses UPDATE, DELETE and TRUNCATE of the audit rows', async (t) => {
  const db = s.huren.db;
  await allEvents(); // flushes the queue
  const [{ id }] = await db.query<{ id: string }>(`SELECT id FROM resource WHERE type = 'AuditEvent' LIMIT 1`);
  for (const statement of [
    `UPDATE resource SET content = jsonb_set(content, '{outcome}', '"0"') WHERE type = 'AuditEvent' AND id = '${id}'`,
    `DELETE FROM resource WHERE type = 'AuditEvent' AND id = '${id}'`,
    `UPDATE resource_history SET content = content WHERE type = 'AuditEvent' AND id = '${id}'`,
    `DELETE FROM resource_history WHERE type = 'AuditEvent'`,
    `UPDATE audit_chain SET mac = 'x' WHERE seq = 1`,
    `DELETE FROM audit_chain WHERE seq = 1`,
    `TRUNCATE audit_chain`,
  ]) {
    await t.throwsAsync(db.query(statement), { message: /append-only/ }, statement.slice(0, 40));
  }
  t.true(value(await verify(), 'ok'));
});

test.serial('the chain head is queued for anchoring on the ledger; archived entries stay verifiable', async (t) => {
  const db = s.huren.db;
  const head = await verify();
  const { anchorHead } = await import('../server/audit/chain.ts');
  const queued = await anchorHead(db);
  t.truthy(queued);
  const rows = await db.query<{ key: string; digest: string }>(`SELECT key, digest FROM anchor_outbox WHERE kind = 'audit-head'`);
  t.true(rows.some((r) => r.key === `audit-head/${queued!.seq}` && r.digest === queued!.digest));
  t.true(queued!.seq >= value(head, 'headSeq'));

  await allEvents(); // flushes the queue (its own event may come after the cutoff)
  const cutoff = new Date();
  const live = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_chain WHERE recorded < $1`, [cutoff.toISOString()]))[0].n;
  const moved = await archiveChain(db, cutoff, 7); // small batches: several transactions
  // the flush of the last request's event may land between the count and the archiving: it moves too
  t.true(moved >= live && moved <= live + 1, `${moved} moved of ${live}`);
  t.true(moved > 20);
  t.is((await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_archive`))[0].n, moved);
  await t.throwsAsync(db.query(`UPDATE audit_archive SET mac = 'x'`), { message: /append-only/ });
  await t.throwsAsync(db.query(`DELETE FROM audit_archive`), { message: /append-only/ });
  t.is((await call('after-archive', `Patient/${patientId}`)).status, 200);
  const after = await verify();
  t.true(value(after, 'ok'), JSON.stringify(breaks(after)));
  t.is(value(after, 'archived'), moved);
  t.true(value(after, 'entries') > moved, 'archived and live entries, one chain');
});

test.serial('an AuditEvent edited or deleted in the database behind the triggers is found, with its sequence number', async (t) => {
  const db = s.huren.db;
  for (let i = 0; i < 4; i++) await call(`tamper-${i}`, `Patient/${patientId}`);
  await allEvents();
  const chain = await db.query<{ seq: string; event_id: string }>(`SELECT seq, event_id FROM audit_chain ORDER BY seq`);
  t.true(chain.length >= 4);
  const [edited, deleted, dropped] = [chain[1], chain[2], chain[3]];

  // a superuser edits one: the triggers do not fire for a replica session
  await db.transaction(async (sql) => {
    await sql.query(`SET LOCAL session_replication_role = replica`);
    await sql.query(`UPDATE resource SET content = jsonb_set(content, '{outcomeDesc}', '"HTTP 404 forged"') WHERE type = 'AuditEvent' AND id = $1`, [edited.event_id]);
  });
  let r = await verify();
  t.false(value(r, 'ok'));
  t.deepEqual(breaks(r), [{ seq: Number(edited.seq), problem: 'edited' }]);

  // … deletes another's AuditEvent with the trigger disabled
  await db.query(`ALTER TABLE resource DISABLE TRIGGER audit_resource_append_only`);
  await db.query(`DELETE FROM resource WHERE type = 'AuditEvent' AND id = $1`, [deleted.event_id]);
  await db.query(`ALTER TABLE resource ENABLE TRIGGER audit_resource_append_only`);
  r = await verify();
  t.deepEqual(breaks(r), [
    { seq: Number(edited.seq), problem: 'edited' },
    { seq: Number(deleted.seq), problem: 'missing' },
  ]);

  // … and removes a chain entry
  await db.transaction(async (sql) => {
    await sql.query(`SET LOCAL session_replication_role = replica`);
    await sql.query(`DELETE FROM audit_chain WHERE seq = $1`, [dropped.seq]);
  });
  r = await verify();
  const found = breaks(r);
  t.true(found.some((b: any) => b.seq === Number(dropped.seq) && b.problem === 'missing'), JSON.stringify(found));
  t.true(found.some((b: any) => b.problem === 'unchained'), 'its AuditEvent is in no chain entry');
});
