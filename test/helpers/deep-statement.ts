/**
 * Run as a child process by test/embedded-store.test.ts (a hang of the server would block its own thread,
 * so the test's timeout has to live in another process): a server on a disk-backed store (PostgreSQL under
 * HUREN_TEST_DB=postgres) answers searches nesting more and more `_has`, then statements too deep for
 * WebAssembly PGlite's stack followed by SQL errors, straight on its Database. Prints one JSON line.
 */
import { DEFAULT_LIMITS } from '../../server/fhir/limits.ts';
import { startTestServer } from './server.ts';

// the nesting limit of _has (HUREN_MAX_HAS_DEPTH, 400 beyond) is lifted here: what is tested is the store's own
// guard, behind that limit, against a statement too deep for it
const s = await startTestServer({ limits: { ...DEFAULT_LIMITS, maxHasDepth: 1000 } }, { persistent: true });
const healthz = () => fetch(`${s.huren.url}/healthz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status, () => 'no answer');
const failure = async (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: { code?: string }) => e.code ?? 'no code'
  );
try {
  const kept = await (await s.fhir('Patient', { method: 'POST', json: { resourceType: 'Patient', name: [{ family: 'Deepkept' }] } })).json();
  const searches = [];
  for (const n of [100, 110, 115, 120, 200]) {
    const res = await s.fhir(`Patient?${'_has:Patient:link:'.repeat(n)}name=x`);
    const body = await res.json();
    const found = await (await s.fhir('Patient?name=Deepkept')).json();
    searches.push({ n, status: res.status, code: body.issue?.[0]?.code, healthz: await healthz(), keptFound: found.entry?.[0]?.resource?.id === kept.id });
  }
  // straight on the store: a statement recursing deeply while it is planned and run, then SQL errors
  const db = s.huren.db;
  await db.query('CREATE TABLE deep_t (id text, ref text)');
  await db.transaction((sql) => sql.query(`INSERT INTO deep_t VALUES ('kept', 'x')`));
  let inner = 't120.id = $1';
  for (let i = 120; i > 0; i--) inner = `EXISTS (SELECT 1 FROM deep_t t${i} WHERE t${i}.ref = t${i - 1}.id AND ${inner})`;
  const statements = {
    deep: await failure(db.query(`SELECT 1 FROM deep_t t0 WHERE ${inner}`, ['x'])),
    offset: await failure(db.query('SELECT 1 AS x OFFSET 100000000000000000000')),
    deepInTransaction: await failure(db.transaction((sql) => sql.query(`SELECT ($1::text)::jsonb AS j`, ['['.repeat(10_000) + ']'.repeat(10_000)]))),
    divisionByZero: await failure(db.query('SELECT 1/0')),
    rows: (await db.query<{ id: string }>('SELECT id FROM deep_t')).map((r) => r.id),
  };
  process.stdout.write(`${JSON.stringify({ engine: db.engine, searches, statements })}\n`);
} finally {
  await s.close();
}
// the PGlite instances given up after a failure are never closed (they must not run again): exit without them
process.exit(0);
