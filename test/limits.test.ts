/**
 * Hostile input never takes the platform down (issue 12): every case found by the attack run, as a test on
 * both stores. The limits are the defaults (server/fhir/limits.ts), except where a test needs a small one.
 */
import test from 'ava';
import { randomUUID } from 'node:crypto';
import { startTestServer, storeKind, type TestServer } from './helpers/server.ts';
import { DEFAULT_LIMITS } from '../server/fhir/limits.ts';
import { statusOf } from '../server/fhir/errors.ts';
import { readFileSync } from 'node:fs';
import { loadConfig, type Config } from '../server/config.ts';

let s: TestServer;
test.before(async () => {
  s = await startTestServer();
});
test.after.always(async () => {
  await s?.close();
});

const HUGE = '99999999999999999999';

async function outcome(res: Response): Promise<{ code: string; text: string; expression: string[] }> {
  const body = await res.json();
  if (body.resourceType !== 'OperationOutcome') throw new Error(`expected an OperationOutcome, got ${body.resourceType}`);
  const issue = body.issue[0];
  return { code: issue.code, text: issue.details?.text ?? issue.diagnostics ?? '', expression: issue.expression ?? [] };
}

async function healthy(server: TestServer): Promise<boolean> {
  const res = await fetch(`${server.huren.url}/healthz`, { signal: AbortSignal.timeout(5000) });
  return res.status === 200;
}

async function resourceCount(type: string): Promise<number> {
  const res = await s.fhir(`${type}?_summary=count`);
  return (await res.json()).total;
}

function patch(path: string, ops: unknown) {
  return s.fhir(path, { method: 'PATCH', body: JSON.stringify(ops), headers: { 'content-type': 'application/json-patch+json' } });
}

test.serial('_offset beyond the maximum is a 400 on search and _history, on a disk-backed store too, and the server answers on', async (t) => {
  const disk = storeKind() === 'pglite' ? await startTestServer({}, { persistent: true }) : s;
  try {
    // an ordinary sequence of earlier requests first
    for (let i = 0; i < 5; i++) await disk.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', name: [{ family: `o${i}` }] } });
    await disk.fhir('Patient?name=o');
    for (const path of [`Patient?_offset=${HUGE}`, `_history?_offset=${HUGE}`, `Patient/_history?_offset=${HUGE}`, 'Patient?_offset=9223372036854775807', 'Patient?_offset=10001', '_history?_offset=10001', `Patient?_count=${HUGE}`, '_history?_count=1001']) {
      const res = await disk.fhir(path);
      t.is(res.status, 400, path);
      const o = await outcome(res);
      t.is(o.code, 'too-costly', path);
      t.true(o.expression[0] === '_offset' || o.expression[0] === '_count', path);
      t.true(await healthy(disk), path);
    }
    t.is((await disk.fhir('Patient?_offset=10000')).status, 200);
    t.is((await disk.fhir('Patient?_count=1')).status, 200);
  } finally {
    if (disk !== s) await disk.close();
  }
});

test.serial('_has nested beyond the limit is a 400 too-costly naming the parameter; within it, the search runs', async (t) => {
  const nested = (n: number) => `Patient?${'_has:Patient:link:'.repeat(n)}name=x`;
  const within = await s.fhir(nested(4));
  t.is(within.status, 200, await within.clone().text());
  const beyond = await s.fhir(nested(5));
  t.is(beyond.status, 400);
  const outcome = (await beyond.json()) as any;
  t.is(outcome.issue[0].code, 'too-costly');
  t.regex(outcome.issue[0].details.text, /nested 5 levels deep; at most 4/);
  t.true(outcome.issue[0].expression[0].startsWith('_has:Patient:link:_has:'));
  t.is((await s.fhir(nested(110))).status, 400, 'the depth that once hung the embedded store never reaches it');
});

