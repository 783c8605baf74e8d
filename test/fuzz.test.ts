/**
 * The hostile-input fuzzer (issue 12): property-based, seeded and bounded, against a real server on the store
 * named by HUREN_TEST_DB. It generates requests an attacker would send — numbers at the edges, huge and deep
 * structures, odd Unicode, malformed JSON and JSON Patch, garbage for the search parameters of a few types,
 * Bundles with broken references, and the same for the CDS Hooks endpoints, /auth/token and /api/… — and
 * asserts after each one: no 5xx, /healthz answers within a second, and a refused request wrote nothing.
 *
 * HUREN_FUZZ_SEED and HUREN_FUZZ_RUNS change the seed and the number of cases (defaults keep a run to about a
 * minute or two per store on a 2-core machine). A failing case it finds is kept as a regular test
 * (test/limits.test.ts, test/robustness.test.ts).
 */
import test from 'ava';
import fc from 'fast-check';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { loadProvenanceConfig } from '../server/provenance/config.ts';
import { loadDefinitions, searchParams } from '../server/fhir/definitions.ts';

const SEED = Number(process.env.HUREN_FUZZ_SEED ?? 20261203);
const RUNS = Number(process.env.HUREN_FUZZ_RUNS ?? 4000);

let s: TestServer;
let patientId = '';
test.before(async () => {
  // no schedules: nothing but the fuzzer's requests writes, so a refused request must leave the counts as they were
  const provenance = { ...loadProvenanceConfig({}), anchorCron: undefined, sweepCron: undefined, deepSweepCron: undefined, statisticsCron: undefined };
  // nor the monitoring evaluation (it writes Flags and MeasureReports on its own minute schedule)
  process.env.HUREN_MONITORING_CRON = 'off';
  process.env.HUREN_MONITORING_REPORTS_CRON = 'off';
  // nor the planner statistics job: on PGlite its ANALYZE runs in the server's thread, so on a loaded machine a
  // /healthz that falls on it can miss the one-second bound for reasons that are not the request's
  s = await startTestServer({ provenance, analyzeCron: undefined, logLevel: 'fatal' });
  loadDefinitions();
  const res = await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', identifier: [{ system: 'urn:fuzz', value: 'p' }], name: [{ family: '模糊' }] } });
  patientId = (await res.json()).id;
});
test.after.always(async () => {
  await s?.close();
});

interface Case {
  method: string;
  /** Below the server root: `/fhir/Patient?…`, `/cds-services/…`. */
  path: string;
  contentType?: string;
  body?: string;
  /** The bootstrap token, a garbage one, or none. */
  auth: 'token' | 'garbage' | 'none';
}

const TYPES = ['Patient', 'Observation', 'DiagnosticReport', 'Organization', 'ServiceRequest'];

// ---- values ----
const edgeNumber = fc.constantFrom(
  '0', '-0', '-1', '1e400', '-1e400', '1e-400', '99999999999999999999', '9223372036854775807', '9223372036854775808',
  '-9223372036854775809', '2147483648', '4294967296', 'NaN', 'Infinity', '0x1f', '1_000', '١٢٣', '1.', '.5', '+5', '',
  ' ', '00000000000000000000001', '10000', '10001', '1000', '1001', `9${'9'.repeat(400)}`
);
const oddText = fc.constantFrom(
  '\u202e', '\ufeff', '𝕏', 'e\u0301', '\u200b', '中文检验', '😀', '\ud800', '\udc00x', '\u0000', '%00', '%', '%ZZ', '\\', '\\,',
  '|', '||', '|||', ',', ',,,', '$', "'", '"', "'; DROP TABLE resource; --", "' OR '1'='1", '$1', '::text', '*', '..', '../..',
  '/', '\n', '\r\n', 'ge', 'eq', 'ap1e400', 'sa', 'gt|||', 'http://x|', 'Patient/', 'Patient/x/_history/', 'true', 'false',
  '2024-02-30', '9999-12-31T23:59:59.999999Z', '0000-01-01', '-2024', '2024-13', 'T', 'Z', 'urn:uuid:', '#', '?', '&', '=',
  '%E4%B8%AD', '%C0%AF', 'null', 'undefined', '[]', '{}', '__proto__', 'constructor'
);
const garbage: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: edgeNumber },
  { weight: 4, arbitrary: oddText },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  { weight: 1, arbitrary: fc.tuple(oddText, edgeNumber).map(([a, b]) => `${a}${b}`) },
  { weight: 1, arbitrary: fc.nat({ max: 20_000 }).map((n) => 'x'.repeat(n)) }
);

