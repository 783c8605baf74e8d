/**
 * The Guangzhou–Foshan exchange (issue 16, docs/foshan-exchange.md): two platforms in one run, each with its
 * own database and its own embedded chain, registered as each other's partners (registry + SMART Backend
 * Services clients). A Guangzhou check finds the patient's Foshan report through the federation, verified
 * (and the other way round); a partner that never answers or is down gives a partial answer with a warning;
 * tampered shared results (a changed value, a forged credential, a proof for another leaf, an anchor not on
 * the chain) are refused with the failing step named, and `huren-verify` agrees on each. Serial.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { testProvenanceConfig } from './helpers/chain.ts';
import { CATALOGUE, FIELD, ITEM, NATIONAL_ID, ORG_ID, daysAgo, idOf, organization, param, params, part, parts, reportEntries, transaction } from './helpers/recognition-data.ts';
import { loadLedgerConfig } from '../server/ledger/config.ts';
import { fingerprint } from '../server/fingerprint/index.ts';
import { generateSm2KeyPair } from '../server/fingerprint/signature.ts';
import { signBundle } from '../kit/bundle.ts';
import { ensureExchangeKeys, platformId, vcKeyId, type ExchangeKeyFile } from '../server/exchange/keys.ts';
import { issueCredential, type SharedResultClaims } from '../server/exchange/credential.ts';
import { verifySharedBundle, VC_CONTENT_TYPE } from '../server/exchange/shared-bundle.ts';
import { loadExchangeConfig } from '../server/exchange/config.ts';
import { STEP_SYSTEM } from '../server/exchange/federation.ts';

const run = promisify(execFile);
const VERIFY_BIN = new URL('../bin/huren-verify.mjs', import.meta.url).pathname;

interface City {
  code: 'guangzhou' | 'foshan';
  city: string;
  district: string;
  s: TestServer;
  keys: ExchangeKeyFile;
  keyFile: string;
  rpcUrl: string;
  dir: string;
  hospital: { code: string; sm2: { privateKey: string; publicKey: string } };
  requester: string;
}

const tmp = mkdtempSync(join(tmpdir(), 'huren-exchange-'));
const nationalId = `44060419850505${String(Math.floor(Math.random() * 9000) + 1000)}`;
const idKey = randomBytes(32).toString('hex');
let gz: City;
let fs: City;
const reports: Record<string, string> = {};
let blackHole: Server;
let proxy: Server;
let proxyMode: (bundle: any) => Promise<any> = async (b) => b;

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function startCity(code: City['code'], city: string, district: string, hospitalCode: string, partnerCode: string, partnerKeys: ExchangeKeyFile): Promise<City> {
  const dir = join(tmp, code);
  const keyFile = join(dir, 'exchange-keys.json');
  const keys = await ensureExchangeKeys(keyFile);
  const sm2 = generateSm2KeyPair();
  const rpcPort = await freePort();
  const s = await startTestServer(
    {
      exchange: { ...loadExchangeConfig({}), platform: code, name: code === 'guangzhou' ? '广州市互认平台' : '佛山市互认平台', city, budgetMs: 5000, keyFile },
      ledger: loadLedgerConfig({ HUREN_LEDGER_NAME: `${code}-chain`, HUREN_EMBEDDED_RPC: `127.0.0.1:${rpcPort}` }, { dataDir: join(dir, 'chain-data') }),
      provenance: testProvenanceConfig({ institutionKeys: JSON.stringify([{ organization: `${ORG_ID}|${hospitalCode}`, kid: `${hospitalCode}-2026`, publicKey: sm2.publicKey }]) }),
      clients: [{ clientId: `huren-${partnerCode}`, organization: `Organization?identifier=https://fhir.huren.gz.cn/partner-platform|${partnerCode}`, scope: 'system/Endpoint.r', jwks: { keys: [partnerKeys.client.publicJwk] } }],
    },
    { embeddedRpc: `127.0.0.1:${rpcPort}` }
  );
  return { code, city, district, s, keys, keyFile, rpcUrl: `http://127.0.0.1:${rpcPort}`, dir, hospital: { code: hospitalCode, sm2 }, requester: '' };
}

async function api(c: City, method: string, path: string, body?: unknown, token = c.s.token): Promise<{ status: number; body: any }> {
  const res = await fetch(`${c.s.huren.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, body: await res.json() };
}

/** Registers `partner` at `at`, as its identity says (optionally another FHIR base: the test's proxy or a dead one). */
async function register(at: City, partner: City, fhirBase?: string): Promise<void> {
  const identity = (await api(partner, 'GET', '/api/exchange/identity')).body;
  const r = await api(at, 'PUT', `/api/exchange/partners/${partner.code}`, {
    name: identity.name,
    city: identity.city,
    coverage: [at.city],
    fhirBase: fhirBase ?? identity.fhirBase,
    tokenUrl: identity.tokenUrl,
    clientId: `huren-${at.code}`,
    partnerClientId: `huren-${partner.code}`,
    vcKey: identity.vcKey,
    chain: identity.chain,
    idKey,
  });
  if (r.status !== 200) throw new Error(`register: ${r.status} ${JSON.stringify(r.body)}`);
}

