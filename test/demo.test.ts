/**
 * `npm run demo` (issue 10 item 12): against a running server it loads the generated city, has it anchored,
 * and prints three curl calls; run as printed (through a shell, as a person pastes them) they show a
 * recognisable result, a duplicate order and a consistent chain anchor. A second run changes nothing. The
 * anchoring endpoint it uses (POST /api/provenance/anchor) needs full rights. Without a server or a token the
 * demo says so and exits 3.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { backendClients, type BackendClients } from './helpers/backend-token.ts';
import { ORG_ID } from './helpers/recognition-data.ts';
import { runCommand, runScript } from './helpers/command.ts';

let s: TestServer;
let backend: BackendClients;
test.before(async () => {
  backend = await backendClients([{ clientId: 'demo-narrow', organization: `Organization?identifier=${ORG_ID}|demo-liwan`, scope: 'system/*.rs' }]);
  s = await startTestServer({ clients: backend.clients as never });
});
test.after.always(async () => {
  await s?.close();
});

const demo = (env: Record<string, string>) => runScript('scripts/demo.ts', [], env);
const part = (p: any, name: string) => p.part?.find((x: any) => x.name === name);
const param = (b: any, name: string) => b.parameter?.find((x: any) => x.name === name);
const counts = async () =>
  (await s.huren.db.query<{ type: string; n: number }>("SELECT type, count(*)::int AS n FROM resource_history WHERE type IN ('Organization', 'Patient', 'DiagnosticReport', 'Observation', 'ConceptMap') GROUP BY type ORDER BY type")).map((r) => `${r.type}:${r.n}`);

test.serial('the demo loads the city and prints three calls that show a recognisable result, a duplicate order and a consistent anchor', async (t) => {
  const env = { HUREN_URL: s.huren.url, HUREN_TOKEN: s.token };
  const first = await demo(env);
  t.is(first.code, 0, first.stderr);
  t.regex(first.stdout, /loaded 4 hospitals/);
  t.regex(first.stdout, /anchored on the chain now: \d+ record/);
  const calls = first.stdout.split('\n').filter((l) => l.startsWith('curl '));
  t.is(calls.length, 3, first.stdout);
  t.true(calls.every((c) => c.includes('$HUREN_TOKEN') && !c.includes(s.token)), 'the token is named, not printed');

  const answers = [];
  for (const c of calls) {
    const res = await runCommand('bash', ['-c', c], { HUREN_TOKEN: s.token });
    t.is(res.code, 0, res.stderr);
    answers.push(JSON.parse(res.stdout));
  }
  const [recognition, duplicate, verify] = answers;
  // (a) recognisable: the fresh 钾 from 越秀, and the 血常规 from 番禺 through its approved local code
  t.is(param(recognition, 'exists').valueBoolean, true, JSON.stringify(recognition));
  const items = recognition.parameter.filter((p: any) => p.name === 'result').map((r: any) => part(r, 'item').valueCoding.display);
  t.deepEqual(items.sort(), ['血细胞分析', '钾'].sort());
  const potassium = recognition.parameter.find((p: any) => p.name === 'result' && part(p, 'item').valueCoding.display === '钾');
  t.is(part(potassium, 'daysRemaining').valueInteger, 5, 'issued two days ago with a 7-day window');
  t.truthy(part(recognition.parameter.find((p: any) => p.name === 'result' && part(p, 'item').valueCoding.display === '血细胞分析'), 'mapping'), 'names the approved mapping');
  // (b) the duplicate order
  const item = param(duplicate, 'item');
  t.is(part(item, 'duplicate').valueBoolean, true, JSON.stringify(duplicate));
  // (c) the verified anchor
  t.is(param(verify, 'status').valueCode, 'consistent', JSON.stringify(verify));
  t.is(param(verify, 'anchoredBy').valueCode, 'platform');

  // a second run changes nothing
  const before = await counts();
  const second = await demo(env);
  t.is(second.code, 0, second.stderr);
  t.deepEqual(await counts(), before, 'no new resource versions');
  t.deepEqual(second.stdout.split('\n').filter((l) => l.startsWith('curl ')), calls, 'the same calls');
});

test.serial('the anchoring endpoint: full rights only; no parameters', async (t) => {
  const post = (token?: string, query = '') => fetch(`${s.huren.url}/api/provenance/anchor${query}`, { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {} });
  t.is((await post()).status, 401);
  const narrow = await backend.tokenFor(s.huren.url, 'demo-narrow', 'system/*.rs');
  const refused = await post(narrow);
  t.is(refused.status, 403);
  t.is(((await refused.json()) as any).resourceType, 'OperationOutcome');
  const bad = await post(s.token, '?now=yes');
  t.is(bad.status, 400);
  t.deepEqual(((await bad.json()) as any).issue[0].expression, ['now']);
  const ok = await post(s.token);
  t.is(ok.status, 200);
  t.deepEqual(Object.keys((await ok.json()) as object).sort(), ['anchored', 'failed', 'formed', 'records']);
});

test.serial('without a server, or without a token, the demo says what to do (exit 3)', async (t) => {
  const nobody = await demo({ HUREN_URL: 'http://127.0.0.1:9', HUREN_TOKEN: 'x' });
  t.is(nobody.code, 3);
  t.regex(nobody.stderr, /no server answers at http:\/\/127\.0\.0\.1:9.*npm start/);
  const dir = mkdtempSync(join(tmpdir(), 'huren-demo-'));
  try {
    const noToken = await demo({ HUREN_URL: s.huren.url, HUREN_TOKEN: '', HUREN_DATA_DIR: dir });
    t.is(noToken.code, 3);
    t.regex(noToken.stderr, /no token: set HUREN_TOKEN/);
    const refused = await demo({ HUREN_URL: s.huren.url, HUREN_TOKEN: 'not-a-token' });
    t.is(refused.code, 3);
    t.regex(refused.stderr, /refused the token \(401\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
