/**
 * A preload for the server process of scripts/profile-upload.ts (never used by the server itself): counts the
 * SQL statements sent to PostgreSQL, by statement text. On SIGUSR2 the counts so far are written as JSON to
 * HUREN_SQL_COUNT_FILE (synchronously), so the profiler reads them between phases.
 * Plain JavaScript: it loads before tsx (`node --import ./scripts/lib/count-sql.mjs --import tsx …`).
 */
import { writeFileSync } from 'node:fs';
import pg from 'pg';

const counts = new Map();
const original = pg.Client.prototype.query;
pg.Client.prototype.query = function (config, ...rest) {
  const text = typeof config === 'string' ? config : config?.text;
  if (typeof text === 'string') {
    const key = text.replace(/\s+/g, ' ').trim().slice(0, 140);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return original.call(this, config, ...rest);
};

process.on('SIGUSR2', () => {
  const file = process.env.HUREN_SQL_COUNT_FILE;
  if (file) writeFileSync(file, JSON.stringify(Object.fromEntries(counts)));
});
