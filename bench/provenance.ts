/**
 * Chain provenance workload (issue 5):
 *
 *   fingerprint  report fingerprints per second, SM3 and SHA-256, of a typical submission (1 DiagnosticReport +
 *                15 Observations as a transaction Bundle): `fingerprint()` of server/fingerprint (field removal,
 *                RFC 8785 JCS, hash), in this process on one core;
 *   sweep        the hash-consistency sweep (server/provenance/sweep.ts, the function the server schedules)
 *                over bulk-loaded reports with their intake records (original, version row, members):
 *                reports checked per second, normal and deep;
 *   anchor       outbox → anchored latency on the embedded chain: recognition checks write DetectedIssues (each
 *                queued in the outbox in its transaction), the server anchors on a short cron; per record the
 *                time from `anchor_outbox.enqueued_at` to `anchor_batch.anchored_at`, and the batch sizes.
 */
import type { Bundle } from '@medplum/fhirtypes';
import { round, summarize, type Sender } from './client.ts';
import { defaultWindow, labReport, PANELS, Rng } from './data.ts';
import { adminQuery } from './server.ts';
import { recognitionRequests, type RecognitionFixture } from './recognition.ts';

export const PROVENANCE = ['fingerprint', 'sweep', 'anchor'];

export async function fingerprintRate(seconds: number) {
  const { fingerprint } = await import('../server/fingerprint/index.ts');
  const rng = new Rng(7);
  const window = defaultWindow();
  const org = { id: 'org-1', code: 'GZ4401001', name: '广州市第一人民医院' };
  const bundles: Bundle[] = Array.from({ length: 200 }, (_, i) => labReport(rng, { patientId: `p-${i}`, gender: i % 2 ? 'male' : 'female', org }, window, PANELS[i % PANELS.length]).bundle);
  const bytes = bundles.reduce((sum, b) => sum + Buffer.byteLength(JSON.stringify(b)), 0) / bundles.length;
  type Rate = { perSecond: number; microsecondsEach: number; computed: number };
  const out = {} as Record<'sm3' | 'sha256', Rate>;
  for (const alg of ['sm3', 'sha256'] as const) {
    for (let i = 0; i < 400; i++) fingerprint(bundles[i % bundles.length], alg); // warm-up (JIT)
    let n = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000) {
      for (let k = 0; k < 50; k++) fingerprint(bundles[n++ % bundles.length], alg);
    }
    const cpu = process.cpuUsage(cpu0);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    // per CPU second: the machine is shared, the wall clock counts time other processes took
    out[alg] = { perSecond: round(n / cpuSeconds, 0), microsecondsEach: round((1e6 * cpuSeconds) / n, 1), computed: n };
  }
  return { bundleBytes: Math.round(bytes), entries: 16, ...out };
}

/** The sweep as the server runs it: with the record keys (`recordKeyFile`), every version's seal is checked too. */
export async function sweepRate(databaseUrl: string, runs: number, log: (m: string) => void, recordKeyFile?: string) {
  const { openDatabase } = await import('../server/db/database.ts');
  const { sweep } = await import('../server/provenance/sweep.ts');
  const { RecordKeys } = await import('../server/provenance/record-keys.ts');
  const keys = recordKeyFile ? new RecordKeys(recordKeyFile) : undefined;
  const db = await openDatabase({ url: databaseUrl, poolSize: 4 });
  try {
    const normal: { checked: number; ms: number; perSecond: number }[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await sweep(db, { workers: 2, keys });
      normal.push({ checked: r.checked, ms: r.ms, perSecond: round((1000 * r.checked) / r.ms, 0) });
      log(`  sweep: ${r.checked} reports in ${r.ms} ms (${round((1000 * r.checked) / r.ms, 0)}/s), flagged ${r.flagged}, unrecorded ${r.unrecorded}`);
    }
    const d = await sweep(db, { workers: 2, deep: true, keys });
    const deep = { checked: d.checked, ms: d.ms, perSecond: round((1000 * d.checked) / d.ms, 0) };
    log(`  deep sweep: ${d.checked} reports in ${d.ms} ms (${deep.perSecond}/s)`);
    const best = normal.reduce((a, b) => (b.perSecond > a.perSecond ? b : a), normal[0]);
    return { runs: normal, best, deep };
  } finally {
    await db.close();
  }
}

