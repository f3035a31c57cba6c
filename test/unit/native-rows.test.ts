// The native row kernels (model/native/rows.c): column sums, row gathers and copies, layer
// norm forward/backward and softmax cross-entropy. Every path gives the generic path's
// bits; through the tfjs kernels the native variants agree with the JS `run` (the same bits
// where rows.c does the JS arithmetic, float32/float64 tolerances where it sums in another
// order or uses its own exp); fuzzed sizes, ids and targets either run or throw a JS error.

import fc from 'fast-check';
import { beforeAll, expect, it } from 'vitest';
import { initBackend, tf } from '../../model/backend.js';
import { runKernel } from '../../model/kernels.js';
import { nativeAddon } from '../../model/native/addon.js';
import { softmaxXent } from '../../model/primitives.js';
import { describeNative } from '../helpers/native-guard.js';
import { firstBitDiff, onPath, randoms, relDiff } from '../helpers/native-bits.js';

const g = nativeAddon()!; // used only inside describeNative, which skips when it is missing
let paths: string[];

const randomIds = (n: number, rows: number, seed: number) => Int32Array.from(randoms(n, seed), (v) => Math.floor(((v + 1) / 2) * rows));

/** Each kernel once with fresh outputs: its outputs by name and its return value. */
type Case = () => { outs: Record<string, Float32Array>; value?: number };

function cases(): [string, Case][] {
  const list: [string, Case][] = [];
  for (const [M, C] of [[1, 1], [3, 7], [9, 17], [33, 64], [5, 300], [2, 1000]]) {
    const a = randoms(M * C, M + C, 3);
    const b = randoms(M * C, M * C + 1, 2);
    const gamma = randoms(C, C + 2, 1.5);
    const beta = randoms(C, C + 3);
    const ids = randomIds(2 * M + 1, M, C);
    list.push([`colSum ${M}x${C}`, () => {
      const out = new Float32Array(C).fill(NaN);
      g.colSum(a, out, M, C);
      return { outs: { out } };
    }]);
    list.push([`colSumProduct ${M}x${C}`, () => {
      const out = new Float32Array(C).fill(NaN);
      g.colSumProduct(a, b, out, M, C);
      return { outs: { out } };
    }]);
    list.push([`gatherRows ${ids.length} of ${M}x${C}`, () => {
      const out = new Float32Array(ids.length * C).fill(NaN);
      g.gatherRows(a, ids, out, C, M);
      return { outs: { out } };
    }]);
    list.push([`copyRows ${M}x${C}`, () => {
      const out = new Float32Array((M - 1) * C).fill(NaN);
      g.copyRows(a, out, 1, M - 1, C);
      return { outs: { out } };
    }]);
    list.push([`layerNorm ${M}x${C}`, () => {
      const o = { y: new Float32Array(M * C), xhat: new Float32Array(M * C), rstd: new Float32Array(M), dx: new Float32Array(M * C) };
      g.layerNorm(a, gamma, beta, o.y, o.xhat, o.rstd, M, C);
      g.layerNormBackward(b, o.xhat, o.rstd, gamma, o.dx, M, C);
      return { outs: o };
    }]);
  }
  for (const [M, V, scale] of [[1, 1, 1], [4, 7, 3], [33, 65, 8], [6, 16, 200], [5, 300, 10], [3, 520, 4], [64, 65, 1]]) {
    const z = randoms(M * V, M * V + 7, scale);
    const bias = randoms(V, V + 1, scale / 4);
    const targets = randomIds(M, V, M + V);
    for (const [grad, logits] of [[true, true], [true, false], [false, true], [false, false]]) {
      list.push([`softmaxXent ${M}x${V} ±${scale} grad=${grad} logits=${logits}`, () => {
        const dz = grad ? new Float32Array(M * V).fill(NaN) : null;
        const lg = logits ? new Float32Array(M * V).fill(NaN) : null;
        const value = g.softmaxXent(z, bias, targets, dz, lg, V);
        const outs: Record<string, Float32Array> = {};
        if (dz) outs.dz = dz;
        if (lg) outs.logits = lg;
        return { outs, value };
      }]);
    }
  }
  return list;
}

