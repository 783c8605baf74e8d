/**
 * The load generator: a keep-alive HTTP client over loopback (node:http, one socket per concurrent client)
 * and a closed-loop runner — N clients, each sending its next request as soon as the previous one answered,
 * for a bounded time and a bounded number of requests. Latencies go into a plain array; percentiles are
 * exact (sorted), not estimated.
 */
import http from 'node:http';

export interface Reply {
  status: number;
  /** The body, only when the caller asked for it. */
  body?: string;
}

export interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  body?: string;
  /** Keep and return the body (otherwise it is drained and dropped). */
  keepBody?: boolean;
}

/** Anything that can send a request: one server, or several behind a round-robin. */
export interface Sender {
  send(spec: RequestSpec): Promise<Reply>;
  close(): void;
}

/** Spreads requests over several servers (one FhirClient each), in turn. */
export class RoundRobin implements Sender {
  private next = 0;
  constructor(private readonly clients: Sender[]) {}
  send(spec: RequestSpec): Promise<Reply> {
    const client = this.clients[this.next];
    this.next = (this.next + 1) % this.clients.length;
    return client.send(spec);
  }
  close(): void {
    for (const c of this.clients) c.close();
  }
}

export class FhirClient implements Sender {
  readonly agent: http.Agent;
  private readonly host: string;
  private readonly port: number;

  constructor(
    baseUrl: string,
    private readonly token: string,
    maxSockets: number
  ) {
    const url = new URL(baseUrl);
    if (url.hostname !== '127.0.0.1' && url.hostname !== 'localhost' && url.hostname !== '::1') {
      throw new Error(`The benchmark only talks to loopback, not ${url.hostname}`);
    }
    this.host = url.hostname;
    this.port = Number(url.port);
    this.agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  send(spec: RequestSpec): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = {
        authorization: `Bearer ${this.token}`,
        accept: 'application/fhir+json',
      };
      let payload: Buffer | undefined;
      if (spec.body !== undefined) {
        payload = Buffer.from(spec.body, 'utf8');
        headers['content-type'] = 'application/fhir+json';
        headers['content-length'] = payload.length;
      }
      const req = http.request(
        { host: this.host, port: this.port, method: spec.method, path: spec.path, headers, agent: this.agent },
        (res) => {
          const status = res.statusCode ?? 0;
          // bodies of errors are kept too, to report what went wrong
          if (spec.keepBody || status >= 300) {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString('utf8') }));
          } else {
            res.on('data', () => undefined);
            res.on('end', () => resolve({ status }));
          }
          res.on('error', reject);
        }
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface LoadOptions {
  concurrency: number;
  /** Measured seconds (after the warm-up). */
  seconds: number;
  /** Unmeasured seconds before the measurement starts. */
  warmupSeconds: number;
  /** Upper bound on measured requests (the run stops at whichever bound comes first). */
  maxRequests: number;
}

export interface LoadResult {
  requests: number;
  /** Requests completed during the warm-up (not measured). */
  warmupRequests: number;
  errors: number;
  /** Up to five distinct error samples (status and the start of the body). */
  errorSamples: string[];
  seconds: number;
  requestsPerSecond: number;
  latencyMs: { mean: number; p50: number; p90: number; p95?: number; p99: number; max: number };
}

/**
 * Runs `next` in a closed loop on `concurrency` clients. `next(i)` builds request number `i`; `check` may
 * inspect each reply (a non-2xx status is always an error).
 */
