/** `npm start`: runs the server with the configuration from the environment. */
import { loadConfig } from './config.ts';
import { start } from './app.ts';

const config = loadConfig();
const huren = await start(config);
const base = `${config.publicUrl ?? huren.url}/fhir`;
if (huren.generatedToken) {
  process.stdout.write(
    `A bootstrap token was generated and saved in ${config.dataDir}/bootstrap-token (shown once):\n  ${huren.bootstrapToken}\n` +
      `Try: curl -H "Authorization: Bearer ${huren.bootstrapToken}" ${base}/Patient\n`
  );
}
process.stdout.write(`Huren FHIR server listening: ${base} (store: ${huren.db.engine})\n`);
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