test.serial('deep pages beyond the largest _offset go on through the next link (a cursor), without gaps or repeats', async (t) => {
  const small = await startTestServer({ limits: { ...DEFAULT_LIMITS, maxOffset: 4 } });
  try {
    const tag = randomUUID();
    const entry = Array.from({ length: 11 }, (_, i) => ({ resource: { resourceType: 'Patient', identifier: [{ system: 'urn:deep', value: `${tag}-${i}` }] }, request: { method: 'POST', url: 'Patient' } }));
    t.is((await small.fhir('', { method: 'POST', json: { resourceType: 'Bundle', type: 'transaction', entry } })).status, 200);
    const seen: string[] = [];
    let url: string | undefined = `${small.base}/Patient?identifier=urn:deep|&_count=3`;
    let pages = 0;
    while (url && pages < 10) {
      const res: Response = await fetch(url, { headers: { authorization: `Bearer ${small.token}` } });
      t.is(res.status, 200, url);
      const page = await res.json();
      for (const e of page.entry ?? []) seen.push(e.resource.id);
      url = page.link.find((l: { relation: string }) => l.relation === 'next')?.url;
      if (pages >= 2) t.true(!url || url.includes('_cursor='), 'beyond _offset 4 the next link carries a cursor');
      pages++;
    }
    t.is(seen.length, 11);
    t.is(new Set(seen).size, 11);
    // the history pages the same way: every version once, newest first
    await small.fhir(`Patient/${seen[0]}`, { method: 'PUT', json: { resourceType: 'Patient', id: seen[0], active: true } });
    const versions: string[] = [];
    let hist: string | undefined = `${small.base}/Patient/_history?_count=3`;
    for (let n = 0; hist && n < 10; n++) {
      const res: Response = await fetch(hist, { headers: { authorization: `Bearer ${small.token}` } });
      t.is(res.status, 200, hist);
      const page = await res.json();
      for (const e of page.entry ?? []) versions.push(`${e.fullUrl}|${e.response.etag}`);
      hist = page.link.find((l: { relation: string }) => l.relation === 'next')?.url;
      if (n >= 2) t.true(!hist || hist.includes('_cursor='), 'beyond _offset 4 the history next link carries a cursor');
    }
    t.is(versions.length, 12);
    t.is(new Set(versions).size, 12);
    t.is((await small.fhir(`Patient/_history?_cursor=${Buffer.from(JSON.stringify(['2020-01-01 00:00:00+00', 'x'])).toString('base64url')}`)).status, 400);
    t.is((await small.fhir('Patient?_cursor=bm9wZQ')).status, 400);
    t.is((await small.fhir(`Patient?_cursor=${Buffer.from(JSON.stringify(['2020-01-01 00:00:00+00', 'x'])).toString('base64url')}&_sort=_id`)).status, 400);
  } finally {
    await small.close();
  }
});

test.serial('a batch of 5,000 searches of 1,000 is refused with 413 too-costly, and the process lives on', async (t) => {
  const entry = Array.from({ length: 5000 }, () => ({ request: { method: 'GET', url: 'Patient?_count=1000' } }));
  const res = await s.fhir('', { method: 'POST', json: { resourceType: 'Bundle', type: 'batch', entry } });
  t.is(res.status, 413);
  const o = await outcome(res);
  t.is(o.code, 'too-costly');
  t.deepEqual(o.expression, ['Bundle.entry']);
  t.true(await healthy(s));
});

