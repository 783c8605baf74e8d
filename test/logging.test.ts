import test from 'ava';
import { PassThrough } from 'node:stream';
import { startTestServer } from './helpers/server.ts';

test('request logs are structured JSON and carry no personal data', async (t) => {
  const stream = new PassThrough();
  let captured = '';
  stream.on('data', (c: Buffer) => (captured += c.toString()));
  const s = await startTestServer({ logLevel: 'info' }, { logStream: stream });
  try {
    const name = '隐私测试姓名';
    const nationalId = '440101199901019999';
    const created = await s.fhir('Patient', {
      method: 'POST',
      json: { resourceType: 'Patient', name: [{ family: name }], identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: nationalId }] },
    });
    t.is(created.status, 201);
    const { id } = await created.json();
    await s.fhir(`Patient?identifier=urn:oid:2.16.156.10011.1.3|${nationalId}&name=${encodeURIComponent(name)}`);
    await s.fhir(`Patient/${id}`);
    await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', name: [{ family: name }], gender: 'nonsense-' + nationalId } });
    await new Promise((r) => setTimeout(r, 50));
    const lines = captured.trim().split('\n').map((l) => JSON.parse(l));
    const requests = lines.filter((l) => l.msg === 'request');
    t.true(requests.length >= 4);
    t.true(requests.every((l) => typeof l.requestId === 'string' && typeof l.status === 'number' && typeof l.ms === 'number'));
    t.true(requests.some((l) => l.route === '/fhir/Patient/:id' && l.status === 200));
    t.false(captured.includes(name), 'no name in the logs');
    t.false(captured.includes(nationalId), 'no identifier in the logs');
    t.false(captured.includes(id), 'no resource id in the logs');
  } finally {
    await s.close();
  }
});
