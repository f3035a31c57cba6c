#!/usr/bin/env node
// Entry point: runs the compiled CLI (npm run build writes dist/).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/coordinator/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  console.error('gradpool: dist/ is missing; run `npm run build` (npm start and npm test build it too)');
  process.exit(1);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2));
