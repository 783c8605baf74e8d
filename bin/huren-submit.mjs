#!/usr/bin/env node
// huren-submit: the hospital on-chain integration kit (docs/integration-kit.md). The kit is TypeScript (kit/);
// this shim registers tsx's ESM loader and runs it, so `npx huren-submit …` and `node bin/huren-submit.mjs …`
// work without a build step.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../kit/cli.ts');
await runCli(process.argv.slice(2));
