/**
 * Chain provenance that holds against the platform itself (issue 15): a forger with full access to the
 * database — not to the key file in the data directory, not to the chain — rewrites a report together with
 * everything the platform recorded about it (the history row, the original Bundle, its digest, the
 * fingerprint, the Merkle root, the platform's Provenance, the member digests). The next `$verify` and the
 * next sweep say `inconsistent`: the anchor transaction on the chain holds another root, and the records'
 * keyed seals (HMAC-SM3, key outside the database) no longer hold. An anchor that was found and is gone is
 * inconsistent at once; consistent → pending is logged and counted, never silent.
 * Serial: the tests share one chain and one server.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { fingerprint as fp } from '../server/fingerprint/index.ts';
import { buildAnchorTree, verifyAnchorProof } from '../server/merkle/index.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { engineOf } from '../server/fhir/engine.ts';
import { anchorOf, deployContract, institutionLedger, ledgerConfig, Node, reportBundle, testProvenanceConfig, withProvenance } from './helpers/chain.ts';
import { generateSm2KeyPair, signFingerprint } from '../server/fingerprint/signature.ts';
import type { EvmLedger } from '../server/ledger/index.ts';
import { parseReadRpcAddress } from '../server/ledger/read-rpc.ts';

const node = new Node('node-1', {});
let contract = '';
let hospital: EvmLedger;
/** Institution gy1's signing key (registered for it), and gy2's (registered for gy2 only). */
const keyA = generateSm2KeyPair();
const keyB = generateSm2KeyPair();
let s: TestServer;
const logs: string[] = [];

test.before(async () => {
  await node.start();
  contract = await deployContract(node);
  const logStream = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  hospital = institutionLedger(node, contract);
  const institutionKeys = JSON.stringify([
    { organization: 'urn:huren:org|gy1', kid: 'gy1-2026', publicKey: keyA.publicKey },
    { organization: 'urn:huren:org|gy2', kid: 'gy2-2026', publicKey: keyB.publicKey },
  ]);
  s = await startTestServer({ ledger: ledgerConfig([node], contract), provenance: testProvenanceConfig({ institutionKeys }), logLevel: 'info' }, { logStream });
});

test.after.always(async () => {
  await s?.close();
  await hospital?.close();
  await node.close();
});

const param = (p: any, name: string) => p.parameter?.find((x: any) => x.name === name);
const params = (p: any, name: string) => (p.parameter ?? []).filter((x: any) => x.name === name);
const value = (x: any) => (x ? (x.valueCode ?? x.valueString ?? x.valueInteger ?? x.valueBoolean) : undefined);
const reportIdOf = (response: any): string =>
  response.entry.map((e: any) => e.fullUrl as string).find((u: string) => u?.includes('/DiagnosticReport/'))!.split('/DiagnosticReport/')[1]!;

async function verify(id: string): Promise<{ status: string; reasons: string[] }> {
  const res = await s.fhir(`DiagnosticReport/${id}/$verify`);
  if (res.status !== 200) throw new Error(`$verify ${res.status}: ${await res.text()}`);
  const p = await res.json();
  return { status: value(param(p, 'status')), reasons: params(p, 'reason').map(value) };
}

async function stored(id: string): Promise<{ status: string; integrity: string[]; chain: string[] }> {
  const [r] = await s.huren.db.query<{ status: string; integrity_reasons: string[]; chain_reasons: string[] }>(
    'SELECT status, integrity_reasons, chain_reasons FROM report_version WHERE report_id = $1 AND current',
    [id]
  );
  return { status: r!.status, integrity: r!.integrity_reasons, chain: r!.chain_reasons };
}

/** Three reports without an anchor of their own, anchored by the platform in one batch (so each has a proof). */
async function platformAnchored(prefix: string): Promise<string[]> {
  const ids: string[] = [];
  for (const k of [1, 2, 3]) {
    const res = await s.fhir('', { method: 'POST', json: reportBundle(`${prefix}-${k}`).bundle });
    t_assert(res.status === 200, `upload ${res.status}`);
    ids.push(reportIdOf(await res.json()));
  }
  await s.huren.provenance.anchorNow();
  for (const id of ids) t_assert((await stored(id)).status === 'consistent', 'anchored');
  return ids;
}

