/**
 * The monitoring app's big screen (issue 14, must-show 3): the production bundle's first load of /app/screen over
 * loopback in Chromium, with `--screen-reports` reports stored.
 *
 *   screen   bulk-loads the reports (bench/recognition.ts, the same loader as the recognition suite), spreads
 *            their receipt over the last `--screen-days` days (the monitoring facts, monitoring_report, and the
 *            chain's report_version rows, as the big screen's APIs read them) and puts those rows in order of
 *            receipt, as a real platform's tables have them (timeOrder), then opens the big screen
 *            `--screen-runs` times, each in a fresh browser context (empty cache: a first load), and measures
 *            the time from navigation to the counters rendered with the API's figures (the page marks its root
 *            `data-loaded=yes`), the page's own API calls and the bytes it fetched (Resource Timing). The
 *            bundle: every file of web/dist and its gzip size, and those the big screen loaded.
 *
 * Needs Debian's Chromium (HUREN_CHROMIUM, default /usr/bin/chromium) and a built app (npm run build:web).
 * The token is put where the app keeps it (sessionStorage `huren.token`, web/src/api.ts) before the page runs,
 * so what is timed is the big screen, not the sign-in.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { round, summarize, type Sender } from './client.ts';
import { loadRecognition } from './recognition.ts';
import { adminQuery, REPO_ROOT } from './server.ts';

export const WEBAPP = ['screen'];
const CHROMIUM = process.env.HUREN_CHROMIUM ?? '/usr/bin/chromium';
const DIST = join(REPO_ROOT, 'web/dist');

export interface ScreenOptions {
  reports: number;
  days: number;
  runs: number;
  reportObs: number;
  seed: number;
  batch: number;
  log: (m: string) => void;
}

/** Every file of the built app with its size and gzip size (bytes). */
export function bundleSizes(): { files: { file: string; bytes: number; gzipBytes: number }[]; bytes: number; gzipBytes: number } {
  if (!existsSync(join(DIST, 'index.html'))) throw new Error('The app is not built: run npm run build:web');
  const files: { file: string; bytes: number; gzipBytes: number }[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else {
        const content = readFileSync(path);
        files.push({ file: path.slice(DIST.length + 1), bytes: content.length, gzipBytes: gzipSync(content).length });
      }
    }
  };
  walk(DIST);
  files.sort((a, b) => b.bytes - a.bytes);
  return { files, bytes: files.reduce((n, f) => n + f.bytes, 0), gzipBytes: files.reduce((n, f) => n + f.gzipBytes, 0) };
}

/** Spreads the loaded reports' receipt over the last `days` days, as the facts an upload records. */
async function spreadReceipt(databaseUrl: string, days: number): Promise<void> {
  await adminQuery(
    `INSERT INTO monitoring_report (report_id, version, institution, flow, received_at, issued_at)
     SELECT r.id, 1, r.content->'performer'->0->>'reference',
            CASE WHEN r.content->'category'->0->'coding'->0->>'code' IN ('LAB') OR r.content->'category' IS NULL THEN 'lab' ELSE 'exam' END,
            now() - (abs(hashtext(r.id)) % ($1::int * 1440)) * interval '1 minute',
            now() - (abs(hashtext(r.id)) % ($1::int * 1440)) * interval '1 minute' - (abs(hashtext(r.id || 'i')) % 90) * interval '1 minute'
       FROM resource r WHERE r.type = 'DiagnosticReport' AND NOT r.deleted
     ON CONFLICT DO NOTHING`,
    databaseUrl,
    [days]
  );
  await adminQuery(
    `UPDATE report_version v SET created_at = m.received_at FROM monitoring_report m WHERE m.report_id = v.report_id AND m.version = v.version AND v.created_at IS DISTINCT FROM m.received_at`,
    databaseUrl
  );
}

