// No leaks: the tfjs tensor count is the same after every training step, evaluation and
// sample, on every backend; and on native, 10,000 training steps leave the process's
// memory (resident set, V8 heap, the arena's free lists) where it was after the first 1,000.

import * as tf from '@tensorflow/tfjs';
import { expect, it } from 'vitest';
import { TRAIN_DEFAULTS } from '../../coordinator/config.js';
import { Trainer } from '../../coordinator/trainer.js';
import { initBackend } from '../../model/backend.js';
import { CELLS, resolveModelConfig } from '../../model/config.js';
import { Network } from '../../model/network.js';
import { buildLayout, initParams } from '../../model/params.js';
import { arenaStats } from '../../model/native/arena.js';
import { tenLetterCorpus } from '../helpers/corpus.js';
import { describeBackends, describeNative } from '../helpers/native-guard.js';

describeBackends(['cpu', 'wasm', 'native'], 'tensor count stays flat', (backend) => {
    for (const cell of CELLS) {
      it(cell, async () => {
        await initBackend(backend);
        const config = { ...TRAIN_DEFAULTS, cell, layers: 2, hidden: 8, embed: 4, seqLen: 6, batch: 4, blocks: 2, layerNorm: true, normStabilizer: 0.1, backend };
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

describeNative('10,000 native training steps', () => {
  it('keep memory flat: resident set, heap and tensors after step 1,000 are where they end', async () => {
    await initBackend('native');
    // One replica as a worker runs it: load the weights, forward and backward, then an SGD update.
    const config = resolveModelConfig({ cell: 'lstm', layers: 1, hidden: 64, embed: 8, layerNorm: true });
    const layout = buildLayout(config, 10);
    const params = initParams(layout, 1);
    const net = new Network(layout);
    const [T, B] = [8, 4]; // T·B × 4H = 8,192 floats: the gate gradients come from the arena
    const tokens = Int32Array.from({ length: (T + 1) * B }, (_, i) => (i * 7 + (i >> 2)) % 10);
    let states: Float32Array = new Float32Array(2 * B * config.hidden);
    const step = () => {
      net.setParams(params);
      const r = net.run({ tokens, T, B, states }, { training: true });
      for (let j = 0; j < params.length; j++) params[j] -= 0.01 * r.grad![j];
      states = r.finalStates;
    };
    const mb = () => {
      const m = process.memoryUsage();
      return { rss: m.rss / 2 ** 20, heap: m.heapUsed / 2 ** 20 };
    };
    for (let i = 0; i < 1000; i++) step();
    const tensors = tf.memory().numTensors;
    const start = mb();
    const arena = arenaStats();
    for (let i = 1000; i < 10_000; i++) step();
    const end = mb();
    expect(arenaStats().taken - arena.taken, 'the arena is in use').toBeGreaterThan(0);
    expect(arenaStats().freeBytes).toBeLessThanOrEqual(256 * 2 ** 20);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(params.every(Number.isFinite)).toBe(true);
    // Leaking one step's gradient or one saved activation per step would add tens to hundreds of MB over
    // 9,000 steps; the bounds leave room for the allocator's and the garbage collector's own noise.
    expect(end.rss - start.rss, `RSS ${start.rss.toFixed(0)} → ${end.rss.toFixed(0)} MB`).toBeLessThan(48);
    expect(end.heap - start.heap, `heap ${start.heap.toFixed(0)} → ${end.heap.toFixed(0)} MB`).toBeLessThan(24);
    net.dispose();
  }, 240_000);
});
