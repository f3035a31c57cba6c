// No tensor leaks: the tfjs tensor count is the same after every training step,
// evaluation and sample, on both backends.

import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { TRAIN_DEFAULTS } from '../../coordinator/config.js';
import { Trainer } from '../../coordinator/trainer.js';
import { initBackend } from '../../model/backend.js';
import { CELLS } from '../../model/config.js';
import { tenLetterCorpus } from '../helpers/corpus.js';

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`tensor count stays flat (${backend})`, () => {
    for (const cell of CELLS) {
      it(cell, async () => {
        await initBackend(backend);
        const config = { ...TRAIN_DEFAULTS, cell, layers: 2, hidden: 8, embed: 4, seqLen: 6, batch: 4, shards: 2, layerNorm: true, normStabilizer: 0.1, backend };
        const trainer = new Trainer(config, { corpus: tenLetterCorpus() });
        await trainer.step();
        trainer.validate(200);
        trainer.sample(5);
        // The math ran on this backend, through tfjs tensors: there was something to leak.
        expect(tf.getBackend()).toBe(backend);
        expect(tf.memory().numTensors).toBeGreaterThan(0);
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
