/**
 * Personal data at rest (docs/security.md 数据保密性, 个人信息保护; issue 11 must-show 6): what identifies a
 * patient is sealed with SM4 in every table it reaches — resource, resource_history, the index tables (a blind
 * index), report_original, async_job — so a dump of the database holds none of it in clear; identifier search
 * keeps working; $original still answers the submitted bytes; answers are masked for callers who do not need
 * the clear values.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import test from 'ava';
import type { Patient } from '@medplum/fhirtypes';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { startTestServer, storeKind, type TestServer } from './helpers/server.ts';
import { PERSON, reportBundle } from './helpers/chain.ts';
import { PrivacyKeys } from '../server/privacy/keys.ts';
import { privacyCodec } from '../server/privacy/codec.ts';
import { maskAnswers, maskFor, maskIdentifierValue, maskName, maskPhone } from '../server/privacy/mask.ts';
import { engineOf } from '../server/fhir/engine.ts';
import { searchParams } from '../server/fhir/definitions.ts';
import { indexResource } from '../server/fhir/search/indexer.ts';
import type { Principal } from '../server/fhir/principal.ts';

const NATIONAL_ID = 'urn:oid:2.16.156.10011.1.3';
/** A second patient, written alone (not in a report Bundle). */
const OTHER = { name: '欧阳明月', family: '欧阳', given: '明月', nationalId: '44010619850505123X', phone: '13912345678', line: '天河路385号' };
const SECRETS = [PERSON.name, PERSON.nationalId, PERSON.phone, PERSON.address, PERSON.mrn, OTHER.name, OTHER.given, OTHER.nationalId, OTHER.phone, OTHER.line];

let s: TestServer;
let hospitalA: CryptoKeyPair;
let hospitalB: CryptoKeyPair;
const logs: string[] = [];
let reportId = '';
let submitted = '';

