import test from 'ava';
import { startTestServer, type TestServer } from './helpers/server.ts';

const patient = { resourceType: 'Patient', name: [{ family: '异步' }] };

async function pollUntilDone(s: TestServer, url: string): Promise<Response> {
  for (let i = 0; i < 200; i++) {
    const res = await fetch(url, { headers: { authorization: `Bearer ${s.token}` } });
    if (res.status !== 202) return res;
    t_assertProgress(res);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('job did not finish');
}

function t_assertProgress(res: Response): void {
  if (!res.headers.get('x-progress') || !res.headers.get('retry-after')) throw new Error('202 without X-Progress / Retry-After');
}

test('an operation with Prefer: respond-async answers 202, then the result in a batch-response', async (t) => {
  const s = await startTestServer();
  try {
    const kick = await s.fhir('Patient/$validate', { method: 'POST', json: { resourceType: 'Patient', birthDate: 'soon' }, headers: { prefer: 'respond-async' } });
    t.is(kick.status, 202);
    const url = kick.headers.get('content-location')!;
    t.regex(url, /\/fhir\/_async\/[0-9a-f-]{36}$/);
    const done = await pollUntilDone(s, url);
    t.is(done.status, 200);
    const bundle = await done.json();
    t.is(bundle.type, 'batch-response');
    t.is(bundle.entry[0].response.status, '200');
    t.is(bundle.entry[0].resource.resourceType, 'OperationOutcome');
    t.is(bundle.entry[0].resource.issue[0].severity, 'error');

    const sync = await s.fhir('Patient/$validate', { method: 'POST', json: patient });
    t.is(sync.status, 200, 'without the header the answer is synchronous');

    const tx = await s.fhir('', {
      method: 'POST',
      headers: { prefer: 'respond-async' },
      json: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: patient, request: { method: 'POST', url: 'Patient' } }] },
    });
    t.is(tx.status, 202);
    const txDone = await (await pollUntilDone(s, tx.headers.get('content-location')!)).json();
    t.is(txDone.entry[0].resource.type, 'transaction-response');
    t.is(txDone.entry[0].resource.entry[0].response.status, '201');

    const failing = await s.fhir('', { method: 'POST', headers: { prefer: 'respond-async' }, json: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Patient', gender: 1 }, request: { method: 'POST', url: 'Patient' } }] } });
    const failed = await (await pollUntilDone(s, failing.headers.get('content-location')!)).json();
    t.is(failed.entry[0].response.status, '400', 'a failed request is reported in the result, not as a poll error');
    t.is(failed.entry[0].resource.resourceType, 'OperationOutcome');

    t.is((await s.fhir('_async/00000000-0000-0000-0000-000000000000')).status, 404);
    t.is((await fetch(url)).status, 401, 'polling needs the token');
  } finally {
    await s.close();
  }
});

test('a queued request can be cancelled', async (t) => {
  const s = await startTestServer({ asyncConcurrency: 0 });
  try {
    const kick = await s.fhir('Patient/$validate', { method: 'POST', json: patient, headers: { prefer: 'respond-async' } });
    const url = kick.headers.get('content-location')!;
    const waiting = await fetch(url, { headers: { authorization: `Bearer ${s.token}` } });
    t.is(waiting.status, 202);
    t.is(waiting.headers.get('x-progress'), 'queued');
    const del = await fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${s.token}` } });
    t.is(del.status, 202);
    t.is((await fetch(url, { headers: { authorization: `Bearer ${s.token}` } })).status, 404);
    t.is((await fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${s.token}` } })).status, 404);
  } finally {
    await s.close();
  }
});

test('a job survives a server restart', async (t) => {
  const first = await startTestServer({ asyncConcurrency: 0 }, { persistent: true });
  const kick = await first.fhir('', {
    method: 'POST',
    headers: { prefer: 'respond-async' },
    json: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Patient', name: [{ family: '重启' }] }, request: { method: 'POST', url: 'Patient' } }] },
  });
  t.is(kick.status, 202);
  const path = new URL(kick.headers.get('content-location')!).pathname.replace(/^\/fhir\//, '');
  await first.close({ keepStore: true });

  const second = await startTestServer({ asyncConcurrency: 2, bootstrapToken: first.token }, { store: first.store });
  try {
    const done = await pollUntilDone(second, `${second.base}/${path}`);
    t.is(done.status, 200);
    const bundle = await done.json();
    const id = bundle.entry[0].resource.entry[0].resource.id;
    const read = await second.fhir(`Patient/${id}`);
    t.is((await read.json()).name[0].family, '重启');
  } finally {
    await second.close();
  }
});
