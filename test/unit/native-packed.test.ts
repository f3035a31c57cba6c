// The native backend packs a right-hand operand once when it is used again (the recurrent
// weights, T times a step; model/native/tfjs-backend.ts): the products that follow give the
// bits of the first, unpacked one, also after a test forces another kernel path.

import * as tf from '@tensorflow/tfjs';
import { beforeAll, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.js';
import { nativeAddon } from '../../model/native/addon.js';
import { packedProductCount } from '../../model/native/tfjs-backend.js';
import { arenaStats } from '../../model/native/arena.js';
import { describeNative } from '../helpers/native-guard.js';

/** A copy with data of its own (tf.clone would share the data id, and with it the packed operand). */
const copyOf = (t: tf.Tensor2D) => tf.tensor2d((t.dataSync() as Float32Array).slice(), t.shape);
const bits = (t: tf.Tensor) => Buffer.from((t.dataSync() as Float32Array).slice().buffer).toString('hex');

describeNative('reused right-hand operands on the native backend', () => {
  beforeAll(() => initBackend('native'));

  it('the first (plain) and later (packed) products with one weight tensor are bit-identical, for both transpositions', () => {
    const W = tf.randomNormal([96, 200], 0, 1, 'float32', 11) as tf.Tensor2D;
    const before = packedProductCount();
    for (let i = 0; i < 3; i++) {
      const h = tf.randomNormal([7, 96], 0, 1, 'float32', 20 + i) as tf.Tensor2D;
      const hT = tf.randomNormal([200, 5], 0, 1, 'float32', 30 + i) as tf.Tensor2D;
      // Copies used once give the plain product; W (used since round 0) the packed one.
      const fresh = [copyOf(W), copyOf(W)];
      const plain = [tf.matMul(h, fresh[0]), tf.matMul(hT, fresh[1], true, true)];
      const packed = [tf.matMul(h, W), tf.matMul(hT, W, true, true)];
      packed.forEach((p, k) => expect(bits(p), `round ${i}, product ${k}`).toBe(bits(plain[k])));
      tf.dispose([h, hT, ...fresh, ...plain, ...packed]);
    }
    // Round 0's first product packs nothing (W seen once); every product after it is packed.
    expect(packedProductCount() - before).toBe(5);
    // The packing goes back to the arena with W's data (W itself came from randomNormal, not the arena).
    const returned = arenaStats().returned;
    tf.dispose(W);
    expect(arenaStats().returned - returned).toBe(1);
  });

  it('a kernel path forced after packing: the product still gives the bits of that path', () => {
    const g = nativeAddon()!;
    const before = g.info().isa;
    const W = tf.randomNormal([64, 100], 0, 1, 'float32', 5) as tf.Tensor2D;
    const h = tf.randomNormal([9, 64], 0, 1, 'float32', 6) as tf.Tensor2D;
    for (let i = 0; i < 3; i++) tf.matMul(h, W).dispose(); // packed on the current path
    try {
      for (const path of g.info().paths) {
        g.setIsa(path);
        const fresh = copyOf(W);
        const want = tf.matMul(h, fresh);
        const got = tf.matMul(h, W);
        expect(bits(got), path).toBe(bits(want));
        tf.dispose([fresh, want, got]);
      }
    } finally {
      g.setIsa(before);
    }
    tf.dispose([W, h]);
  });
});
