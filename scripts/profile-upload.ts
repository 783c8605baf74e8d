/**
 * Profiles the write side (issue 17): the report transaction (1 DiagnosticReport + 15 Observations, the
 * benchmark's Bundle) and the recognition check (`$recognition-check`, CDS `order-sign`), one request at a time
 * against a server on a fresh PostgreSQL database. Prints per request: server CPU ms, PostgreSQL CPU ms (the
 * backends of the database and the shared WAL writer, checkpointer, background writer) and SQL statements sent
 * (counted in the server process by scripts/lib/count-sql.mjs), with the statements that dominate.
 * Not a test and not the benchmark: a tool for finding where the time goes.
 *
 *   npx tsx scripts/profile-upload.ts [--n 200] [--warmup 30] [--reports 2000] [--cpu-prof] [--top 12]
 *
 * --cpu-prof writes the server's V8 profile under bench/results/tmp-profile-upload-<time>/ (open it in Chrome
 * DevTools). The machine is shared: read the figures beside the load average printed with them.
 */
import { readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FhirClient, type RequestSpec } from '../bench/client.ts';
import { createBundle, defaultWindow, institutions, labReport, patient, Rng } from '../bench/data.ts';
import { loadRecognition, recognitionRequests } from '../bench/recognition.ts';
import { PostgresCpu, REPO_ROOT, startServer } from '../bench/server.ts';

const { values: args } = parseArgs({
  options: {
    n: { type: 'string', default: '200' },
    warmup: { type: 'string', default: '30' },
    reports: { type: 'string', default: '2000' },
    top: { type: 'string', default: '12' },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const N = Number(args.n);
const WARMUP = Number(args.warmup);
const TOP = Number(args.top);
const countFile = join(os.tmpdir(), `huren-sql-count-${process.pid}.json`);
const profileDir = args['cpu-prof'] ? join(REPO_ROOT, 'bench/results', `tmp-profile-upload-${Date.now()}`) : undefined;

const server = await startServer({
  store: 'postgres',
  nodeFlags: ['--import', './scripts/lib/count-sql.mjs', ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [])],
  env: { HUREN_WORKERS: '1', HUREN_SQL_COUNT_FILE: countFile },
});
const client = new FhirClient(server.baseUrl, server.token, 4);
const pgCpu = new PostgresCpu(server.databaseName as string);
pgCpu.begin();

async function sqlCounts(): Promise<Map<string, number>> {
  rmSync(countFile, { force: true });
  process.kill(server.pid, 'SIGUSR2');
  for (let i = 0; i < 100; i++) {
    try {
      return new Map(Object.entries(JSON.parse(readFileSync(countFile, 'utf8')) as Record<string, number>));
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  throw new Error('the server did not write its SQL counts');
}

const idOf = (entry: { response: { location: string } }) => entry.response.location.replace(/^.*\/fhir\//, '').split('/')[1];

async function send(spec: RequestSpec): Promise<string> {
  const reply = await client.send({ ...spec, keepBody: true });
  if (reply.status >= 300) throw new Error(`${spec.method} ${spec.path}: ${reply.status} ${(reply.body ?? '').slice(0, 800)}`);
  return reply.body as string;
}

/** Runs `n` requests one after another and prints what each cost. */
async function measure(name: string, next: (i: number) => RequestSpec): Promise<void> {
  for (let i = 0; i < WARMUP; i++) await send(next(i));
  const before = { counts: await sqlCounts(), server: server.cpuSeconds(), pg: pgCpu.seconds(), at: performance.now() };
  for (let i = 0; i < N; i++) await send(next(WARMUP + i));
  const after = { counts: await sqlCounts(), server: server.cpuSeconds(), pg: pgCpu.seconds(), at: performance.now() };
  const diff = [...after.counts].map(([text, n]) => [text, n - (before.counts.get(text) ?? 0)] as const).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  const statements = diff.reduce((s, [, n]) => s + n, 0);
  const per = (x: number) => Math.round((x / N) * 100) / 100;
  console.log(
    `\n${name}: ${N} requests in ${((after.at - before.at) / 1000).toFixed(1)} s — server ${per((after.server - before.server) * 1000)} ms CPU/req, ` +
      `PostgreSQL ${per((after.pg - before.pg) * 1000)} ms CPU/req, ${per(statements)} SQL statements/req (load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')})`
  );
  for (const [text, n] of diff.slice(0, TOP)) console.log(`  ${per(n).toString().padStart(6)}  ${text}`);
}

try {
  const rng = new Rng(17);
  // the recognition data (QC-qualified performers, requesters, patients, reports), as the benchmark loads it
  const { fixture } = await loadRecognition(client, {
    databaseUrl: server.databaseUrl as string,
    reports: Number(args.reports),
    patients: Math.max(20, Math.round(Number(args.reports) / 10)),
    obsPerReport: 3,
    seed: 17,
    batch: 200,
    recordKeyFile: join(server.dataDir, 'record-keys.json'),
    log: (m) => console.log(m),
  });
  // institutions and patients for the benchmark's lab report Bundles
  const insts = institutions(20);
  const orgIds = (JSON.parse(await send({ method: 'POST', path: '/fhir', body: JSON.stringify(createBundle(insts.map((i) => i.resource))) })).entry as any[]).map(idOf);
  const seeds = Array.from({ length: 100 }, (_, k) => patient(rng, k, insts));
  const patientIds = (JSON.parse(await send({ method: 'POST', path: '/fhir', body: JSON.stringify(createBundle(seeds.map((s) => s.resource))) })).entry as any[]).map(idOf);
  const window = defaultWindow();
  await measure('report transaction (1 DiagnosticReport + 15 Observations)', () => {
    const k = rng.int(0, patientIds.length - 1);
    const o = rng.int(0, orgIds.length - 1);
    const r = labReport(rng, { patientId: patientIds[k], gender: seeds[k].gender, org: { id: orgIds[o], code: insts[o].code, name: insts[o].resource.name as string } }, window);
    return { method: 'POST', path: '/fhir', body: JSON.stringify(r.bundle) };
  });
  await measure('$recognition-check', recognitionRequests('recognition-check', fixture, rng));
  await measure('CDS order-sign', recognitionRequests('cds-order-sign', fixture, rng));
} finally {
  pgCpu.stop();
  client.close();
  await server.stop();
  rmSync(countFile, { force: true });
  if (profileDir) console.log(`\nCPU profile: ${profileDir}`);
}