describeNative('native row kernels on every path', () => {
  beforeAll(() => {
    paths = g.info().paths;
  });

  it('every kernel: every path gives the generic bits (outputs and the loss)', () => {
    for (const [name, run] of cases()) {
      const want = onPath(g, 'generic', run);
      for (const path of paths) {
        const got = onPath(g, path, run);
        expect(Object.is(got.value, want.value), `${path} ${name}: loss ${got.value} vs generic ${want.value}`).toBe(true);
        for (const key of Object.keys(want.outs)) {
          const at = firstBitDiff(got.outs[key], want.outs[key]);
          expect(at, `${path} ${name}: ${key}[${at}] = ${got.outs[key][at]}, generic ${want.outs[key][at]}`).toBe(-1);
        }
      }
    }
  });

  it('softmaxXent: the loss has the same bits with or without dz and logits (rows longer than one piece too)', () => {
    for (const V of [65, 257, 520]) {
      const M = 7;
      const z = randoms(M * V, V, 6);
      const bias = randoms(V, V + 1);
      const targets = randomIds(M, V, 3);
      const bare = g.softmaxXent(z, bias, targets, null, null, V);
      const full = g.softmaxXent(z, bias, targets, new Float32Array(M * V), new Float32Array(M * V), V);
      expect(Object.is(bare, full), `V=${V}: ${bare} vs ${full}`).toBe(true);
    }
  });

  it('softmaxXent: a NaN or an infinite logit makes the loss NaN, as in JS; huge spreads stay finite', () => {
    const V = 5;
    const bias = new Float32Array(V);
    const targets = Int32Array.from([1]);
    for (const bad of [NaN, Infinity]) {
      const z = Float32Array.from([0, 1, bad, 2, 3]);
      expect(g.softmaxXent(z, bias, targets, new Float32Array(V), null, V)).toBeNaN();
    }
    const dz = new Float32Array(V);
    const loss = g.softmaxXent(Float32Array.from([-1e30, 0, 1e4, -1e4, 5]), bias, targets, dz, null, V);
    expect(loss).toBeCloseTo(1e4, 3);
    expect([...dz].every(Number.isFinite)).toBe(true);
    expect(dz[2]).toBe(1);
    expect(dz[1]).toBe(-1);
  });
});

/** One kernel's outputs on a backend; the inputs are made there. */
async function onBackend(backend: 'cpu' | 'native', name: string, inputs: [Float32Array, number[]][], attrs = {}): Promise<Float32Array[]> {
  await initBackend(backend);
  const ts = inputs.map(([v, shape]) => tf.tensor(v, shape, 'float32'));
  const outs = runKernel(name, ts, attrs);
  // Copies: dataSync gives the backend's own arrays, which the native arena reuses once the tensors go.
  const values = outs.map((t) => (t.dataSync() as Float32Array).slice());
  tf.dispose([...ts, ...outs]);
  return values;
}

