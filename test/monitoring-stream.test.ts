/**
 * The big screen's live stream is the same whichever server process a browser reaches (HUREN_WORKERS): every
 * process publishes its counters with NOTIFY and relays what it hears (server/monitoring/facts.ts). On
 * PostgreSQL two servers share one database here: an upload through one moves the stream of the other.
 */
import test from 'ava';
import { organization, reportEntries, transaction } from './helpers/recognition-data.ts';
import { startTestServer, storeKind, type TestServer } from './helpers/server.ts';

const DISTRICT = '440104';

async function firstCounters(s: TestServer, upload: () => Promise<void>): Promise<{ district: string; counts: Record<string, number> }> {
  const res = await fetch(`${s.huren.url}/api/monitoring/events?district=${DISTRICT}`, { headers: { authorization: `Bearer ${s.token}` } });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let uploaded = false;
  const deadline = Date.now() + 10_000;
  try {
    while (Date.now() < deadline) {
      let i;
      while ((i = text.indexOf('\n\n')) >= 0) {
        const block = text.slice(0, i);
        text = text.slice(i + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event === 'ready' && !uploaded) {
          uploaded = true;
          await upload();
        }
        if (event === 'counters' && data) return JSON.parse(data);
      }
      const { value, done } = await reader.read();
      if (done) throw new Error('the stream ended');
      text += decoder.decode(value, { stream: true });
    }
    throw new Error('no counters within 10 s');
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

async function uploadTo(s: TestServer, key: string): Promise<void> {
  await transaction(s, [
    { fullUrl: 'urn:uuid:8d3f7c1e-5a2b-4c6d-9e0f-1a2b3c4d5e6f', resource: organization(`stream-${key}`, '越秀区测试医院', DISTRICT, []), request: { method: 'POST', url: 'Organization', ifNoneExist: `identifier=urn:huren:org|stream-${key}` } },
  ]);
  const patient = await (await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: `44010419900101${key}` }] } })).json();
  await transaction(s, reportEntries(`Patient/${patient.id}`, { key: `stream-${key}`, org: `stream-${key}`, code: { system: 'https://fhir.huren.gz.cn/CodeSystem/recognition-catalogue', code: 'L-065DC84A', display: '钾' }, issued: new Date().toISOString() }));
}

test('an upload moves the live stream through the database notification (one server)', async (t) => {
  const s = await startTestServer();
  try {
    const e = await firstCounters(s, () => uploadTo(s, '1001'));
    t.is(e.district, DISTRICT);
    t.is(e.counts.reports, 1);
  } finally {
    await s.close();
  }
});

test('an institution first without a district, then given one: the stream follows the change', async (t) => {
  const s = await startTestServer();
  try {
    const key = '1003';
    const created = await transaction(s, [
      { fullUrl: 'urn:uuid:8d3f7c1e-5a2b-4c6d-9e0f-1a2b3c4d5e70', resource: organization(`stream-${key}`, '未分区测试医院', undefined, []), request: { method: 'POST', url: 'Organization' } },
    ]);
    const orgId = /Organization\/([^/]+)/.exec(created.entry[0].response.location)![1];
    const report = async (n: string) => {
      const patient = await (await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: `44010419900101${n}` }] } })).json();
      await transaction(s, reportEntries(`Patient/${patient.id}`, { key: `stream-${n}`, org: `stream-${key}`, code: { system: 'https://fhir.huren.gz.cn/CodeSystem/recognition-catalogue', code: 'L-065DC84A', display: '钾' }, issued: new Date().toISOString() }));
    };
    await report('1004'); // counted for no district: remembered as such
    const org = await (await s.fhir(`Organization/${orgId}`)).json();
    const put = await s.fhir(`Organization/${orgId}`, { method: 'PUT', json: { ...organization(`stream-${key}`, '未分区测试医院', DISTRICT, []), id: orgId, meta: undefined, ...(org.active === undefined ? {} : { active: org.active }) } });
    t.is(put.status, 200);
    const e = await firstCounters(s, () => report('1005'));
    t.is(e.district, DISTRICT);
    t.is(e.counts.reports, 1);
  } finally {
    await s.close();
  }
});

if (storeKind() === 'postgres') {
  test('an upload through one server process moves the stream a browser holds on another', async (t) => {
    const a = await startTestServer();
    const b = await startTestServer({}, { store: a.store });
    try {
      const e = await firstCounters(b, () => uploadTo(a, '1002'));
      t.is(e.district, DISTRICT);
      t.is(e.counts.reports, 1);
    } finally {
      await b.close({ keepStore: true });
      await a.close();
    }
  });
}