/** Asks for the 62 days the keep-days jobs count (usage at city scope, chain statistics); their times. */
async function keepDays(server: { baseUrl: string; token: string }): Promise<{ ms: number; usageMs: number; chainMs: number }> {
  const day = (n: number) => new Date(Date.now() + 8 * 3_600_000 - n * 86_400_000).toISOString().slice(0, 10);
  const origin = new URL(server.baseUrl).origin;
  const timed = async (path: string) => {
    const t0 = performance.now();
    const res = await fetch(`${origin}${path}`, { headers: { authorization: `Bearer ${server.token}` } });
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${(await res.text()).slice(0, 300)}`);
    await res.arrayBuffer();
    return round(performance.now() - t0, 0);
  };
  const t0 = performance.now();
  const usageMs = await timed(`/api/monitoring/usage?scope=city&from=${day(61)}&to=${day(0)}`);
  const chainMs = await timed(`/api/statistics/chain?from=${day(61)}&to=${day(0)}`);
  return { ms: round(performance.now() - t0, 0), usageMs, chainMs };
}

/**
 * Puts the spread facts in the order a real table has them. The platform appends facts as they are received, so
 * today's rows sit together at the end of monitoring_report and report_version; the spread above gave bulk-loaded
 * rows random days, scattering today's rows over every page of the tables (and leaving a dead row version per
 * report). CLUSTER by the receipt time restores the order of arrival, once per database.
 */
async function timeOrder(databaseUrl: string, log: (m: string) => void): Promise<void> {
  const t0 = performance.now();
  let done = false;
  for (const [table, index] of [
    ['monitoring_report', 'monitoring_report_received'],
    ['report_version', 'report_version_created'],
  ] as const) {
    const [state] = await adminQuery<{ clustered: boolean }>(`SELECT indisclustered AS clustered FROM pg_index WHERE indexrelid = $1::regclass`, databaseUrl, [index]);
    if (state?.clustered) continue;
    await adminQuery(`CLUSTER ${table} USING ${index}`, databaseUrl);
    done = true;
  }
  if (done) {
    await adminQuery('VACUUM monitoring_report, report_version', databaseUrl);
    log(`  screen: monitoring_report and report_version put in order of receipt (CLUSTER, VACUUM) in ${round((performance.now() - t0) / 1000, 1)} s`);
  }
}

export async function screenFirstLoad(client: Sender, server: { baseUrl: string; token: string; databaseUrl?: string }, options: ScreenOptions) {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium)`);
  const bundle = bundleSizes();
  options.log(`  screen: bundle ${bundle.files.length} files, ${round(bundle.bytes / 1024, 1)} KiB (${round(bundle.gzipBytes / 1024, 1)} KiB gzip)`);
  let load: unknown;
  if (options.reports > 0) {
    const loaded = await loadRecognition(client, {
      databaseUrl: server.databaseUrl as string,
      reports: options.reports,
      patients: Math.max(20, Math.round(options.reports / 10)),
      obsPerReport: options.reportObs,
      seed: options.seed,
      batch: options.batch,
      log: options.log,
    });
    load = loaded.summary;
    options.log(`  screen: ${options.reports} reports loaded in ${loaded.summary.seconds} s; receipt spread over ${options.days} days; ANALYZE`);
  }
  await spreadReceipt(server.databaseUrl as string, options.days);
  await timeOrder(server.databaseUrl as string, options.log);
  await adminQuery('ANALYZE', server.databaseUrl);
  // what the hourly jobs do (monitoring.keep-days, provenance.statistics): the past days counted once and kept —
  // timed apart, as it is not what a reader waits for
  const keep = await keepDays(server);
  options.log(`  screen: the past 62 days counted and kept in ${keep.ms} ms (the hourly jobs' work; usage ${keep.usageMs} ms, chain ${keep.chainMs} ms)`);

  const origin = new URL(server.baseUrl).origin;
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'] });
  const runs: { ms: number; bytes: number; decodedBytes: number; requests: number; api: { path: string; ms: number }[]; consoleErrors: string[] }[] = [];
  try {
    for (let i = 0; i < options.runs; i++) {
      const context = await browser.newContext({ viewport: { width: 1920, height: 1080 }, locale: 'zh-CN' });
      await context.addInitScript((token) => sessionStorage.setItem('huren.token', token), server.token);
      const page = await context.newPage();
      const consoleErrors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') consoleErrors.push(m.text());
      });
      const t0 = performance.now();
      await page.goto(`${origin}/app/screen`);
      await page.waitForSelector('[data-test=big-screen][data-loaded=yes]', { timeout: 120_000 });
      const ms = performance.now() - t0;
      // what the page fetched (Resource Timing: bytes on the wire, and once decoded), and its API calls
      const seen = await page.evaluate(() => {
        const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')] as PerformanceResourceTiming[];
        const fetched = entries.filter((e) => !e.name.includes('/api/monitoring/events'));
        return {
          requests: fetched.length,
          bytes: fetched.reduce((n, e) => n + e.encodedBodySize, 0),
          decodedBytes: fetched.reduce((n, e) => n + e.decodedBodySize, 0),
          api: fetched.filter((e) => e.name.includes('/api/')).map((e) => ({ path: new URL(e.name).pathname, ms: Math.round(e.duration) })),
        };
      });
      runs.push({ ms: round(ms, 1), ...seen, consoleErrors });
      options.log(
        `  screen: run ${i + 1}: counters rendered after ${round(ms, 0)} ms, ${seen.requests} requests, ${round(seen.bytes / 1024, 1)} KiB (${round(seen.decodedBytes / 1024, 1)} KiB decoded); ` +
          `API ${seen.api.map((a) => `${a.path.replace('/api/', '')} ${a.ms} ms`).join(', ')}`
      );
      await context.close();
    }
  } finally {
    await browser.close();
  }
  const times = summarize(runs.map((r) => r.ms));
  return {
    load,
    keep,
    bundle: { bytes: bundle.bytes, gzipBytes: bundle.gzipBytes, largest: bundle.files.slice(0, 8) },
    firstLoad: { runs: runs.length, ms: times, bytesFetched: runs[0]?.bytes, bytesDecoded: runs[0]?.decodedBytes, requests: runs[0]?.requests, apiMs: runs[0]?.api, consoleErrors: runs.flatMap((r) => r.consoleErrors) },
  };
}