describeNative('native row kernels vs the JS kernels (tfjs cpu backend)', () => {
  it('GpColSum, GpColSumProduct, GpGatherRows, GpRows: the same bits', async () => {
    for (const [M, C] of [[1, 1], [7, 13], [64, 256], [2048, 65]]) {
      const a = randoms(M * C, M, 4);
      const b = randoms(M * C, C, 4);
      const ids = randomIds(M + 3, M, 5);
      const checks: [string, [Float32Array, number[]][], Record<string, unknown>][] = [
        ['GpColSum', [[a, [M, C]]], {}],
        ['GpColSumProduct', [[a, [M, C]], [b, [M, C]]], {}],
        ['GpGatherRows', [[a, [M, C]]], { ids }],
        ['GpRows', [[a, [M, C]]], { start: M >> 1, count: M - (M >> 1) }],
      ];
      for (const [name, inputs, attrs] of checks) {
        const js = await onBackend('cpu', name, inputs, attrs);
        const native = await onBackend('native', name, inputs, attrs);
        const at = firstBitDiff(native[0], js[0]);
        expect(at, `${name} ${M}x${C}: [${at}] native ${native[0][at]}, JS ${js[0][at]}`).toBe(-1);
      }
    }
  });

  it('GpLayerNorm and GpLayerNormBackward: within float32 rounding of the JS kernels', async () => {
    for (const [M, C] of [[1, 1], [5, 3], [32, 1024], [2048, 64]]) {
      const x = randoms(M * C, M + C, 5);
      const gamma = randoms(C, C, 2);
      const beta = randoms(C, C + 1);
      const dy = randoms(M * C, M * C, 3);
      const fwd: [Float32Array, number[]][] = [[x, [M, C]], [gamma, [C]], [beta, [C]]];
      const js = await onBackend('cpu', 'GpLayerNorm', fwd);
      const native = await onBackend('native', 'GpLayerNorm', fwd);
      ['y', 'xhat', 'rstd'].forEach((what, i) => expect(relDiff(native[i], js[i]), `${what} ${M}x${C}`).toBeLessThan(1e-6));
      // and on the native backend it is the C kernel's result
      const direct = { y: new Float32Array(M * C), xhat: new Float32Array(M * C), rstd: new Float32Array(M) };
      g.layerNorm(x, gamma, beta, direct.y, direct.xhat, direct.rstd, M, C);
      [direct.y, direct.xhat, direct.rstd].forEach((d, i) => expect(firstBitDiff(native[i], d)).toBe(-1));
      const bwd: [Float32Array, number[]][] = [[dy, [M, C]], [js[1], [M, C]], [js[2], [M, 1]], [gamma, [C]]];
      const jsDx = (await onBackend('cpu', 'GpLayerNormBackward', bwd))[0];
      const nativeDx = (await onBackend('native', 'GpLayerNormBackward', bwd))[0];
      const directDx = new Float32Array(M * C);
      g.layerNormBackward(dy, js[1], js[2], gamma, directDx, M, C);
      expect(firstBitDiff(nativeDx, directDx)).toBe(-1);
      // Row by row: dx is a difference of terms of the size of γ⊙dy·rstd.
      for (let r = 0; r < M; r++) {
        const row = (a: Float32Array) => a.subarray(r * C, r * C + C);
        const scale = Math.max(...row(dy).map((v, j) => Math.abs(v * gamma[j]))) * js[2][r];
        const err = Math.max(...row(nativeDx).map((v, j) => Math.abs(v - row(jsDx)[j])));
        if (!(err <= 1e-6 * scale + 1e-30)) expect.fail(`dx ${M}x${C} row ${r}: off by ${err}, scale ${scale}`);
      }
    }
  });

  it('GpSoftmaxXent: loss within 1e-6 relative (a float64 number), dz within 1e-6, logits the same bits', async () => {
    for (const [M, V, scale] of [[1, 2, 1], [9, 11, 3], [2048, 65, 6], [40, 300, 20]]) {
      const z = randoms(M * V, M * V, scale);
      const bias = randoms(V, V, scale / 4);
      const targets = randomIds(M, V, M);
      const run = async (backend: 'cpu' | 'native') => {
        await initBackend(backend);
        const zt = tf.tensor2d(z, [M, V]);
        const bt = tf.tensor1d(bias);
        const out = softmaxXent(zt, bt, targets, { grad: true, logits: true });
        const got = { loss: out.loss, dz: (out.dLogits!.dataSync() as Float32Array).slice(), logits: (out.logits!.dataSync() as Float32Array).slice() };
        tf.dispose([zt, bt, out.dLogits!, out.logits!]);
        return got;
      };
      const js = await run('cpu');
      const native = await run('native');
      const label = `${M}x${V} ±${scale}`;
      expect(Math.abs(native.loss - js.loss), `${label}: loss ${native.loss} vs JS ${js.loss}`).toBeLessThan(1e-6 * Math.abs(js.loss));
      // The loss is the addon's float64 sum itself, not a float32 copy.
      expect(native.loss).toBe(g.softmaxXent(z, bias, targets, null, null, V));
      if (M > 1) expect(Math.fround(native.loss)).not.toBe(native.loss);
      let dzErr = 0;
      for (let i = 0; i < z.length; i++) dzErr = Math.max(dzErr, Math.abs(native.dz[i] - js.dz[i]));
      expect(dzErr, label).toBeLessThan(1e-6);
      expect(firstBitDiff(native.logits, js.logits), label).toBe(-1);
      const directDz = new Float32Array(M * V);
      g.softmaxXent(z, bias, targets, directDz, null, V);
      expect(firstBitDiff(native.dz, directDz), label).toBe(-1);
    }
  });
});

const GUARD = 12345.5;

/** A typed array of n values (from fill) followed by 16 guard values; `intact` checks the guards and values past `want`. */
function guarded<A extends Float32Array | Int32Array>(make: (n: number) => A, n: number, fill: ArrayLike<number>, want: number) {
  const buf = make(n + 16);
  for (let i = 0; i < n; i++) buf[i] = fill[i % fill.length];
  buf.fill(GUARD, n);
  const guard = buf[n]; // GUARD as this array stores it
  const view = buf.subarray(0, n) as A;
  const before = Array.from(view.subarray(Math.max(0, Math.min(n, want))));
  return {
    view,
    intact: () => buf.subarray(n).every((v) => v === guard) && before.every((v, i) => Object.is(v, view[Math.max(0, want) + i])),
  };
}
const f32 = (n: number, want: number, seed = 1) => guarded((k) => new Float32Array(k), n, randoms(64, seed, 2), want);
const i32 = (values: number[]) => guarded((k) => new Int32Array(k), values.length, values.length ? values : [0], values.length);

