/** `npm start`: runs the server with the configuration from the environment. */
import { join } from 'node:path';
import { loadConfig } from './config.ts';
import { start } from './app.ts';
import { startupMessage } from './startup-message.ts';

const config = loadConfig();
const huren = await start(config);
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
