// Writes test/golden/gradpool-<cell>.safetensors: gradpool-written model files (initParams,
// seed 7) that make_golden.py evaluates in PyTorch. The parity test imports
// gradpoolGoldenFile to check the committed bytes are still what gradpool writes.
//
// Run from the repository root (Node 20 cannot run .ts directly and tsx is not a dependency):
//   npx tsc --outDir /tmp/gradpool-golden --rootDir . --module nodenext --moduleResolution nodenext \
//       --target es2022 --strict --skipLibCheck --types node test/golden/make_gradpool_file.ts
//   node /tmp/gradpool-golden/test/golden/make_gradpool_file.js [output dir, default test/golden]

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { resolveModelConfig } from '../../model/config.js';
import { encodeModelFile } from '../../model/modelfile.js';
import { buildLayout, initParams } from '../../model/params.js';

export const GOLDEN_CELLS = ['rnn', 'lstm', 'gru-reset-after'] as const;
/** The 11-character vocabulary of make_golden.py and text.txt. */
export const GOLDEN_VOCAB = [' ', '.', 'a', 'e', 'h', 'i', 'l', 'n', 'o', 's', 't'];
export const GOLDEN_SEED = 7;

export function gradpoolGoldenFile(cell: (typeof GOLDEN_CELLS)[number]): Uint8Array {
  const config = resolveModelConfig({ cell, layers: 2, hidden: 6, embed: 5 });
  const layout = buildLayout(config, GOLDEN_VOCAB.length);
  return encodeModelFile(layout, initParams(layout, GOLDEN_SEED), GOLDEN_VOCAB, 'char');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dir = process.argv[2] ?? join('test', 'golden');
  for (const cell of GOLDEN_CELLS) {
    const path = join(dir, `gradpool-${cell}.safetensors`);
    writeFileSync(path, gradpoolGoldenFile(cell));
    console.log(`wrote ${path}`);
  }
}