export async function runLoad(
  client: Sender,
  options: LoadOptions,
  next: (i: number) => RequestSpec,
  onReply?: (spec: RequestSpec, reply: Reply) => void
): Promise<LoadResult> {
  const latencies: number[] = [];
  const samples = new Set<string>();
  let errors = 0;
  let issued = 0;
  let inFlightMeasured = 0;
  let warmupRequests = 0;
  let measuring = options.warmupSeconds <= 0;
  const t0 = performance.now();
  let measureStart = measuring ? t0 : Number.NaN;
  const warmupEnd = t0 + options.warmupSeconds * 1000;
  const end = warmupEnd + options.seconds * 1000;
  let measuredEnd = Number.NaN;

  const worker = async () => {
    for (;;) {
      const now = performance.now();
      if (!measuring && now >= warmupEnd) {
        measuring = true;
        measureStart = now;
      }
      if (now >= end || (measuring && latencies.length + inFlightMeasured >= options.maxRequests)) break;
      const spec = next(issued++);
      const counted = measuring;
      if (counted) inFlightMeasured++;
      const start = performance.now();
      let failed = false;
      let sample = '';
      try {
        const reply = await client.send(spec);
        if (reply.status < 200 || reply.status >= 300) {
          failed = true;
          sample = `${reply.status} ${spec.method} ${spec.path.split('?')[0]}: ${(reply.body ?? '').slice(0, 300)}`;
        } else if (onReply) {
          onReply(spec, reply);
        }
      } catch (err) {
        failed = true;
        sample = `${spec.method} ${spec.path.split('?')[0]}: ${(err as Error).message}`;
      }
      const stop = performance.now();
      if (!counted) warmupRequests++;
      if (counted) {
        inFlightMeasured--;
        latencies.push(stop - start);
        measuredEnd = stop;
        if (failed) {
          errors++;
          if (samples.size < 5) samples.add(sample);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const seconds = latencies.length > 0 ? (measuredEnd - measureStart) / 1000 : 0;
  return {
    requests: latencies.length,
    warmupRequests,
    errors,
    errorSamples: [...samples],
    seconds: round(seconds, 3),
    requestsPerSecond: seconds > 0 ? round(latencies.length / seconds, 1) : 0,
    latencyMs: summarize(latencies),
  };
}

export function summarize(latencies: number[]): LoadResult['latencyMs'] {
  if (latencies.length === 0) return { mean: 0, p50: 0, p90: 0, p95: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(latencies).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  const mean = sorted.reduce((s, v) => s + v, 0) / sorted.length;
  return { mean: round(mean, 2), p50: round(at(0.5), 2), p90: round(at(0.9), 2), p95: round(at(0.95), 2), p99: round(at(0.99), 2), max: round(sorted[sorted.length - 1], 2) };
}

export function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export interface OpenLoopOptions {
  /** Arrival rate, requests per second. */
  rate: number;
  /** Measured seconds (after the warm-up). */
  seconds: number;
  /** Unmeasured seconds at the same rate before the measurement. */
  warmupSeconds: number;
}

export interface OpenLoopResult extends LoadResult {
  /** Arrival rate asked for. */
  targetRate: number;
  /** Requests scheduled in the measured window. */
  scheduled: number;
  /** Most requests outstanding at once. */
  maxInFlight: number;
  /** Service time (send → answer) alone, for comparison with the latency from the scheduled time. */
  serviceMs: LoadResult['latencyMs'];
}

/**
 * Open-loop load: request i is due at t0 + i / rate whatever happened to the earlier ones (as real HIS
 * traffic arrives), and its latency is measured from that scheduled instant, not from when it was actually
 * sent — so a stall of the server or of this process is charged to every request that should have been sent
 * during it (no coordinated omission). The client's socket pool must be large enough not to queue
 * (`FhirClient` with e.g. 512 sockets). Achieved rate = answers in the measured window / its length.
 */
export async function runOpenLoop(client: Sender, options: OpenLoopOptions, next: (i: number) => RequestSpec): Promise<OpenLoopResult> {
  const latencies: number[] = [];
  const service: number[] = [];
  const samples = new Set<string>();
  let errors = 0;
  let warmupRequests = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const interval = 1000 / options.rate;
  const t0 = performance.now() + 50;
  const measureStart = t0 + options.warmupSeconds * 1000;
  const end = measureStart + options.seconds * 1000;
  const total = Math.floor((end - t0) / interval);
  const pending: Promise<void>[] = [];
  let scheduled = 0;
  let lastDone = 0;
  const fire = (i: number, due: number) => {
    const spec = next(i);
    const counted = due >= measureStart;
    if (counted) scheduled++;
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const sent = performance.now();
    const p = client.send(spec).then(
      (reply) => {
        if (reply.status < 200 || reply.status >= 300) return `${reply.status} ${spec.method} ${spec.path.split('?')[0]}: ${(reply.body ?? '').slice(0, 300)}`;
        return '';
      },
      (err: Error) => `${spec.method} ${spec.path.split('?')[0]}: ${err.message}`
    ).then((failure) => {
      const done = performance.now();
      inFlight--;
      if (!counted) return void warmupRequests++;
      lastDone = Math.max(lastDone, done);
      latencies.push(done - due);
      service.push(done - sent);
      if (failure) {
        errors++;
        if (samples.size < 5) samples.add(failure);
      }
    });
    pending.push(p);
  };
  for (let i = 0; i < total; i++) {
    const due = t0 + i * interval;
    const wait = due - performance.now();
    // sleep until the due time; a late wake-up sends at once (the lateness counts in the latency)
    if (wait > 1) await new Promise((r) => setTimeout(r, wait - 0.5));
    fire(i, due);
  }
  await Promise.all(pending);
  // the measured window runs until the last measured answer (a backlog stretches it: the achieved rate drops)
  const seconds = Math.max(options.seconds, (lastDone - measureStart) / 1000);
  return {
    targetRate: options.rate,
    scheduled,
    requests: latencies.length,
    warmupRequests,
    errors,
    errorSamples: [...samples],
    seconds: round(seconds, 3),
    requestsPerSecond: round((latencies.length - errors) / seconds, 1),
    latencyMs: summarize(latencies),
    serviceMs: summarize(service),
    maxInFlight,
  };
}
