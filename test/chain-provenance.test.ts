/**
 * Chain provenance through the HTTP API against a real local chain (ganache on loopback), issue 5:
 * - must-show 1: a report submitted with a correct anchor (computed and anchored by the test, as an
 *   institution would) becomes consistent; the same Bundle with one changed value is inconsistent; a report
 *   edited directly in the database is flagged by the next sweep (and cleared when restored);
 * - must-show 5: nothing personal in any transaction sent to the chain (every input decoded and searched);
 * - late Provenance, platform anchoring of reports and recognition records, $verify, and bad input → 4xx.
 * Serial: the tests share one chain and one server.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { canonicalize as otherJcs } from 'json-canonicalize';
import { getAddress } from 'ethers';
import { ANCHOR_ARTIFACT, anchorInterface, HttpRpcNode, type EvmLedger } from '../server/ledger/index.ts';
import { CHAIN_ANCHOR_URL } from '../server/fingerprint/index.ts';
import { verifyAnchorProof } from '../server/merkle/index.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { engineOf } from '../server/fhir/engine.ts';
import {
  anchorOf,
  deployContract,
  fingerprint,
  institution,
  institutionLedger,
  ledgerConfig,
  LEDGER_NAME,
  Node,
  PERSON,
  platform,
  reportBundle,
  testProvenanceConfig,
  withProvenance,
} from './helpers/chain.ts';

const node = new Node('node-1', {});
let contract = '';
let s: TestServer;
let hospital: EvmLedger;
const logs: string[] = [];

test.before(async () => {
  await node.start();
  contract = await deployContract(node);
  hospital = institutionLedger(node, contract);
  const logStream = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  s = await startTestServer({ ledger: ledgerConfig([node], contract), provenance: testProvenanceConfig(), logLevel: 'info' }, { logStream });
});

test.after.always(async () => {
  await s?.close();
  await hospital?.close();
  await node.close();
});

async function submit(bundle: unknown, text = JSON.stringify(bundle, null, 2)): Promise<{ status: number; body: any; ms: number }> {
  const t0 = performance.now();
  const res = await s.fhir('', { method: 'POST', body: text, headers: { 'content-type': 'application/fhir+json' } });
  return { status: res.status, body: await res.json(), ms: performance.now() - t0 };
}

const idsOf = (response: any, type: string): string[] =>
  response.entry.map((e: any) => e.fullUrl as string | undefined).filter((u?: string) => u?.includes(`/${type}/`)).map((u: string) => u.split(`/${type}/`)[1]!);
const reportIdOf = (response: any): string => idsOf(response, 'DiagnosticReport')[0]!;
const obsIdsOf = (response: any): string[] => idsOf(response, 'Observation');

const param = (p: any, name: string) => p.parameter?.find((x: any) => x.name === name);
const params = (p: any, name: string) => (p.parameter ?? p.part ?? []).filter((x: any) => x.name === name);
const part = (p: any, name: string) => p.part?.find((x: any) => x.name === name);
const value = (x: any) => (x ? (x.valueCode ?? x.valueString ?? x.valueInteger ?? x.valueBoolean ?? x.valueInstant ?? x.valueReference?.reference) : undefined);

async function verify(id: string, query = ''): Promise<any> {
  const res = await s.fhir(`DiagnosticReport/${id}/$verify${query}`);
  if (res.status !== 200) throw new Error(`$verify ${res.status}: ${await res.text()}`);
  return res.json();
}

async function trace(id: string): Promise<any> {
  const res = await s.fhir(`DiagnosticReport/${id}/$trace`);
  if (res.status !== 200) throw new Error(`$trace ${res.status}: ${await res.text()}`);
  return res.json();
}

/** The stored status of the report's latest version, as $trace shows it (no check is run). */
async function storedStatus(id: string): Promise<{ status: string; reasons: string[] }> {
  const versions = params(await trace(id), 'version');
  const last = versions[versions.length - 1];
  return { status: value(part(last, 'status')), reasons: params(last, 'reason').map(value) };
}

