/**
 * `npm run bench` — the throughput benchmark of the FHIR server (see README "Benchmark").
 *
 * For each store (PGlite, PostgreSQL) it starts the server as a child process, preloads generated lab data
 * with transaction Bundles over HTTP (itself a throughput measurement), then measures, with N concurrent
 * keep-alive clients over loopback: create (Observation), read, the search
 * `Observation?subject=…&code=…&date=ge…`, and a transaction of one DiagnosticReport + 15 Observations.
 * Results: `bench/results/<timestamp>-<store>.json` and `bench/results/latest.json`; the README table is
 * regenerated from the latter.
 *
 *   npm run bench -- [--store pglite|postgres|both] [--scale 50000] [--patients 10000] [--duration 20]
 *                    [--warmup 3] [--concurrency 16] [--scenarios create,read,search,transaction]
 *                    [--max-requests 1000000] [--seed 20240601] [--profile] [--keep-db] [--no-readme] [--readme-only]
 *                    [--screen-reports 1000000] [--screen-days 60] [--screen-runs 5]   (scenario screen: the big
 *                                     screen's first load in Chromium, PostgreSQL only)
 *                    [--servers 1]   (PostgreSQL only: N server processes on the same database, clients spread
 *                                     over them — an experiment on using both cores, not the default)
 *                    [--keep-db] then [--database <name>]   (PostgreSQL: measure again on a kept database, without
 *                                     its preload: e.g. the searches at a million Observations)
 *   monitoring (PostgreSQL): --scenarios monitoring-full,monitoring-incremental,monitoring-dashboard
 *                    [--monitoring-institutions 300] [--monitoring-reports 1000000] [--monitoring-days 30] [--monitoring-runs 20]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Bundle } from '@medplum/fhirtypes';
import { FhirClient, RoundRobin, round, runLoad, runOpenLoop, type LoadResult, type OpenLoopResult, type RequestSpec, type Sender } from './client.ts';
import { anchorLatency, fingerprintRate, PROVENANCE, sweepRate } from './provenance.ts';
import { dashboardQueries, fullEvaluation, incrementalEvaluation, loadMonitoring, MONITORING } from './monitoring.ts';
import { loadTerminologyFixture, TERMINOLOGY, terminologyRequests } from './terminology.ts';
import { fixtureFromDatabase, loadRecognition, recognitionRequests, type RecognitionFixture } from './recognition.ts';
import { screenFirstLoad, WEBAPP } from './webapp.ts';
import {
  createBundle,
  defaultWindow,
  institutions,
  labReport,
  patient,
  PANELS,
  Rng,
  singleObservation,
  type ReportRefs,
} from './data.ts';
import { adminQuery, PG_CONNECTION, PostgresCpu, REPO_ROOT, startServer, type ProcessMemory, type RunningServer, type Store } from './server.ts';
import { updateReadme } from './readme.ts';

const { values: args } = parseArgs({
  options: {
    store: { type: 'string', default: 'both' },
    scale: { type: 'string', default: '50000' },
    patients: { type: 'string', default: '10000' },
    organizations: { type: 'string', default: '20' },
    duration: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '16' },
    scenarios: { type: 'string', default: 'create,read,search,search-sorted,transaction' },
    'max-requests': { type: 'string', default: '1000000' },
    seed: { type: 'string', default: '20240601' },
    servers: { type: 'string', default: '1' },
    profile: { type: 'boolean', default: false },
    'keep-db': { type: 'boolean', default: false },
    'no-readme': { type: 'boolean', default: false },
    'readme-only': { type: 'boolean', default: false },
    note: { type: 'string' },
    // recognition scenarios (issue 4)
    reports: { type: 'string', default: '100000' },
    'recognition-patients': { type: 'string' },
    'report-obs': { type: 'string', default: '3' },
    'bulk-batch': { type: 'string', default: '250' },
    rate: { type: 'string', default: '200' },
    database: { type: 'string' },
    // terminology scenarios (issue 3)
    'catalogue-items': { type: 'string', default: '5000' },
    'tx-concurrency': { type: 'string', default: '4' },
    // chain provenance scenarios (issue 5)
    'sweep-reports': { type: 'string', default: '100000' },
    'anchor-rate': { type: 'string', default: '50' },
    'anchor-every': { type: 'string', default: '2' },
    // the monitoring app's big screen (issue 14)
    'screen-reports': { type: 'string', default: '1000000' },
    'screen-days': { type: 'string', default: '60' },
    'screen-runs': { type: 'string', default: '5' },
    // data-quality monitoring scenarios (issue 13)
    'monitoring-institutions': { type: 'string', default: '300' },
    'monitoring-reports': { type: 'string', default: '1000000' },
    'monitoring-days': { type: 'string', default: '30' },
    'monitoring-runs': { type: 'string', default: '20' },
  },
  strict: true,
});

const int = (name: string, v: string | undefined, min: number, max: number): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in [${min}, ${max}], got '${v}'`);
  return n;
};

const options = {
  stores: (args.store === 'both' ? ['pglite', 'postgres'] : [args.store]) as Store[],
  scale: int('scale', args.scale, 0, 5_000_000),
  patients: int('patients', args.patients, 1, 1_000_000),
  organizations: int('organizations', args.organizations, 1, 20),
  duration: int('duration', args.duration, 1, 3600),
  warmup: int('warmup', args.warmup, 0, 600),
  concurrency: int('concurrency', args.concurrency, 1, 1024),
  scenarios: (args.scenarios as string).split(',').map((s) => s.trim()).filter(Boolean),
  maxRequests: int('max-requests', args['max-requests'], 1, 100_000_000),
  seed: int('seed', args.seed, 0, 2 ** 31),
  servers: int('servers', args.servers, 1, 16),
  profile: args.profile as boolean,
  keepDb: args['keep-db'] as boolean,
  readme: !(args['no-readme'] as boolean),
  note: args.note as string | undefined,
  reports: int('reports', args.reports, 0, 10_000_000),
  recognitionPatients: args['recognition-patients'] === undefined ? undefined : int('recognition-patients', args['recognition-patients'], 1, 5_000_000),
  reportObs: int('report-obs', args['report-obs'], 1, 15),
  bulkBatch: int('bulk-batch', args['bulk-batch'], 1, 10_000),
  rates: (args.rate as string).split(',').map((r) => int('rate', r.trim(), 1, 100_000)),
  database: args.database as string | undefined,
  catalogueItems: int('catalogue-items', args['catalogue-items'], 100, 100_000),
  txConcurrency: int('tx-concurrency', args['tx-concurrency'], 1, 1024),
  sweepReports: int('sweep-reports', args['sweep-reports'], 100, 10_000_000),
  anchorRate: int('anchor-rate', args['anchor-rate'], 1, 10_000),
  anchorEvery: int('anchor-every', args['anchor-every'], 1, 59),
  screenReports: int('screen-reports', args['screen-reports'], 0, 10_000_000),
  screenDays: int('screen-days', args['screen-days'], 1, 366),
  screenRuns: int('screen-runs', args['screen-runs'], 1, 100),
  monitoringInstitutions: int('monitoring-institutions', args['monitoring-institutions'], 1, 100_000),
  monitoringReports: int('monitoring-reports', args['monitoring-reports'], 100, 100_000_000),
  monitoringDays: int('monitoring-days', args['monitoring-days'], 1, 366),
  monitoringRuns: int('monitoring-runs', args['monitoring-runs'], 1, 10_000),
};
for (const s of options.stores) if (s !== 'pglite' && s !== 'postgres') throw new Error(`--store must be pglite, postgres or both, not '${s}'`);
const STANDARD = ['create', 'read', 'search', 'search-sorted', 'transaction'];
const RECOGNITION = ['recognition-check', 'cds-order-sign'];
const SCENARIOS = [...STANDARD, ...RECOGNITION, ...TERMINOLOGY, ...PROVENANCE, ...WEBAPP, ...MONITORING];
for (const s of options.scenarios) if (!SCENARIOS.includes(s)) throw new Error(`Unknown scenario '${s}' (${SCENARIOS.join(', ')})`);

const RESULTS_DIR = join(REPO_ROOT, 'bench/results');
const OBS_PER_REPORT = PANELS[0].analytes.length; // 15

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

// ---------------------------------------------------------------------------------------------------------
// CPU accounting: the server process, this load generator, PostgreSQL server processes, the whole machine.

interface CpuSnapshot {
  at: number;
  server: number;
  loadgen: number;
  postgres: number;
  machineBusy: number;
  machineTotal: number;
}

let postgresCpu: PostgresCpu | undefined;

function postgresCpuSeconds(): number {
  return postgresCpu ? postgresCpu.seconds() : 0;
}

/** The server processes' resident memory after a scenario: summed over the processes now, and the largest peak. */
function serverMemory(servers: RunningServer[]): ProcessMemory {
  const m = servers.map((s) => s.memory());
  return { rssMB: round(m.reduce((sum, x) => sum + x.rssMB, 0), 1), peakMB: Math.max(...m.map((x) => x.peakMB)) };
}

