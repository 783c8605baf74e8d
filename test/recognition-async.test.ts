/**
 * The FHIR asynchronous request pattern for the recognition checks, end to end (issue 4, must-show 2):
 * 202 + Content-Location, polling with X-Progress / Retry-After, the result in a batch-response, cancel,
 * and a queued check that survives a server restart — a cancelled one never runs and writes no reminder.
 */
import test from 'ava';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { countOf, ITEM, CATALOGUE, NATIONAL_ID, param, params, part, requesterOf, seedScenario } from './helpers/recognition-data.ts';

const auth = (s: TestServer) => ({ authorization: `Bearer ${s.token}` });

async function pollUntilDone(s: TestServer, url: string): Promise<Response> {
  for (let i = 0; i < 400; i++) {
    const res = await fetch(url, { headers: auth(s) });
    if (res.status !== 202) return res;
    if (!res.headers.get('x-progress') || !res.headers.get('retry-after')) throw new Error('202 without X-Progress / Retry-After');
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('job did not finish');
}

test('recognition and duplicate checks with Prefer: respond-async answer 202, then the same result as synchronously', async (t) => {
  const s = await startTestServer();
  try {
    const d = await seedScenario(s);
    const path = `Patient/${d.patient}/$recognition-check?requester=Organization/${d.org['req-gz']}`;
    const before = await countOf(s, 'DetectedIssue');
    const kick = await s.fhir(path, { headers: { prefer: 'respond-async' } });
    t.is(kick.status, 202);
    const url = kick.headers.get('content-location') as string;
    t.regex(url, /\/fhir\/_async\/[0-9a-f-]{36}$/);
    const done = await pollUntilDone(s, url);
    t.is(done.status, 200);
    const bundle = await done.json();
    t.is(bundle.type, 'batch-response');
    t.is(bundle.entry[0].response.status, '200');
    const asyncResult = bundle.entry[0].resource;
    t.is(asyncResult.resourceType, 'Parameters');
    t.is(param(asyncResult, 'exists').valueBoolean, true);
    t.is(await countOf(s, 'DetectedIssue'), before + 1, 'the job wrote the encounter reminder');
    const reminder = await (await s.fhir(param(asyncResult, 'reminder').valueReference.reference)).json();
    t.is(reminder.code.coding[0].code, 'encounter-reminder');

    const sync = await (await s.fhir(path)).json();
    const keys = (b: any) => params(b, 'result').map((r: any) => `${part(r, 'report').valueReference.reference} ${part(r, 'item').valueCoding.code}`).sort();
    t.deepEqual(keys(asyncResult), keys(sync));

    // POST duplicate check, asynchronously
    const dupKick = await s.fhir('ServiceRequest/$duplicate-check', {
      method: 'POST',
      headers: { prefer: 'respond-async' },
      json: {
        resourceType: 'Parameters',
        parameter: [
          { name: 'order', resource: { resourceType: 'ServiceRequest', status: 'draft', intent: 'order', code: { coding: [{ system: CATALOGUE, code: ITEM.potassium }] }, subject: { identifier: { system: NATIONAL_ID, value: d.nationalId } } } },
          { name: 'requester', valueReference: { reference: `Organization/${d.org['req-gz']}` } },
        ],
      },
    });
    t.is(dupKick.status, 202);
    const dup = await (await pollUntilDone(s, dupKick.headers.get('content-location') as string)).json();
    t.is(part(param(dup.entry[0].resource, 'item'), 'duplicate').valueBoolean, true);

    // a bad request run as a job: its answer is the 4xx, and nothing is written
    const count = await countOf(s, 'DetectedIssue');
    const badKick = await s.fhir(`Patient/no-such-patient/$recognition-check?requester=Organization/${d.org['req-gz']}`, { headers: { prefer: 'respond-async' } });
    t.is(badKick.status, 202);
    const bad = await (await pollUntilDone(s, badKick.headers.get('content-location') as string)).json();
    t.is(bad.entry[0].response.status, '404');
    t.is(bad.entry[0].resource.resourceType, 'OperationOutcome');
    t.deepEqual(bad.entry[0].resource.issue[0].expression, ['patient']);
    t.is(await countOf(s, 'DetectedIssue'), count);
  } finally {
    await s.close();
  }
});

test('a queued check can be cancelled; another survives a restart and runs on the new server', async (t) => {
  const first = await startTestServer({ asyncConcurrency: 0 }, { persistent: true });
  let second: TestServer | undefined;
  try {
    const d = await seedScenario(first);
    const before = await countOf(first, 'DetectedIssue');
    const cancelled = await first.fhir(`Patient/${d.patient}/$recognition-check?requester=Organization/${d.org['req-fs']}`, { headers: { prefer: 'respond-async' } });
    const kept = await first.fhir(`Patient/$recognition-check?identifier=${encodeURIComponent(`${NATIONAL_ID}|${d.nationalId}`)}&requester=Organization/${d.org['req-gz']}`, {
      headers: { prefer: 'respond-async' },
    });
    t.is(cancelled.status, 202);
    t.is(kept.status, 202);
    const cancelledUrl = cancelled.headers.get('content-location') as string;
    const queued = await fetch(cancelledUrl, { headers: auth(first) });
    t.is(queued.status, 202);
    t.is(queued.headers.get('x-progress'), 'queued');
    t.is((await fetch(cancelledUrl, { method: 'DELETE', headers: auth(first) })).status, 202);
    t.is((await fetch(cancelledUrl, { headers: auth(first) })).status, 404);
    const cancelledPath = new URL(cancelledUrl).pathname.replace(/^\/fhir\//, '');
    const keptPath = new URL(kept.headers.get('content-location') as string).pathname.replace(/^\/fhir\//, '');
    await first.close({ keepStore: true });

    second = await startTestServer({ asyncConcurrency: 2, bootstrapToken: first.token }, { store: first.store });
    const done = await pollUntilDone(second, `${second.base}/${keptPath}`);
    t.is(done.status, 200);
    const result = (await done.json()).entry[0].resource;
    t.is(param(result, 'exists').valueBoolean, true);
    const reminder = await (await second.fhir(param(result, 'reminder').valueReference.reference)).json();
    t.is(requesterOf(reminder), `Organization/${d.org['req-gz']}`);
    t.is((await second.fhir(cancelledPath)).status, 404, 'the cancelled job stays cancelled');
    t.is(await countOf(second, 'DetectedIssue'), before + 1, 'only the job that ran wrote a reminder');
  } finally {
    if (second) await second.close();
    else await first.close();
  }
});