/** Sends recognition checks (each queues a record) at `rate`/s for `seconds`, waits for the anchoring, reads the latencies. */
export async function anchorLatency(client: Sender, databaseUrl: string, fixture: RecognitionFixture, options: { rate: number; seconds: number; cronSeconds: number }, log: (m: string) => void) {
  const rng = new Rng(11);
  const next = recognitionRequests('recognition-check', fixture, rng);
  // warm-up: the first anchoring opens the embedded chain (and compiles the path): not part of the figure
  for (let i = 0; i < 5; i++) await client.send(next(-1 - i));
  for (let t = Date.now(); Date.now() - t < 120_000; ) {
    const [{ waiting }] = await adminQuery<{ waiting: number }>(`SELECT count(*)::int AS waiting FROM anchor_outbox WHERE state <> 'anchored'`, databaseUrl);
    if (waiting === 0) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const [{ seq: startSeq }] = await adminQuery<{ seq: string }>(`SELECT coalesce(max(seq), 0) AS seq FROM anchor_outbox`, databaseUrl);
  const t0 = performance.now();
  const pending: Promise<unknown>[] = [];
  let errors = 0;
  for (let i = 0; i < options.rate * options.seconds; i++) {
    const due = t0 + (1000 * i) / options.rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(client.send(next(i)).then((r) => (r.status >= 300 ? errors++ : 0)));
  }
  await Promise.all(pending);
  // every record of this run anchored (or give up after a minute)
  const deadline = Date.now() + 60_000 + options.cronSeconds * 2000;
  for (;;) {
    const [{ waiting }] = await adminQuery<{ waiting: number }>(
      `SELECT count(*)::int AS waiting FROM anchor_outbox o LEFT JOIN anchor_batch b ON b.id = o.batch_id
        WHERE o.seq > ${Number(startSeq)} AND (b.anchored_at IS NULL)`,
      databaseUrl
    );
    if (waiting === 0 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const rows = await adminQuery<{ ms: number; batch: string; size: number; anchored: boolean }>(
    `SELECT extract(epoch FROM (b.anchored_at - o.enqueued_at)) * 1000 AS ms, b.id AS batch, b.size, b.anchored_at IS NOT NULL AS anchored
       FROM anchor_outbox o LEFT JOIN anchor_batch b ON b.id = o.batch_id WHERE o.seq > ${Number(startSeq)}`,
    databaseUrl
  );
  // per batch: formed → anchored (the chain transaction and the bookkeeping around it)
  const chain = await adminQuery<{ ms: number }>(
    `SELECT extract(epoch FROM (b.anchored_at - b.created_at)) * 1000 AS ms FROM anchor_batch b
      WHERE b.id IN (SELECT batch_id FROM anchor_outbox WHERE seq > ${Number(startSeq)}) AND b.anchored_at IS NOT NULL`,
    databaseUrl
  );
  const anchored = rows.filter((r) => r.anchored);
  const batches = new Map(anchored.map((r) => [r.batch, Number(r.size)]));
  const sizes = [...batches.values()];
  const result = {
    records: rows.length,
    anchored: anchored.length,
    requestErrors: errors,
    cronSeconds: options.cronSeconds,
    rate: options.rate,
    latencyMs: summarize(anchored.map((r) => Number(r.ms))),
    batchFormedToAnchoredMs: summarize(chain.map((r) => Number(r.ms))),
    batches: sizes.length,
    batchSize: sizes.length ? { mean: round(sizes.reduce((a, b) => a + b, 0) / sizes.length, 1), min: Math.min(...sizes), max: Math.max(...sizes) } : undefined,
  };
  log(
    `  anchor: ${result.anchored}/${result.records} records anchored, enqueue → anchored p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms, ` +
      `${result.batches} batches (mean ${result.batchSize?.mean} records; formed → anchored p50 ${result.batchFormedToAnchoredMs.p50} ms), anchoring every ${options.cronSeconds} s`
  );
  return result;
}
