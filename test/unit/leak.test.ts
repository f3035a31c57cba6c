// No tensor leaks: the tfjs tensor count is the same after every training step,
// evaluation and sample, on both backends.

import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { TRAIN_DEFAULTS } from '../../coordinator/config.js';
import type { Corpus } from '../../coordinator/data.js';
import { Trainer } from '../../coordinator/trainer.js';
import { initBackend } from '../../model/backend.js';
import { CELLS } from '../../model/config.js';

function corpus(): Corpus {
  const tokens = 'abcdefgh'.split('');
  const ids = Int32Array.from({ length: 4000 }, (_, i) => (i * 7 + (i >> 3)) % 8);
  return { text: '', source: 'test', vocab: { kind: 'char', tokens }, ids, train: ids, val: ids.subarray(0, 600) };
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`tensor count stays flat (${backend})`, () => {
    for (const cell of CELLS) {
      it(cell, async () => {
        await initBackend(backend);
        const config = { ...TRAIN_DEFAULTS, cell, layers: 2, hidden: 8, embed: 4, seqLen: 6, batch: 4, shards: 2, layerNorm: true, normStabilizer: 0.1, backend };
        const trainer = new Trainer(config, { corpus: corpus() });
        await trainer.step();
        trainer.validate(200);
        trainer.sample(5);
        const after1 = tf.memory().numTensors;
        for (let i = 0; i < 3; i++) await trainer.step();
        trainer.validate(200);
        trainer.sample(5);
        expect(tf.memory().numTensors).toBe(after1);
        await trainer.close();
      });
    }
  });
}