/** Percent-encodes what it can (a lone surrogate cannot be encoded: sent as a broken escape instead). */
function enc(value: string): string {
  try {
    return encodeURIComponent(value);
  } catch {
    return [...value].map((c) => (/[\w]/.test(c) ? c : `%${c.charCodeAt(0).toString(16)}`)).join('');
  }
}

// ---- searches ----
const MODIFIERS = ['', '', '', ':missing', ':exact', ':contains', ':text', ':not', ':below', ':Patient', ':nope', ':', '::', ':Patient.identifier'];
const RESULT_PARAMS = ['_count', '_offset', '_cursor', '_sort', '_include', '_revinclude', '_summary', '_elements', '_total', '_snapshot', '_since', '_id', '_lastUpdated', '_has:Observation:patient:code', '_has:Nope', '_format', '_pretty'];

const searchCase: fc.Arbitrary<Case> = fc
  .tuple(
    fc.constantFrom(...TYPES),
    fc.array(fc.tuple(fc.nat(), fc.constantFrom(...MODIFIERS), fc.boolean(), garbage), { minLength: 1, maxLength: 5 }),
    fc.constantFrom('', '/_history', '/_search', `/${'x'.repeat(3)}/_history`),
    fc.boolean()
  )
  .map(([type, params, suffix, chained]) => {
    const codes = [...searchParams(type).keys()];
    const query = params.map(([n, modifier, result, value]) => {
      const base = result ? RESULT_PARAMS[n % RESULT_PARAMS.length] : codes[n % codes.length];
      const key = chained && !result ? `${base}${modifier}.${codes[(n >> 3) % codes.length]}` : `${base}${result ? '' : modifier}`;
      return `${enc(key)}=${enc(value)}`;
    });
    const path = suffix === '/_search' ? `/fhir/${type}/_search` : `/fhir/${type}${suffix}`;
    return suffix === '/_search'
      ? { method: 'POST', path, contentType: 'application/x-www-form-urlencoded', body: query.join('&'), auth: 'token' as const }
      : { method: 'GET', path: `${path}?${query.join('&')}`, auth: 'token' as const };
  });

// ---- resources ----
const leaf: fc.Arbitrary<unknown> = fc.oneof(
  garbage,
  fc.constantFrom(0, -0, 1e308, -1e308, 5e-324, Number.MAX_SAFE_INTEGER + 2, 2 ** 63, -1, true, false, null),
  fc.double(),
  fc.integer()
);
const json: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('object')),
  array: fc.array(tie('node'), { maxLength: 4 }),
  object: fc.dictionary(fc.oneof(fc.constantFrom('reference', 'value', 'system', 'code', 'given', 'family', 'url', 'id', 'extension', 'coding', '__proto__', 'resourceType'), garbage), tie('node'), { maxKeys: 4 }),
})).node;

/** Nested `depth` levels deep (around the nesting limit of 64). */
const deep = fc.integer({ min: 55, max: 80 }).map((depth) => {
  let v: unknown = 'bottom';
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { extension: v };
  return v;
});
/** A long array (around the array limit of 10,000), or a long string. */
const huge = fc.oneof(
  fc.integer({ min: 9_990, max: 10_010 }).map((n) => Array.from({ length: n }, (_, i) => `g${i}`)),
  fc.integer({ min: 1, max: 3 }).map((n) => '长'.repeat(n * 100_000))
);
const ELEMENTS = ['name', 'identifier', 'subject', 'code', 'status', 'value', 'valueQuantity', 'effectiveDateTime', 'birthDate', 'telecom', 'extension', 'contained', 'meta', 'text', 'id', 'result', 'performer', 'partOf', 'active', 'gender'];
const resource = fc
  .tuple(
    fc.constantFrom(...TYPES, 'Nope', ''),
    fc.array(fc.tuple(fc.constantFrom(...ELEMENTS), fc.oneof({ weight: 8, arbitrary: json }, { weight: 1, arbitrary: deep }, { weight: 1, arbitrary: huge })), { maxLength: 4 }),
    fc.constantFrom('urn:uuid:a', 'urn:uuid:b', `Patient?identifier=urn:fuzz|p`, 'Patient?identifier=none', 'Patient/', 'Patient/a b', `Patient/${'x'.repeat(65)}`, '#c', '')
  )
  .map(([type, fields, reference]) => {
    const r: Record<string, unknown> = { resourceType: type };
    for (const [k, v] of fields) r[k] = v;
    if (type === 'Observation') r.subject = { reference };
    return r;
  });