test.serial('a batch whose answers together pass the limit of resources per answer is a 422 too-costly naming the entry', async (t) => {
  const small = await startTestServer({ limits: { ...DEFAULT_LIMITS, maxAnswerEntries: 25 } });
  try {
    const entry = Array.from({ length: 12 }, (_, i) => ({ resource: { resourceType: 'Patient', name: [{ family: `b${i}` }] }, request: { method: 'POST', url: 'Patient' } }));
    await small.fhir('', { method: 'POST', json: { resourceType: 'Bundle', type: 'transaction', entry } });
    const gets = Array.from({ length: 3 }, () => ({ request: { method: 'GET', url: 'Patient?_count=10' } }));
    const ok = await small.fhir('', { method: 'POST', json: { resourceType: 'Bundle', type: 'batch', entry: gets.slice(0, 2) } });
    t.is(ok.status, 200);
    const res = await small.fhir('', { method: 'POST', json: { resourceType: 'Bundle', type: 'batch', entry: gets } });
    t.is(res.status, 422);
    const o = await outcome(res);
    t.is(o.code, 'too-costly');
    t.deepEqual(o.expression, ['Bundle.entry[2]']);
    // a single page with its includes counts too
    const inc = await small.fhir('Patient?_count=30');
    t.is(inc.status, 200); // 12 Patients: within the limit
  } finally {
    await small.close();
  }
});

test.serial('a Patient with 200,000 identifiers or 1,000,000 given names is refused with 413 naming the array, quickly', async (t) => {
  const before = await resourceCount('Patient');
  const identifiers = { resourceType: 'Patient', identifier: Array.from({ length: 200_000 }, (_, i) => ({ system: 'urn:x', value: String(i) })) };
  const r1 = await s.fhir('Patient', { method: 'POST', json: identifiers });
  t.is(r1.status, 413);
  const o1 = await outcome(r1);
  t.is(o1.code, 'too-costly');
  t.deepEqual(o1.expression, ['identifier']);
  const names = { resourceType: 'Patient', name: [{ family: 'x', given: Array.from({ length: 1_000_000 }, () => 'g') }] };
  const r2 = await s.fhir('Patient', { method: 'POST', json: names });
  t.is(r2.status, 413);
  t.deepEqual((await outcome(r2)).expression, ['name[0].given']);
  t.is(await resourceCount('Patient'), before);
});

test.serial('a resource needing more search-index rows than the limit is a 422; the indexer no longer overflows on long lists', async (t) => {
  const small = await startTestServer({ limits: { ...DEFAULT_LIMITS, maxArrayLength: 200_000, maxIndexRows: 500 } });
  try {
    const many = { resourceType: 'Patient', identifier: Array.from({ length: 501 }, (_, i) => ({ system: 'urn:x', value: String(i) })) };
    const res = await small.fhir('Patient', { method: 'POST', json: many });
    t.is(res.status, 422);
    t.is((await outcome(res)).code, 'too-costly');
    const fits = { resourceType: 'Patient', identifier: Array.from({ length: 400 }, (_, i) => ({ system: 'urn:x', value: String(i) })) };
    t.is((await small.fhir('Patient', { method: 'POST', json: fits })).status, 201);
  } finally {
    await small.close();
  }
});