function t_assert(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/**
 * The full forgery, as a database administrator would do it: the report reads "preliminary" instead of
 * "final" everywhere the platform keeps it, and every digest, fingerprint and root is recomputed to match.
 */
async function forge(id: string): Promise<{ forgedFp: string; forgedRoot: string; realRoot: string }> {
  const db = s.huren.db;
  const patch = `jsonb_set(content, '{status}', '"preliminary"')`;
  await db.query(`UPDATE resource SET content = ${patch} WHERE type = 'DiagnosticReport' AND id = $1`, [id]);
  await db.query(`UPDATE resource_history SET content = ${patch} WHERE type = 'DiagnosticReport' AND id = $1 AND version = 1`, [id]);
  const [o] = await db.query<{ id: string; raw: string }>('SELECT o.id, o.raw FROM report_original o JOIN report_version v ON v.original_id = o.id WHERE v.report_id = $1', [id]);
  // the original is stored sealed (server/privacy/): this forger holds the privacy key too, the worst case
  const codec = engineOf(db).codec;
  const bundle = JSON.parse(codec.openText(o!.raw));
  bundle.entry.find((e: any) => e.resource.resourceType === 'DiagnosticReport').resource.status = 'preliminary';
  const raw = codec.sealText(JSON.stringify(bundle));
  const forgedFp = fp(bundle, 'sm3');
  const [a] = await db.query<{ id: string; anchor: any; root: string; provenance_id: string }>('SELECT id, anchor, root, provenance_id FROM report_anchor WHERE report_id = $1', [id]);
  const realRoot = a!.root;
  // the forger rebuilds the batch's tree with the forged leaf (the audit path of this leaf stays the same)
  const leaves = await db.query<{ key: string; digest: string }>(
    'SELECT key, digest FROM anchor_outbox WHERE batch_id = (SELECT batch_id FROM anchor_outbox WHERE key = $1) ORDER BY leaf_index',
    [`DiagnosticReport/${id}/_history/1`]
  );
  const forgedRoot = buildAnchorTree(leaves.map((l) => (l.key === `DiagnosticReport/${id}/_history/1` ? forgedFp : l.digest))).root;
  const check0 = verifyAnchorProof(forgedFp, { ...a!.anchor.proof, root: forgedRoot });
  t_assert(check0.ok, 'the forged root holds over the stored audit path');
  const oldFp = a!.anchor.fingerprint as string;
  await db.query('UPDATE report_original SET raw = $2, raw_digest = $3, fingerprint = $4 WHERE id = $1', [o!.id, raw, sha256(raw), forgedFp]);
  await db.query('UPDATE report_version SET fingerprint = $2, root = $3 WHERE report_id = $1', [id, forgedFp, forgedRoot]);
  await db.query(
    `UPDATE report_anchor SET fingerprint = $2, root = $3, anchor = jsonb_set(jsonb_set(anchor, '{fingerprint}', to_jsonb($2::text)), '{proof,root}', to_jsonb($3::text))
      WHERE report_id = $1`,
    [id, forgedFp, forgedRoot]
  );
  await db.query(
    `UPDATE report_member m SET digest = encode(sha256(convert_to(r.content::text, 'UTF8')), 'hex')
       FROM resource r WHERE r.type = m.type AND r.id = m.id AND m.report_id = $1`,
    [id]
  );
  for (const table of ['resource', 'resource_history']) {
    await db.query(`UPDATE ${table} SET content = replace(replace(content::text, $2, $3), $4, $5)::jsonb WHERE type = 'Provenance' AND id = $1`, [a!.provenance_id, oldFp, forgedFp, realRoot, forgedRoot]);
  }
  await db.query(`UPDATE anchor_outbox SET digest = $2 WHERE key = $1`, [`DiagnosticReport/${id}/_history/1`, forgedFp]);
  // the forged report now looks right to every check that trusts the database
  const [check] = await db.query<{ ok: boolean }>(
    `SELECT encode(sha256(convert_to(o.raw, 'UTF8')), 'hex') = o.raw_digest AS ok FROM report_original o WHERE o.id = $1`,
    [o!.id]
  );
  t_assert(check!.ok === true, 'the original digest matches the forged original');
  return { forgedFp, forgedRoot, realRoot };
}

test.serial('the full forgery is inconsistent at the next $verify: the anchor transaction holds another root; the seals do not hold', async (t) => {
  const [id] = await platformAnchored('forge-verify');
  const read = await (await s.fhir(`DiagnosticReport/${id}`)).json();
  t.is(read.meta.tag?.[0]?.code, 'consistent', 'the badge shows before');
  const { forgedFp, forgedRoot, realRoot } = await forge(id!);

  const v = await verify(id!);
  t.is(v.status, 'inconsistent');
  t.true(
    v.reasons.some((r) => new RegExp(`transaction 0x[0-9a-f]{64} on the chain \\(block \\d+, node node-1\\) anchors root ${realRoot}, not the root ${forgedRoot} recomputed`).test(r)),
    v.reasons.join('\n')
  );
  t.true(v.reasons.some((r) => /the provenance record of this version .* was changed in the database behind the server's back: its keyed digest \(HMAC-SM3/.test(r)));
  t.true(v.reasons.some((r) => /the anchor record .* was changed in the database behind the server's back/.test(r)));
  const res = await s.fhir(`DiagnosticReport/${id}`);
  const forged = await res.json();
  t.is(forged.status, 'preliminary', 'the server serves what the database holds…');
  t.falsy(forged.meta.tag?.find((x: any) => x.code === 'consistent'), '…but no longer as hash consistent');
  t.not(forgedFp, realRoot);
});

test.serial('the full forgery is inconsistent at the next sweep, without a $verify', async (t) => {
  const ids = await platformAnchored('forge-sweep');
  await forge(ids[1]!);
  t.is((await stored(ids[1]!)).status, 'consistent', 'nothing noticed yet');
  const swept = await s.huren.provenance.sweep({ chain: true });
  t.true(swept.flagged >= 1);
  const after = await stored(ids[1]!);
  t.is(after.status, 'inconsistent');
  t.true(after.integrity.some((r) => /keyed digest \(HMAC-SM3, key outside the database\) no longer matches/.test(r)), after.integrity.join('\n'));
  for (const other of [ids[0]!, ids[2]!]) t.is((await stored(other)).status, 'consistent', 'the other reports of the batch are untouched');
});

test.serial('a forger who also removes the seals and marks the anchor pending is found too', async (t) => {
  const ids = await platformAnchored('unsealed');
  await forge(ids[0]!);
  await s.huren.db.query('UPDATE report_version SET seal = NULL WHERE report_id = $1', [ids[0]]);
  await s.huren.db.query('UPDATE report_anchor SET seal = NULL, found_seal = NULL, status = $2 WHERE report_id = $1', [ids[0], 'pending']);
  await s.huren.provenance.sweep();
  const st = await stored(ids[0]!);
  t.is(st.status, 'inconsistent');
  t.true(st.integrity.some((r) => /has no keyed digest \(seal\)/.test(r)));
  const v = await verify(ids[0]!);
  t.is(v.status, 'inconsistent');
  t.true(v.reasons.some((r) => /anchors root sm3:[0-9a-f]{64}, not the root/.test(r)), 'the chain itself contradicts the forged root');
});

test.serial('record keys rotate: earlier seals still verify, new records are sealed with the new key', async (t) => {
  const before = await platformAnchored('rotate-a');
  const kid = s.huren.provenance.recordKeys.rotate();
  t.is(kid, 'k2');
  const after = await platformAnchored('rotate-b');
  const seals = await s.huren.db.query<{ report_id: string; seal: string }>('SELECT report_id, seal FROM report_version WHERE report_id = ANY($1::text[])', [[before[0], after[0]]]);
  t.regex(seals.find((r) => r.report_id === before[0])!.seal, /^k1:[0-9a-f]{64}$/);
  t.regex(seals.find((r) => r.report_id === after[0])!.seal, /^k2:[0-9a-f]{64}$/);
  const swept = await s.huren.provenance.sweep();
  t.is(swept.flagged, 0, 'nothing flagged by the rotation');
  for (const id of [...before, ...after]) t.is((await verify(id)).status, 'consistent');
});

async function verifyParams(id: string): Promise<any> {
  const res = await s.fhir(`DiagnosticReport/${id}/$verify`);
  if (res.status !== 200) throw new Error(`$verify ${res.status}: ${await res.text()}`);
  return res.json();
}

const GY1 = { identifier: { system: 'urn:huren:org', value: 'gy1' } };

/** A report of gy1, anchored by the institution, its chain Provenance signed with `key`. */
async function signedUploadResponse(k: string, key: { privateKey: string }): Promise<Response> {
  const r = reportBundle(k);
  const f = fp(r.bundle, 'sm3');
  const receipt = await hospital.anchor({ records: [f] });
  const bundle = withProvenance(r, anchorOf(receipt, 0, f));
  bundle.entry.at(-1).resource.signature = [signFingerprint(f, key.privateKey, GY1)];
  return s.fhir('', { method: 'POST', json: bundle });
}

async function signedUpload(k: string, key: { privateKey: string }): Promise<string> {
  const res = await signedUploadResponse(k, key);
  t_assert(res.status === 200, `upload ${res.status}: ${await res.clone().text()}`);
  return reportIdOf(await res.json());
}

async function reportVersionCount(): Promise<number> {
  return (await s.huren.db.query<{ n: number }>('SELECT count(*)::int AS n FROM report_version'))[0]!.n;
}

test.serial('hospital signatures: a signature that does not verify for the performing institution is refused on intake (422 naming it); nothing is stored', async (t) => {
  const before = await reportVersionCount();
  const res = await signedUploadResponse('signed-wrong', keyB); // gy2's key on a gy1 report
  t.is(res.status, 422);
  const outcome = await res.json();
  t.deepEqual(outcome.issue[0].expression, ['Provenance.signature[0]']);
  t.regex(outcome.issue[0].details.text, /not the performing institution's: the signature does not verify over sm3:[0-9a-f]{64} with any key registered for the performing institution \(urn:huren:org\|gy1\)/);
  t.is(await reportVersionCount(), before, 'the report was not stored');

  // Bundle.signature (platform anchoring) the same way
  const r = reportBundle('bundle-wrong');
  const wrongBundle = await s.fhir('', { method: 'POST', json: { ...r.bundle, signature: signFingerprint(fp(r.bundle, 'sm3'), keyB.privateKey, GY1) } });
  t.is(wrongBundle.status, 422);
  t.deepEqual((await wrongBundle.json()).issue[0].expression, ['Bundle.signature']);
  // a signature over another fingerprint (the right key, the wrong report) too
  const other = reportBundle('bundle-other');
  const elsewhere = await s.fhir('', { method: 'POST', json: { ...other.bundle, signature: [signFingerprint(fp(r.bundle, 'sm3'), keyA.privateKey, GY1)] } });
  t.is(elsewhere.status, 422);
  t.deepEqual((await elsewhere.json()).issue[0].expression, ['Bundle.signature[0]']);
  t.is(await reportVersionCount(), before);

  // an institution without a registered key: its signature cannot be checked, so it is kept as it is
  const unregistered = reportBundle('bundle-no-key');
  const org = unregistered.bundle.entry.find((e: any) => e.resource.resourceType === 'Organization');
  org.resource.identifier = [{ system: 'urn:huren:org', value: 'gy9' }];
  org.request.ifNoneExist = 'identifier=urn:huren:org|gy9';
  const kept = await s.fhir('', { method: 'POST', json: { ...unregistered.bundle, signature: signFingerprint(fp(unregistered.bundle, 'sm3'), keyB.privateKey, { identifier: { system: 'urn:huren:org', value: 'gy9' } }) } });
  t.is(kept.status, 200);
  const nk = await verifyParams(reportIdOf(await kept.json()));
  t.is(value(param(nk, 'signature')), 'no-key');
  t.regex(value(param(nk, 'signatureReason')), /no signing key is registered for the performing institution/);
});

test.serial('hospital signatures: signed with the performing institution\'s key vs a wrong key are told apart by $verify; the check made on intake is reused unless asked to re-verify', async (t) => {
  const good = await signedUpload('signed-a', keyA);
  const forged = await signedUpload('signed-forged', keyA);
  await s.huren.provenance.verifyNow();

  const g = await verifyParams(good);
  t.is(value(param(g, 'status')), 'consistent');
  t.is(value(param(g, 'signature')), 'valid');
  t.is(value(param(g, 'signedByPerformer')), true);
  t.is(value(param(g, 'signedBy')), 'urn:huren:org|gy1');
  t.is(value(param(g, 'signatureKey')), 'gy1-2026');
  t.is(value(param(g, 'signatureCheckedOnIntake')), true, 'verified on intake: not verified again');
  const [recorded] = await s.huren.db.query<{ c: any }>('SELECT signature_check AS c FROM report_version WHERE report_id = $1', [good]);
  t.is(param(g, 'signatureCheckedAt').valueInstant, recorded!.c.checkedAt);
  const again = await (await s.fhir(`DiagnosticReport/${good}/$verify?reverify=true`)).json();
  t.is(value(param(again, 'signature')), 'valid');
  t.is(value(param(again, 'signatureCheckedOnIntake')), false, 'reverify=true runs the SM2 check now');
  t.true(param(again, 'signatureCheckedAt').valueInstant > recorded!.c.checkedAt);
  t.is((await s.fhir(`DiagnosticReport/${good}/$verify?reverify=maybe`)).status, 400);

  // a database forger swaps the stored signature for one made with another key: the recorded check no
  // longer applies (it was for another signature), the SM2 check runs and says invalid
  const [anchor] = await s.huren.db.query<{ signature: any }>('SELECT signature FROM report_anchor WHERE report_id = $1', [forged]);
  const f = anchor!.signature[0];
  const swapped = signFingerprint((await s.huren.db.query<{ fingerprint: string }>('SELECT fingerprint FROM report_version WHERE report_id = $1', [forged]))[0]!.fingerprint, keyB.privateKey, GY1);
  await s.huren.db.query('UPDATE report_anchor SET signature = $2 WHERE report_id = $1', [forged, JSON.stringify([{ ...f, data: swapped.data }])]);
  const w = await verifyParams(forged);
  t.is(value(param(w, 'status')), 'consistent', 'the hash is consistent: only the signer is wrong');
  t.is(value(param(w, 'signature')), 'invalid');
  t.is(value(param(w, 'signedByPerformer')), false);
  t.regex(value(param(w, 'signatureReason')), /does not verify over sm3:[0-9a-f]{64} with any key registered for the performing institution \(urn:huren:org\|gy1\)/);

  // a recorded check edited in the database (its seal no longer holds) is not trusted: checked again
  await s.huren.db.query(`UPDATE report_version SET signature_check = jsonb_set(signature_check, '{kid}', '"gy1-forged"') WHERE report_id = $1`, [good]);
  const edited = await verifyParams(good);
  t.is(value(param(edited, 'signature')), 'valid');
  t.is(value(param(edited, 'signatureKey')), 'gy1-2026');
  t.is(value(param(edited, 'signatureCheckedOnIntake')), false);

  // served: in the chain Provenance as stored, and in $original's headers
  const o = await s.fhir(`DiagnosticReport/${good}/$original`);
  t.regex(o.headers.get('huren-signature')!, /^alg=sm2-sm3; who=urn:huren:org\|gy1; data=[A-Za-z0-9+/]+=*$/);
  const provs = await (await s.fhir(`Provenance?target=DiagnosticReport/${good}`)).json();
  t.is(provs.entry[0].resource.signature[0].sigFormat, 'application/sm2-signature');
});

test.serial('hospital signatures: Bundle.signature on a platform-anchored report; unsigned; malformed is a 400; a forged original breaks the signature', async (t) => {
  const r = reportBundle('bundle-signed');
  const f = fp(r.bundle, 'sm3');
  const signed = { ...r.bundle, signature: signFingerprint(f, keyA.privateKey, GY1) };
  t.is(fp(signed, 'sm3'), f, 'Bundle.signature is outside the fingerprint');
  const res = await s.fhir('', { method: 'POST', json: signed });
  t.is(res.status, 200);
  const id = reportIdOf(await res.json());
  const plain = await s.fhir('', { method: 'POST', json: reportBundle('unsigned').bundle });
  const plainId = reportIdOf(await plain.json());
  await s.huren.provenance.anchorNow();
  const v = await verifyParams(id);
  t.is(value(param(v, 'status')), 'consistent');
  t.is(value(param(v, 'anchoredBy')), 'platform');
  t.is(value(param(v, 'signature')), 'valid');
  t.is(value(param(v, 'signedByPerformer')), true);
  const u = await verifyParams(plainId);
  t.is(value(param(u, 'signature')), 'absent');
  t.is(value(param(u, 'signedByPerformer')), false);

  const bad = { ...reportBundle('bad-signature').bundle, signature: { ...signFingerprint(f, keyA.privateKey, GY1), data: 'bm90IGEgc2lnbmF0dXJl' } };
  const refused = await s.fhir('', { method: 'POST', json: bad });
  t.is(refused.status, 400);
  const outcome = await refused.json();
  t.is(outcome.issue[0].expression[0], 'Bundle.signature');
  t.regex(outcome.issue[0].details.text, /not a DER-encoded SM2 signature/);

  // the database forger rewrites the original: the hospital's signature no longer covers what is stored
  await forge(id);
  const after = await verifyParams(id);
  t.is(value(param(after, 'status')), 'inconsistent');
  t.is(value(param(after, 'signature')), 'invalid');
});

test.serial('consistent → pending is logged and counted; an anchor found before and now gone is inconsistent at once', async (t) => {
  const [id] = await platformAnchored('vanish');
  const counted = s.huren.provenance.regressions;
  const alerts: string[] = [];
  const off = s.huren.provenance.onAlert((e) => alerts.push(`${e.reportId}:${e.from}->${e.to}`));
  await node.stop(); // the chain is unreachable: the check cannot confirm the anchor
  const down = await verify(id!);
  t.is(down.status, 'pending');
  t.true(down.reasons.some((r) => /not reachable|no chain node/.test(r)));
  t.true(s.huren.provenance.regressions > counted, 'counted');
  t.true(alerts.includes(`${id}:consistent->pending`), 'the alert hook was called');
  t.true(logs.some((l) => l.includes('hash status regressed: consistent → pending') && l.includes(id!)), 'logged');
  const metrics = await (await fetch(`${s.huren.url}/metrics`, { headers: { authorization: `Bearer ${s.token}` } })).text();
  t.regex(metrics, /huren_hash_status_regressions_total [1-9]/);
  off();

  // the chain comes back without the anchor (a fresh chain with the contract at the same address)
  await node.start();
  t.is(await deployContract(node), contract);
  const gone = await verify(id!);
  t.is(gone.status, 'inconsistent', 'not pending for 24 hours');
  t.true(gone.reasons.some((r) => /the chain held this anchor when it was checked before .* and no longer holds root/.test(r)), gone.reasons.join('\n'));
});

test('the embedded chain\'s read-only JSON-RPC listens on loopback only', (t) => {
  t.deepEqual(parseReadRpcAddress(undefined), { host: '127.0.0.1', port: 8546 });
  t.deepEqual(parseReadRpcAddress('9545'), { host: '127.0.0.1', port: 9545 });
  t.deepEqual(parseReadRpcAddress('[::1]:9545'), { host: '::1', port: 9545 });
  t.is(parseReadRpcAddress('off'), undefined);
  t.throws(() => parseReadRpcAddress('0.0.0.0:8546'), { message: /loopback only/ });
  t.throws(() => parseReadRpcAddress('eight'), { message: /is not off, <port> or <host>:<port>/ });
});