const createCase: fc.Arbitrary<Case> = fc.tuple(resource, fc.constantFrom('POST', 'PUT')).map(([r, method]) => ({
  method,
  path: method === 'POST' ? `/fhir/${String(r.resourceType) || 'Patient'}` : `/fhir/${String(r.resourceType) || 'Patient'}/${typeof r.id === 'string' ? enc(r.id) : 'fz'}`,
  contentType: 'application/fhir+json',
  body: JSON.stringify(r),
  auth: 'token',
}));

const malformedJson: fc.Arbitrary<Case> = fc
  .tuple(
    fc.oneof(
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.constantFrom('{', '[', '{"resourceType":', '{"resourceType":"Patient",}', '\ufeff\ufeff{}', '{"a":1}{"b":2}', 'NaN', '1e999999', '"\\ud800"', `${'['.repeat(5000)}${']'.repeat(5000)}`, `{"resourceType":"Patient","name":[${'{"given":[],'.repeat(3)}`),
      resource.map((r) => JSON.stringify(r).slice(0, -1))
    ),
    fc.constantFrom('/fhir/Patient', '/fhir', '/fhir/Observation', '/cds-services/recognition-reminder', '/api/settings/hash-badge'),
    fc.constantFrom('application/fhir+json', 'application/json', 'text/plain', 'application/json-patch+json', '')
  )
  .map(([body, path, contentType]) => ({ method: path.startsWith('/api') ? 'PUT' : 'POST', path, body, contentType, auth: 'token' }));

// ---- JSON Patch ----
const patchPath = fc.oneof(
  fc.constantFrom('', '/', '/__proto__/polluted', '/constructor/prototype/x', '/name/0/given/-', '/name/99999999999999999999', '/name/-1', '/active', '/id', '/resourceType', '/meta/versionId', '/name/0/family', '/identifier/0', '/x~1y', '/~2', 'name'),
  garbage
);
const patchCase: fc.Arbitrary<Case> = fc
  .oneof(
    fc.array(fc.record({ op: fc.oneof(fc.constantFrom('add', 'remove', 'replace', 'move', 'copy', 'test'), garbage), path: patchPath, value: json, from: patchPath }, { requiredKeys: ['op'] }), { maxLength: 4 }),
    json
  )
  .map((ops) => ({ method: 'PATCH', path: `/fhir/Patient/${patientId}`, contentType: 'application/json-patch+json', body: JSON.stringify(ops), auth: 'token' }));

// ---- Bundles ----
const URNS = ['urn:uuid:11111111-1111-1111-1111-111111111111', 'urn:uuid:22222222-2222-2222-2222-222222222222', 'urn:uuid:33333333-3333-3333-3333-333333333333'];
const entry = fc.record(
  {
    fullUrl: fc.oneof(fc.constantFrom(...URNS), garbage),
    resource: fc.oneof(
      resource,
      fc.constantFrom(...URNS, 'urn:uuid:44444444-4444-4444-4444-444444444444', 'Patient?identifier=urn:fuzz|p', 'Patient/').map((reference) => ({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference } })),
      fc.constant({ resourceType: 'Patient', active: true })
    ),
    request: fc.record(
      {
        method: fc.oneof(fc.constantFrom('POST', 'PUT', 'GET', 'DELETE', 'PATCH', 'HEAD'), garbage),
        url: fc.oneof(fc.constantFrom('Patient', 'Observation', `Patient/${patientId || 'x'}`, 'Patient?identifier=urn:fuzz|p', 'Patient?_offset=99999999999999999999', 'Patient?_count=1000', ...URNS), garbage),
        ifNoneExist: garbage,
      },
      { requiredKeys: ['method', 'url'] }
    ),
  },
  { requiredKeys: ['request'] }
);
const bundleCase: fc.Arbitrary<Case> = fc
  .tuple(fc.constantFrom('transaction', 'transaction', 'batch', 'document', ''), fc.array(entry, { maxLength: 8 }))
  .map(([type, entries]) => ({ method: 'POST', path: '/fhir', contentType: 'application/fhir+json', body: JSON.stringify({ resourceType: 'Bundle', type, entry: entries }), auth: 'token' }));