test.serial('JSON Patch of the whole document or through __proto__ is a 400 naming the operation; nothing changes', async (t) => {
  const created = await (await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', active: true } })).json();
  const cases: [unknown, string][] = [
    [[{ op: 'remove', path: '' }], 'Patch[0].path'],
    [[{ op: 'replace', path: '', value: {} }], 'Patch[0].path'],
    [[{ op: 'add', path: '/__proto__/polluted', value: true }], 'Patch[0].path'],
    [[{ op: 'add', path: '/active', value: false }, { op: 'replace', path: '/constructor/prototype/x', value: 1 }], 'Patch[1].path'],
    [[{ op: 'copy', from: '/__proto__', path: '/x' }], 'Patch[0].from'],
    [[{ op: 'add', path: 'active', value: false }], 'Patch[0].path'],
    [[{ op: 'add', path: '/active' }], 'Patch[0].value'],
    [[null], 'Patch[0]'],
  ];
  for (const [ops, where] of cases) {
    const res = await patch(`Patient/${created.id}`, ops);
    t.is(res.status, 400, JSON.stringify(ops));
    t.deepEqual((await outcome(res)).expression, [where], JSON.stringify(ops));
  }
  t.is(({} as Record<string, unknown>).polluted, undefined);
  const now = await (await s.fhir(`Patient/${created.id}`)).json();
  t.is(now.meta.versionId, '1');
  const unapplicable = await patch(`Patient/${created.id}`, [{ op: 'remove', path: '/name/5' }]);
  t.true(unapplicable.status === 400 || unapplicable.status === 422);
});

test.serial('a transaction with a dangling urn:uuid reference or a repeated fullUrl is a 400 naming the entry; nothing is written', async (t) => {
  const before = await resourceCount('Observation');
  const patient = `urn:uuid:${randomUUID()}`;
  const obs = (ref: string) => ({ resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: ref } }, request: { method: 'POST', url: 'Observation' } });
  const dangling = await s.fhir('', {
    method: 'POST',
    json: { resourceType: 'Bundle', type: 'transaction', entry: [{ fullUrl: patient, resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient' } }, obs(patient), obs(`urn:uuid:${randomUUID()}`)] },
  });
  t.is(dangling.status, 400);
  const o = await outcome(dangling);
  t.deepEqual(o.expression, ['Bundle.entry[2].resource.subject.reference']);
  const repeated = await s.fhir('', {
    method: 'POST',
    json: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: patient, resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient' } },
        { fullUrl: patient, resource: { resourceType: 'Patient', active: true }, request: { method: 'POST', url: 'Patient' } },
        obs(patient),
      ],
    },
  });
  t.is(repeated.status, 400);
  t.deepEqual((await outcome(repeated)).expression, ['Bundle.entry[1].fullUrl']);
  t.is(await resourceCount('Observation'), before);
  // a batch entry (no transaction to resolve it in) with a local reference is refused on its own
  const batch = await (await s.fhir('', { method: 'POST', json: { resourceType: 'Bundle', type: 'batch', entry: [obs(`urn:uuid:${randomUUID()}`)] } })).json();
  t.is(batch.entry[0].response.status, '400');
  t.is(await resourceCount('Observation'), before);
});

test.serial('a single create resolves a conditional reference, or refuses it when it matches none or several', async (t) => {
  const system = `urn:test:${randomUUID()}`;
  const p = await (await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', identifier: [{ system, value: '1' }] } })).json();
  const obs = (ref: string) => ({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: ref } });
  const ok = await s.fhir('Observation', { method: 'POST', json: obs(`Patient?identifier=${encodeURIComponent(`${system}|1`)}`) });
  t.is(ok.status, 201);
  t.is((await ok.json()).subject.reference, `Patient/${p.id}`);
  const before = await resourceCount('Observation');
  const none = await s.fhir('Observation', { method: 'POST', json: obs(`Patient?identifier=${encodeURIComponent(`${system}|2`)}`) });
  t.is(none.status, 404);
  t.deepEqual((await outcome(none)).expression, ['Observation.subject.reference']);
  await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', identifier: [{ system, value: '3' }] } });
  await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', identifier: [{ system, value: '3' }] } });
  const several = await s.fhir('Observation', { method: 'POST', json: obs(`Patient?identifier=${encodeURIComponent(`${system}|3`)}`) });
  t.is(several.status, 412);
  const unknownParam = await s.fhir('Observation', { method: 'POST', json: obs('Patient?nope=1') });
  t.is(unknownParam.status, 400);
  // an update resolves it the same way
  const put = await s.fhir(`Observation/${randomUUID()}`, { method: 'PUT', json: { ...obs(`Patient?identifier=${encodeURIComponent(`${system}|1`)}`), id: 'x' } });
  t.is(put.status, 400); // id mismatch first
  const id = randomUUID();
  const put2 = await s.fhir(`Observation/${id}`, { method: 'PUT', json: { ...obs(`Patient?identifier=${encodeURIComponent(`${system}|1`)}`), id } });
  t.is(put2.status, 201);
  t.is((await put2.json()).subject.reference, `Patient/${p.id}`);
  t.is(await resourceCount('Observation'), before + 1);
});

