// The 'native' tfjs backend against wasm on the same inputs: one chunk's loss, final
// states and every gradient for each cell (with and without layer norm), tfjs ops
// routed to the C kernels, and no tensor leaks.

import { beforeAll, expect, it } from 'vitest';
import { CELLS } from '../../model/config.js';
import { initBackend, nativeInfo, tf } from '../../model/backend.js';
import { trainChunk } from '../../model/bptt.js';
import type { ChunkResult } from '../../model/chunk.js';
import { nativeAddon } from '../../model/native/addon.js';
import { randomCase } from '../reference/ref64.js';
import { describeNative } from '../helpers/native-guard.js';
import { relDiff } from '../helpers/native-bits.js';

const DIMS = { hidden: 19, embed: 5 };
const SIZES = { V: 11, T: 6, B: 4 };

describeNative('native backend vs wasm', () => {
  beforeAll(async () => {
    await initBackend('native');
  });

  it('nativeInfo names the path in use', () => {
    const info = nativeInfo();
    expect(info.available).toBe(true);
    expect(info.paths).toContain(info.isa);
    expect(info.isa).toBe(nativeAddon()!.info().isa);
  });

  it('tf.matMul and tf.transpose on native run the C kernels (same bits as calling them directly)', () => {
    const g = nativeAddon()!;
    const [M, N, K] = [37, 70, 45];
    const a = tf.randomUniform([M, K], -1, 1, 'float32', 1) as tf.Tensor2D;
    const b = tf.randomUniform([K, N], -1, 1, 'float32', 2) as tf.Tensor2D;
    const C = new Float32Array(M * N);
    g.sgemm(a.dataSync() as Float32Array, b.dataSync() as Float32Array, C, M, N, K, 0, 0);
    const c = tf.matMul(a, b);
    expect(Buffer.from((c.dataSync() as Float32Array).buffer).equals(Buffer.from(C.buffer))).toBe(true);
    const ct = tf.matMul(b, a, true, true); // (a·b)ᵀ through transposed operands
    const t = tf.transpose(c);
    expect(relDiff(ct.dataSync(), t.dataSync())).toBeLessThan(1e-6);
    const batched = tf.matMul(tf.stack([a, a]) as tf.Tensor3D, b);
    expect(relDiff(batched.dataSync().subarray(M * N), C)).toBe(0);
    tf.dispose([a, b, c, ct, t, batched]);
  });

  for (const cell of CELLS) {
    for (const layerNorm of [false, true]) {
      it(`${cell}${layerNorm ? ' +LN' : ''}: loss, final states and gradients agree with wasm`, async () => {
        const c = randomCase({ cell, layers: 2, layerNorm, normStabilizer: 0.5, ...DIMS }, SIZES, 11);
        const run = async (backend: 'native' | 'wasm'): Promise<ChunkResult> => {
          await initBackend(backend);
          expect(tf.getBackend()).toBe(backend);
          return trainChunk(c.layout, c.params32, c.input);
        };
        const wasm = await run('wasm');
        const before = (await initBackend('native'), tf.memory().numTensors);
        const native = await run('native');
        expect(tf.memory().numTensors, 'tensors leaked').toBe(before);
        expect(Math.abs(native.loss - wasm.loss) / Math.abs(wasm.loss)).toBeLessThan(1e-5);
        expect(Math.abs(native.penalty - wasm.penalty)).toBeLessThan(1e-5 * (1 + Math.abs(wasm.penalty)));
        expect(relDiff(native.finalStates, wasm.finalStates)).toBeLessThan(1e-5);
        expect(relDiff(native.grad!, wasm.grad!)).toBeLessThan(1e-4);
        // Each tensor's gradient on its own scale, so a small tensor cannot hide behind a large one.
        for (const spec of c.layout.specs) {
          const at = (r: ChunkResult) => r.grad!.subarray(spec.offset, spec.offset + spec.size);
          expect(relDiff(at(native), at(wasm)), spec.name).toBeLessThan(1e-4);
        }
      });
    }
  }
});