async function until(fn: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

let consistentReport = '';
let consistentObs: string[] = [];

test.serial('a report submitted with a correct anchor is kept exactly as received and becomes consistent, off the request path', async (t) => {
  const r = reportBundle('consistent-1');
  const fp = fingerprint(r.bundle, 'sm3');
  const receipt = await hospital.anchor({ records: [fp] });
  const bundle = withProvenance(r, anchorOf(receipt, 0, fp));
  t.is(fingerprint(bundle, 'sm3'), fp, 'the chain Provenance entry is not part of the fingerprint');
  const text = JSON.stringify(bundle, null, 2);
  const res = await submit(bundle, text);
  t.is(res.status, 200);
  const id = reportIdOf(res.body);
  consistentReport = id;
  consistentObs = obsIdsOf(res.body);

  // the original: the request body's text, byte for byte, with its fingerprint
  const [orig] = await s.huren.db.query('SELECT o.raw, o.raw_exact, o.fingerprint FROM report_original o JOIN report_version v ON v.original_id = o.id WHERE v.report_id = $1', [id]);
  t.is(engineOf(s.huren.db).codec.openText(orig!.raw), text, 'sealed at rest (server/privacy/), opened to the exact text');
  t.false(orig!.raw.includes(text.slice(0, 40)));
  t.true(orig!.raw_exact);
  t.is(orig!.fingerprint, fp);

  // the chain lookup runs by itself after the upload committed
  await until(async () => (await storedStatus(id)).status === 'consistent');
  const v = await verify(id);
  t.is(value(param(v, 'status')), 'consistent');
  t.is(value(param(v, 'fingerprint')), fp);
  t.is(value(param(v, 'recomputedFingerprint')), fp);
  t.is(value(param(v, 'alg')), 'sm3');
  t.is(value(param(v, 'anchoredBy')), 'institution');
  t.is(value(param(v, 'ledger')), LEDGER_NAME);
  t.is(value(param(v, 'txId')), receipt.txId);
  t.is(value(param(v, 'height')), receipt.height);
  t.is(value(param(v, 'blockHash')), receipt.blockHash);
  t.is(value(param(v, 'root')), fp, 'a single record anchors the fingerprint itself');
  t.is(value(param(v, 'nodesChecked')), 1);
  t.deepEqual(params(v, 'node').map((n: any) => [value(part(n, 'name')), value(part(n, 'status')), value(part(n, 'txId'))]), [['node-1', 'found', receipt.txId]]);
  t.is(value(param(v, 'membersChecked')), 3, 'the report and its two results');
  t.deepEqual(params(v, 'reason'), []);

  // an exact retry stores nothing new: the same report and results, and the same chain Provenance
  const provenances = async () => (await (await s.fhir(`Provenance?target=DiagnosticReport/${id}&_count=50`)).json()).entry?.length ?? 0;
  const before = await provenances();
  const retry = await submit(bundle, text);
  t.is(retry.status, 200);
  t.deepEqual(retry.body.entry.map((e: any) => e.response.status), res.body.entry.map(() => '200'));
  t.deepEqual(retry.body.entry.map((e: any) => e.fullUrl), res.body.entry.map((e: any) => e.fullUrl), 'every entry answered with the resource stored the first time');
  t.is(await provenances(), before, 'no second chain Provenance');
  t.is((await storedStatus(id)).status, 'consistent');
});

test.serial('a report anchored in the institution\'s own batch (Merkle proof in the Provenance) is consistent', async (t) => {
  const rs = [reportBundle('batch-1'), reportBundle('batch-2'), reportBundle('batch-3')];
  const fps = rs.map((r) => fingerprint(r.bundle, 'sm3'));
  const receipt = await hospital.anchor({ records: fps });
  const ids: string[] = [];
  for (const [i, r] of rs.entries()) {
    const anchor = anchorOf(receipt, i, fps[i]!);
    t.truthy(anchor.proof, 'a proof with an audit path');
    const res = await submit(withProvenance(r, anchor));
    t.is(res.status, 200);
    ids.push(reportIdOf(res.body));
  }
  await s.huren.provenance.verifyNow();
  for (const id of ids) {
    const v = await verify(id);
    t.is(value(param(v, 'status')), 'consistent');
    t.is(value(param(v, 'root')), receipt.root);
  }
});

test.serial('the same Bundle with one changed value is inconsistent at once, without the chain; a wrong transaction too', async (t) => {
  const r = reportBundle('tampered-1');
  const fp = fingerprint(r.bundle, 'sm3');
  const receipt = await hospital.anchor({ records: [fp] });
  const tampered = structuredClone(r);
  tampered.bundle.entry[3].resource.valueQuantity.value = 6.5; // one value changed after anchoring
  const res = await submit(withProvenance(tampered, anchorOf(receipt, 0, fp)));
  t.is(res.status, 200, 'the upload is accepted');
  const id = reportIdOf(res.body);
  const stored = await storedStatus(id);
  t.is(stored.status, 'inconsistent', 'decided at intake: the fingerprint does not match');
  const changed = fingerprint(tampered.bundle, 'sm3');
  t.true(stored.reasons.some((x) => x.includes(changed) && x.includes(fp)), 'the reason names both fingerprints');
  const v = await verify(id);
  t.is(value(param(v, 'status')), 'inconsistent');
  t.is(value(param(v, 'recomputedFingerprint')), changed);

  // a correct fingerprint but a transaction that does not hold it
  const r2 = reportBundle('wrong-tx');
  const fp2 = fingerprint(r2.bundle, 'sm3');
  await hospital.anchor({ records: [fp2] });
  const res2 = await submit(withProvenance(r2, { ...anchorOf(receipt, 0, fp2), height: receipt.height }));
  const id2 = reportIdOf(res2.body);
  await s.huren.provenance.verifyNow();
  const v2 = await verify(id2);
  t.is(value(param(v2, 'status')), 'inconsistent');
  t.true(params(v2, 'reason').some((x: any) => /not in 0x[0-9a-f]{64} at height \d+ as the anchor says/.test(value(x))));
});

test.serial('a report edited directly in the database is flagged by the next sweep, and cleared when restored', async (t) => {
  t.is((await storedStatus(consistentReport)).status, 'consistent');
  const [obs] = await s.huren.db.query<{ content: unknown }>("SELECT content FROM resource WHERE type = 'Observation' AND id = $1", [consistentObs[0]]);
  await s.huren.db.query(`UPDATE resource SET content = jsonb_set(content, '{valueQuantity,value}', '9.9') WHERE type = 'Observation' AND id = $1`, [consistentObs[0]]);
  t.is((await storedStatus(consistentReport)).status, 'consistent', 'nothing noticed yet');

  const swept = await s.huren.provenance.sweep();
  t.true(swept.checked >= 6);
  t.is(swept.flagged, 1);
  const after = await storedStatus(consistentReport);
  t.is(after.status, 'inconsistent');
  t.deepEqual(after.reasons, [`Observation/${consistentObs[0]} was changed in the database behind the server's back (same version, different content)`]);
  const v = await verify(consistentReport);
  t.is(value(param(v, 'status')), 'inconsistent');
  t.is(value(param(v, 'recomputedFingerprint')), value(param(v, 'fingerprint')), 'the original itself is intact');

  // the report itself, changed behind the server's back: also found
  await s.huren.db.query(`UPDATE resource SET content = jsonb_set(content, '{conclusion}', '"正常"') WHERE type = 'DiagnosticReport' AND id = $1`, [consistentReport]);
  await s.huren.provenance.sweep();
  t.is((await storedStatus(consistentReport)).reasons.length, 2);

  // restored exactly (a new row version with the same content): healed, consistent again
  const [dr] = await s.huren.db.query<{ content: unknown }>("SELECT content FROM resource_history WHERE type = 'DiagnosticReport' AND id = $1 AND version = 1", [consistentReport]);
  await s.huren.db.query(`UPDATE resource SET content = $2::jsonb WHERE type = 'DiagnosticReport' AND id = $1`, [consistentReport, JSON.stringify(dr!.content)]);
  await s.huren.db.query(`UPDATE resource SET content = $2::jsonb WHERE type = 'Observation' AND id = $1`, [consistentObs[0], JSON.stringify(obs!.content)]);
  const restored = await s.huren.provenance.sweep();
  t.is(restored.cleared, 1);
  t.true(restored.healed >= 2);
  t.is((await storedStatus(consistentReport)).status, 'consistent');

  // a changed original is found too, and the deep sweep recomputes every fingerprint
  // (the original is sealed at rest: change some of its ciphertext)
  await s.huren.db.query(
    `UPDATE report_original SET raw = overlay(raw placing (CASE WHEN substr(raw, 40, 4) = 'AAAA' THEN 'BBBB' ELSE 'AAAA' END) from 40 for 4)
      WHERE id = (SELECT original_id FROM report_version WHERE report_id = $1 AND version = 1)`,
    [consistentReport]
  );
  const deep = await s.huren.provenance.sweep({ deep: true });
  t.true(deep.deep);
  t.is(deep.flagged, 1);
  const reasons = (await storedStatus(consistentReport)).reasons;
  t.true(reasons.some((x) => x.startsWith('the original Bundle was changed in the database')));
});

test.serial('a late Provenance (POST after the upload) is verified when it arrives; the platform then does not anchor the report', async (t) => {
  const r = reportBundle('late-1');
  const res = await submit(r.bundle);
  t.is(res.status, 200);
  const id = reportIdOf(res.body);
  const before = await storedStatus(id);
  t.is(before.status, 'pending');
  t.deepEqual(before.reasons, ['waiting for platform anchoring (no chain Provenance from the institution)']);

  const fp = fingerprint(r.bundle, 'sm3');
  const receipt = await hospital.anchor({ records: [fp] });
  const [org] = await s.huren.db.query<{ id: string }>("SELECT id FROM resource WHERE type = 'Organization' LIMIT 1");
  const prov = withProvenance({ ...r, reportUrl: `DiagnosticReport/${id}` }, anchorOf(receipt, 0, fp)).entry.at(-1).resource;
  prov.agent = [{ who: { reference: `Organization/${org!.id}` } }];
  const created = await s.fhir('Provenance', { method: 'POST', json: prov });
  t.is(created.status, 201);
  await until(async () => (await storedStatus(id)).status === 'consistent');
  const [outbox] = await s.huren.db.query<{ state: string }>("SELECT state FROM anchor_outbox WHERE kind = 'report' AND key = $1", [`DiagnosticReport/${id}/_history/1`]);
  t.is(outbox!.state, 'superseded');

  // a report written outside a transaction Bundle has no fingerprint: unanchored
  const alone = await s.fhir('DiagnosticReport', { method: 'POST', json: { resourceType: 'DiagnosticReport', status: 'final', code: { text: '单独提交' } } });
  t.is(alone.status, 201);
  const aloneId = ((await alone.json()) as any).id;
  const st = await storedStatus(aloneId);
  t.is(st.status, 'unanchored');
  t.deepEqual(st.reasons, ['this version was not submitted in a transaction Bundle: it has no fingerprint']);
});

test.serial('platform anchoring: reports without an anchor and recognition records go on chain in one batch, with proofs', async (t) => {
  const ids: string[] = [];
  for (const k of ['plat-1', 'plat-2']) {
    const res = await submit(reportBundle(k).bundle);
    ids.push(reportIdOf(res.body));
  }
  const [patient] = await s.huren.db.query<{ id: string }>("SELECT id FROM resource WHERE type = 'Patient' LIMIT 1");
  const issue = await s.fhir('DetectedIssue', {
    method: 'POST',
    json: { resourceType: 'DetectedIssue', status: 'final', patient: { reference: `Patient/${patient!.id}` }, detail: `${PERSON.name} 有可互认结果`, implicated: [{ reference: `DiagnosticReport/${ids[0]}` }] },
  });
  t.is(issue.status, 201);
  const issueId = ((await issue.json()) as any).id;

  const run = await s.huren.provenance.anchorNow();
  t.is(run.failed, 0);
  t.true(run.anchored >= 1);
  const outbox = await s.huren.provenance.outbox();
  t.is(outbox.queued, 0);
  t.is(outbox.batched, 0);
  for (const id of ids) {
    const v = await verify(id);
    t.is(value(param(v, 'status')), 'consistent');
    t.is(value(param(v, 'anchoredBy')), 'platform');
  }
  const [rec] = await s.huren.db.query<{ state: string; digest: string; proof: any; root: string }>(
    `SELECT o.state, o.digest, o.proof, b.root FROM anchor_outbox o JOIN anchor_batch b ON b.id = o.batch_id WHERE o.kind = 'recognition-record' AND o.key = $1`,
    [`DetectedIssue/${issueId}/_history/1`]
  );
  t.is(rec!.state, 'anchored');
  t.deepEqual(verifyAnchorProof(rec!.digest, rec!.proof), { ok: true, root: rec!.root });
  const held = await hospital.lookup(rec!.root);
  t.true(held.found);
});

/** The fingerprint by independent code: the rule of docs/fingerprint.md, json-canonicalize, node:crypto SM3. */
function independentFingerprint(text: string): string {
  const b = JSON.parse(text.replace(/^\uFEFF/, ''));
  delete b.id;
  delete b.meta;
  delete b.signature;
  b.entry = b.entry.filter((e: any) => !(e?.resource?.resourceType === 'Provenance' && (e.resource.extension ?? []).some((x: any) => x?.url === CHAIN_ANCHOR_URL)));
  return 'sm3:' + createHash('sm3').update(Buffer.from(otherJcs(b), 'utf8')).digest('hex');
}

/** RFC 9162 §2.1.3.2 inclusion proof check, written again here (SM3). */
function independentRoot(fp: string, leaf: number, size: number, path: string[]): string {
  const h = (...parts: Buffer[]) => createHash('sm3').update(Buffer.concat(parts)).digest();
  let fn = leaf;
  let sn = size - 1;
  let r = h(Buffer.from([0]), Buffer.from(fp.split(':')[1]!, 'hex'));
  for (const p of path.map((x) => Buffer.from(x, 'hex'))) {
    if (sn === 0) throw new Error('proof too long');
    if ((fn & 1) === 1 || fn === sn) {
      r = h(Buffer.from([1]), p, r);
      while ((fn & 1) === 0 && fn !== 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else r = h(Buffer.from([1]), r, p);
    fn >>= 1;
    sn >>= 1;
  }
  return 'sm3:' + r.toString('hex');
}

const header = (h: string | null, name: string) => new RegExp(`(?:^|; )${name}=([^;]+)`).exec(h ?? '')?.[1];

test.serial('$original returns the submitted Bundle byte for byte; independent code recomputes the anchored fingerprint and root', async (t) => {
  // an institution's anchor: the body is the request text, exactly (whitespace, escapes, member order and all)
  const r = reportBundle('original-1');
  const fp = fingerprint(r.bundle, 'sm3');
  const receipt = await hospital.anchor({ records: [fp] });
  const text = '\uFEFF' + JSON.stringify(withProvenance(r, anchorOf(receipt, 0, fp)), null, 3).replace('"电解质"', '"\\u7535\\u89e3\\u8d28"');
  const res = await submit(null, text);
  t.is(res.status, 200);
  const id = reportIdOf(res.body);
  await s.huren.provenance.verifyNow();
  t.is(value(param(await verify(id), 'status')), 'consistent', 'a byte-order mark does not make the original look changed');
  const o = await s.fhir(`DiagnosticReport/${id}/$original`);
  t.is(o.status, 200);
  t.regex(o.headers.get('content-type')!, /^application\/fhir\+json/);
  const bytes = Buffer.from(await o.arrayBuffer());
  t.true(bytes.equals(Buffer.from(text, 'utf8')), 'byte for byte, the byte-order mark too');
  t.is(o.headers.get('repr-digest'), `sha-256=:${createHash('sha256').update(bytes).digest('base64')}:`);
  t.is(independentFingerprint(bytes.toString('utf8')), fp, 'independent JCS + SM3 give the anchored fingerprint');
  t.is(o.headers.get('huren-fingerprint'), fp);
  t.is(o.headers.get('content-location'), `${s.base}/DiagnosticReport/${id}/_history/1`);
  const anchor = o.headers.get('huren-anchor');
  t.is(header(anchor, 'by'), 'institution');
  t.is(header(anchor, 'tx'), receipt.txId);
  t.is(header(anchor, 'height'), String(receipt.height));
  t.is(header(anchor, 'root'), fp);
  t.is(header(anchor, 'status'), 'consistent');
  t.is(o.headers.get('huren-original-exact'), 'true');

  // a platform-anchored batch: the proof in the headers leads to the root the chain holds
  const ids: string[] = [];
  const texts: string[] = [];
  for (const k of ['original-p1', 'original-p2', 'original-p3']) {
    const b = reportBundle(k).bundle;
    texts.push(JSON.stringify(b));
    ids.push(reportIdOf((await submit(b, texts[texts.length - 1]!)).body));
  }
  await s.huren.provenance.anchorNow();
  for (const [i, rid] of ids.entries()) {
    const p = await s.fhir(`DiagnosticReport/${rid}/$original?version=1`);
    t.is(p.status, 200);
    const body = await p.text();
    t.is(body, texts[i]!);
    const pfp = independentFingerprint(body);
    t.is(p.headers.get('huren-fingerprint'), pfp);
    const a = p.headers.get('huren-anchor');
    t.is(header(a, 'by'), 'platform');
    const proof = p.headers.get('huren-merkle-proof');
    t.truthy(proof, 'a batch of several records: an inclusion proof');
    const root = independentRoot(pfp, Number(header(proof, 'leaf')), Number(header(proof, 'size')), header(proof, 'path')!.split(','));
    t.is(header(a, 'root'), root);
    const held = await hospital.lookup(root);
    t.true(held.found, 'the chain holds the root recomputed by independent code');
    t.is(held.nodes[0]!.txId, header(a, 'tx'));
  }

  // unhappy paths: not a Bundle submission, unknown report or version, unknown parameter, _pretty
  const alone = await s.fhir('DiagnosticReport', { method: 'POST', json: { resourceType: 'DiagnosticReport', status: 'final', code: { text: '单独' } } });
  const aloneId = ((await alone.json()) as any).id;
  const none = await s.fhir(`DiagnosticReport/${aloneId}/$original`);
  t.is(none.status, 404);
  t.regex(((await none.json()) as any).issue[0].details.text, /was not submitted in a transaction Bundle/);
  t.is((await s.fhir('DiagnosticReport/nope/$original')).status, 404);
  t.is((await s.fhir(`DiagnosticReport/${id}/$original?version=9`)).status, 404);
  const unknown = await s.fhir(`DiagnosticReport/${id}/$original?colour=blue`);
  t.is(unknown.status, 400);
  t.is(((await unknown.json()) as any).issue[0].expression[0], 'colour');
  t.is((await s.fhir(`DiagnosticReport/${id}/$original?_pretty=true`)).status, 400);
  t.is((await s.fhir(`DiagnosticReport/${id}/$original`, { method: 'POST', json: { resourceType: 'Parameters' } })).status, 405);
  const deny = await fetch(`${s.base}/DiagnosticReport/${id}/$original`, { headers: { accept: 'application/fhir+json' } });
  t.is(deny.status, 401, 'no token, no original');
});

test.serial('$verify and $trace honour Prefer: respond-async', async (t) => {
  for (const op of ['$verify', '$trace']) {
    const res = await s.fhir(`DiagnosticReport/${consistentReport}/${op}`, { headers: { prefer: 'respond-async' } });
    t.is(res.status, 202);
    const poll = res.headers.get('content-location')!;
    let answer: any;
    await until(async () => {
      const p = await fetch(poll, { headers: { authorization: `Bearer ${s.token}`, accept: 'application/fhir+json' } });
      if (p.status !== 200) return false;
      answer = await p.json();
      return true;
    });
    const inner = answer.entry[0];
    t.is(inner.response.status, '200');
    t.is(inner.resource.resourceType, 'Parameters');
    t.truthy(param(inner.resource, op === '$verify' ? 'status' : 'ledger'));
  }
});

test.serial('a Bundle whose report has "status":"final","status":"preliminary" is refused with 400 naming the member; nothing is stored', async (t) => {
  const r = reportBundle('duplicate-status');
  const text = JSON.stringify(r.bundle).replace('"status":"final",', '"status":"final","status":"preliminary",');
  t.is(JSON.parse(text).entry[2].resource.status, 'preliminary', 'JSON.parse would keep the last one');
  const res = await submit(r.bundle, text);
  t.is(res.status, 400);
  t.is(res.body.resourceType, 'OperationOutcome');
  t.is(res.body.issue[0].expression[0], 'Bundle.entry[2].resource.status');
  t.regex(res.body.issue[0].details.text, /Duplicate member name 'status'/);
  const [n] = await s.huren.db.query<{ n: number }>("SELECT count(*)::int AS n FROM resource WHERE type = 'DiagnosticReport' AND content->'identifier'->0->>'value' = 'LAB-duplicate-status'");
  t.is(Number(n!.n), 0, 'no report stored');
  const originals = await s.huren.db.query<{ raw: string }>('SELECT raw FROM report_original');
  const opens = (raw: string) => {
    try {
      return engineOf(s.huren.db).codec.openText(raw);
    } catch {
      return ''; // the original an earlier test changed in the database
    }
  };
  t.is(originals.filter((o) => opens(o.raw).includes('LAB-duplicate-status')).length, 0, 'no original stored');
  // the same name escaped differently is the same name; a PUT of a single resource is refused too
  const escaped = JSON.stringify(r.bundle).replace('"status":"final",', '"status":"final","st\\u0061tus":"preliminary",');
  const res2 = await submit(r.bundle, escaped);
  t.is(res2.status, 400);
  t.is(res2.body.issue[0].expression[0], 'Bundle.entry[2].resource.status');
  const put = await s.fhir('Patient/dup-1', { method: 'PUT', body: '{"resourceType":"Patient","id":"dup-1","gender":"male","gender":"female"}', headers: { 'content-type': 'application/fhir+json' } });
  t.is(put.status, 400);
  t.is(((await put.json()) as any).issue[0].expression[0], 'Patient.gender');
});

test.serial('bad input is a 4xx OperationOutcome naming the element, never a 5xx', async (t) => {
  const r = reportBundle('bad-1');
  const someAnchor = { alg: 'sm3' as const, fingerprint: fingerprint(r.bundle), ledger: LEDGER_NAME, transaction: '0x' + '1'.repeat(64), height: 3 };
  const bundle = withProvenance(r, someAnchor);
  const ext = bundle.entry.at(-1).resource.extension[0].extension;
  ext.find((e: any) => e.url === 'fingerprint').valueString = 'md5:abc';
  const bad = await submit(bundle);
  t.is(bad.status, 400);
  t.is(bad.body.issue[0].expression[0], `Bundle.entry[5].resource.extension.where(url='${CHAIN_ANCHOR_URL}')`);
  t.regex(bad.body.issue[0].details.text, /chain-anchor\.fingerprint/);
  const [n] = await s.huren.db.query<{ n: number }>("SELECT count(*)::int AS n FROM resource WHERE type = 'DiagnosticReport' AND content->'identifier'->0->>'value' = 'LAB-bad-1'");
  t.is(Number(n!.n), 0, 'a failed transaction leaves no trace');

  const prov = withProvenance({ ...r, reportUrl: 'DiagnosticReport/does-not-exist' }, someAnchor).entry.at(-1).resource;
  prov.agent = [{ who: { display: 'gy1' } }];
  const orphan = await s.fhir('Provenance', { method: 'POST', json: prov });
  t.is(orphan.status, 400);
  t.is(((await orphan.json()) as any).issue[0].expression[0], 'Provenance.target[0]');

  const unknown = await s.fhir(`DiagnosticReport/${consistentReport}/$verify?colour=blue`);
  t.is(unknown.status, 400);
  t.is(((await unknown.json()) as any).issue[0].expression[0], 'colour');
  const badVersion = await s.fhir(`DiagnosticReport/${consistentReport}/$verify`, { method: 'POST', json: { resourceType: 'Parameters', parameter: [{ name: 'version', valueString: 'one' }] } });
  t.is(badVersion.status, 400);
  t.is(((await badVersion.json()) as any).issue[0].expression[0], "Parameters.parameter.where(name='version')");
  t.is((await s.fhir(`DiagnosticReport/${consistentReport}/$verify?version=7`)).status, 404);
  t.is((await s.fhir('DiagnosticReport/nope/$verify')).status, 404);
  t.is((await s.fhir('DiagnosticReport/nope/$trace')).status, 404);
  t.is((await s.fhir(`DiagnosticReport/${consistentReport}/$trace?x=1`)).status, 400);
});

test.serial('the schedules run by themselves (node-schedule): platform anchoring and the sweep', async (t) => {
  const s2 = await startTestServer({ ledger: ledgerConfig([node], contract), provenance: testProvenanceConfig({ anchorCron: '* * * * * *', sweepCron: '* * * * * *' }) });
  try {
    const res = await s2.fhir('', { method: 'POST', json: reportBundle('scheduled-1').bundle });
    t.is(res.status, 200);
    const body = (await res.json()) as any;
    const id = reportIdOf(body);
    const status = async () => (await s2.huren.db.query<{ status: string }>('SELECT status FROM report_version WHERE report_id = $1', [id]))[0]!.status;
    await until(async () => (await status()) === 'consistent', 30_000);
    await s2.huren.db.query(`UPDATE resource SET content = jsonb_set(content, '{status}', '"cancelled"') WHERE type = 'DiagnosticReport' AND id = $1`, [id]);
    await until(async () => (await status()) === 'inconsistent', 30_000);
    const [row] = await s2.huren.db.query<{ integrity_reasons: string[]; anchor_source: string }>('SELECT integrity_reasons, anchor_source FROM report_version WHERE report_id = $1', [id]);
    t.is(row!.anchor_source, 'platform');
    t.deepEqual(row!.integrity_reasons, [`DiagnosticReport/${id} was changed in the database behind the server's back (same version, different content)`]);
  } finally {
    await s2.close();
  }
});

test.serial('nothing personal is sent to the chain: every transaction decoded, every byte searched', async (t) => {
  const rpc = new HttpRpcNode('node-1', node.url);
  const top = Number(await rpc.request<string>('eth_blockNumber'));
  const batches = await s.huren.db.query<{ root: string; chain_batch_id: string; size: number; tx_id: string }>("SELECT root, chain_batch_id, size, tx_id FROM anchor_batch WHERE state = 'anchored'");
  t.true(batches.length >= 1);
  const platformTx = new Set(batches.map((b) => b.tx_id));
  const forbidden = Object.values(PERSON).flatMap((v) => [Buffer.from(v, 'utf8').toString('hex'), Buffer.from(v, 'utf16le').toString('hex')]);
  let anchors = 0;
  let fromPlatform = 0;
  for (let h = 0; h <= top; h++) {
    const block = await rpc.request<{ transactions: Array<Record<string, string>> }>('eth_getBlockByNumber', ['0x' + h.toString(16), true]);
    for (const tx of block.transactions) {
      const input = tx.input!.toLowerCase();
      for (const f of forbidden) t.false(input.includes(f), `transaction ${tx.hash} carries personal data`);
      const receipt = await rpc.request<{ logs: Array<{ data: string; topics: string[] }> }>('eth_getTransactionReceipt', [tx.hash]);
      for (const log of receipt.logs) for (const f of forbidden) t.false((log.data + log.topics.join('')).toLowerCase().includes(f));
      if (tx.to === null) {
        t.is(input, ANCHOR_ARTIFACT.bytecode.toLowerCase(), 'the only deployment is the contract');
        continue;
      }
      t.is(getAddress(tx.to!), getAddress(contract));
      const parsed = anchorInterface.parseTransaction({ data: input });
      if (parsed!.name === 'register') {
        t.is(getAddress(parsed!.args[0]), institution.address, 'an institution account and its code, nothing else');
        continue;
      }
      t.is(parsed!.name, 'anchor');
      t.is((input.length - 2) / 2, 4 + 3 * 32, 'anchor(root, count, batchId): 100 bytes, nothing else');
      anchors++;
      if (platformTx.has(tx.hash!)) {
        fromPlatform++;
        t.is(getAddress(tx.from!), platform.address);
        const batch = batches.find((b) => b.tx_id === tx.hash)!;
        t.is(parsed!.args[0], '0x' + batch.root.split(':')[1]);
        t.is(Number(parsed!.args[1]), batch.size);
        t.is(parsed!.args[2], batch.chain_batch_id, 'the batch id is the keyed hash of the platform batch');
      }
    }
  }
  t.true(anchors >= 6);
  t.is(fromPlatform, batches.length);
  // and not in the server's logs either
  const logText = logs.join('');
  t.true(logText.includes('batch anchored'));
  for (const v of Object.values(PERSON)) t.false(logText.includes(v));
});
