/**
 * npm run docs:acceptance [-- --with-test-plan]
 *
 * Writes the generated acceptance documents (docs/operations/acceptance.md) under docs/operations/generated/:
 * the database design and the API reference (committed; test/acceptance-docs.test.ts keeps them current) and,
 * with --with-test-plan, the test plan (for the hand-over; not committed).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { committedDocs, GENERATED_DIR, testPlan } from './lib/acceptance-docs.ts';

mkdirSync(GENERATED_DIR, { recursive: true });
const docs: Record<string, string> = await committedDocs();
if (process.argv.includes('--with-test-plan')) docs['test-plan.md'] = testPlan();
for (const [name, text] of Object.entries(docs)) {
  writeFileSync(join(GENERATED_DIR, name), text);
  console.log(`wrote ${join('docs/operations/generated', name)} (${text.length} characters)`);
}
