// Row independence of the matrix product, per backend and kernel path: a row of A·B must
// have the same bits whether it is computed alone or among other rows, at any position.
// A task runs its blocks' recurrences together (model/rowbatch.ts) only on a backend
// where this holds (ROW_INDEPENDENT); this test keeps that table true both ways.

import * as tf from '@tensorflow/tfjs';
import { beforeAll, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.js';
import { nativeAddon } from '../../model/native/addon.js';
import { ROW_INDEPENDENT } from '../../model/rowbatch.js';
import { describeBackends } from '../helpers/native-guard.js';
import { firstBitDiff, onPath, randoms } from '../helpers/native-bits.js';

const MAX_ROWS = 70;

/** Shapes (K, N): k within and past one K block of the native GEMM (256); N with ragged edge tiles on every path. */
const SHAPES: [number, number][] = [
  [64, 72],
  [300, 40],
];

/** Rows first..first+count−1 of the product, computed as a product of those rows only. */
function productRows(A: Float32Array, K: number, B: tf.Tensor2D, first: number, count: number): Float32Array {
  // Copied before the product's tensor goes: dataSync gives the backend's own array, which the native arena reuses.
  const a = tf.tensor2d(A.slice(first * K, (first + count) * K), [count, K]);
  const c = tf.matMul(a, B);
  const out = (c.dataSync() as Float32Array).slice();
  tf.dispose([a, c]);
  return out;
}

/** The first (row, M, first) whose bits differ from the same row in the 70-row product, or null. */
function firstDependentRow(K: number, N: number): string | null {
  const A = randoms(MAX_ROWS * K, K + N, 1);
  const B = tf.tensor2d(randoms(K * N, 7 * K + N, 1), [K, N]);
  try {
    const whole = productRows(A, K, B, 0, MAX_ROWS);
    for (let M = 1; M <= MAX_ROWS; M++) {
      // Windows at several offsets, so a row sits at every position of a register tile.
      for (const first of new Set([0, MAX_ROWS - M, (M * 37) % (MAX_ROWS - M + 1)])) {
        const part = productRows(A, K, B, first, M);
        const d = firstBitDiff(part, whole.subarray(first * N, (first + M) * N));
        if (d >= 0) return `row ${first + Math.floor(d / N)} (K=${K}, N=${N}) differs computed among ${M} rows from ${first}`;
      }
    }
    return null;
  } finally {
    B.dispose();
  }
}

describeBackends(['native', 'wasm', 'cpu'], 'a row of A·B does not depend on the other rows', (backend) => {
  beforeAll(() => initBackend(backend));
  const paths = backend === 'native' ? nativeAddon()?.info().paths ?? [] : ['default'];

  for (const path of paths) {
    it(`${path} path: ${ROW_INDEPENDENT[backend] ? 'every row, M = 1…70, the same bits' : 'some row differs (so tasks keep one block at a time)'}`, () => {
      const run = () => SHAPES.map(([K, N]) => firstDependentRow(K, N)).find((d) => d !== null) ?? null;
      const found = backend === 'native' ? onPath(nativeAddon()!, path, run) : run();
      if (ROW_INDEPENDENT[backend]) expect(found).toBeNull();
      else expect(found).not.toBeNull();
    });
  }
});