// ---- the other endpoints ----
const cdsCase: fc.Arbitrary<Case> = fc
  .tuple(fc.constantFrom('recognition-reminder', 'duplicate-order-select', 'duplicate-order-sign', 'nope', '', '..'), fc.constantFrom('', '/feedback', '/x/y'), json, fc.constantFrom<Case['auth']>('token', 'garbage', 'none'))
  .map(([id, suffix, body, auth]) => ({
    method: id === '' && suffix === '' ? 'GET' : 'POST',
    path: `/cds-services${id ? `/${id}` : ''}${suffix}`,
    contentType: 'application/json',
    body: JSON.stringify(
      typeof body === 'object' && body !== null && !Array.isArray(body)
        ? { hook: 'encounter-start', hookInstance: 'x', context: body, prefetch: body, ...body }
        : body
    ),
    auth,
  }));
const tokenCase: fc.Arbitrary<Case> = fc
  .array(fc.tuple(fc.constantFrom('grant_type', 'client_assertion_type', 'client_assertion', 'scope', 'client_id', 'x'), garbage), { maxLength: 5 })
  .map((pairs) => ({ method: 'POST', path: '/auth/token', contentType: 'application/x-www-form-urlencoded', body: pairs.map(([k, v]) => `${k}=${enc(v)}`).join('&'), auth: 'none' }));
const apiCase: fc.Arbitrary<Case> = fc
  .tuple(
    fc.constantFrom('/api/statistics/chain', '/api/settings/hash-badge', '/api/dictionary/organizations/', '/api/dictionary/maps/', '/api/nope'),
    garbage,
    fc.array(fc.tuple(fc.constantFrom('from', 'to', 'period', 'org', 'system', 'status', 'page', '_count'), garbage), { maxLength: 3 }),
    json,
    fc.constantFrom('GET', 'PUT', 'POST')
  )
  .map(([base, segment, query, body, method]) => {
    const path = base.endsWith('/') ? `${base}${enc(segment)}/${base.includes('maps') ? 'entries' : 'qc'}` : base;
    return { method, path: `${path}?${query.map(([k, v]) => `${k}=${enc(v)}`).join('&')}`, contentType: 'application/json', body: method === 'GET' ? undefined : JSON.stringify(body), auth: 'token' };
  });

/** The app's endpoints: the accounts and session API, the monitoring API, the app itself, the token administration. */
const APP_PATHS: Array<[method: string, path: string]> = [
  ['POST', '/api/session/login'], ['POST', '/api/session/second-factor'], ['POST', '/api/session/logout'], ['GET', '/api/session/me'], ['POST', '/api/session/password'],
  ['GET', '/api/accounts'], ['GET', '/api/accounts/{}'], ['POST', '/api/accounts'], ['PUT', '/api/accounts/{}/roles'], ['POST', '/api/accounts/{}/disable'], ['POST', '/api/accounts/{}/enable'],
  ['GET', '/api/monitoring/overview'], ['GET', '/api/monitoring/institutions/{}/history'], ['GET', '/api/monitoring/late'], ['GET', '/api/monitoring/usage'],
  ['POST', '/api/monitoring/alerts/{}/requests'], ['GET', '/api/monitoring/requests'], ['POST', '/api/monitoring/requests/{}/status'],
  ['GET', '/api/dictionary/maps/{}/entries/{}/history'], ['POST', '/api/dictionary/maps/{}/entries/{}/status'],
  ['GET', '/app/{}'], ['GET', '/app/assets/{}'], ['POST', '/app/'], ['GET', '/.well-known/smart-configuration'], ['POST', '/auth/revoke'], ['GET', '/auth/token'],
];
const appCase: fc.Arbitrary<Case> = fc
  .tuple(
    fc.constantFrom(...APP_PATHS),
    fc.array(garbage, { minLength: 2, maxLength: 2 }),
    fc.array(fc.tuple(fc.constantFrom('from', 'to', 'scope', 'institution', 'status', 'district', 'flow', 'system', 'x'), garbage), { maxLength: 3 }),
    fc.oneof(json, fc.record({ login: garbage, password: garbage, code: garbage, challenge: garbage, roles: fc.oneof(json, fc.array(garbage, { maxLength: 3 })), status: garbage, note: garbage, client_id: garbage }, { requiredKeys: [] })),
    fc.constantFrom('application/json', 'application/x-www-form-urlencoded', 'text/plain'),
    fc.constantFrom<Case['auth']>('token', 'token', 'garbage', 'none')
  )
  .map(([[method, template], segments, query, body, contentType, auth]) => {
    let i = 0;
    const path = template.replace(/\{\}/g, () => enc(segments[i++ % 2]!) || 'x');
    const q = query.length ? `?${query.map(([k, v]) => `${k}=${enc(v)}`).join('&')}` : '';
    const text = contentType === 'application/x-www-form-urlencoded' && body && typeof body === 'object' ? Object.entries(body).map(([k, v]) => `${enc(k)}=${enc(typeof v === 'string' ? v : JSON.stringify(v) ?? '')}`).join('&') : JSON.stringify(body);
    return { method, path: `${path}${q}`, contentType, body: method === 'GET' ? undefined : text, auth };
  });

