/**
 * The generated acceptance documents (docs/operations/acceptance.md) are what the code generates: the database
 * design from the migrations' schema and the API reference from the CapabilityStatement and OperationDefinitions.
 * When this fails, run `npm run docs:acceptance` and commit the result.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { committedDocs, GENERATED_DIR, testPlan } from '../scripts/lib/acceptance-docs.ts';

test('the committed database design and API reference are current (npm run docs:acceptance)', async (t) => {
  for (const [name, text] of Object.entries(await committedDocs())) {
    const committed = readFileSync(join(GENERATED_DIR, name), 'utf8');
    t.true(committed === text, `docs/operations/generated/${name} is stale: run npm run docs:acceptance`);
  }
});

test('the database design lists every table with its columns, the API reference every operation', async (t) => {
  const docs = await committedDocs();
  t.regex(docs['database-design.md'], /^## resource_history$/m);
  t.regex(docs['database-design.md'], /^\| content \| jsonb \|/m);
  t.regex(docs['database-design.md'], /^## anchor_outbox$/m);
  t.regex(docs['api-reference.md'], /^### \$recognition-check/m);
  t.regex(docs['api-reference.md'], /^\| DiagnosticReport \| .*create/m);
});

test('the test plan names this very test', (t) => {
  t.regex(testPlan(), /^- the test plan names this very test$/m);
});