function cpuSnapshot(servers: RunningServer[]): CpuSnapshot {
  const cpus = os.cpus();
  let busy = 0;
  let total = 0;
  for (const c of cpus) {
    const t = c.times;
    busy += t.user + t.nice + t.sys + t.irq;
    total += t.user + t.nice + t.sys + t.irq + t.idle;
  }
  const self = process.cpuUsage();
  return {
    at: performance.now(),
    server: servers.reduce((sum, server) => sum + server.cpuSeconds(), 0),
    loadgen: (self.user + self.system) / 1e6,
    postgres: servers[0].store === 'postgres' ? postgresCpuSeconds() : 0,
    machineBusy: busy / 1000,
    machineTotal: total / 1000,
  };
}

/** Average number of cores busy in each part during the interval (1.0 = one core fully). */
function cpuUse(a: CpuSnapshot, b: CpuSnapshot, requests?: number) {
  const wall = (b.at - a.at) / 1000;
  const cores = (x: number) => round(x / wall, 2);
  // CPU time per request is much less sensitive to other load on the machine than requests/s
  const perRequest = (x: number) => (requests ? { [`ms`]: round((1000 * x) / requests, 2) } : {});
  return {
    serverCores: cores(b.server - a.server),
    loadGeneratorCores: cores(b.loadgen - a.loadgen),
    ...(b.postgres > 0 ? { postgresCores: cores(b.postgres - a.postgres) } : {}),
    machineBusyPercent: round((100 * (b.machineBusy - a.machineBusy)) / Math.max(1e-9, b.machineTotal - a.machineTotal), 1),
    ...(requests
      ? {
          serverCpuMsPerRequest: perRequest(b.server - a.server).ms,
          ...(b.postgres > 0 ? { postgresCpuMsPerRequest: perRequest(b.postgres - a.postgres).ms } : {}),
        }
      : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Sampling of what the preload created (bounded memory at any scale)

class Reservoir<T> {
  readonly items: T[] = [];
  private seen = 0;
  constructor(
    private readonly size: number,
    private readonly rng: Rng
  ) {}
  add(item: T): void {
    this.seen++;
    if (this.items.length < this.size) this.items.push(item);
    else {
      const j = Math.floor(this.rng.next() * this.seen);
      if (j < this.size) this.items[j] = item;
    }
  }
}

interface SearchTarget {
  patientId: string;
  codes: string[];
  effective: string;
}

interface Fixture {
  orgs: ReportRefs['org'][];
  patients: { id: string; gender: 'male' | 'female' }[];
  observationIds: Reservoir<string>;
  searchTargets: Reservoir<SearchTarget>;
}

function idsFromResponse(body: string): { type: string; id: string }[] {
  const bundle = JSON.parse(body) as Bundle;
  return (bundle.entry ?? []).map((e) => {
    const location = e.response?.location ?? '';
    const [type, id] = location.replace(/^.*\/fhir\//, '').split('/');
    return { type, id };
  });
}

/** Runs `count` transactions of `build(i)` on `concurrency` clients; returns throughput and latency. */
async function preloadPhase(
  client: Sender,
  label: string,
  count: number,
  resourcesPer: (i: number) => number,
  build: (i: number) => string,
  onDone: (i: number, body: string) => void
) {
  let nextIndex = 0;
  let done = 0;
  let resources = 0;
  const latencies: number[] = [];
  const t0 = performance.now();
  let lastLog = t0;
  const worker = async () => {
    for (;;) {
      const i = nextIndex++;
      if (i >= count) return;
      const body = build(i);
      const start = performance.now();
      const reply = await client.send({ method: 'POST', path: '/fhir', body, keepBody: true });
      latencies.push(performance.now() - start);
      if (reply.status !== 200) throw new Error(`Preload ${label} transaction ${i} failed: ${reply.status} ${(reply.body ?? '').slice(0, 500)}`);
      onDone(i, reply.body as string);
      done++;
      resources += resourcesPer(i);
      const now = performance.now();
      if (now - lastLog > 10_000) {
        lastLog = now;
        const s = (now - t0) / 1000;
        log(`  ${label}: ${done}/${count} transactions, ${Math.round(resources / s)} resources/s, ETA ${Math.round(((count - done) * s) / done)} s`);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const { summarize } = await import('./client.ts');
  return {
    transactions: count,
    resources,
    seconds: round(seconds, 1),
    transactionsPerSecond: round(count / seconds, 1),
    resourcesPerSecond: round(resources / seconds, 1),
    latencyMs: summarize(latencies),
  };
}

async function preload(servers: RunningServer[], client: Sender, rng: Rng) {
  const fixture: Fixture = {
    orgs: [],
    patients: [],
    observationIds: new Reservoir<string>(200_000, rng),
    searchTargets: new Reservoir<SearchTarget>(50_000, rng),
  };
  const window = defaultWindow();
  const startCpu = cpuSnapshot(servers);

  // 1. institutions, one transaction
  const insts = institutions(options.organizations);
  const orgReply = await client.send({ method: 'POST', path: '/fhir', body: JSON.stringify(createBundle(insts.map((i) => i.resource))), keepBody: true });
  if (orgReply.status !== 200) throw new Error(`Preload of organizations failed: ${orgReply.status} ${orgReply.body}`);
  idsFromResponse(orgReply.body as string).forEach(({ id }, k) => fixture.orgs.push({ id, code: insts[k].code, name: insts[k].resource.name as string }));

  // 2. patients, 100 per transaction
  const perBundle = 100;
  const patientBatches = Math.ceil(options.patients / perBundle);
  const genders: ('male' | 'female')[][] = [];
  const patients = await preloadPhase(
    client,
    'patients',
    patientBatches,
    (i) => Math.min(perBundle, options.patients - i * perBundle),
    (i) => {
      const seeds = Array.from({ length: Math.min(perBundle, options.patients - i * perBundle) }, (_, k) => patient(rng, i * perBundle + k, insts));
      genders[i] = seeds.map((s) => s.gender);
      return JSON.stringify(createBundle(seeds.map((s) => s.resource)));
    },
    (i, body) => {
      idsFromResponse(body).forEach(({ id }, k) => fixture.patients.push({ id, gender: genders[i][k] }));
      delete genders[i];
    }
  );
  log(`  patients: ${patients.resources} in ${patients.seconds} s (${patients.resourcesPerSecond}/s)`);

  // 3. lab reports (1 DiagnosticReport + 15 Observations per transaction)
  const reportCount = Math.ceil(options.scale / OBS_PER_REPORT);
  const targets: SearchTarget[] = [];
  const reports = await preloadPhase(
    client,
    'reports',
    reportCount,
    () => OBS_PER_REPORT + 1,
    (i) => {
      const p = rng.pick(fixture.patients);
      const r = labReport(rng, { patientId: p.id, gender: p.gender, org: rng.pick(fixture.orgs) }, window);
      targets[i] = { patientId: r.patientId, codes: r.codes, effective: r.effective };
      return JSON.stringify(r.bundle);
    },
    (i, body) => {
      for (const { type, id } of idsFromResponse(body)) if (type === 'Observation') fixture.observationIds.add(id);
      fixture.searchTargets.add(targets[i]);
      delete targets[i];
    }
  );
  log(`  reports: ${reports.transactions} transactions in ${reports.seconds} s (${reports.transactionsPerSecond} tx/s, ${reports.resourcesPerSecond} resources/s)`);
  return {
    fixture,
    window,
    summary: {
      organizations: fixture.orgs.length,
      patients,
      reports: { ...reports, observations: reports.transactions * OBS_PER_REPORT },
      cpu: cpuUse(startCpu, cpuSnapshot(servers), patients.transactions + reports.transactions),
    },
  };
}

// ---------------------------------------------------------------------------------------------------------

function scenarioRequests(name: string, fixture: Fixture, window: ReturnType<typeof defaultWindow>, rng: Rng): (i: number) => RequestSpec {
  const refs = (): ReportRefs => {
    const p = rng.pick(fixture.patients);
    return { patientId: p.id, gender: p.gender, org: rng.pick(fixture.orgs) };
  };
  switch (name) {
    case 'create':
      return () => ({ method: 'POST', path: '/fhir/Observation', body: JSON.stringify(singleObservation(rng, refs(), window)) });
    case 'read': {
      const ids = fixture.observationIds.items;
      if (ids.length === 0) throw new Error('The read scenario needs preloaded Observations (--scale > 0)');
      return () => ({ method: 'GET', path: `/fhir/Observation/${rng.pick(ids)}` });
    }
    case 'search':
    case 'search-sorted': {
      const targets = fixture.searchTargets.items;
      if (targets.length === 0) throw new Error('The search scenario needs preloaded reports (--scale > 0)');
      return () => {
        const t = rng.pick(targets);
        const code = rng.pick(t.codes);
        // from up to half a year before the result: most searches find it (and sometimes a few more)
        const since = new Date(Date.parse(t.effective) - rng.int(0, 180) * 86_400_000).toISOString().slice(0, 10);
        const query = `subject=Patient/${t.patientId}&code=${encodeURIComponent(`http://loinc.org|${code}`)}&date=ge${since}${name === 'search-sorted' ? '&_sort=-date' : ''}`;
        return { method: 'GET', path: `/fhir/Observation?${query}` };
      };
    }
    case 'transaction':
      return () => ({ method: 'POST', path: '/fhir', body: JSON.stringify(labReport(rng, refs(), window, rng.pick(PANELS)).bundle) });
  }
  throw new Error(`unknown scenario ${name}`);
}

/**
 * The fixture of a kept database (`--keep-db`, then `--database <name>`): its institutions, patients, a sample
 * of Observation ids to read and of results to search for (a patient, the LOINC codes of one effective
 * instant), read from the search index. The preload figures are those of the run that made it (not repeated).
 */
async function storedFixture(databaseUrl: string, rng: Rng): Promise<Awaited<ReturnType<typeof preload>>> {
  const fixture: Fixture = { orgs: [], patients: [], observationIds: new Reservoir<string>(200_000, rng), searchTargets: new Reservoir<SearchTarget>(50_000, rng) };
  const orgs = await adminQuery<{ id: string; code: string | null; name: string | null }>(
    `SELECT r.id, (SELECT t.code FROM idx_token t WHERE t.type = 'Organization' AND t.id = r.id AND t.param = 'identifier' LIMIT 1) AS code, r.content->>'name' AS name
       FROM resource r WHERE r.type = 'Organization' AND NOT r.deleted`,
    databaseUrl
  );
  for (const o of orgs) fixture.orgs.push({ id: o.id, code: o.code ?? '', name: o.name ?? '' });
  const patients = await adminQuery<{ id: string; gender: string }>(`SELECT id, code AS gender FROM idx_token WHERE type = 'Patient' AND param = 'gender'`, databaseUrl);
  for (const p of patients) fixture.patients.push({ id: p.id, gender: p.gender === 'female' ? 'female' : 'male' });
  const ids = await adminQuery<{ id: string }>(`SELECT id FROM resource WHERE type = 'Observation' AND NOT deleted ORDER BY random() LIMIT 200000`, databaseUrl);
  for (const { id } of ids) fixture.observationIds.add(id);
  const targets = await adminQuery<{ patient: string; effective: Date; codes: string[] }>(
    `SELECT s.target_id AS patient, d.low AS effective, array_agg(DISTINCT c.code) AS codes
       FROM (SELECT id FROM resource WHERE type = 'Observation' AND NOT deleted ORDER BY random() LIMIT 50000) o
       JOIN idx_reference s ON s.type = 'Observation' AND s.id = o.id AND s.param = 'subject' AND s.target_type = 'Patient'
       JOIN idx_date d ON d.type = 'Observation' AND d.id = o.id AND d.param = 'date'
       JOIN idx_token c ON c.type = 'Observation' AND c.id = o.id AND c.param = 'code' AND c.system = 'http://loinc.org'
      GROUP BY 1, 2`,
    databaseUrl
  );
  for (const t of targets) fixture.searchTargets.add({ patientId: t.patient, effective: new Date(t.effective).toISOString(), codes: t.codes });
  const [{ n }] = await adminQuery<{ n: number }>(`SELECT count(*)::int AS n FROM resource WHERE type = 'Observation' AND NOT deleted`, databaseUrl);
  const [{ r }] = await adminQuery<{ r: number }>(`SELECT count(*)::int AS r FROM resource WHERE type = 'DiagnosticReport' AND NOT deleted`, databaseUrl);
  const none = { transactions: 0, resources: 0, seconds: 0, transactionsPerSecond: 0, resourcesPerSecond: 0 };
  return {
    fixture,
    window: defaultWindow(),
    summary: { organizations: fixture.orgs.length, patients: { ...none, resources: fixture.patients.length }, reports: { ...none, transactions: r, observations: n }, reused: true },
  } as unknown as Awaited<ReturnType<typeof preload>>;
}

async function databaseFigures(server: RunningServer) {
  if (!server.databaseUrl) return undefined;
  const rows = await adminQuery<{ relname: string; rows: number; bytes: string }>(
    `SELECT c.relname, c.reltuples::bigint AS rows, pg_total_relation_size(c.oid) AS bytes
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY pg_total_relation_size(c.oid) DESC`,
    server.databaseUrl
  );
  const size = await adminQuery<{ bytes: string }>(`SELECT pg_database_size(current_database()) AS bytes`, server.databaseUrl);
  return {
    databaseMB: round(Number(size[0].bytes) / 2 ** 20, 1),
    tables: Object.fromEntries(rows.map((r) => [r.relname, { rows: Number(r.rows), totalMB: round(Number(r.bytes) / 2 ** 20, 1) }])),
  };
}

async function benchStore(store: Store, machine: Record<string, unknown>) {
  const rng = new Rng(options.seed);
  const profileDir = options.profile ? join(RESULTS_DIR, `tmp-profile-${store}-${Date.now()}`) : undefined;
  if (store !== 'postgres' && options.database) throw new Error('--database reuses a kept PostgreSQL database: use it with --store postgres');
  log(`${store}: starting the server${options.database ? ` on the kept database ${options.database}` : ''}${profileDir ? ` (CPU profile in ${profileDir})` : ''}`);
  const server = await startServer({
    store,
    nodeFlags: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    keepDatabase: options.keepDb || !!options.database,
    databaseName: options.database,
  });
  const servers = [server];
  try {
    for (let i = 1; store === 'postgres' && i < options.servers; i++) {
      servers.push(await startServer({ store, databaseName: server.databaseName, dataDir: server.dataDir, nodeFlags: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [] }));
    }
  } catch (err) {
    for (const s of servers.reverse()) await s.stop();
    throw err;
  }
  if (servers.length > 1) log(`${store}: ${servers.length} server processes on database ${server.databaseName}`);
  const client: Sender =
    servers.length === 1
      ? new FhirClient(server.baseUrl, server.token, options.concurrency)
      : new RoundRobin(servers.map((s) => new FhirClient(s.baseUrl, s.token, options.concurrency)));
  postgresCpu = server.databaseName ? new PostgresCpu(server.databaseName) : undefined;
  postgresCpu?.begin();
  try {
    let loaded: Awaited<ReturnType<typeof preload>>;
    if (options.database) {
      loaded = await storedFixture(server.databaseUrl as string, rng);
      log(`${store}: reusing ${options.database}: ${loaded.summary.reports.observations} Observations, ${loaded.fixture.patients.length} patients`);
    } else {
      log(`${store}: preloading ${options.organizations} organizations, ${options.patients} patients, ${Math.ceil(options.scale / OBS_PER_REPORT)} reports (${options.scale} observations)`);
      loaded = await preload(servers, client, rng);
    }
    const { fixture, window, summary } = loaded;
    const preloaded = performance.now();
    // Planner statistics and the visibility map: the server analyses grown tables every 30 s when nothing else
    // does (PGlite has no autovacuum), and this machine's PostgreSQL runs with autovacuum off. On PostgreSQL the
    // benchmark vacuums and analyses right after the preload, as autovacuum would after so many inserts
    // (autovacuum_vacuum_insert_threshold): without it every index-only probe of a search also reads the heap
    // (seen at a million Observations: 105 heap fetches and 3.7 ms of PostgreSQL CPU per search).
    let analyzeSeconds: number | undefined;
    if (server.databaseUrl) {
      const t = performance.now();
      await adminQuery('VACUUM (ANALYZE)', server.databaseUrl);
      analyzeSeconds = round((performance.now() - t) / 1000, 1);
      log(`${store}: VACUUM (ANALYZE) after the preload took ${analyzeSeconds} s`);
    }
    const scenarios: Record<string, LoadResult & { cpu: ReturnType<typeof cpuUse>; memory: ProcessMemory; resourcesPerSecond?: number }> = {};
    for (const name of options.scenarios.filter((n) => STANDARD.includes(n))) {
      if (name.startsWith('search') && !server.databaseUrl) {
        // PGlite: let the server's statistics round (every 30 s) see the preloaded tables first
        const wait = 35_000 - (performance.now() - preloaded);
        if (wait > 0) {
          log(`${store}: waiting ${Math.ceil(wait / 1000)} s for the server to analyse the preloaded tables`);
          await new Promise((r) => setTimeout(r, wait));
        }
      }
      log(`${store}: ${name} — ${options.warmup} s warm-up, ${options.duration} s measured, ${options.concurrency} clients`);
      const next = scenarioRequests(name, fixture, window, rng);
      const before = cpuSnapshot(servers);
      const result = await runLoad(client, { concurrency: options.concurrency, seconds: options.duration, warmupSeconds: options.warmup, maxRequests: options.maxRequests }, next);
      // the CPU window includes the warm-up: count its requests too
      const cpu = cpuUse(before, cpuSnapshot(servers), result.requests + result.warmupRequests);
      scenarios[name] = {
        ...result,
        ...(name === 'transaction' ? { resourcesPerSecond: round(result.requestsPerSecond * (OBS_PER_REPORT + 1), 1) } : {}),
        cpu,
        memory: serverMemory(servers),
      };
      log(
        `  ${name}: ${result.requestsPerSecond} req/s, p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms, ${result.errors} errors` +
          ` (server ${cpu.serverCores} cores = ${cpu.serverCpuMsPerRequest} ms/req, load generator ${cpu.loadGeneratorCores}` +
          `${cpu.postgresCores !== undefined ? `, postgres ${cpu.postgresCores} = ${cpu.postgresCpuMsPerRequest} ms/req` : ''}, machine ${cpu.machineBusyPercent}% busy)`
      );
      for (const s of result.errorSamples) log(`    error: ${s}`);
    }
    const database = await databaseFigures(server).catch(() => undefined);
    return {
      benchmark: 'huren',
      timestamp: new Date().toISOString(),
      store,
      engine: server.engineVersion,
      options: {
        scale: options.scale,
        concurrency: options.concurrency,
        serverProcesses: servers.length,
        durationSeconds: options.duration,
        warmupSeconds: options.warmup,
        maxRequests: options.maxRequests,
        seed: options.seed,
        profiled: options.profile,
      },
      data: {
        organizations: summary.organizations,
        patients: fixture.patients.length,
        reports: summary.reports.transactions,
        observations: summary.reports.observations,
      },
      machine: { ...machine, engine: server.engineVersion },
      preload: { ...summary, ...(analyzeSeconds !== undefined ? { analyzeSeconds } : {}) },
      scenarios,
      ...(database ? { database } : {}),
      ...(options.note ? { note: options.note } : {}),
      ...(profileDir ? { profileDir } : {}),
    };
  } finally {
    postgresCpu?.stop();
    postgresCpu = undefined;
    client.close();
    log(`${store}: stopping the server${(options.keepDb || options.database) && server.databaseName ? ` (keeping database ${server.databaseName})` : ''}`);
    // the first server created the database and drops it: stop it last
    for (const s of [...servers].reverse()) await s.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Recognition (issue 4): $recognition-check and CDS Hooks order-sign at a fixed arrival rate over a bulk-loaded
// store of `--reports` DiagnosticReports.

async function benchRecognition(store: Store, machine: Record<string, unknown>) {
  if (store !== 'postgres' && options.database) throw new Error('--database reuses a kept PostgreSQL database: use it with --store postgres');
  if (store === 'pglite') throw new Error('The recognition scenarios bulk-load through a second connection to the database: PostgreSQL only for now (--store postgres)');
  const rng = new Rng(options.seed);
  const profileDir = options.profile ? join(RESULTS_DIR, `tmp-profile-${store}-recognition-${Date.now()}`) : undefined;
  log(`${store}: starting the server${options.database ? ` on the kept database ${options.database}` : ''}${profileDir ? ` (CPU profile in ${profileDir})` : ''}`);
  const server = await startServer({
    store,
    nodeFlags: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    keepDatabase: options.keepDb,
    databaseName: options.database,
  });
  const servers = [server];
  // an open loop needs a socket per outstanding request: never queue in the client
  const client = new FhirClient(server.baseUrl, server.token, 1024);
  postgresCpu = server.databaseName ? new PostgresCpu(server.databaseName) : undefined;
  postgresCpu?.begin();
  try {
    let load: Awaited<ReturnType<typeof loadRecognition>>['summary'] | undefined;
    let fixture: RecognitionFixture;
    let analyzeSeconds: number | undefined;
    if (options.database) {
      fixture = await fixtureFromDatabase(server.databaseUrl as string);
      log(`${store}: reusing ${options.database}: ${fixture.patients.length} patients, ${fixture.requesters.length} requesting institutions`);
    } else {
      const patients = options.recognitionPatients ?? Math.max(20, Math.round(options.reports / 10));
      log(`${store}: loading ${options.reports} reports (${options.reportObs} results per lab report) for ${patients} patients`);
      const loaded = await loadRecognition(client, {
        databaseUrl: server.databaseUrl as string,
        reports: options.reports,
        patients,
        obsPerReport: options.reportObs,
        seed: options.seed,
        batch: options.bulkBatch,
        recordKeyFile: join(server.dataDir, 'record-keys.json'),
        log,
      });
      fixture = loaded.fixture;
      load = loaded.summary;
      log(`${store}: loaded in ${load.seconds} s (bulk: ${load.bulk.reportsPerSecond} reports/s, ${load.bulk.resourcesPerSecond} resources/s)`);
      // as autovacuum would after the bulk load (see benchStore): the visibility map for index-only scans
      const t = performance.now();
      await adminQuery('VACUUM (ANALYZE)', server.databaseUrl);
      analyzeSeconds = round((performance.now() - t) / 1000, 1);
      log(`${store}: VACUUM (ANALYZE) took ${analyzeSeconds} s`);
    }
    const counts = await adminQuery<{ type: string; n: number }>(
      `SELECT type, count(*)::int AS n FROM resource WHERE type IN ('DiagnosticReport', 'Observation', 'Patient', 'DetectedIssue') GROUP BY type`,
      server.databaseUrl
    );
    const count = (t: string) => counts.find((c) => c.type === t)?.n ?? 0;
    // --servers N: N server processes on the one database, requests spread over them (after the load)
    for (let i = 1; i < options.servers; i++) {
      servers.push(await startServer({ store, databaseName: server.databaseName, dataDir: server.dataDir, nodeFlags: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [] }));
    }
    if (servers.length > 1) log(`${store}: ${servers.length} server processes on database ${server.databaseName}`);
    const sender: Sender = servers.length === 1 ? client : new RoundRobin([client, ...servers.slice(1).map((s) => new FhirClient(s.baseUrl, s.token, 1024))]);
    const scenarios: Record<string, OpenLoopResult & { cpu: ReturnType<typeof cpuUse>; memory: ProcessMemory }> = {};
    for (const name of options.scenarios.filter((n) => RECOGNITION.includes(n))) for (const rate of options.rates) {
      log(`${store}: ${name} — open loop at ${rate} requests/s, ${options.warmup} s warm-up, ${options.duration} s measured`);
      const next = recognitionRequests(name, fixture, rng);
      const before = cpuSnapshot(servers);
      const result = await runOpenLoop(sender, { rate, seconds: options.duration, warmupSeconds: options.warmup }, next);
      const cpu = cpuUse(before, cpuSnapshot(servers), result.requests + result.warmupRequests);
      scenarios[options.rates.length > 1 ? `${name}@${rate}` : name] = { ...result, cpu, memory: serverMemory(servers) };
      log(
        `  ${name}: ${result.requestsPerSecond}/s achieved of ${rate}/s, p50 ${result.latencyMs.p50} ms, p95 ${result.latencyMs.p95} ms, p99 ${result.latencyMs.p99} ms, ` +
          `${result.errors} errors, at most ${result.maxInFlight} in flight (server ${cpu.serverCpuMsPerRequest} ms CPU/req` +
          `${cpu.postgresCpuMsPerRequest !== undefined ? `, postgres ${cpu.postgresCpuMsPerRequest} ms/req` : ''}, machine ${cpu.machineBusyPercent}% busy)`
      );
      for (const e of result.errorSamples) log(`    error: ${e}`);
    }
    if (sender !== client) sender.close();
    const database = await databaseFigures(server).catch(() => undefined);
    return {
      benchmark: 'huren',
      suite: 'recognition',
      timestamp: new Date().toISOString(),
      store,
      engine: server.engineVersion,
      options: { rates: options.rates, durationSeconds: options.duration, warmupSeconds: options.warmup, seed: options.seed, profiled: options.profile, reportObs: options.reportObs, reusedDatabase: options.database, serverProcesses: servers.length },
      data: {
        reports: count('DiagnosticReport'),
        observations: count('Observation'),
        patients: count('Patient'),
        detectedIssuesBefore: count('DetectedIssue'),
        requesters: fixture.requesters.length,
      },
      machine: { ...machine, engine: server.engineVersion },
      ...(load ? { load: { ...load, ...(analyzeSeconds !== undefined ? { analyzeSeconds } : {}) } } : {}),
      scenarios,
      ...(database ? { database } : {}),
      ...(options.note ? { note: options.note } : {}),
      ...(profileDir ? { profileDir } : {}),
      ...(options.keepDb || options.database ? { databaseName: server.databaseName } : {}),
    };
  } finally {
    postgresCpu?.stop();
    postgresCpu = undefined;
    client.close();
    log(`${store}: stopping the server${(options.keepDb || options.database) && server.databaseName ? ` (keeping database ${server.databaseName})` : ''}`);
    for (const s of servers.slice(1).reverse()) await s.stop();
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Terminology (issue 3): the five operations over HTTP on a 5,000-item catalogue, closed loop.

async function benchTerminology(store: Store, machine: Record<string, unknown>) {
  const rng = new Rng(options.seed);
  const profileDir = options.profile ? join(RESULTS_DIR, `tmp-profile-${store}-terminology-${Date.now()}`) : undefined;
  log(`${store}: starting the server${profileDir ? ` (CPU profile in ${profileDir})` : ''}`);
  const server = await startServer({ store, nodeFlags: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [] });
  const servers = [server];
  const client = new FhirClient(server.baseUrl, server.token, Math.max(16, options.txConcurrency));
  try {
    const { fixture, summary } = await loadTerminologyFixture(client, server, options.catalogueItems, log);
    const scenarios: Record<string, LoadResult & { cpu: ReturnType<typeof cpuUse> }> = {};
    for (const name of options.scenarios.filter((n) => TERMINOLOGY.includes(n))) {
      log(`${store}: ${name} — ${options.warmup} s warm-up, ${options.duration} s measured, ${options.txConcurrency} clients`);
      const before = cpuSnapshot(servers);
      const result = await runLoad(
        client,
        { concurrency: options.txConcurrency, seconds: options.duration, warmupSeconds: options.warmup, maxRequests: options.maxRequests },
        terminologyRequests(name, fixture, rng)
      );
      const cpu = cpuUse(before, cpuSnapshot(servers), result.requests + result.warmupRequests);
      scenarios[name] = { ...result, cpu };
      log(
        `  ${name}: ${result.requestsPerSecond} req/s, p50 ${result.latencyMs.p50} ms, p95 ${result.latencyMs.p95} ms, p99 ${result.latencyMs.p99} ms, ${result.errors} errors` +
          ` (server ${cpu.serverCpuMsPerRequest} ms CPU/req, machine ${cpu.machineBusyPercent}% busy)`
      );
      for (const e of result.errorSamples) log(`    error: ${e}`);
    }
    return {
      benchmark: 'huren',
      suite: 'terminology',
      timestamp: new Date().toISOString(),
      store,
      engine: server.engineVersion,
      options: { concurrency: options.txConcurrency, durationSeconds: options.duration, warmupSeconds: options.warmup, seed: options.seed, profiled: options.profile },
      data: { catalogueRows: summary.rows, valueSetCodes: summary.valueSetTotal, reports: `catalogue${summary.rows}` },
      machine: { ...machine, engine: server.engineVersion },
      load: summary,
      scenarios,
      ...(options.note ? { note: options.note } : {}),
      ...(profileDir ? { profileDir } : {}),
    };
  } finally {
    client.close();
    log(`${store}: stopping the server`);
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Chain provenance (issue 5): fingerprints/s, the sweep's reports/s, outbox → anchored latency.

async function benchProvenance(store: Store, machine: Record<string, unknown>) {
  if (store !== 'postgres') throw new Error('The provenance scenarios bulk-load through a second connection: --store postgres');
  const wanted = (n: string) => options.scenarios.includes(n);
  const scenarios: Record<string, unknown> = {};
  if (wanted('fingerprint')) {
    log(`${store}: fingerprint — ${options.duration} s per algorithm, one core (this process)`);
    const f = await fingerprintRate(options.duration);
    scenarios.fingerprint = f;
    log(`  fingerprint: SM3 ${f.sm3.perSecond}/s (${f.sm3.microsecondsEach} µs), SHA-256 ${f.sha256.perSecond}/s (${f.sha256.microsecondsEach} µs), Bundle of ${f.bundleBytes} bytes`);
  }
  let load: unknown;
  if (wanted('sweep') || wanted('anchor')) {
    const server = await startServer({
      store,
      keepDatabase: options.keepDb,
      env: { HUREN_ANCHOR_CRON: `*/${options.anchorEvery} * * * * *`, HUREN_SWEEP_CRON: 'off', HUREN_DEEP_SWEEP_CRON: 'off' },
    });
    const client = new FhirClient(server.baseUrl, server.token, 1024);
    try {
      const reports = wanted('sweep') ? options.sweepReports : 1000;
      log(`${store}: loading ${reports} reports with their intake records (original, version, members)`);
      const loaded = await loadRecognition(client, {
        databaseUrl: server.databaseUrl as string,
        reports,
        patients: Math.max(20, Math.round(reports / 10)),
        obsPerReport: options.reportObs,
        seed: options.seed,
        batch: options.bulkBatch,
        intake: true,
        recordKeyFile: join(server.dataDir, 'record-keys.json'),
        log,
      });
      load = loaded.summary;
      log(`${store}: loaded in ${loaded.summary.seconds} s; ANALYZE`);
      await adminQuery('ANALYZE', server.databaseUrl);
      if (wanted('sweep')) {
        log(`${store}: sweep — 3 normal runs and a deep one, 2 workers (PostgreSQL connections)`);
        scenarios.sweep = await sweepRate(server.databaseUrl as string, 3, log, join(server.dataDir, 'record-keys.json'));
      }
      if (wanted('anchor')) {
        log(`${store}: anchor — ${options.anchorRate} recognition records/s for ${options.duration} s, anchored every ${options.anchorEvery} s on the embedded chain`);
        scenarios.anchor = await anchorLatency(client, server.databaseUrl as string, loaded.fixture, { rate: options.anchorRate, seconds: options.duration, cronSeconds: options.anchorEvery }, log);
      }
    } finally {
      client.close();
      await server.stop();
    }
  }
  return {
    benchmark: 'huren',
    suite: 'provenance',
    timestamp: new Date().toISOString(),
    store,
    options: { durationSeconds: options.duration, sweepReports: options.sweepReports, anchorRate: options.anchorRate, anchorEverySeconds: options.anchorEvery, seed: options.seed },
    data: { reports: wanted('sweep') ? options.sweepReports : 0 },
    machine,
    ...(load ? { load } : {}),
    scenarios,
    ...(options.note ? { note: options.note } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------
// The monitoring app (issue 14): the big screen's first load in Chromium with --screen-reports reports stored.

async function benchWebapp(store: Store, machine: Record<string, unknown>) {
  if (store !== 'postgres') throw new Error('The screen scenario bulk-loads through a second connection: --store postgres');
  log(`${store}: starting the server${options.database ? ` on the kept database ${options.database}` : ''} (monitoring and chain jobs off: the screen reads the facts, and a sweep's updates of report_version deadlocked with the receipt spread at a million reports)`);
  const jobsOff = { HUREN_MONITORING_CRON: 'off', HUREN_MONITORING_KEEP_CRON: 'off', HUREN_ANCHOR_CRON: 'off', HUREN_SWEEP_CRON: 'off', HUREN_DEEP_SWEEP_CRON: 'off', HUREN_STATISTICS_CRON: 'off', HUREN_VERIFY_CRON: 'off', HUREN_ANALYZE_CRON: 'off' };
  const server = await startServer({ store, keepDatabase: options.keepDb || !!options.database, databaseName: options.database, env: jobsOff });
  const client = new FhirClient(server.baseUrl, server.token, 64);
  try {
    log(`${store}: screen — ${options.screenReports} reports over ${options.screenDays} days, ${options.screenRuns} first loads`);
    const result = await screenFirstLoad(client, server, {
      reports: options.database ? 0 : options.screenReports,
      days: options.screenDays,
      runs: options.screenRuns,
      reportObs: options.reportObs,
      seed: options.seed,
      batch: options.bulkBatch,
      log,
    });
    log(`  screen: first load p50 ${result.firstLoad.ms.p50} ms, max ${result.firstLoad.ms.max} ms; bundle ${Math.round(result.bundle.bytes / 1024)} KiB (${Math.round(result.bundle.gzipBytes / 1024)} KiB gzip)`);
    return {
      benchmark: 'huren',
      suite: 'webapp',
      timestamp: new Date().toISOString(),
      store,
      engine: server.engineVersion,
      options: { screenReports: options.screenReports, screenDays: options.screenDays, runs: options.screenRuns, seed: options.seed },
      data: { reports: options.screenReports },
      machine,
      ...(result.load ? { load: result.load } : {}),
      scenarios: { screen: { bundle: result.bundle, keep: result.keep, firstLoad: result.firstLoad } },
      ...(options.note ? { note: options.note } : {}),
    };
  } finally {
    client.close();
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Data-quality monitoring (issue 13): a full evaluation, the per-minute one, the dashboard's queries.

async function benchMonitoring(store: Store, machine: Record<string, unknown>) {
  if (store !== 'postgres') throw new Error('The monitoring scenarios bulk-load through a second connection: --store postgres');
  const wanted = (n: string) => options.scenarios.includes(n);
  const scenarios: Record<string, unknown> = {};
  const server = await startServer({
    store,
    keepDatabase: options.keepDb,
    env: { HUREN_MONITORING_CRON: 'off', HUREN_MONITORING_REPORTS_CRON: 'off', HUREN_MONITORING_BRIEFING_CRON: 'off' },
  });
  const client = new FhirClient(server.baseUrl, server.token, 1024);
  let load: unknown;
  try {
    log(`${store}: monitoring — ${options.monitoringInstitutions} institutions, ${options.monitoringReports} reports, ${options.monitoringDays} days`);
    const loaded = await loadMonitoring(client, {
      databaseUrl: server.databaseUrl as string,
      institutions: options.monitoringInstitutions,
      reports: options.monitoringReports,
      days: options.monitoringDays,
      log,
    });
    load = loaded.summary;
    // the full evaluation comes first in any case: the incremental one follows it
    const full = await fullEvaluation(client, loaded.fixture, log);
    if (wanted('monitoring-full')) scenarios['monitoring-full'] = full;
    if (wanted('monitoring-incremental')) scenarios['monitoring-incremental'] = await incrementalEvaluation(client, loaded.fixture, options.monitoringRuns, log);
    if (wanted('monitoring-dashboard')) {
      scenarios['monitoring-dashboard'] = await dashboardQueries(
        client,
        loaded.fixture,
        { concurrency: Math.min(options.concurrency, 8), seconds: Math.max(1, Math.round(options.duration / 5)), warmupSeconds: Math.min(options.warmup, 1), maxRequests: options.maxRequests },
        log
      );
    }
  } finally {
    client.close();
    await server.stop();
  }
  return {
    benchmark: 'huren',
    suite: 'monitoring',
    timestamp: new Date().toISOString(),
    store,
    options: { institutions: options.monitoringInstitutions, days: options.monitoringDays, runs: options.monitoringRuns, durationSeconds: options.duration, concurrency: Math.min(options.concurrency, 8) },
    data: { reports: options.monitoringReports },
    machine,
    load,
    scenarios,
    ...(options.note ? { note: options.note } : {}),
  };
}

async function machineInfo(): Promise<Record<string, unknown>> {
  const cpus = os.cpus();
  let postgres: string | undefined;
  let postgresSettings: Record<string, string> | undefined;
  if (options.stores.includes('postgres')) {
    postgres = (await adminQuery<{ version: string }>('SELECT version()').catch(() => []))[0]?.version;
    // the settings a reader needs to compare runs (the PostgreSQL server is the machine's, not the project's)
    const rows = await adminQuery<{ name: string; setting: string; unit: string | null }>(
      `SELECT name, setting, unit FROM pg_settings WHERE name IN ('shared_buffers', 'autovacuum', 'synchronous_commit', 'max_wal_size', 'work_mem')`
    ).catch(() => []);
    postgresSettings = Object.fromEntries(rows.map((r) => [r.name, r.unit === '8kB' ? `${(Number(r.setting) * 8) / 1024} MB` : `${r.setting}${r.unit ?? ''}`]));
  }
  let os_ = `${os.type()} ${os.release()}`;
  try {
    const pretty = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'));
    if (pretty) os_ = `${pretty[1]} (${os.type()} ${os.release()})`;
  } catch {
    // not Linux
  }
  return {
    os: os_,
    arch: os.arch(),
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpuCount: cpus.length,
    totalMemoryGB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    ...(postgres ? { postgres } : {}),
    ...(postgresSettings ? { postgresSettings: { ...postgresSettings, connection: PG_CONNECTION } } : {}),
    loadAverageAtStart: os.loadavg().map((l) => round(l, 2)),
  };
}

async function main() {
  mkdirSync(RESULTS_DIR, { recursive: true });
  if (args['readme-only']) {
    // regenerate the README section from the last results, without running anything
    updateReadme(join(REPO_ROOT, 'README.md'), JSON.parse(readFileSync(join(RESULTS_DIR, 'latest.json'), 'utf8')).runs);
    return;
  }
  const machine = await machineInfo();
  log(`machine: ${machine.cpuCount} × ${machine.cpuModel}, ${machine.totalMemoryGB} GB, Node ${machine.node}`);
  const latestPath = join(RESULTS_DIR, 'latest.json');
  const suites: [string, (store: Store, machine: Record<string, unknown>) => Promise<any>][] = [];
  if (options.scenarios.some((n) => STANDARD.includes(n))) suites.push(['standard', benchStore]);
  if (options.scenarios.some((n) => RECOGNITION.includes(n))) suites.push(['recognition', benchRecognition]);
  if (options.scenarios.some((n) => TERMINOLOGY.includes(n))) suites.push(['terminology', benchTerminology]);
  if (options.scenarios.some((n) => PROVENANCE.includes(n))) suites.push(['provenance', benchProvenance]);
  if (options.scenarios.some((n) => WEBAPP.includes(n))) suites.push(['webapp', benchWebapp]);
  if (options.scenarios.some((n) => MONITORING.includes(n))) suites.push(['monitoring', benchMonitoring]);
  for (const [suite, run] of suites) for (const store of options.stores) {
    const result = await run(store, { ...machine, loadAverageAtStart: os.loadavg().map((l) => round(l, 2)) });
    const stamp = result.timestamp.replace(/[:.]/g, '-');
    const file = join(RESULTS_DIR, `${stamp}-${store}${suite === 'standard' ? '' : `-${suite}`}.json`);
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    let latest: { updated?: string; runs: Record<string, unknown> } = { runs: {} };
    try {
      latest = JSON.parse(readFileSync(latestPath, 'utf8'));
    } catch {
      // first run
    }
    latest.updated = result.timestamp;
    const key =
      suite === 'standard'
        ? `${store}@${options.database ? `${Math.round((result.data?.observations ?? 0) / 10_000) * 10_000}-kept` : options.scale}${result.options.serverProcesses > 1 ? `x${result.options.serverProcesses}` : ''}`
        : `${suite}:${store}@${result.data?.reports ?? ''}${options.database ? `-${options.database}` : ''}`;
    latest.runs = { ...latest.runs, [key]: { ...result, file: file.slice(REPO_ROOT.length) } };
    writeFileSync(latestPath, `${JSON.stringify(latest, null, 2)}\n`);
    log(`${store}: results in ${file.slice(REPO_ROOT.length)}`);
    if (options.readme) updateReadme(join(REPO_ROOT, 'README.md'), latest.runs as any);
  }
}

let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  log('interrupted: stopping (press Ctrl-C again to abort without cleanup)');
  process.exitCode = 130;
});

main().catch((err) => {
  log(`failed: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
});
