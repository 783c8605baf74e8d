#!/usr/bin/env node
// huren-verify: checks a shared result (docs/foshan-exchange.md) offline. The kit is TypeScript (kit/); this
// shim registers tsx's ESM loader and runs it, so `npx huren-verify …` works without a build step.
import { register } from 'tsx/esm/api';

register();
const { runVerifyCli } = await import('../kit/verify.ts');
await runVerifyCli(process.argv.slice(2));
