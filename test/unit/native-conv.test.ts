// The CNN encoder's native kernels (model/native/conv.c): im2col and col2im 3×3, ReLU +
// max-pool 2×2 forward and backward, and the CHW flatten give the bits of the JS kernels of
// model/cnn.ts (tfjs cpu backend) on random inputs of several sizes, on every kernel path;
// the native backend routes the kernel names to them; fuzzed sizes and buffers either run
// or throw a JS error naming the argument, never writing past an output.

import fc from 'fast-check';
import { beforeAll, expect, it } from 'vitest';
import { initBackend, tf } from '../../model/backend.js';
import '../../model/cnn.js'; // defines the Gp* kernels of the encoder
import { runKernel } from '../../model/kernels.js';
import { matMul, matMulT, transpose } from '../../model/primitives.js';
import { type NativeAddon, nativeAddon } from '../../model/native/addon.js';
import { describeNative } from '../helpers/native-guard.js';
import { firstBitDiff, onPath, randoms } from '../helpers/native-bits.js';

let g: NativeAddon;
const SIZES: [number, number, number][] = [[1, 2, 1], [1, 4, 3], [2, 6, 5], [3, 8, 16], [2, 16, 3], [1, 10, 33]];

/** Random values with ties (a coarse grid), signed zeros and a few NaNs: what a pooling must order as JS does. */
function awkward(n: number, seed: number): Float32Array {
  const out = randoms(n, seed, 2);
  for (let i = 0; i < n; i++) {
    if (i % 5 === 1) out[i] = Math.round(out[i] * 4) / 4;
    if (i % 97 === 3) out[i] = -0;
    if (i % 211 === 7) out[i] = NaN;
  }
  return out;
}

/** One kernel's outputs on a backend (the inputs made there). */
async function onBackend(backend: 'cpu' | 'native', name: string, inputs: [Float32Array, number[]][], attrs: Record<string, unknown>): Promise<Float32Array[]> {
  await initBackend(backend);
  const ts = inputs.map(([v, shape]) => tf.tensor(v, shape, 'float32'));
  try {
    const outs = runKernel(name, ts, attrs);
    const values = outs.map((t) => (t.dataSync() as Float32Array).slice());
    tf.dispose(outs);
    return values;
  } finally {
    tf.dispose(ts);
  }
}

/** Every kernel of one size, as [name, inputs, attrs, the addon's call into fresh outputs]. */
function cases(N: number, S: number, C: number, seed: number) {
  const h = S / 2;
  const x = awkward(N * S * S * C, seed);
  const cols = randoms(N * S * S * C * 9, seed + 1, 3);
  const b = awkward(C, seed + 2);
  const dy = randoms(N * h * h * C, seed + 3);
  // y and arg from the JS forward, so the backward sees what it sees in training.
  return { x, cols, b, dy, h };
}