describeNative('native row kernels reject what does not fit', () => {
  // Lengths around the needed ones (slack −3 … +2) and ids a little outside their range.
  const slack = fc.array(fc.integer({ min: -3, max: 2 }), { minLength: 8, maxLength: 8 });
  const ids = (max: number) => fc.array(fc.integer({ min: -2, max: max + 1 }), { maxLength: 9 });
  const len = (want: number, s: number) => Math.max(0, want + s);

  it('colSum / colSumProduct / copyRows: fuzzed sizes and lengths', () => {
    fc.assert(
      fc.property(fc.record({ M: fc.nat(6), C: fc.nat(9), start: fc.nat(4), count: fc.nat(4), slack }), ({ M, C, start, count, slack: s }) => {
        const a = f32(len(M * C, s[0]), M * C, 2);
        const b = f32(len(M * C, s[1]), M * C, 3);
        const out = f32(len(C, s[2]), C);
        const colSum = () => g.colSum(a.view, out.view, M, C);
        if (a.view.length >= M * C && out.view.length >= C) colSum();
        else expect(colSum).toThrow(/^colSum: argument [01] has \d+ values, needs \d+$/);
        const product = () => g.colSumProduct(a.view, b.view, out.view, M, C);
        if (a.view.length >= M * C && b.view.length >= M * C && out.view.length >= C) product();
        else expect(product).toThrow(/^colSumProduct: argument [012] has \d+ values, needs \d+$/);
        const rows = f32(len(count * C, s[3]), count * C);
        const copy = () => g.copyRows(a.view, rows.view, start, count, C);
        if (a.view.length >= (start + count) * C && rows.view.length >= count * C) {
          copy();
          expect(firstBitDiff(rows.view.subarray(0, count * C), a.view.subarray(start * C, (start + count) * C))).toBe(-1);
        } else expect(copy).toThrow(/^copyRows: argument [01] has \d+ values, needs \d+$/);
        expect([a, b, out, rows].every((x) => x.intact())).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('gatherRows: fuzzed sizes, lengths and row ids', () => {
    fc.assert(
      fc.property(fc.record({ rows: fc.nat(5), C: fc.nat(7), ids: ids(5), slack }), ({ rows, C, ids: list, slack: s }) => {
        const n = list.length;
        const table = f32(len(rows * C, s[0]), rows * C);
        const id = i32(list);
        const out = f32(len(n * C, s[1]), n * C);
        const call = () => g.gatherRows(table.view, id.view, out.view, C, rows);
        const sizesFit = table.view.length >= rows * C && out.view.length >= n * C;
        if (sizesFit && list.every((v) => v >= 0 && v < rows)) {
          call();
          list.forEach((v, r) => expect(firstBitDiff(out.view.subarray(r * C, r * C + C), table.view.subarray(v * C, v * C + C))).toBe(-1));
        } else if (sizesFit) {
          const bad = list.findIndex((v) => v < 0 || v >= rows);
          expect(call).toThrow(`gatherRows: row id ${list[bad]} at ${bad} outside [0, ${rows})`);
        } else expect(call).toThrow(/^gatherRows: argument [02] has \d+ values, needs \d+$/);
        expect([table, id, out].every((x) => x.intact())).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('layerNorm / layerNormBackward: fuzzed sizes and lengths', () => {
    fc.assert(
      fc.property(fc.record({ M: fc.nat(5), C: fc.nat(9), slack }), ({ M, C, slack: s }) => {
        const MC = M * C;
        const [x, gamma, beta, y, xhat, rstd] = [f32(len(MC, s[0]), MC), f32(len(C, s[1]), C), f32(len(C, s[2]), C), f32(len(MC, s[3]), MC), f32(len(MC, s[4]), MC), f32(len(M, s[5]), M)];
        const fwd = () => g.layerNorm(x.view, gamma.view, beta.view, y.view, xhat.view, rstd.view, M, C);
        const fwdFits = [x, y, xhat].every((b) => b.view.length >= MC) && gamma.view.length >= C && beta.view.length >= C && rstd.view.length >= M;
        if (fwdFits) fwd();
        else expect(fwd).toThrow(/^layerNorm: argument [0-5] has \d+ values, needs \d+$/);
        const [dy, dx] = [f32(len(MC, s[6]), MC), f32(len(MC, s[7]), MC)];
        const bwd = () => g.layerNormBackward(dy.view, xhat.view, rstd.view, gamma.view, dx.view, M, C);
        const bwdFits = [dy, xhat, dx].every((b) => b.view.length >= MC) && rstd.view.length >= M && gamma.view.length >= C;
        if (bwdFits) bwd();
        else expect(bwd).toThrow(/^layerNormBackward: argument [0-4] has \d+ values, needs \d+$/);
        expect([x, gamma, beta, y, xhat, rstd, dy, dx].every((b) => b.intact())).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('softmaxXent: fuzzed sizes, lengths, optional outputs and targets', () => {
    fc.assert(
      fc.property(
        fc.record({ V: fc.nat(9), targets: ids(9), grad: fc.boolean(), logits: fc.boolean(), slack }),
        ({ V, targets: list, grad, logits, slack: s }) => {
          const MV = list.length * V;
          const [z, bias, dz, lg] = [f32(len(MV, s[0]), MV, 5), f32(len(V, s[1]), V, 6), f32(len(MV, s[2]), MV), f32(len(MV, s[3]), MV)];
          const t = i32(list);
          const call = () => g.softmaxXent(z.view, bias.view, t.view, grad ? dz.view : null, logits ? lg.view : null, V);
          const sizesFit = z.view.length >= MV && bias.view.length >= V && (!grad || dz.view.length >= MV) && (!logits || lg.view.length >= MV);
          if (sizesFit && list.every((v) => v >= 0 && v < V)) {
            const loss = call();
            expect(Number.isFinite(loss) && loss >= 0).toBe(true);
            // The same loss from exactly sized copies: nothing past the needed values was read.
            expect(g.softmaxXent(z.view.slice(0, MV), bias.view.slice(0, V), t.view.slice(), null, null, V)).toBe(loss);
          } else if (sizesFit) {
            const bad = list.findIndex((v) => v < 0 || v >= V);
            expect(call).toThrow(`softmaxXent: target ${list[bad]} at ${bad} outside [0, ${V})`);
          } else expect(call).toThrow(/^softmaxXent: argument [0134] has \d+ values, needs \d+$/);
          expect([z, bias, dz, lg, t].every((b) => b.intact())).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('outputs must not share memory with another argument (ids included), and types are checked', () => {
    const mem = new ArrayBuffer(4 * 64);
    const f = (at: number, n: number) => new Float32Array(mem, 4 * at, n);
    expect(() => g.colSum(f(0, 12), f(8, 4), 3, 4)).toThrow('colSum: argument 1 must not overlap argument 0');
    expect(() => g.copyRows(f(0, 16), f(8, 4), 2, 1, 4)).toThrow('copyRows: argument 1 must not overlap argument 0');
    g.copyRows(f(0, 16), f(8, 4), 0, 1, 4); // reads row 0 only: no overlap
    expect(() => g.gatherRows(f(0, 8), new Int32Array(mem, 4 * 20, 2), f(18, 8), 4, 2)).toThrow('gatherRows: argument 2 must not overlap argument 1');
    expect(() => g.layerNorm(f(0, 8), f(8, 4), f(12, 4), f(16, 8), f(24, 8), f(10, 2), 2, 4)).toThrow('layerNorm: argument 5 must not overlap argument 1');
    expect(() => g.layerNormBackward(f(0, 8), f(8, 8), f(16, 2), f(18, 4), f(20, 8), 2, 4)).toThrow('layerNormBackward: argument 4 must not overlap argument 3');
    const targets = new Int32Array(mem, 4 * 40, 2);
    expect(() => g.softmaxXent(f(0, 8), f(8, 4), targets, f(36, 8), null, 4)).toThrow('softmaxXent: argument 3 must not overlap argument 2');
    expect(() => g.softmaxXent(f(0, 8), f(8, 4), new Int32Array(2), f(12, 8), f(16, 8), 4)).toThrow('softmaxXent: argument 3 must not overlap argument 4');
    expect(() => g.softmaxXent(f(0, 8), f(8, 4), new Float32Array(2) as never, null, null, 4)).toThrow('softmaxXent: argument 2 must be an Int32Array');
    expect(() => g.softmaxXent(f(0, 8), f(8, 4), new Int32Array(2), new Float64Array(8) as never, null, 4)).toThrow('softmaxXent: argument 3 must be a Float32Array');
    expect(() => g.colSum(f(0, 8), f(8, 4), 2.5 as number, 4)).toThrow('colSum: argument 2 must be an integer in [0, 2^26]');
    expect(() => (g.layerNorm as (...x: unknown[]) => void)(f(0, 8), f(8, 4), f(12, 4), f(16, 8), f(24, 8))).toThrow('layerNorm: argument 5 missing');
  });
});
