/**
 * The code upgrade (编码升级, issue 3): stored reports, results and orders coded with legacy price codes get
 * the national and platform codes, with a Provenance each; a second walk changes nothing; unmappable codes
 * are reported; a walk stopped early resumes from its checkpoint (operation and command); async progress.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { startTestServer, type TestServer } from './helpers/server.ts';

const BASE = 'https://fhir.huren.gz.cn';
const LEGACY = `${BASE}/CodeSystem/legacy-price-item`;
const NATIONAL = `${BASE}/CodeSystem/nhsa-service-item`;
const CATALOGUE = `${BASE}/CodeSystem/recognition-catalogue`;
const CBC = { legacy: '250101015', national: '002501010150000', platform: 'L-C0581225' };
const ECG_LEGACY = '310701001'; // mapped to a platform item that has no national code
const UNKNOWN_LEGACY = '999999999';

let s: TestServer;
let patient: string;
test.before(async () => {
  s = await startTestServer();
  patient = (await create({ resourceType: 'Patient', name: [{ family: '升级' }] })).id;
});
test.after.always(async () => {
  await s?.close();
});

async function create(resource: any): Promise<any> {
  const res = await s.fhir(resource.resourceType, { method: 'POST', json: resource });
  if (res.status !== 201) throw new Error(`create ${resource.resourceType}: ${res.status} ${await res.text()}`);
  return res.json();
}
const legacyReport = (code = CBC.legacy) => ({ resourceType: 'DiagnosticReport', status: 'final', subject: { reference: `Patient/${patient}` }, code: { coding: [{ system: LEGACY, code, display: '血细胞分析' }], text: '血常规' } });
async function upgrade(parameter: unknown[] = [], headers: Record<string, string> = {}) {
  const res = await s.fhir('$code-upgrade', { method: 'POST', json: { resourceType: 'Parameters', parameter }, headers });
  return { status: res.status, body: (await res.json()) as any, headers: res.headers };
}
const value = (body: any, name: string) => {
  const p = body.parameter?.find((x: any) => x.name === name);
  return p && (p.valueBoolean ?? p.valueInteger ?? p.valueString);
};
const unmapped = (body: any) =>
  new Map<string, { reason: string; count: number; examples: string[] }>(
    (body.parameter ?? [])
      .filter((p: any) => p.name === 'unmapped')
      .map((p: any) => {
        const part = (n: string) => p.part.filter((x: any) => x.name === n);
        return [part('code')[0].valueCoding.code, { reason: part('reason')[0].valueCode, count: part('count')[0].valueInteger, examples: part('example').map((e: any) => e.valueReference.reference) }];
      })
  );
async function provenancesOf(ref: string): Promise<any[]> {
  const res = await s.fhir(`Provenance?target=${encodeURIComponent(ref)}`);
  return (((await res.json()) as any).entry ?? []).map((e: any) => e.resource);
}
function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/catalogue-upgrade.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

test.serial('a report coded only with a legacy code gets national + platform codes and a Provenance; a second walk changes nothing', async (t) => {
  const report = await create(legacyReport());
  const already = await create({ ...legacyReport(), code: { coding: [{ system: LEGACY, code: CBC.legacy }, { system: NATIONAL, code: CBC.national }, { system: CATALOGUE, code: CBC.platform }] } });
  const ecg = await create({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: LEGACY, code: ECG_LEGACY }] } });
  const order = await create({ resourceType: 'ServiceRequest', status: 'active', intent: 'order', subject: { reference: `Patient/${patient}` }, code: { coding: [{ system: LEGACY, code: UNKNOWN_LEGACY }] } });
  const other = await create({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '718-7' }] } });

  const first = await upgrade();
  t.is(first.status, 200, JSON.stringify(first.body));
  t.true(value(first.body, 'complete'));
  t.is(value(first.body, 'total'), 4, 'the resources with legacy codes');
  t.is(value(first.body, 'scanned'), 4);
  t.is(value(first.body, 'upgraded'), 2, 'the legacy-only report and the ECG observation');
  t.is(value(first.body, 'unchanged'), 2);

  const upgraded = (await (await s.fhir(`DiagnosticReport/${report.id}`)).json()) as any;
  t.is(upgraded.meta.versionId, '2');
  t.deepEqual(upgraded.code.coding, [
    { system: LEGACY, code: CBC.legacy, display: '血细胞分析' },
    { system: NATIONAL, code: CBC.national, display: '血细胞分析' },
    { system: CATALOGUE, code: CBC.platform, display: '血细胞分析' },
  ]);
  t.is(upgraded.code.text, '血常规', 'the rest of the resource is kept');
  const [prov, ...more] = await provenancesOf(`DiagnosticReport/${report.id}`);
  t.is(more.length, 0);
  t.deepEqual(prov.target, [{ reference: `DiagnosticReport/${report.id}/_history/2` }]);
  t.deepEqual(prov.entity, [{ role: 'revision', what: { reference: `DiagnosticReport/${report.id}/_history/1` } }]);
  t.true(prov.activity.coding.some((c: any) => c.system === `${BASE}/CodeSystem/platform-activity` && c.code === 'code-upgrade'));
  t.true(prov.agent.some((a: any) => a.who.identifier?.value === 'huren'), 'the platform is the agent');
  t.regex(prov.policy[0], /ConceptMap\/legacy-national-platform\|/);
  // the original version is still there
  const v1 = (await (await s.fhir(`DiagnosticReport/${report.id}/_history/1`)).json()) as any;
  t.deepEqual(v1.code.coding, [{ system: LEGACY, code: CBC.legacy, display: '血细胞分析' }]);

  t.is(((await (await s.fhir(`DiagnosticReport/${already.id}`)).json()) as any).meta.versionId, '1', 'already upgraded: untouched');
  t.is((await provenancesOf(`DiagnosticReport/${already.id}`)).length, 0);
  const ecgAfter = (await (await s.fhir(`Observation/${ecg.id}`)).json()) as any;
  t.deepEqual(ecgAfter.code.coding.map((c: any) => c.system), [LEGACY, CATALOGUE], 'no national code is known for it');
  t.is(((await (await s.fhir(`Observation/${other.id}`)).json()) as any).meta.versionId, '1');

  const notMapped = unmapped(first.body);
  t.deepEqual(notMapped.get(UNKNOWN_LEGACY), { reason: 'unmapped', count: 1, examples: [`ServiceRequest/${order.id}`] });
  t.is(notMapped.get(ECG_LEGACY)?.reason, 'no-national');
  t.false(notMapped.has(CBC.legacy));
  t.is(((await (await s.fhir(`ServiceRequest/${order.id}`)).json()) as any).meta.versionId, '1');

  const second = await upgrade();
  t.true(value(second.body, 'complete'));
  t.not(value(second.body, 'job'), value(first.body, 'job'), 'a finished walk is not continued: a new one starts');
  t.is(value(second.body, 'upgraded'), 0, 'the second walk changes nothing');
  t.is(value(second.body, 'unchanged'), 4);
  t.is(((await (await s.fhir(`DiagnosticReport/${report.id}`)).json()) as any).meta.versionId, '2');
  t.is((await provenancesOf(`DiagnosticReport/${report.id}`)).length, 1);
  t.is(unmapped(second.body).get(UNKNOWN_LEGACY)?.count, 1, 'the unmappable code is still reported');
});

test.serial('a walk stopped early continues from its checkpoint (operation)', async (t) => {
  const reports = [];
  for (let i = 0; i < 5; i++) reports.push(await create(legacyReport()));
  const first = await upgrade([{ name: 'limit', valueInteger: 3 }, { name: 'batchSize', valueInteger: 2 }]);
  t.false(value(first.body, 'complete'));
  t.is(value(first.body, 'runScanned'), 3);
  const job = value(first.body, 'job');
  const second = await upgrade([{ name: 'batchSize', valueInteger: 2 }]);
  t.is(value(second.body, 'job'), job, 'the same walk');
  t.true(value(second.body, 'complete'));
  t.is(value(second.body, 'scanned'), value(second.body, 'total'), 'every resource examined once over the two calls');
  t.is(value(second.body, 'upgraded'), 5);
  for (const r of reports) {
    const now = (await (await s.fhir(`DiagnosticReport/${r.id}`)).json()) as any;
    t.is(now.meta.versionId, '2');
    t.is(now.code.coding.length, 3);
    t.is((await provenancesOf(`DiagnosticReport/${r.id}`)).length, 1, 'one Provenance, whichever call upgraded it');
  }
  // a named walk that is finished answers its report without doing anything
  const again = await upgrade([{ name: 'job', valueString: job }]);
  t.true(value(again.body, 'complete'));
  t.is(value(again.body, 'runScanned'), 0);
});

test.serial('the command: progress, stop with --limit (exit 4), resume (exit 1: a code is unmapped)', async (t) => {
  for (let i = 0; i < 4; i++) await create(legacyReport());
  const stopped = await runCli(['--server', s.base, '--token', s.token, '--limit', '2', '--batch-size', '1', '--restart']);
  t.is(stopped.code, 4, stopped.stderr);
  t.regex(stopped.stdout, /stopped at 2\/\d+; run the command again/);
  t.regex(stopped.stderr, /progress: upgrade \d+\/\d+/);
  const job = /code upgrade (\S+):/.exec(stopped.stdout)?.[1];
  const resumed = await runCli(['--server', s.base, '--token', s.token]);
  t.is(resumed.code, 1, resumed.stderr);
  t.regex(resumed.stdout, new RegExp(`code upgrade ${job}: complete`));
  t.regex(resumed.stdout, /whole walk: \d+ examined, 4 upgraded/);
  t.regex(resumed.stdout, new RegExp(`${UNKNOWN_LEGACY} unmapped ×1 e\\.g\\. ServiceRequest/`));
});

test.serial('Prefer: respond-async runs the upgrade as a job with X-Progress', async (t) => {
  for (let i = 0; i < 8; i++) await create({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: LEGACY, code: CBC.legacy }] } });
  const kick = await upgrade([{ name: 'batchSize', valueInteger: 1 }, { name: 'type', valueCode: 'Observation' }, { name: 'restart', valueBoolean: true }], { prefer: 'respond-async' });
  t.is(kick.status, 202);
  const poll = kick.headers.get('content-location') as string;
  const seen: string[] = [];
  let done: any;
  for (let i = 0; i < 600 && !done; i++) {
    const res = await fetch(poll, { headers: { authorization: `Bearer ${s.token}` } });
    if (res.status === 202) seen.push(res.headers.get('x-progress') as string);
    else done = await res.json();
    await new Promise((r) => setTimeout(r, 20));
  }
  t.truthy(done, 'the job finished');
  t.true(seen.some((p) => /^upgrade \d+\/\d+$/.test(p)), `progress seen: ${[...new Set(seen)].join(', ')}`);
  const result = done.entry[0].resource;
  t.true(value(result, 'complete'));
  t.is(value(result, 'upgraded'), 8);
});

test.serial('bad input: 4xx OperationOutcomes naming the parameter', async (t) => {
  const cases: [unknown[], number, string][] = [
    [[{ name: 'type', valueCode: 'Patient' }], 400, 'type'],
    [[{ name: 'limit', valueInteger: 0 }], 400, 'limit'],
    [[{ name: 'batchSize', valueString: 'many' }], 400, 'batchSize'],
    [[{ name: 'job', valueString: 'no-such-walk' }], 404, 'job'],
    [[{ name: 'job', valueString: 'x' }, { name: 'restart', valueBoolean: true }], 400, 'restart'],
  ];
  for (const [parameter, status, name] of cases) {
    const res = await upgrade(parameter);
    t.is(res.status, status, JSON.stringify(parameter));
    t.is(res.body.resourceType, 'OperationOutcome');
    t.deepEqual(res.body.issue[0].expression, [`Parameters.parameter.where(name='${name}')`]);
  }
  t.is((await s.fhir('$code-upgrade')).status, 405);
  t.is((await s.fhir('DiagnosticReport/$code-upgrade', { method: 'POST', json: { resourceType: 'Parameters' } })).status, 404, 'system level only');
});

test.serial("the CapabilityStatement lists the administrators' operations", async (t) => {
  const cs = (await (await fetch(`${s.base}/metadata`)).json()) as any;
  const system = new Map<string, string>(cs.rest[0].operation.map((o: any) => [o.name, o.definition]));
  t.is(system.get('code-upgrade'), `${BASE}/OperationDefinition/code-upgrade`);
  const ops = (type: string) => new Set<string>(cs.rest[0].resource.find((r: any) => r.type === type).operation.map((o: any) => o.name));
  t.true(ops('CodeSystem').has('catalogue-import'));
  for (const name of ['entries', 'entry-status', 'entry-history']) t.true(ops('ConceptMap').has(name), name);
  t.true(ops('Organization').has('dictionary-qc'));
  t.false(ops('Patient').has('dictionary-qc'));
});
