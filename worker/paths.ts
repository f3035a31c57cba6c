// Where the compiled thread entry points live. Worker threads run compiled JS from
// dist/ (Node 20 cannot run TypeScript), also when the coordinator itself runs from
// TypeScript sources under vitest.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Absolute path of dist/worker/<name>.js (or of the sibling when running from dist). */
export function workerScript(name: string): string {
  const here = import.meta.url;
  const url = here.endsWith('.ts') ? new URL(`../dist/worker/${name}.js`, here) : new URL(`../worker/${name}.js`, here);
  const path = fileURLToPath(url);
  if (!existsSync(path)) throw new Error(`worker script ${path} is missing: run \`npm run build\` first`);
  return path;
}
