/**
 * npm run explain-search -- 'Observation?subject=Patient/123&code=http://loinc.org|2823-3' [--analyze] [--count]
 *
 * Prints the SQL the engine runs for a search (its page; with --count also its count) and the plan PostgreSQL
 * makes for it, against the store named by DATABASE_URL / HUREN_DATA_DIR (like the server; a PGlite store only
 * while no server has it open). --analyze runs the statement (EXPLAIN ANALYZE, BUFFERS): use it beside a
 * benchmark to see what a search touches. Nothing is written.
 *
 * The statement is built without the server's storage codec: a search of a blind-indexed parameter
 * (Patient name, identifier, telecom…, docs/security.md) shows the same plan, with the values as given.
 */
import { loadConfig } from '../server/config.ts';
import { openDatabase } from '../server/db/database.ts';
import { loadDefinitions } from '../server/fhir/definitions.ts';
import { Repository } from '../server/fhir/repository.ts';
import { parseSearch } from '../server/fhir/search/parse.ts';

const args = process.argv.slice(2);
const search = args.find((a) => !a.startsWith('--'));
if (!search || !/^[A-Z][A-Za-z]+\?/.test(search)) {
  console.error("usage: npm run explain-search -- 'Type?param=value&…' [--analyze] [--count]");
  process.exit(2);
}
const analyze = args.includes('--analyze');
const [type, query] = [search.slice(0, search.indexOf('?')), search.slice(search.indexOf('?') + 1)];

loadDefinitions();
const config = loadConfig();
const db = await openDatabase({ url: config.databaseUrl, dataDir: config.inMemory ? undefined : `${config.dataDir}/pglite` });
try {
  const request = parseSearch(type, [...new URLSearchParams(query)] as [string, string][]);
  if (request.unknown.length > 0) console.error(`unknown parameters (ignored, as by a lenient search): ${request.unknown.join(', ')}`);
  const statements = new Repository(db).searchStatements(request);
  const shown = args.includes('--count') ? { page: statements.page, count: statements.count } : { page: statements.page };
  for (const [name, statement] of Object.entries(shown)) {
    console.log(`-- ${name}\n${statement.text}\n-- values: ${JSON.stringify(statement.values)}`);
    const rows = await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN (${analyze ? 'ANALYZE, BUFFERS, ' : ''}VERBOSE OFF) ${statement.text}`, statement.values);
    console.log(rows.map((r) => r['QUERY PLAN']).join('\n'));
  }
} finally {
  await db.close();
}
