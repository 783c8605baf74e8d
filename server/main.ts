/**
 * `npm start`: runs the server with the configuration from the environment — as one process, or as
 * HUREN_WORKERS processes behind one port (server/workers.ts).
 */
import cluster from 'node:cluster';
import { join } from 'node:path';
import { loadConfig } from './config.ts';
import { start } from './app.ts';
import { startupMessage } from './startup-message.ts';
import { planWorkers } from './workers.ts';

const config = loadConfig();
const plan = cluster.isPrimary ? planWorkers(config, process.env.HUREN_WORKERS) : { workers: 1 };
if (cluster.isPrimary && plan.reason && process.env.HUREN_WORKERS) process.stderr.write(`HUREN_WORKERS=${process.env.HUREN_WORKERS}: running one process (${plan.reason})\n`);

if (cluster.isPrimary && plan.workers > 1) {
  supervise(plan.workers);
} else {
  await serve();
}

async function serve(): Promise<void> {
  const huren = await start(config);
  // in a cluster, the first worker speaks for all
  if (cluster.isPrimary || process.env.HUREN_WORKER_INDEX === '0') {
    process.stdout.write(
      startupMessage({
        url: huren.url,
        host: config.host,
        publicUrl: config.publicUrl,
        engine: huren.db.engine,
        tokenFile: config.bootstrapToken ? undefined : join(config.dataDir, 'bootstrap-token'),
        generatedToken: huren.generatedToken ? huren.bootstrapToken : undefined,
      })
    );
  }
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      huren.close().then(
        () => process.exit(0),
        () => process.exit(1)
      );
    });
  }
}

function supervise(count: number): void {
  let stopping = false;
  const stopAll = (code: number) => {
    stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((w) => w && !w.isDead());
    let left = workers.length;
    if (left === 0) process.exit(code);
    for (const w of workers) {
      w?.once('exit', () => --left === 0 && process.exit(code));
      w?.process.kill('SIGTERM');
    }
  };
  const fork = (index: number) => {
    const worker = cluster.fork({ HUREN_WORKER_INDEX: String(index) });
    let served = false;
    worker.once('listening', () => (served = true));
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      // a worker that never served could not start (its configuration, its key files, its database): another
      // would fail the same way, once a second, for ever — stop, so the service manager sees the failure
      if (!served) {
        process.stderr.write(`worker ${index} (pid ${worker.process.pid}) exited (${signal ?? code}) before it could serve; not starting another (its error is above)\n`);
        stopAll(1);
        return;
      }
      process.stderr.write(`worker ${index} (pid ${worker.process.pid}) exited (${signal ?? code}); starting another\n`);
      setTimeout(() => fork(index), 1000);
    });
    return worker;
  };
  // the first worker does the one-time work (migrations, key files) before the others start
  fork(0).once('listening', () => {
    for (let i = 1; i < count; i++) fork(i);
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (!stopping) stopAll(0);
    });
  }
}