describeNative('native CNN kernels', () => {
  beforeAll(() => {
    g = nativeAddon()!;
  });

  it('each kernel gives the JS kernel bits, on every path and through the native backend', async () => {
    for (const [k, [N, S, C]] of SIZES.entries()) {
      const { x, cols, b, dy, h } = cases(N, S, C, 11 * k + 1);
      const label = `N=${N} S=${S} C=${C}`;
      const pix = N * S * S;
      const jsPool = await onBackend('cpu', 'GpReluMaxPool2', [[x, [pix, C]], [b, [C]]], { N, S });
      const jsAll: [string, Float32Array[], () => Float32Array[], [Float32Array, number[]][], Record<string, unknown>][] = [
        ['GpIm2col3x3', await onBackend('cpu', 'GpIm2col3x3', [[x, [pix, C]]], { N, S }), () => {
          const out = new Float32Array(pix * C * 9).fill(NaN);
          g.im2col3x3(x, out, N, S, C);
          return [out];
        }, [[x, [pix, C]]], { N, S }],
        ['GpCol2im3x3', await onBackend('cpu', 'GpCol2im3x3', [[cols, [pix, C * 9]]], { N, S }), () => {
          const out = new Float32Array(pix * C).fill(NaN);
          g.col2im3x3(cols, out, N, S, C);
          return [out];
        }, [[cols, [pix, C * 9]]], { N, S }],
        ['GpReluMaxPool2', jsPool, () => {
          const y = new Float32Array(N * h * h * C).fill(NaN);
          const arg = new Float32Array(N * h * h * C).fill(NaN);
          g.reluMaxPool2(x, b, y, arg, N, S, C);
          return [y, arg];
        }, [[x, [pix, C]], [b, [C]]], { N, S }],
        ['GpReluMaxPool2Backward', await onBackend('cpu', 'GpReluMaxPool2Backward', [[dy, [N * h * h, C]], [jsPool[0], [N * h * h, C]], [jsPool[1], [N * h * h, C]]], { N, S }), () => {
          const out = new Float32Array(pix * C).fill(NaN);
          g.reluMaxPool2Backward(dy, jsPool[0], jsPool[1], out, N, S, C);
          return [out];
        }, [[dy, [N * h * h, C]], [jsPool[0], [N * h * h, C]], [jsPool[1], [N * h * h, C]]], { N, S }],
        ['GpFlattenChw', await onBackend('cpu', 'GpFlattenChw', [[x, [pix, C]]], { N, HW: S * S }), () => {
          const out = new Float32Array(pix * C).fill(NaN);
          g.flattenChw(x, out, N, S * S, C, 0);
          return [out];
        }, [[x, [pix, C]]], { N, HW: S * S }],
        ['GpFlattenChw inverse', await onBackend('cpu', 'GpFlattenChw', [[x, [N, S * S * C]]], { N, HW: S * S, inverse: true }), () => {
          const out = new Float32Array(pix * C).fill(NaN);
          g.flattenChw(x, out, N, S * S, C, 1);
          return [out];
        }, [[x, [N, S * S * C]]], { N, HW: S * S, inverse: true }],
      ];
      for (const [name, js, direct, inputs, attrs] of jsAll) {
        const kernel = name.split(' ')[0];
        const viaBackend = await onBackend('native', kernel, inputs, attrs);
        for (const path of g.info().paths) {
          const got = onPath(g, path, direct);
          got.forEach((out, i) => {
            const at = firstBitDiff(out, js[i]);
            expect(at, `${name} ${label} on ${path}: output ${i} [${at}] native ${out[at]}, JS ${js[i][at]}`).toBe(-1);
          });
        }
        viaBackend.forEach((out, i) => expect(firstBitDiff(out, js[i]), `${name} ${label} through the native backend, output ${i}`).toBe(-1));
      }
    }
  });

  it('pooling compares z + b in float64, as JS does: sums equal in float32 still have a maximum', async () => {
    // 1 + 2⁻³⁰ and 1 + 2⁻²⁹ both round to 1 in float32, but JS (and the C kernel) see the second as larger.
    const z = Float32Array.from([2 ** -30, 2 ** -29, 0, -1]);
    const b = Float32Array.from([1]);
    const y = new Float32Array(1);
    const arg = new Float32Array(1);
    g.reluMaxPool2(z, b, y, arg, 1, 2, 1);
    const js = await onBackend('cpu', 'GpReluMaxPool2', [[z, [4, 1]], [b, [1]]], { N: 1, S: 2 });
    expect([y[0], arg[0]]).toEqual([js[0][0], js[1][0]]);
    expect(arg[0]).toBe(1);
  });

  it("matMulT on native: the products on transposed operands have the bits of explicit transposes (the encoder's shapes)", async () => {
    await initBackend('native');
    for (const [M, K, N] of [[4096, 27, 16], [300, 144, 32], [64, 4096, 16], [5, 7, 3]]) {
      for (const [tA, tB] of [[false, true], [true, false], [true, true]]) {
        const a = tf.tensor2d(randoms(M * K, M + K), tA ? [K, M] : [M, K]);
        const b = tf.tensor2d(randoms(K * N, K + N), tB ? [N, K] : [K, N]);
        const [at, bt] = [tA ? transpose(a) : a, tB ? transpose(b) : b];
        const want = matMul(at, bt);
        const got = matMulT(a, b, tA, tB);
        expect(got.shape).toEqual([M, N]);
        expect(firstBitDiff(got.dataSync() as Float32Array, want.dataSync() as Float32Array), `${M}x${K}x${N} tA=${tA} tB=${tB}`).toBe(-1);
        tf.dispose([a, b, at, bt, want, got]);
      }
    }
  });

  it('col2im is the adjoint of im2col: ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩ in float64', () => {
    const [N, S, C] = [2, 6, 4];
    const x = randoms(N * S * S * C, 5);
    const c = randoms(N * S * S * C * 9, 6);
    const cols = new Float32Array(c.length);
    const dx = new Float32Array(x.length);
    g.im2col3x3(x, cols, N, S, C);
    g.col2im3x3(c, dx, N, S, C);
    const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + v * b[i], 0);
    expect(Math.abs(dot(cols, c) - dot(x, dx))).toBeLessThan(1e-4);
  });

  it('the native backend runs the C kernels: sizes only the C binding refuses reach it', async () => {
    // The JS loops would run (reading past the input or with a fractional channel count); the
    // binding checks first, so these errors show the kernel names are routed to it.
    const refused: [string, [Float32Array, number[]][], Record<string, unknown>, RegExp][] = [
      ['GpIm2col3x3', [[new Float32Array(15), [5, 3]]], { N: 1, S: 2 }, /im2col3x3: argument 4 must be an integer/],
      ['GpCol2im3x3', [[new Float32Array(45), [5, 9]]], { N: 1, S: 2 }, /col2im3x3: argument 4 must be an integer/],
      ['GpReluMaxPool2', [[new Float32Array(16), [8, 2]], [new Float32Array(2), [2]]], { N: 1, S: 4 }, /reluMaxPool2: argument 0 has 16 values, needs 32/],
      ['GpReluMaxPool2Backward', [[new Float32Array(4), [2, 2]], [new Float32Array(4).fill(1), [2, 2]], [new Float32Array(4).fill(7), [2, 2]]], { N: 2, S: 2 }, /reluMaxPool2Backward: argument 2 \(arg\) at 0 is 7, not a window position/],
      ['GpFlattenChw', [[new Float32Array(6), [2, 3]]], { N: 4, HW: 1 }, /flattenChw: argument 4 must be an integer/],
    ];
    for (const [name, inputs, attrs, error] of refused) {
      await expect(onBackend('native', name, inputs, attrs), name).rejects.toThrow(error);
      await expect(onBackend('cpu', name, inputs, attrs), `${name} in JS`).resolves.toBeDefined();
    }
  });

  it('fuzzed sizes and buffer lengths: the kernel runs within its buffers or throws naming the argument', () => {
    const GUARD = 12345.5;
    const guarded = (n: number, fill: number) => {
      const buf = new Float32Array(n + 16).fill(fill);
      buf.fill(GUARD, n);
      return { view: buf.subarray(0, n), intact: () => buf.subarray(n).every((v) => v === GUARD) };
    };
    const calls: Record<string, { lengths: (N: number, S: number, C: number) => number[]; run: (v: Float32Array[], N: number, S: number, C: number) => void }> = {
      im2col3x3: { lengths: (N, S, C) => [N * S * S * C, N * S * S * C * 9], run: ([x, o], N, S, C) => g.im2col3x3(x, o, N, S, C) },
      col2im3x3: { lengths: (N, S, C) => [N * S * S * C * 9, N * S * S * C], run: ([c, o], N, S, C) => g.col2im3x3(c, o, N, S, C) },
      reluMaxPool2: {
        lengths: (N, S, C) => [N * S * S * C, C, N * (S >> 1) ** 2 * C, N * (S >> 1) ** 2 * C],
        run: ([z, b, y, a], N, S, C) => g.reluMaxPool2(z, b, y, a, N, S, C),
      },
      reluMaxPool2Backward: {
        lengths: (N, S, C) => [N * (S >> 1) ** 2 * C, N * (S >> 1) ** 2 * C, N * (S >> 1) ** 2 * C, N * S * S * C],
        run: ([d, y, a, o], N, S, C) => g.reluMaxPool2Backward(d, y, a, o, N, S, C),
      },
      flattenChw: { lengths: (N, S, C) => [N * S * C, N * S * C], run: ([x, o], N, S, C) => g.flattenChw(x, o, N, S, C, S & 1) },
    };
    fc.assert(
      fc.property(
        fc.constantFrom(...Object.keys(calls)),
        fc.record({ N: fc.nat(3), S: fc.nat(7), C: fc.nat(5) }),
        fc.array(fc.integer({ min: -40, max: 40 }), { minLength: 4, maxLength: 4 }),
        (name, { N, S, C }, skew) => {
          const call = calls[name];
          const want = call.lengths(N, S, C);
          const lengths = want.map((n, i) => Math.max(0, n + (skew[i] % 3 === 0 ? skew[i] : 0)));
          // Inputs of 0.5 (the backward's arg 0: a window position); outputs start at 0.25.
          const fills = name === 'reluMaxPool2Backward' ? [0.5, 0.5, 0, 0.25] : name === 'reluMaxPool2' ? [0.5, 0.5, 0.25, 0.25] : [0.5, 0.25];
          const bufs = lengths.map((n, i) => guarded(n, fills[i]));
          const fits = lengths.every((n, i) => n >= want[i]);
          const pooled = name.startsWith('reluMaxPool2');
          const run = () => call.run(bufs.map((b) => b.view), N, S, C);
          if (pooled && S % 2 !== 0) expect(run).toThrow(new RegExp(`${name}: argument 5 \\(the side S\\) must be even`));
          else if (!fits) expect(run).toThrow(new RegExp(`${name}: argument \\d has \\d+ values, needs \\d+`));
          else run();
          expect(bufs.every((b) => b.intact()), `${name} wrote past an output`).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('refuses overlapping outputs, wrong types and sizes past 2^40 values', () => {
    const a = new Float32Array(64);
    expect(() => g.im2col3x3(a.subarray(0, 4), a.subarray(0, 36), 1, 2, 1)).toThrow(/im2col3x3: argument 1 must not overlap argument 0/);
    expect(() => g.reluMaxPool2(new Float32Array(4), new Float32Array(1), a.subarray(0, 1), a.subarray(0, 1), 1, 2, 1)).toThrow(/reluMaxPool2: argument 2 must not overlap argument 3/);
    expect(() => g.col2im3x3(new Float64Array(9) as unknown as Float32Array, a, 1, 1, 1)).toThrow(/col2im3x3: argument 0 must be a Float32Array/);
    expect(() => g.flattenChw(a, new Float32Array(64), 1, 64, 1.5, 0)).toThrow(/flattenChw: argument 4 must be an integer/);
    expect(() => g.im2col3x3(a, new Float32Array(64), 2 ** 26, 2 ** 26, 1)).toThrow(/im2col3x3: sizes too large/);
  });
});
