// The GRU's W_h column blocks (model/cells/gru.ts): GpGruSplitWh gives exactly what
// tf.slice gives for the r|z and n blocks, and GpGruJoinDWh exactly what tf.concat along
// the columns gives, on every backend (the copies replace those two ops per chunk).

import { beforeAll, expect, it } from 'vitest';
import { initBackend, tf } from '../../model/backend.js';
import '../../model/cells/gru.js';
import { runKernel } from '../../model/kernels.js';
import { describeBackends } from '../helpers/native-guard.js';

const bytes = (t: tf.Tensor) => {
  const v = t.dataSync() as Float32Array;
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
};
const same = (a: tf.Tensor, b: tf.Tensor) => {
  expect(a.shape).toEqual(b.shape);
  expect(bytes(a).equals(bytes(b))).toBe(true);
};

describeBackends(['cpu', 'wasm', 'native'], 'GRU W_h blocks', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  for (const [rows, H] of [[1, 1], [5, 3], [64, 17]]) {
    it(`split and join of a (${rows}, 3·${H}) matrix match tf.slice and tf.concat bit for bit`, () => {
      expect(tf.getBackend()).toBe(backend);
      const before = tf.memory().numTensors;
      const w = tf.randomUniform([rows, 3 * H], -1, 1, 'float32', rows + H);
      const [wrz, wn] = runKernel('GpGruSplitWh', [w], { H });
      const [rz, n] = [tf.slice(w, [0, 0], [rows, 2 * H]), tf.slice(w, [0, 2 * H], [rows, H])];
      same(wrz, rz);
      same(wn, n);
      const drz = tf.randomUniform([rows, 2 * H], -1, 1, 'float32', 3);
      const dn = tf.randomUniform([rows, H], -1, 1, 'float32', 4);
      const [dw] = runKernel('GpGruJoinDWh', [drz, dn], { H });
      const want = tf.concat([drz, dn], 1);
      same(dw, want);
      tf.dispose([w, wrz, wn, rz, n, drz, dn, dw, want]);
      expect(tf.memory().numTensors).toBe(before);
    });
  }
});
