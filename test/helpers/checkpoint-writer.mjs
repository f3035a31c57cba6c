// Helper of test/e2e/crash-safety.test.ts, run as a child process (plain JS over dist/, so
// build first): saves checkpoints of increasing step into DIR until it is killed.
//   node test/helpers/checkpoint-writer.mjs DIR FIRST_STEP PARAMS
// prints "writing N" just before each save and "wrote N MS" once it returned. Stdout is a
// pipe, which Node writes synchronously on Linux, so a line is out before what follows it.
// checkpointAt(step, P) is also imported by the test, to check what it loads bit for bit.

import { pathToFileURL } from 'node:url';

/** A checkpoint whose every float is a function of (step, index): P params and two Adam moments. */
export function checkpointAt(step, P) {
  const floats = (salt, n = P) => {
    const a = new Float32Array(n);
    const s = Math.imul(step, 0x9e3779b1) ^ Math.imul(salt, 0x85ebca6b);
    for (let i = 0; i < n; i++) a[i] = Math.imul(i ^ s, 0xc2b2ae35) / 2 ** 31; // in [-1, 1)
    return a;
  };
  return {
    format: 3, runId: 'crash-safety', configJson: JSON.stringify({ cell: 'lstm', hidden: 256 }),
    vocab: ['a', 'b', 'c'], tokenKind: 'char', step,
    params: floats(1),
    optimizer: { t: step, m: floats(2), v: floats(3) },
    streamStates: floats(4, 512),
    rngState: [step >>> 0, 1, 2, 3], tokensSeen: step * 4096, dataEpoch: 0, dataChunk: step, shards: 1, backend: 'native (avx512)', reduction: 'tree',
  };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { saveCheckpoint } = await import('../../dist/coordinator/checkpoint.js');
  const [dir, first, P] = process.argv.slice(2);
  for (let step = Number(first); ; step++) {
    const msg = checkpointAt(step, Number(P));
    process.stdout.write(`writing ${step}\n`);
    const { ms } = await saveCheckpoint(dir, msg);
    process.stdout.write(`wrote ${step} ${ms.toFixed(2)}\n`);
  }
}