test.serial('malformed references (no id, bad ids, no type) are 400s naming the element', async (t) => {
  const before = await resourceCount('Observation');
  for (const ref of ['Patient/', 'Patient/a b', `Patient/${'x'.repeat(65)}`, 'Patient', '/Patient/1', 'patient/1', 'Nope/1', 'Patient/1/_history/', '']) {
    const res = await s.fhir('Observation', { method: 'POST', json: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: ref } } });
    t.is(res.status, 400, ref);
    const o = await outcome(res);
    t.true(o.expression.some((e) => e.startsWith('Observation.subject')), `${ref}: ${o.expression}`);
  }
  for (const ref of ['Patient/p-1', 'Patient/p.1/_history/2', 'https://other.example/fhir/Patient/9', '#c1']) {
    const body: Record<string, unknown> = { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: ref } };
    if (ref === '#c1') body.contained = [{ resourceType: 'Patient', id: 'c1' }];
    t.is((await s.fhir('Observation', { method: 'POST', json: body })).status, 201, ref);
  }
  t.is(await resourceCount('Observation'), before + 4);
});

test.serial('a statement running past the statement timeout is cancelled and answered 503, and the server answers on', async (t) => {
  const timed = await startTestServer({ statementTimeoutMs: 300 });
  try {
    if (storeKind() === 'postgres') {
      const err = await t.throwsAsync(timed.huren.db.query('SELECT pg_sleep(3)'));
      t.is((err as Error & { code?: string }).code, '57014');
      t.is(statusOf(err), 503);
    } else {
      // PGlite cannot interrupt a statement (docs/running.md): the bounds on each request's work are its defence
      t.is(statusOf(Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' })), 503);
    }
    t.is((await timed.fhir('Patient?_count=1')).status, 200);
    t.true(await healthy(timed));
  } finally {
    await timed.close();
  }
});

test('docs/fhir-api.md lists every configurable bound of a request with the default in force', (t) => {
  const doc = readFileSync(new URL('../docs/fhir-api.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Limits'), doc.indexOf('\n## ', doc.indexOf('## Limits') + 1));
  const rows = new Map<string, string>();
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    const setting = /^`(HUREN_[A-Z_]+)`$/.exec(cells[2] ?? '')?.[1];
    if (setting) rows.set(setting, cells[3]!);
  }
  const parse = (text: string): number => {
    const m = /^([\d,]+)\s*(MiB|s\b|levels?)?/.exec(text);
    if (!m) throw new Error(`no number in '${text}'`);
    const n = Number(m[1]!.replace(/,/g, ''));
    return m[2] === 'MiB' ? n * 1024 * 1024 : m[2] === 's' ? n * 1000 : n;
  };
  const defaults = loadConfig({});
  const flat = (c: Config): Record<string, unknown> => ({ ...c, ...c.limits });
  // every HUREN_MAX_… setting and the statement timeout: which value it sets, and the documented default of it
  const settings = [...readFileSync(new URL('../server/config.ts', import.meta.url), 'utf8').matchAll(/env\.(HUREN_MAX_[A-Z_]+|HUREN_STATEMENT_TIMEOUT_MS)\b/g)].map((m) => m[1]!);
  t.true(settings.length >= 10);
  for (const setting of settings) {
    t.true(rows.has(setting), `${setting} is in the limits table`);
    const changed = flat(loadConfig({ [setting]: '7' }));
    const field = Object.keys(changed).find((k) => changed[k] === 7 && flat(defaults)[k] !== 7);
    t.truthy(field, setting);
    t.is(parse(rows.get(setting)!), flat(defaults)[field!] as number, `${setting}: the documented default is the one in force`);
  }
});