const anyCase: fc.Arbitrary<Case> = fc.oneof(
  { weight: 6, arbitrary: searchCase },
  { weight: 4, arbitrary: createCase },
  { weight: 2, arbitrary: malformedJson },
  { weight: 2, arbitrary: patchCase },
  { weight: 4, arbitrary: bundleCase },
  { weight: 2, arbitrary: cdsCase },
  { weight: 1, arbitrary: tokenCase },
  { weight: 2, arbitrary: apiCase },
  { weight: 2, arbitrary: appCase }
);

async function counts(): Promise<string> {
  const [r] = await s.huren.db.query<{ resources: number; versions: number }>(
    // every request, refused ones too, leaves its AuditEvent (server/audit/): those are the trail, not the request's writes
    "SELECT (SELECT count(*)::int FROM resource WHERE type <> 'AuditEvent') AS resources, (SELECT count(*)::int FROM resource_history WHERE type <> 'AuditEvent') AS versions"
  );
  return `${r.resources}/${r.versions}`;
}

async function send(c: Case): Promise<number> {
  const headers: Record<string, string> = { accept: 'application/fhir+json' };
  if (c.auth === 'token') headers.authorization = `Bearer ${s.token}`;
  if (c.auth === 'garbage') headers.authorization = 'Bearer eyJhbGciOiJub25lIn0.e30.';
  if (c.contentType) headers['content-type'] = c.contentType;
  const res = await fetch(`${s.huren.url}${c.path}`, { method: c.method, headers, body: c.method === 'GET' ? undefined : c.body });
  await res.arrayBuffer();
  return res.status;
}

async function healthy(): Promise<boolean> {
  try {
    const res = await fetch(`${s.huren.url}/healthz`, { signal: AbortSignal.timeout(1000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

test.serial('hostile requests never get a 5xx, never stop the server, and a refused request writes nothing', async (t) => {
  let cases = 0;
  const statuses = new Map<number, number>();
  const started = Date.now();
  await fc.assert(
    fc.asyncProperty(anyCase, async (c) => {
      cases++;
      const before = await counts();
      const status = await send(c);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      const describe = `${c.method} ${c.path.slice(0, 200)} ${c.body?.slice(0, 200) ?? ''} → ${status}`;
      if (status >= 500) throw new Error(`5xx: ${describe}`);
      if (!(await healthy())) throw new Error(`/healthz did not answer within 1 s after: ${describe}`);
      if (status >= 400 && (await counts()) !== before) throw new Error(`a refused request wrote something: ${describe}`);
    }),
    { seed: SEED, numRuns: RUNS, endOnFailure: true, includeErrorInReport: true }
  );
  t.log(`fuzz: ${cases} cases (seed ${SEED}) in ${Math.round((Date.now() - started) / 1000)} s; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b)))}`);
  t.true(cases >= RUNS);
});