test.before(async () => {
  const logStream = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  hospitalA = await generateKeyPair('ES384', { extractable: true });
  hospitalB = await generateKeyPair('ES384', { extractable: true });
  const jwks = async (kp: CryptoKeyPair, kid: string) => ({ keys: [{ ...(await exportJWK(kp.publicKey)), kid, alg: 'ES384' }] });
  s = await startTestServer(
    {
      logLevel: 'info',
      clients: [
        { clientId: 'his-a', organization: 'Organization?identifier=urn:huren:org|privacy-a', scope: 'system/*.rs', jwks: await jwks(hospitalA, 'a-1') },
        { clientId: 'his-b', organization: 'Organization?identifier=urn:huren:org|privacy-b', scope: 'system/*.rs', jwks: await jwks(hospitalB, 'b-1') },
      ],
    },
    { logStream }
  );
  const r = reportBundle('privacy-1');
  submitted = JSON.stringify(r.bundle, null, 1); // the exact text, kept by $original
  const res = await fetch(`${s.base}`, { method: 'POST', headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/fhir+json' }, body: submitted });
  if (res.status !== 200) throw new Error(`upload failed: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as any;
  reportId = body.entry.map((e: any) => e.fullUrl as string).find((u: string) => u?.includes('/DiagnosticReport/'))!.split('/DiagnosticReport/')[1]!;
  // the second patient comes in an asynchronous transaction: the request and its answer are stored too
  const patient = {
    resourceType: 'Patient',
    identifier: [{ system: NATIONAL_ID, value: OTHER.nationalId }],
    name: [{ family: OTHER.family, given: [OTHER.given] }],
    telecom: [{ system: 'phone', value: OTHER.phone }],
    address: [{ line: [OTHER.line], city: '广州市', district: '天河区' }],
  };
  const kick = await s.fhir('', { method: 'POST', headers: { prefer: 'respond-async' }, json: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: patient, request: { method: 'POST', url: 'Patient' } }] } });
  if (kick.status !== 202) throw new Error(`async transaction: ${kick.status}`);
  const poll = kick.headers.get('content-location')!;
  for (let i = 0; ; i++) {
    const p = await fetch(poll, { headers: { authorization: `Bearer ${s.token}` } });
    if (p.status === 200) {
      const done = (await p.json()) as any;
      if (done.entry[0].resource.entry[0].response.status !== '201') throw new Error('async transaction failed');
      break;
    }
    if (i > 200) throw new Error('async transaction never finished');
    await new Promise((r) => setTimeout(r, 100));
  }
});

test.after.always(async () => {
  await s?.close();
});

/** Every table's rows as text: what a dump would show (PGlite has no pg_dump). */
async function tableText(): Promise<string> {
  const tables = await s.huren.db.query<{ name: string }>("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'");
  const parts: string[] = [];
  for (const { name } of tables) {
    const rows = await s.huren.db.query<{ t: string }>(`SELECT t::text AS t FROM "${name}" t`);
    parts.push(`-- ${name}\n${rows.map((r) => r.t).join('\n')}`);
  }
  return parts.join('\n');
}

function pgDump(): string {
  const bin = ['/usr/bin/pg_dump', '/usr/local/bin/pg_dump'].find((p) => existsSync(p)) ?? 'pg_dump';
  return execFileSync(bin, ['--data-only', '--no-owner', s.store.databaseUrl!], { maxBuffer: 512 * 1024 * 1024, encoding: 'utf8' });
}

test.serial('a dump of the database holds no national ID, name, phone or address in clear (must-show 6)', async (t) => {
  const dump = storeKind() === 'postgres' ? pgDump() : await tableText();
  t.true(dump.length > 10_000, 'the dump holds the data');
  t.true(dump.includes('sm4:k1:'), 'sealed values are there');
  t.true(dump.includes('bi.k1.'), 'blind index values are there');
  for (const secret of SECRETS) t.false(dump.includes(secret), `${secret} is not in the dump`);
  // the tables that held them before (issue 11): the resource, its history, the index, the original, the async job
  for (const table of ['resource', 'resource_history', 'idx_token', 'idx_string', 'report_original', 'async_job']) {
    t.true(new RegExp(`(COPY public\\.${table} |-- ${table}\\n)`).test(dump), `${table} is dumped`);
  }
  const log = logs.join('');
  t.true(log.length > 0);
  for (const secret of SECRETS) t.false(log.includes(secret), `${secret} is not in the logs`);
});

test.serial('what is stored opens back as given: read, search, history, _include, $everything, $original byte for byte', async (t) => {
  const found = (await (await s.fhir(`Patient?identifier=${encodeURIComponent(`${NATIONAL_ID}|${PERSON.nationalId}`)}&_revinclude=DiagnosticReport:subject`)).json()) as any;
  const patient = found.entry.find((e: any) => e.search.mode === 'match').resource;
  t.deepEqual(patient.name, [{ text: PERSON.name }]);
  t.deepEqual(patient.telecom, [{ system: 'phone', value: PERSON.phone }]);
  t.is(patient._sealed, undefined, 'the envelope never leaves the store');
  const report = found.entry.find((e: any) => e.resource.resourceType === 'DiagnosticReport').resource;
  t.is(report.subject.display, PERSON.name);
  t.is(report.conclusion, `${PERSON.name}：血钾偏高`);
  const read = (await (await s.fhir(`Patient/${patient.id}`)).json()) as any;
  t.deepEqual(read.identifier[0], { system: NATIONAL_ID, value: PERSON.nationalId });
  const history = (await (await s.fhir(`Patient/${patient.id}/_history`)).json()) as any;
  t.deepEqual(history.entry[0].resource.name, [{ text: PERSON.name }]);
  const everything = (await (await s.fhir(`Patient/${patient.id}/$everything`)).json()) as any;
  t.deepEqual(everything.entry.find((e: any) => e.resource.resourceType === 'Patient').resource.name, [{ text: PERSON.name }]);
  t.is(everything.entry.find((e: any) => e.resource.resourceType === 'DiagnosticReport').resource.subject.display, PERSON.name);
  // the original: exactly the submitted text
  const original = await s.fhir(`DiagnosticReport/${reportId}/$original`);
  t.is(original.status, 200);
  t.is(await original.text(), submitted);
  // stored: nothing of it in clear
  const [row] = await s.huren.db.query<{ content: any }>("SELECT content FROM resource WHERE type = 'Patient' AND id = $1", [patient.id]);
  t.is(row!.content.name, undefined);
  t.regex(row!.content._sealed, /^sm4:k1:[A-Za-z0-9+/=]+$/);
  t.is(row!.content.resourceType, 'Patient');
  // an update that changes nothing stays one version (the stored form is compared opened)
  const again = await s.fhir(`Patient/${patient.id}`, { method: 'PUT', json: read });
  t.is(again.status, 200);
  t.is(((await again.json()) as any).meta.versionId, read.meta.versionId);
});

test.serial('identifier, phone and name search keep working over the blind index; :contains is a 400', async (t) => {
  const ids = async (q: string) => {
    const res = await s.fhir(`Patient?${q}`);
    t.is(res.status, 200, q);
    return ((await res.json()) as any).entry?.map((e: any) => e.resource.name?.[0]?.family ?? e.resource.name?.[0]?.text) ?? [];
  };
  t.deepEqual(await ids(`identifier=${encodeURIComponent(`${NATIONAL_ID}|${OTHER.nationalId}`)}`), [OTHER.family]);
  t.deepEqual(await ids(`identifier=${OTHER.nationalId.toLowerCase()}`), [], 'token search is exact');
  t.deepEqual(await ids(`identifier=${OTHER.nationalId}`), [OTHER.family], 'a value without its system');
  t.deepEqual(await ids(`phone=${OTHER.phone}`), [OTHER.family]);
  t.deepEqual(await ids(`family=${encodeURIComponent(OTHER.family)}`), [OTHER.family]);
  t.deepEqual(await ids(`given=${encodeURIComponent(OTHER.given)}`), [OTHER.family]);
  t.deepEqual(await ids(`name=${encodeURIComponent(OTHER.name)}`), [OTHER.family], 'family and given written together');
  t.deepEqual(await ids(`name=${encodeURIComponent(PERSON.name)}`), [PERSON.name], 'the whole text');
  t.deepEqual(await ids(`name=${encodeURIComponent('欧')}`), [], 'a whole component, not a prefix');
  t.deepEqual(await ids(`address-city=${encodeURIComponent('广州市')}&family=${encodeURIComponent(OTHER.family)}`), [OTHER.family]);
  t.deepEqual(await ids(`identifier:missing=false&family=${encodeURIComponent(OTHER.family)}`), [OTHER.family]);
  const chained = (await (await s.fhir(`DiagnosticReport?subject:Patient.identifier=${encodeURIComponent(`${NATIONAL_ID}|${PERSON.nationalId}`)}`)).json()) as any;
  t.deepEqual(chained.entry.map((e: any) => e.resource.id), [reportId]);
  const contains = await s.fhir(`Patient?name:contains=${encodeURIComponent('明')}`);
  t.is(contains.status, 400);
  const outcome = (await contains.json()) as any;
  t.deepEqual(outcome.issue[0].expression, ['name:contains']);
  t.is((await s.fhir(`Patient?identifier:text=x`)).status, 400);
  // the conditional create in a second upload finds the patient by national ID: no second Patient
  const res = await s.fhir('', { method: 'POST', json: reportBundle('privacy-2').bundle });
  t.is(res.status, 200);
  t.is(((await (await s.fhir(`Patient?identifier=${encodeURIComponent(`${NATIONAL_ID}|${PERSON.nationalId}`)}&_summary=count`)).json()) as any).total, 1);
});

test('keys: SM4 envelopes open only unchanged; rotation keeps old ones readable and searchable', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'huren-privacy-'));
  const file = join(dir, 'privacy-keys.json');
  const keys = new PrivacyKeys(file);
  const codec = privacyCodec(keys);
  const patient: Patient = { resourceType: 'Patient', id: 'p1', identifier: [{ system: NATIONAL_ID, value: OTHER.nationalId }], name: [{ family: OTHER.family, given: [OTHER.given] }], gender: 'male' };
  const stored = codec.seal(patient);
  t.false(JSON.stringify(stored).includes(OTHER.nationalId));
  t.is((stored as any).gender, 'male', 'what does not identify stays readable');
  t.deepEqual(codec.open(stored), patient);
  const sealed = (stored as any)._sealed as string;
  t.not(codec.seal(patient), stored, 'a fresh IV every time');
  t.throws(() => keys.open(sealed.slice(0, -8) + (sealed.endsWith('AAAAAAAA') ? 'BBBBBBBB' : 'AAAAAAAA')), { message: /changed|too short|bad decrypt/ });
  t.is(codec.openText('not sealed'), 'not sealed', 'text stored before the codec opens as it is');
  const param = searchParams('Patient').get('identifier')!;
  const before = codec.search('Patient', param, undefined, [`${NATIONAL_ID}|${OTHER.nationalId}`])!;
  t.is(before.length, 1);
  // rotation: a new key seals; the old envelope still opens; a search looks up both keys' blind values
  const reopened = new PrivacyKeys(file);
  t.is(reopened.rotate(), 'k2');
  const rotated = privacyCodec(new PrivacyKeys(file));
  t.deepEqual(rotated.open(stored), patient);
  t.regex((rotated.seal(patient) as any)._sealed, /^sm4:k2:/);
  const after = rotated.search('Patient', param, undefined, [`${NATIONAL_ID}|${OTHER.nationalId}`])!;
  t.is(after.length, 2);
  t.true(after.includes(before[0]!), 'the old blind value is still looked up');
  // index rows: blind values, the system kept
  const rows = indexResource(patient);
  rotated.index(patient, rows);
  const token = rows.token.find((r) => r[2] === 'identifier')!;
  t.is(token[3], NATIONAL_ID);
  t.regex(token[4]!, /^bi\.k2\.[0-9a-f]{32}$/);
  t.true(rows.string.filter((r) => r[2] === 'name').every((r) => /^bi\.k2\./.test(r[3]) && /^bi\.k2\./.test(r[4])));
  t.true(after.includes(`${NATIONAL_ID}|${token[4]}`));
  // a key file that is not one is refused
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ version: 1, current: 'k1', keys: { k1: 'short' } }));
  t.throws(() => new PrivacyKeys(bad), { message: /not a 32-byte hex key/ });
});

test('masking: 440101********1234, 陈**, 138****5678; who sees clear values', async (t) => {
  t.is(maskIdentifierValue('440101198001011234'), '440101********1234');
  t.is(maskIdentifierValue('MRN-7731-0042'), 'MR*********42');
  t.is(maskIdentifierValue('1234'), '****');
  t.is(maskPhone('13812345678'), '138****5678');
  t.is(maskPhone('li@example.cn'), 'l*@example.cn');
  t.deepEqual(maskName({ family: '陈', given: ['互认'] }), { family: '陈', given: ['**'], text: '陈**' });
  t.deepEqual(maskName({ text: '李四' }), { text: '李*' });
  const patient: Patient = {
    resourceType: 'Patient',
    id: 'p',
    identifier: [{ system: NATIONAL_ID, value: '440101198001011234' }],
    name: [{ text: '张三丰' }],
    telecom: [{ system: 'phone', value: '13812345678' }],
    address: [{ line: ['中山一路1号'], city: '广州市', text: '广州市越秀区中山一路1号' }],
    managingOrganization: { reference: 'Organization/a' },
    text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">张三丰</div>' },
  };
  const bundle = { resourceType: 'Bundle', type: 'searchset', entry: [{ resource: patient }] } as const;
  const doctor: Principal = { kind: 'user', id: 'user:1', scopes: ['system/Patient.rs'], roles: ['doctor'], institution: 'Organization/a' };
  const own: Principal = { kind: 'client', id: 'client:a', scopes: ['system/*.rs'], institution: 'Organization/a' };
  const other: Principal = { kind: 'client', id: 'client:b', scopes: ['system/*.rs'], institution: 'Organization/b' };
  const masked = (maskFor(doctor, bundle as any) as any).entry[0].resource;
  t.deepEqual(masked.identifier, [{ system: NATIONAL_ID, value: '440101********1234' }]);
  t.deepEqual(masked.name, [{ text: '张**' }]);
  t.deepEqual(masked.telecom, [{ system: 'phone', value: '138****5678' }]);
  t.deepEqual(masked.address, [{ city: '广州市' }]);
  t.is(masked.text, undefined);
  t.is(masked.meta.security[0].code, 'MASKED');
  t.false(JSON.stringify(masked).includes('张三丰'));
  t.is((maskFor(own, bundle as any) as any).entry[0].resource, patient, 'a hospital sees its own patient in clear');
  t.is((maskFor(other, bundle as any) as any).entry[0].resource.identifier[0].value, '440101********1234', 'another institution’s patient is masked');
  // the decorator: bootstrap and exact-bytes answers are left alone
  const res = { status: 200, body: patient };
  const ctx = (principal: Principal) => ({ principal }) as any;
  t.is((await maskAnswers(ctx({ kind: 'bootstrap', id: 'bootstrap', scopes: [] }), {} as any, res)).body, patient);
  t.is(((await maskAnswers(ctx(doctor), {} as any, res)).body as any).name[0].text, '张**');
  const bytes = { ...res, bytes: Buffer.from('{}') };
  t.is(await maskAnswers(ctx(doctor), {} as any, bytes), bytes);
});

test.serial('cost of the codec per report transaction (logged, not asserted)', async (t) => {
  const codec = engineOf(s.huren.db).codec;
  const r = reportBundle('timing');
  const resources = r.bundle.entry.map((e: any) => ({ ...e.resource, id: 'x' }));
  const n = 300;
  const rows = resources.map((res: any) => indexResource(res));
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    resources.forEach((res: any, k: number) => {
      codec.index(res, structuredClone(rows[k]));
      codec.open(codec.seal(res));
    });
    codec.openText(codec.sealText(submitted));
  }
  const perTx = (performance.now() - t0) / n;
  t.log(`added codec work per report transaction (seal + blind index + open of ${resources.length} resources, seal + open of the ${submitted.length}-character original): ${perTx.toFixed(3)} ms`);
  const t1 = performance.now();
  for (let i = 0; i < 20; i++) {
    const res = await s.fhir('', { method: 'POST', json: reportBundle(`timing-${i}`).bundle });
    t.is(res.status, 200);
  }
  t.log(`a whole report transaction over HTTP with the codec: ${((performance.now() - t1) / 20).toFixed(1)} ms`);
});

async function clientToken(clientId: string, key: CryptoKeyPair, kid: string): Promise<string> {
  const tokenUrl = `${s.huren.url}/auth/token`;
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES384', kid, typ: 'JWT' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(tokenUrl)
    .setExpirationTime(Math.floor(Date.now() / 1000) + 240)
    .setJti(crypto.randomUUID())
    .sign(key.privateKey);
  const res = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'system/*.rs', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion }).toString(),
  });
  const body = (await res.json()) as any;
  if (res.status !== 200) throw new Error(`token: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

test.serial('over HTTP: a hospital reads the patient it manages in clear; another hospital never sees the clear values', async (t) => {
  const orgs = await s.fhir('', {
    method: 'POST',
    json: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: ['privacy-a', 'privacy-b'].map((k) => ({ resource: { resourceType: 'Organization', identifier: [{ system: 'urn:huren:org', value: k }], name: k }, request: { method: 'POST', url: 'Organization' } })),
    },
  });
  const orgA = /Organization\/([^/]+)/.exec(((await orgs.json()) as any).entry[0].response.location)![1];
  const created = await s.fhir('Patient', {
    method: 'POST',
    json: { resourceType: 'Patient', identifier: [{ system: NATIONAL_ID, value: '440104197707071234' }], name: [{ family: '黄', given: ['小明'] }], telecom: [{ system: 'phone', value: '13600001111' }], managingOrganization: { reference: `Organization/${orgA}` } },
  });
  const id = ((await created.json()) as any).id;
  const read = async (token: string) => fetch(`${s.base}/Patient/${id}`, { headers: { authorization: `Bearer ${token}` } });
  const own = await read(await clientToken('his-a', hospitalA, 'a-1'));
  t.is(own.status, 200);
  const clear = (await own.json()) as any;
  t.is(clear.identifier[0].value, '440104197707071234');
  t.is(clear.name[0].given[0], '小明');
  const other = await read(await clientToken('his-b', hospitalB, 'b-1'));
  const text = await other.text();
  t.false(text.includes('440104197707071234'), 'no national ID');
  t.false(text.includes('小明'), 'no given name');
  t.false(text.includes('13600001111'), 'no phone');
  if (other.status === 200) {
    const masked = JSON.parse(text);
    t.is(masked.identifier[0].value, '440104********1234');
    t.is(masked.name[0].text, '黄**');
    t.is(masked.telecom[0].value, '136****1111');
  } else t.is(other.status, 403, 'or refused outright (no care relationship)');
});

test.serial('a client cannot smuggle a sealed envelope in: 400, nothing stored', async (t) => {
  const count = async () => Number((await s.huren.db.query<{ n: number }>("SELECT count(*)::int AS n FROM resource WHERE type <> 'AuditEvent'"))[0]!.n);
  const before = await count();
  for (const json of [
    { resourceType: 'Patient', gender: 'male', _sealed: 'sm4:k1:AAAA' },
    { resourceType: 'Observation', status: 'final', code: { text: 'x' }, _sealed: 'sm4:k1:AAAA' },
  ]) {
    const res = await s.fhir(json.resourceType, { method: 'POST', json });
    t.is(res.status, 400, json.resourceType);
    const outcome = (await res.json()) as any;
    t.regex(JSON.stringify(outcome.issue), /sealed/, 'the element is named');
  }
  t.is(await count(), before);
});