/** A hospital in the city (qualified for chemistry in both cities), the patient, and a signed report anchored by the platform. */
async function seed(c: City, item: string, display: string, keys: string[]): Promise<void> {
  const hospital = organization(c.hospital.code, c.code === 'guangzhou' ? '广州市第一人民医院' : '佛山市第一人民医院', c.district, [{ field: FIELD.chemistry, covers: ['440100', '440600'] }]);
  const requester = organization(`${c.code}-req`, c.code === 'guangzhou' ? '广州市荔湾区人民医院' : '佛山市禅城区中心医院', c.code === 'guangzhou' ? '440103' : '440604', []);
  const first = await transaction(c.s, [
    { fullUrl: `urn:uuid:${randomUUID()}`, resource: hospital, request: { method: 'POST', url: 'Organization', ifNoneExist: `identifier=${ORG_ID}|${c.hospital.code}` } },
    { fullUrl: `urn:uuid:${randomUUID()}`, resource: requester, request: { method: 'POST', url: 'Organization', ifNoneExist: `identifier=${ORG_ID}|${c.code}-req` } },
    { fullUrl: `urn:uuid:${randomUUID()}`, resource: { resourceType: 'Patient', identifier: [{ system: NATIONAL_ID, value: nationalId }], name: [{ family: '黄' }] }, request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${NATIONAL_ID}|${nationalId}` } },
  ]);
  c.requester = idOf(first.entry[1]);
  const patient = idOf(first.entry[2]);
  for (const key of keys) {
    const entries = reportEntries(`Patient/${patient}`, { key: `${c.code}-${key}`, org: c.hospital.code, code: { system: CATALOGUE, code: item, display }, issued: daysAgo(1), obs: [{ code: { system: CATALOGUE, code: item, display }, value: 4.2 }] });
    const orgEntry = { fullUrl: `urn:uuid:${randomUUID()}`, resource: hospital, request: { method: 'POST', url: 'Organization', ifNoneExist: `identifier=${ORG_ID}|${c.hospital.code}` } };
    const bundle = { resourceType: 'Bundle', type: 'transaction', entry: [orgEntry, ...entries] };
    const signed = signBundle(bundle, fingerprint(bundle, 'sm3'), c.hospital.sm2.privateKey);
    const res = await c.s.fhir('', { method: 'POST', json: signed });
    const body = (await res.json()) as any;
    if (res.status !== 200) throw new Error(`submit: ${res.status} ${JSON.stringify(body)}`);
    reports[`${c.code}-${key}`] = (body.entry.map((e: any) => e.fullUrl).find((u: string) => u.includes('/DiagnosticReport/')) as string).split('/DiagnosticReport/')[1]!;
  }
  const anchored = await c.s.huren.provenance.anchorNow();
  if (anchored.failed) throw new Error('anchoring failed');
  await c.s.huren.provenance.verifyNow({ force: true });
}

test.before(async () => {
  // the key files first: each platform registers the other's client key at start
  const gzKeys = await ensureExchangeKeys(join(tmp, 'guangzhou', 'exchange-keys.json'));
  const fsKeys = await ensureExchangeKeys(join(tmp, 'foshan', 'exchange-keys.json'));
  gz = await startCity('guangzhou', '440100', '440104', 'gz1', 'foshan', fsKeys);
  fs = await startCity('foshan', '440600', '440604', 'fs1', 'guangzhou', gzKeys);
  await seed(fs, ITEM.potassium, '钾', ['k1', 'k2']);
  await seed(gz, ITEM.sodium, '钠', ['na1']);
  await register(gz, fs);
  await register(fs, gz);
  // a partner that never answers, and a proxy in front of Foshan that tampers with what it shares
  blackHole = createServer(() => undefined);
  await new Promise<void>((r) => blackHole.listen(0, '127.0.0.1', () => r()));
  proxy = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const upstream = await fetch(`${fs.s.huren.url}${req.url}`, { method: req.method, headers: { authorization: req.headers.authorization ?? '', 'content-type': 'application/fhir+json' }, body: Buffer.concat(chunks) });
    const body = (await upstream.json()) as any;
    for (const p of body.parameter ?? []) {
      const b = p.part?.find((x: any) => x.name === 'bundle');
      if (b) b.resource = await proxyMode(b.resource);
    }
    res.writeHead(upstream.status, { 'content-type': 'application/fhir+json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
});

test.after.always(async () => {
  await gz?.s.close();
  await fs?.s.close();
  blackHole?.closeAllConnections();
  blackHole?.close();
  proxy?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const check = async (c: City, extra = '') => {
  const res = await c.s.fhir(`Patient/$recognition-check?identifier=${NATIONAL_ID}|${nationalId}&requester=Organization/${c.requester}${extra}`);
  const body = (await res.json()) as any;
  if (res.status !== 200) throw new Error(`check: ${res.status} ${JSON.stringify(body)}`);
  return body;
};
const origin = (r: any) => part(r, 'origin')?.valueCode;
const warnings = (body: any) => (param(body, 'outcome')?.resource?.issue ?? []) as any[];
const stepOf = (issue: any) => issue.details?.coding?.find((c: any) => c.system === STEP_SYSTEM)?.code;

async function huvenVerify(bundle: unknown, c: City, withRpc = true): Promise<{ code: number; out: any }> {
  const file = join(tmp, `shared-${randomUUID()}.json`);
  const identity = join(tmp, `identity-${c.code}.json`);
  writeFileSync(file, JSON.stringify(bundle));
  writeFileSync(identity, JSON.stringify((await api(c, 'GET', '/api/exchange/identity')).body));
  try {
    const { stdout } = await run(process.execPath, [VERIFY_BIN, file, '--identity', identity, ...(withRpc ? ['--rpc', c.rpcUrl] : []), '--json']);
    return { code: 0, out: JSON.parse(stdout) };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? -1, out: err.stdout ? JSON.parse(err.stdout) : { stderr: err.stderr } };
  }
}

test.serial('a Guangzhou check finds the Foshan report through the federation, verified; local results say they are local', async (t) => {
  const body = await check(gz);
  t.is(param(body, 'exists').valueBoolean, true);
  const results = params(body, 'result');
  const local = results.filter((r: any) => origin(r) === 'guangzhou');
  const remote = results.filter((r: any) => origin(r) === 'foshan');
  t.is(local.length, 1);
  t.is(part(local[0], 'item').valueCoding.code, ITEM.sodium);
  t.is(remote.length, 2);
  for (const r of remote) {
    t.is(part(r, 'item').valueCoding.code, ITEM.potassium);
    t.is(part(r, 'verified').valueBoolean, true);
    t.is(part(r, 'originName').valueString, '佛山市互认平台');
    t.regex(part(r, 'report').valueReference.reference, new RegExp(`^${fs.s.base}/DiagnosticReport/`));
    t.regex(part(r, 'performer').valueReference.reference, new RegExp(`^${fs.s.base}/Organization/`));
    t.is(part(r, 'performer').valueReference.display, '佛山市第一人民医院');
    const steps = parts(r, 'verification').map((v: any) => [part(v, 'step').valueCode, part(v, 'status').valueCode]);
    t.deepEqual(steps, [['structure', 'ok'], ['credential', 'ok'], ['fingerprint', 'ok'], ['original', 'ok'], ['provenance', 'ok'], ['signature', 'ok'], ['inclusion-proof', 'ok'], ['anchor', 'ok']]);
    t.is(part(r, 'bundle').resource.resourceType, 'Bundle');
  }
  t.deepEqual(warnings(body), []);
  // the shared Bundle verifies offline with huren-verify too (the partner's identity file and its chain node)
  const v = await huvenVerify(part(remote[0], 'bundle').resource, fs);
  t.is(v.code, 0);
  t.true(v.out.verified);
  t.deepEqual(v.out.steps.map((s: any) => s.status), ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
  // nothing personal was sent: the partner saw the hash, not the national ID
  const seen = await fs.s.huren.db.query<{ n: number }>("SELECT count(*)::int AS n FROM resource WHERE type = 'AuditEvent' AND content::text LIKE $1", [`%${nationalId}%`]);
  t.is(seen[0]!.n, 0);
});

test.serial('the other direction: a Foshan check finds the Guangzhou report', async (t) => {
  const body = await check(fs);
  const results = params(body, 'result');
  t.deepEqual(results.map((r: any) => [origin(r), part(r, 'item').valueCoding.code]).sort(), [['foshan', ITEM.potassium], ['foshan', ITEM.potassium], ['guangzhou', ITEM.sodium]].sort());
  const remote = results.find((r: any) => origin(r) === 'guangzhou');
  t.is(part(remote, 'verified').valueBoolean, true);
});

test.serial('the federated $duplicate-check: an order covered by a Foshan result is a duplicate, and says where the match is from', async (t) => {
  const res = await gz.s.fhir('ServiceRequest/$duplicate-check', {
    method: 'POST',
    json: { resourceType: 'Parameters', parameter: [
      { name: 'order', resource: { resourceType: 'ServiceRequest', id: 'o1', status: 'active', intent: 'order', subject: { reference: `Patient?identifier=${NATIONAL_ID}|${nationalId}` }, code: { coding: [{ system: CATALOGUE, code: ITEM.potassium }] } } },
      { name: 'requester', valueReference: { reference: `Organization/${gz.requester}` } },
    ] },
  });
  const body = (await res.json()) as any;
  t.is(res.status, 200, JSON.stringify(body));
  const item = param(body, 'item');
  t.is(part(item, 'duplicate').valueBoolean, true);
  const matches = parts(item, 'match');
  t.true(matches.length >= 1);
  t.true(matches.every((m: any) => origin(m) === 'foshan' && part(m, 'verified').valueBoolean === true));
});

test.serial('each exchange is audited on both sides', async (t) => {
  const count = async (c: City, code: string) =>
    (await c.s.huren.db.query<{ n: number }>("SELECT count(*)::int AS n FROM resource WHERE type = 'AuditEvent' AND content->'subtype'->0->>'code' = $1", [code]))[0]!.n;
  for (const [c, code] of [[gz, 'outgoing-recognition-check'], [fs, 'incoming-recognition-check'], [gz, 'outgoing-duplicate-check'], [fs, 'incoming-duplicate-check']] as const) {
    t.true((await count(c, code)) >= 1, code);
  }
  // the partner is named, the national ID is not
  const [event] = await gz.s.huren.db.query<{ content: any }>("SELECT content FROM resource WHERE type = 'AuditEvent' AND content->'subtype'->0->>'code' = 'outgoing-recognition-check' LIMIT 1");
  t.is(event!.content.agent[0].who.reference, 'Organization/partner-foshan');
  t.false(JSON.stringify(event!.content).includes(nationalId));
});

test.serial('a partner that never answers: the check answers without it, with a warning', async (t) => {
  const { port } = blackHole.address() as AddressInfo;
  await register(gz, fs, `http://127.0.0.1:${port}/fhir`);
  gz.s.huren.config.exchange.budgetMs = 300;
  try {
    const started = Date.now();
    const body = await check(gz);
    const elapsed = Date.now() - started;
    t.log(`answered in ${elapsed} ms with a budget of 300 ms`);
    const results = params(body, 'result');
    t.deepEqual(results.map(origin), ['guangzhou']);
    const w = warnings(body);
    t.is(w.length, 1);
    t.is(w[0].severity, 'warning');
    t.is(w[0].code, 'timeout');
    t.regex(w[0].diagnostics, /did not answer within 300 ms/);
    // the failure is audited too (after the answer)
    const failures = async () => (await gz.s.huren.db.query<{ n: number }>("SELECT count(*)::int AS n FROM resource WHERE type = 'AuditEvent' AND content->>'outcomeDesc' = 'timeout'"))[0]!.n;
    for (let i = 0; i < 50 && (await failures()) === 0; i++) await new Promise((r) => setTimeout(r, 100));
    t.is(await failures(), 1);
  } finally {
    gz.s.huren.config.exchange.budgetMs = 5000;
  }
});

test.serial('a partner that is down: a partial answer with a warning, never a failure', async (t) => {
  await register(gz, fs, `http://127.0.0.1:${await freePort()}/fhir`);
  const started = Date.now();
  const body = await check(gz);
  t.log(`answered in ${Date.now() - started} ms (the local check alone, the partner refusing the connection at once)`);
  t.deepEqual(params(body, 'result').map(origin), ['guangzhou']);
  const w = warnings(body);
  t.is(w.length, 1);
  t.is(w[0].code, 'transient');
  t.regex(w[0].diagnostics, /could not be asked/);
});

/** Re-issues the credential of a shared Bundle with changed claims (and the Provenance to match), by `key`. */
async function reissue(bundle: any, change: (claims: SharedResultClaims, provenance: any) => void, key = { controller: platformId('foshan'), id: vcKeyId('foshan'), ...fs.keys.vc }): Promise<any> {
  const b = structuredClone(bundle);
  const vc = JSON.parse(Buffer.from(b.entry[2].resource.data, 'base64').toString('utf8'));
  const { type: _type, ...claims } = vc.credentialSubject;
  change(claims, b.entry[1].resource);
  const credential = await issueCredential(key, claims);
  b.entry[2].resource = { resourceType: 'Binary', contentType: VC_CONTENT_TYPE, data: Buffer.from(JSON.stringify(credential)).toString('base64') };
  return b;
}

const anchorPart = (prov: any, url: string) => prov.extension[0].extension.find((e: any) => e.url === url);

const TAMPERING: Array<{ what: string; step: string; mutate: (b: any) => Promise<any> }> = [
  {
    what: 'a changed value in the shared Bundle',
    step: 'fingerprint',
    async mutate(b) {
      const copy = structuredClone(b);
      const original = JSON.parse(Buffer.from(copy.entry[0].resource.data, 'base64').toString('utf8'));
      original.entry.find((e: any) => e.resource.resourceType === 'Observation').resource.valueQuantity.value = 9.9;
      copy.entry[0].resource.data = Buffer.from(JSON.stringify(original)).toString('base64');
      return copy;
    },
  },
  {
    what: 'a forged credential (another key than the partner’s)',
    step: 'credential',
    async mutate(b) {
      const forger = await ensureExchangeKeys(join(tmp, `forger-${randomUUID()}.json`));
      return reissue(b, () => undefined, { controller: platformId('foshan'), id: vcKeyId('foshan'), ...forger.vc });
    },
  },
  {
    what: 'a proof for another leaf',
    step: 'inclusion-proof',
    async mutate(b) {
      return reissue(b, (claims, prov) => {
        const size = Number(claims.treeSize);
        const other = String((Number(claims.leafIndex) + 1) % size);
        claims.leafIndex = other;
        anchorPart(prov, 'leafIndex').valueUnsignedInt = Number(other);
      });
    },
  },
  {
    what: 'an anchor not on the chain',
    step: 'anchor',
    async mutate(b) {
      const tx = `0x${randomBytes(32).toString('hex')}`;
      return reissue(b, (claims, prov) => {
        claims.transaction = tx;
        anchorPart(prov, 'transaction').valueString = tx;
      });
    },
  },
];

for (const tamper of TAMPERING) {
  test.serial(`tampering refused with the step named, and huren-verify agrees: ${tamper.what}`, async (t) => {
    const { port } = proxy.address() as AddressInfo;
    await register(gz, fs, `http://127.0.0.1:${port}/fhir`);
    let sample: any;
    proxyMode = async (b) => {
      const mutated = await tamper.mutate(b);
      sample ??= mutated;
      return mutated;
    };
    try {
      const body = await check(gz);
      t.deepEqual(params(body, 'result').map(origin), ['guangzhou'], 'nothing from Foshan is shown');
      const w = warnings(body);
      t.is(w.length, 2, JSON.stringify(w));
      t.deepEqual(w.map(stepOf), [tamper.step, tamper.step]);
      t.true(w.every((i: any) => i.code === 'security' && new RegExp(`the ${tamper.step} step failed`).test(i.diagnostics)));
      const offline = await verifySharedBundle(sample, { issuer: { controller: platformId('foshan'), id: vcKeyId('foshan'), publicKeyMultibase: fs.keys.vc.publicKeyMultibase }, ledger: fs.s.huren.provenance.ledger });
      t.is(offline.failed as string | undefined, tamper.step);
      const cli = await huvenVerify(sample, fs);
      t.is(cli.code, 1);
      t.is(cli.out.failed, tamper.step);
    } finally {
      proxyMode = async (b) => b;
    }
  });
}

test.serial('through the proxy untouched, the results verify again (the proxy itself changes nothing)', async (t) => {
  const body = await check(gz);
  t.is(params(body, 'result').filter((r: any) => origin(r) === 'foshan').length, 2);
  await register(gz, fs);
});

test.serial('the registry: only the security administrator manages it, through its API; FHIR writes are refused', async (t) => {
  // public keys, public: no token needed
  const identity = (await (await fetch(`${fs.s.huren.url}/api/exchange/identity`)).json()) as any;
  t.is(identity.platform, 'foshan');
  const jwks = (await (await fetch(`${fs.s.huren.url}/api/exchange/jwks`)).json()) as any;
  t.deepEqual(jwks.keys, identity.jwks.keys);
  t.is(identity.vcKey.id, vcKeyId('foshan'));
  t.is(identity.vcKey.secretKeyMultibase, undefined);
  t.is(identity.jwks.keys[0].d, undefined);
  const listed = await api(gz, 'GET', '/api/exchange/partners');
  t.deepEqual(listed.body.partners.map((p: any) => p.code), ['foshan']);
  t.is(JSON.stringify(listed.body).includes(idKey), false, 'the agreement key is not shown');
  const bad = await api(gz, 'PUT', '/api/exchange/partners/foshan', { name: 'x', city: '4406', fhirBase: 'http://x', tokenUrl: 'http://x', clientId: 'a', partnerClientId: 'b', vcKey: identity.vcKey, chain: identity.chain, idKey });
  t.is(bad.status, 400);
  t.is(bad.body.issue[0].expression[0], 'city');
  const badKey = await api(gz, 'PUT', '/api/exchange/partners/foshan', { name: 'x', city: '440600', fhirBase: 'http://x', tokenUrl: 'http://x', clientId: 'a', partnerClientId: 'b', vcKey: { ...identity.vcKey, publicKeyMultibase: 'zabc' }, chain: identity.chain, idKey });
  t.is(badKey.status, 400);
  t.is(badKey.body.issue[0].expression[0], 'vcKey.publicKeyMultibase');
  const anonymous = await fetch(`${gz.s.huren.url}/api/exchange/partners`);
  t.is(anonymous.status === 401 || anonymous.status === 403, true);
  const fhirWrite = await gz.s.fhir('Endpoint/partner-foshan', { method: 'PUT', json: { resourceType: 'Endpoint', id: 'partner-foshan', status: 'active', connectionType: { code: 'hl7-fhir-rest' }, payloadType: [{ text: 'x' }], address: 'http://evil.example/fhir' } });
  t.is(fhirWrite.status, 403);
  t.is(((await fhirWrite.json()) as any).issue[0].expression[0], 'Endpoint.id');
  const ep = (await (await gz.s.fhir('Endpoint/partner-foshan')).json()) as any;
  t.is(ep.address, fs.s.base);
});

test.serial("a partner's token reaches $exchange-check and nothing else; other callers are refused", async (t) => {
  // the bootstrap token is not a partner
  const asOperator = await fs.s.fhir('Endpoint/$exchange-check', { method: 'POST', json: { resourceType: 'Parameters', parameter: [{ name: 'patient', valueString: 'a'.repeat(64) }, { name: 'requesterCity', valueCode: '440100' }] } });
  t.is(asOperator.status, 403);
  // Guangzhou's platform token at Foshan: its own scope only
  const token = await gzToken();
  const patientRead = await fetch(`${fs.s.base}/Patient?_count=1`, { headers: { authorization: `Bearer ${token}` } });
  t.is(patientRead.status, 403);
  const badHash = await fetch(`${fs.s.base}/Endpoint/$exchange-check`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' }, body: JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'patient', valueString: nationalId }, { name: 'requesterCity', valueCode: '440100' }] }) });
  t.is(badHash.status, 400);
  t.is(((await badHash.json()) as any).issue[0].expression[0], "Parameters.parameter.where(name='patient')[0]");
  const otherCity = await fetch(`${fs.s.base}/Endpoint/$exchange-check`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' }, body: JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'patient', valueString: 'a'.repeat(64) }, { name: 'requesterCity', valueCode: '440300' }] }) });
  t.is(otherCity.status, 403);
});

/** A token of Guangzhou's client at Foshan, obtained the way the federation does (SMART Backend Services). */
async function gzToken(): Promise<string> {
  const { importJWK, SignJWT } = await import('jose');
  const key = await importJWK(gz.keys.client.privateJwk, 'ES384');
  const tokenUrl = `${fs.s.huren.url}/auth/token`;
  const assertion = await new SignJWT({}).setProtectedHeader({ alg: 'ES384', kid: gz.keys.client.kid }).setIssuer('huren-guangzhou').setSubject('huren-guangzhou').setAudience(tokenUrl).setJti(randomUUID()).setIssuedAt().setExpirationTime('2m').sign(key);
  const res = await fetch(tokenUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'system/Endpoint.r', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion }).toString() });
  const body = (await res.json()) as any;
  if (res.status !== 200) throw new Error(`token: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

test.serial('no partner reached (a requester outside the agreement, or the partner switched off): the answer is the local one, unchanged', async (t) => {
  const shenzhen = await transaction(fs.s, [{ fullUrl: `urn:uuid:${randomUUID()}`, resource: organization('sz-req', '深圳市福田区人民医院', '440304', []), request: { method: 'POST', url: 'Organization' } }]);
  const res = await fs.s.fhir(`Patient/$recognition-check?identifier=${NATIONAL_ID}|${nationalId}&requester=Organization/${idOf(shenzhen.entry[0])}`);
  const body = (await res.json()) as any;
  t.is(res.status, 200);
  t.true(params(body, 'result').every((r: any) => origin(r) === undefined));
  t.is(param(body, 'outcome'), undefined);
  // switched off: Foshan's requesters no longer reach Guangzhou
  const identity = (await api(gz, 'GET', '/api/exchange/identity')).body;
  const off = await api(fs, 'PUT', '/api/exchange/partners/guangzhou', { name: identity.name, city: identity.city, coverage: ['440600'], fhirBase: identity.fhirBase, tokenUrl: identity.tokenUrl, clientId: 'huren-foshan', partnerClientId: 'huren-guangzhou', vcKey: identity.vcKey, chain: identity.chain, idKey, active: false });
  t.is(off.status, 200);
  const after = await check(fs);
  t.true(params(after, 'result').every((r: any) => origin(r) === undefined));
  t.false(params(after, 'result').some((r: any) => part(r, 'item').valueCoding.code === ITEM.sodium));
  // and Guangzhou's token no longer reaches Foshan's $exchange-check: its check warns
  const refused = await check(gz);
  t.deepEqual(params(refused, 'result').map(origin), ['guangzhou']);
  t.regex(warnings(refused)[0].diagnostics, /could not be asked: it answered 403/);
  await register(fs, gz);
  t.is(params(await check(gz), 'result').filter((r: any) => origin(r) === 'foshan').length, 2);
});

test.serial('huren-verify: without a chain node the anchor step is skipped; without an identity it warns; a wrong command line is exit code 2', async (t) => {
  const body = await check(gz);
  const bundle = part(params(body, 'result').find((r: any) => origin(r) === 'foshan'), 'bundle').resource;
  const noRpc = await huvenVerify(bundle, fs, false);
  t.is(noRpc.code, 0);
  t.deepEqual(noRpc.out.steps.at(-1).status, 'skipped');
  const file = join(tmp, `shared-${randomUUID()}.json`);
  writeFileSync(file, JSON.stringify(bundle));
  const { stdout } = await run(process.execPath, [VERIFY_BIN, file]);
  t.regex(stdout, /^! no --identity or --issuer-key/m);
  t.regex(stdout, /^verified 核验通过/m);
  const usage = await run(process.execPath, [VERIFY_BIN]).then(() => 0, (e) => e.code);
  t.is(usage, 2);
  const notJson = join(tmp, 'not-json.json');
  writeFileSync(notJson, 'not json');
  t.is(await run(process.execPath, [VERIFY_BIN, notJson]).then(() => 0, (e) => e.code), 2);
});

test.serial('the credential: a context that is not shipped is refused (the document loader never fetches)', async (t) => {
  const body = await check(gz);
  const bundle = structuredClone(part(params(body, 'result').find((r: any) => origin(r) === 'foshan'), 'bundle').resource);
  const vc = JSON.parse(Buffer.from(bundle.entry[2].resource.data, 'base64').toString('utf8'));
  vc['@context'] = [...vc['@context'], 'https://example.org/remote-context'];
  bundle.entry[2].resource.data = Buffer.from(JSON.stringify(vc)).toString('base64');
  const r = await verifySharedBundle(bundle, { issuer: { controller: platformId('foshan'), id: vcKeyId('foshan'), publicKeyMultibase: fs.keys.vc.publicKeyMultibase } });
  t.is(r.failed, 'credential');
  t.regex(r.steps.at(-1)!.detail, /does not fetch|credential/);
});

test('the exchange settings are checked', (t) => {
  t.is(loadExchangeConfig({}).budgetMs, 300);
  t.is(loadExchangeConfig({ HUREN_EXCHANGE_BUDGET_MS: '800' }).budgetMs, 800);
  t.throws(() => loadExchangeConfig({ HUREN_EXCHANGE_BUDGET_MS: '5' }), { message: /HUREN_EXCHANGE_BUDGET_MS/ });
  t.throws(() => loadExchangeConfig({ HUREN_EXCHANGE_CITY: '4401' }), { message: /HUREN_EXCHANGE_CITY/ });
  t.throws(() => loadExchangeConfig({ HUREN_EXCHANGE_PLATFORM: 'Guang Zhou' }), { message: /HUREN_EXCHANGE_PLATFORM/ });
});

test.serial('a patient written after the partner was registered is found by the hashed national ID; deleted, no longer', async (t) => {
  const { idHash } = await import('../server/exchange/registry.ts');
  const id = `44060419900909${String(Math.floor(Math.random() * 9000) + 1000)}`;
  const res = await fs.s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', identifier: [{ system: NATIONAL_ID, value: id }], name: [{ family: '新' }] } });
  t.is(res.status, 201);
  const patient = ((await res.json()) as any).id;
  const lookup = () => fs.s.huren.db.query<{ patient_id: string }>('SELECT patient_id FROM exchange_patient_hash WHERE partner = $1 AND hash = $2', ['guangzhou', idHash(idKey, id)]);
  t.deepEqual((await lookup()).map((r) => r.patient_id), [patient]);
  t.deepEqual(await fs.s.huren.db.query("SELECT 1 FROM exchange_patient_hash WHERE hash LIKE $1", [`%${id}%`]), [], 'the hash, not the ID');
  t.is((await fs.s.fhir(`Patient/${patient}`, { method: 'DELETE' })).status, 200);
  t.deepEqual(await lookup(), []);
});
