// The coordinator's per-step vector work on the native addon (model/native/optim.c)
// against the JS loops that define it (coordinator/shards.ts, coordinator/optim.ts):
// many random steps — reduce shards, clip, schedule, update — of every optimizer over
// nasty values (subnormal, tiny, huge, ±0, ±∞, NaN) give the same bits in the gradient,
// the norms, the parameters and the optimizer state, on every instruction-set path.
// Wrong lengths and types are JS errors that leave memory alone (fuzzed).

import fc from 'fast-check';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { setNativeOps } from '../../coordinator/native-ops.js';
import {
  type ClipResult, type OptimizerConfig, type OptimizerState, applyUpdate, clipGlobalNorm, globalNorm, learningRate, newOptimizerState,
} from '../../coordinator/optim.js';
import { type Reduced, reduceShards } from '../../coordinator/shards.js';
import type { ChunkResult } from '../../model/chunk.js';
import { type NativeAddon, nativeAddon } from '../../model/native/addon.js';
import { describeNative } from '../helpers/native-guard.js';

let g: NativeAddon;

/** mulberry32: a seeded generator of floats in [0, 1). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const SPECIAL = [0, -0, 2 ** -149, -(2 ** -149), 2 ** -126 - 2 ** -149, 2 ** -126, -(2 ** -126), 1e-30, -1e-30, 1e30, -1e20, 3.4028234663852886e38, -3.4028234663852886e38, 1, -1, 0.1];

/** Mostly ordinary values over six decades, the rest subnormal, special, any exponent, or (nonfinite) ±∞ and NaN. */
function nasty(r: () => number, n: number, nonfinite: boolean): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = r();
    const sign = r() < 0.5 ? -1 : 1;
    if (u < 0.6) out[i] = sign * r() * 10 ** (r() * 6 - 3);
    else if (u < 0.72) out[i] = sign * r() * 2 ** -126; // subnormal
    else if (u < 0.86) out[i] = SPECIAL[Math.floor(r() * SPECIAL.length)];
    else if (nonfinite && u < 0.88) out[i] = [Infinity, -Infinity, NaN][Math.floor(r() * 3)];
    else out[i] = sign * (1 + r()) * 2 ** (Math.floor(r() * 254) - 126);
  }
  return out;
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

/**
 * '' when a and b hold the same bits, else the first difference. A NaN matches any NaN: JS
 * leaves NaN bit patterns unspecified, and V8 and the CPU each pick sign and payload by the
 * order of operands (both ways round were seen here); every other value must match exactly.
 */
function bitDiff(a: Float32Array, b: Float32Array): string {
  if (a.length !== b.length) return `lengths ${a.length} vs ${b.length}`;
  const x = bits(a);
  const y = bits(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return `[${i}] ${a[i]} (0x${x[i].toString(16)}) vs ${b[i]} (0x${y[i].toString(16)})`;
  return '';
}

/** Run fn on the JS loops (native false) or the addon, then go back to the default (the addon). */
function on<R>(native: boolean, fn: () => R): R {
  setNativeOps(native);
  try {
    return fn();
  } finally {
    setNativeOps(true);
  }
}

interface Lane {
  params: Float32Array;
  state: OptimizerState;
}

interface Case {
  cfg: OptimizerConfig;
  clip: number;
  n: number;
  shards: number;
  nonfinite: boolean;
  steps: number;
}

/** A random configuration of one optimizer: schedule, clipping, hyperparameters, size, shard count. */
function randomCase(r: () => number, optimizer: OptimizerConfig['optimizer']): Case {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const steps = 10;
  const cfg: OptimizerConfig = {
    optimizer,
    lr: pick([0.1, 1e-3, 3e5, 2 ** -140]),
    warmup: pick([0, 0, 3]),
    lrSchedule: pick(['constant', 'cosine'] as const),
    steps: pick([steps, 2 * steps]),
    momentum: pick([undefined, 0, 0.5, 0.99]),
    beta1: pick([undefined, 0, 0.5]),
    beta2: pick([undefined, 0.9, 0.5]),
    eps: pick([undefined, 1e-30, 1]),
  };
  return { cfg, clip: pick([0, 0.5, 1e30]), n: pick([0, 1, 7, 8, 9, 17, 33, 1000, 4099]), shards: pick([1, 2, 3]), nonfinite: r() < 0.3, steps };
}

/**
 * One case on both lanes, step by step: the same shard gradients reduced, clipped and applied
 * by the JS loops and by the addon; every intermediate result compared bit for bit.
 */
function runCase(c: Case, seed: number): void {
  const r = rng(seed);
  const lanes: Lane[] = [false, true].map(() => {
    const params = nasty(r, c.n, false);
    return { params, state: newOptimizerState(c.cfg, c.n) };
  });
  lanes[1].params.set(lanes[0].params);
  const where = (step: number) => `seed ${seed} step ${step} ${JSON.stringify({ ...c, steps: undefined })}`;
  for (let step = 0; step < c.steps; step++) {
    const results: ChunkResult[] = Array.from({ length: c.shards }, () => ({
      grad: nasty(r, c.n, c.nonfinite), loss: r(), penalty: 0, tokens: Math.floor(r() * 100), finalStates: new Float32Array(0),
    }));
    const lr = learningRate(c.cfg, step);
    const out = lanes.map((lane, k) =>
      on(k === 1, () => {
        const reduced: Reduced = reduceShards(results, c.n);
        const norm = globalNorm(reduced.grad);
        const clip: ClipResult = clipGlobalNorm(reduced.grad, c.clip);
        applyUpdate(c.cfg, lane.state, lane.params, reduced.grad, lr);
        return { reduced, norm, clip };
      }),
    );
    const [js, native] = out;
    expect(bitDiff(js.reduced.grad, native.reduced.grad), `gradient, ${where(step)}`).toBe('');
    expect(Object.is(js.norm, native.norm), `norm ${js.norm} vs ${native.norm}, ${where(step)}`).toBe(true);
    for (const key of ['normBefore', 'normAfter', 'clipped'] as const) {
      expect(Object.is(js.clip[key], native.clip[key]), `clip ${key} ${js.clip[key]} vs ${native.clip[key]}, ${where(step)}`).toBe(true);
    }
    expect(bitDiff(lanes[0].params, lanes[1].params), `params, ${where(step)}`).toBe('');
    expect(bitDiff(lanes[0].state.m, lanes[1].state.m), `m, ${where(step)}`).toBe('');
    expect(bitDiff(lanes[0].state.v, lanes[1].state.v), `v, ${where(step)}`).toBe('');
    expect(lanes[1].state.t).toBe(lanes[0].state.t);
  }
}

describeNative('native optimizer and reduction give the bits of the JS loops', () => {
  beforeAll(() => {
    g = nativeAddon()!;
  });
  afterEach(() => {
    setNativeOps(true);
  });

  for (const optimizer of ['sgd', 'momentum', 'adam'] as const) {
    it(`${optimizer}: 40 random runs of 10 steps (reduce, clip, schedule, update) on every instruction-set path`, () => {
      const before = g.info().isa;
      try {
        for (const path of g.info().paths) {
          g.setIsa(path);
          const r = rng(optimizer.length * 1000 + path.length);
          for (let k = 0; k < 40; k++) runCase(randomCase(r, optimizer), k * 7919 + path.length);
        }
      } finally {
        g.setIsa(before);
      }
    });
  }

  it('every schedule and clipping setting is covered, with large buffers, on the default path', () => {
    for (const optimizer of ['sgd', 'momentum', 'adam'] as const) {
      for (const lrSchedule of ['constant', 'cosine'] as const) {
        for (const warmup of [0, 4]) {
          for (const clip of [0, 0.5, 1e30]) {
            for (const nonfinite of [false, true]) {
              const cfg: OptimizerConfig = { optimizer, lr: 0.01, warmup, lrSchedule, steps: 12 };
              runCase({ cfg, clip, n: 20_011, shards: 2, nonfinite, steps: 12 }, warmup * 31 + clip);
            }
          }
        }
      }
    }
  });

  it('a parameter buffer on a SharedArrayBuffer (as the trainer publishes) updates the same', () => {
    for (const optimizer of ['sgd', 'momentum', 'adam'] as const) {
      const cfg: OptimizerConfig = { optimizer, lr: 0.05, warmup: 0, lrSchedule: 'constant', steps: 5 };
      const r = rng(3);
      const init = nasty(r, 1001, false);
      const grads = [0, 1, 2].map(() => nasty(r, 1001, false));
      const lanes = [false, true].map((native) => {
        const params = new Float32Array(new SharedArrayBuffer(4 * 1001));
        params.set(init);
        const state = newOptimizerState(cfg, 1001);
        on(native, () => grads.forEach((grad) => applyUpdate(cfg, state, params, grad, 0.05)));
        return { params, state };
      });
      expect(bitDiff(lanes[0].params, lanes[1].params), optimizer).toBe('');
      expect(bitDiff(lanes[0].state.m, lanes[1].state.m), optimizer).toBe('');
    }
  });

  it('the comparison can fail: the data tell apart a reordered sum, float32 arithmetic and an unrounded moment', () => {
    const r = rng(11);
    const x = nasty(r, 4096, false);
    // Σ x² in two halves (as a 2-lane vector sum would) against the left-to-right chain.
    let even = 0;
    let odd = 0;
    for (let i = 0; i < x.length; i += 2) {
      even += x[i] * x[i];
      odd += x[i + 1] * x[i + 1];
    }
    expect(even + odd).not.toBe(g.sumSquares(x));
    // Adam's moment in float32 arithmetic (one rounding per operation) is not the float64 one.
    const b1 = 0.9;
    const m0 = nasty(r, 4096, false);
    const m64 = m0.map((m, i) => b1 * m + (1 - b1) * x[i]);
    const m32 = m0.map((m, i) => Math.fround(Math.fround(Math.fround(b1) * m) + Math.fround(Math.fround(1 - b1) * x[i])));
    expect(bitDiff(m64, m32)).not.toBe('');
    // Momentum: the update uses m as stored in float32; the float64 value gives other params.
    const p = nasty(r, 4096, false);
    const m = nasty(r, 4096, false);
    const lr = 0.1;
    const stored = p.map((pi, i) => pi - lr * Math.fround(0.9 * m[i] + x[i]));
    const unrounded = p.map((pi, i) => pi - lr * (0.9 * m[i] + x[i]));
    expect(bitDiff(stored, unrounded)).not.toBe('');
    const native = p.slice();
    const mNative = m.slice();
    g.momentumUpdate(native, x, mNative, lr, 0.9, false);
    expect(bitDiff(native, stored)).toBe('');
  });

  it('addInto adds in float32 in shard order; −0 + −0 stays −0, +0 + −0 is +0', () => {
    const dst = Float32Array.from([-0, 0, 1, 2 ** 24]);
    g.addInto(dst, Float32Array.from([-0, -0, 2 ** -149, 1]));
    expect([...dst].map((v) => Object.is(v, -0))).toEqual([true, false, false, false]);
    expect([...dst.subarray(2)]).toEqual([1, 2 ** 24]);
    // reduceShards starts from +0: a shard of −0 alone reduces to +0 on both paths.
    const shard: ChunkResult = { grad: Float32Array.from([-0]), loss: 0, penalty: 0, tokens: 1, finalStates: new Float32Array(0) };
    for (const native of [false, true]) expect(Object.is(on(native, () => reduceShards([shard], 1)).grad[0], 0)).toBe(true);
  });
});

const GUARD = 12345.5;

/** A Float32Array of n values followed by 16 guard values, and a check of the guards. */
function guarded(n: number, fill: number): { view: Float32Array; intact: () => boolean } {
  const buf = new Float32Array(n + 16).fill(fill);
  buf.fill(GUARD, n);
  return { view: buf.subarray(0, n), intact: () => buf.subarray(n).every((v) => v === GUARD) };
}

describeNative('native optimizer entry points reject what does not fit', () => {
  beforeAll(() => {
    g = nativeAddon()!;
  });

  it('fuzzed lengths: fitting calls give the JS result on the first params.length values; others throw naming the argument', () => {
    const cfg = (optimizer: OptimizerConfig['optimizer']): OptimizerConfig => ({ optimizer, lr: 0.1, warmup: 0, lrSchedule: 'constant', steps: 1 });
    type Bufs = { p: Float32Array; gr: Float32Array; m: Float32Array; v: Float32Array };
    // Each entry point: the arrays whose lengths must reach params.length, the native call, and the
    // same operation through the coordinator's JS loops (for adam at t = 1: c1 = 1 − β1, c2 = √(1 − β2)).
    const entries: { name: string; uses: ('gr' | 'm' | 'v')[]; native: (b: Bufs) => void; js: (b: Bufs) => void }[] = [
      { name: 'addInto', uses: ['gr'], native: (b) => g.addInto(b.p, b.gr), js: (b) => b.p.forEach((x, i) => (b.p[i] = x + b.gr[i])) },
      { name: 'scaleInPlace', uses: [], native: (b) => g.scaleInPlace(b.p, 0.3), js: (b) => b.p.forEach((x, i) => (b.p[i] = x * 0.3)) },
      { name: 'sgdUpdate', uses: ['gr'], native: (b) => g.sgdUpdate(b.p, b.gr, 0.1), js: (b) => applyUpdate(cfg('sgd'), newOptimizerState(cfg('sgd'), b.p.length), b.p, b.gr, 0.1) },
      {
        name: 'momentumUpdate', uses: ['gr', 'm'],
        native: (b) => g.momentumUpdate(b.p, b.gr, b.m, 0.1, 0.9, false),
        js: (b) => applyUpdate(cfg('momentum'), { t: 1, m: b.m, v: new Float32Array(0) }, b.p, b.gr, 0.1),
      },
      {
        name: 'adamUpdate', uses: ['gr', 'm', 'v'],
        native: (b) => g.adamUpdate(b.p, b.gr, b.m, b.v, 0.1, 0.9, 0.999, 1e-8, 1 - Math.pow(0.9, 1), Math.sqrt(1 - Math.pow(0.999, 1))),
        js: (b) => applyUpdate(cfg('adam'), { t: 0, m: b.m, v: b.v }, b.p, b.gr, 0.1),
      },
    ];
    const fills = { p: 0.5, gr: 0.25, m: 0.125, v: 0.0625 };
    fc.assert(
      fc.property(fc.record({ p: fc.nat(24), gr: fc.nat(24), m: fc.nat(24), v: fc.nat(24), which: fc.nat(entries.length - 1) }), (len) => {
        const e = entries[len.which];
        const lp = len.p;
        const bufs = { p: guarded(lp, fills.p), gr: guarded(len.gr, fills.gr), m: guarded(len.m, fills.m), v: guarded(len.v, fills.v) };
        const views: Bufs = { p: bufs.p.view, gr: bufs.gr.view, m: bufs.m.view, v: bufs.v.view };
        const fits = e.uses.every((k) => len[k] >= lp);
        if (!fits) {
          expect(() => e.native(views)).toThrow(new RegExp(`^${e.name}: argument [1-3] has \\d+ values, needs ${lp}$`));
          expect(views.p.every((x) => x === fills.p)).toBe(true);
        } else {
          const want: Bufs = {
            p: new Float32Array(lp).fill(fills.p), gr: new Float32Array(lp).fill(fills.gr), m: new Float32Array(lp).fill(fills.m), v: new Float32Array(lp).fill(fills.v),
          };
          on(false, () => e.js(want));
          e.native(views);
          expect(bitDiff(views.p, want.p), e.name).toBe('');
          if (e.uses.includes('m')) expect(bitDiff(views.m.subarray(0, lp), want.m), e.name).toBe('');
          if (e.uses.includes('v')) expect(bitDiff(views.v.subarray(0, lp), want.v), e.name).toBe('');
        }
        // Nothing written past params.length in m and v, nor anywhere in grad; every guard intact.
        expect(views.m.subarray(Math.min(lp, len.m)).every((x) => x === fills.m)).toBe(true);
        expect(views.v.subarray(Math.min(lp, len.v)).every((x) => x === fills.v)).toBe(true);
        expect(views.gr.every((x) => x === fills.gr)).toBe(true);
        expect(Object.values(bufs).every((b) => b.intact())).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('wrong types, missing arguments and overlapping state', () => {
    const a = new Float32Array(4);
    const b = new Float32Array(4);
    const c = new Float32Array(4);
    const shared = new Float32Array(8);
    const cases: [string, unknown[], RegExp][] = [
      ['addInto', [a, new Float64Array(4)], /^addInto: argument 1 must be a Float32Array$/],
      ['addInto', [a], /^addInto: argument 1 missing$/],
      ['scaleInPlace', [a, '2'], /^scaleInPlace: argument 1 must be a number$/],
      ['sumSquares', [[1, 2]], /^sumSquares: argument 0 must be a Float32Array$/],
      ['sgdUpdate', [a, b, null], /^sgdUpdate: argument 2 must be a number$/],
      ['momentumUpdate', [a, b, c, 0.1, 0.9, 1], /^momentumUpdate: argument 5 must be a boolean$/],
      ['sgdUpdate', [a, a, 0.1], /^sgdUpdate: grad must not overlap params$/],
      ['momentumUpdate', [shared.subarray(0, 4), shared.subarray(2, 6), c, 0.1, 0.9, false], /^momentumUpdate: grad must not overlap params$/],
      ['adamUpdate', [a, a, b, c, 0.1, 0.9, 0.999, 1e-8, 1, 1], /^adamUpdate: grad must not overlap params$/],
      ['momentumUpdate', [a, b, a, 0.1, 0.9, false], /^momentumUpdate: m must not overlap params or grad$/],
      ['momentumUpdate', [shared.subarray(0, 4), b, shared.subarray(3, 7), 0.1, 0.9, false], /m must not overlap/],
      ['adamUpdate', [a, b, c, c, 0.1, 0.9, 0.999, 1e-8, 1, 1], /^adamUpdate: m and v must not overlap params, grad or each other$/],
      ['adamUpdate', [a, b, c, shared, 0.1, 0.9, 0.999, 1e-8, 1], /^adamUpdate: argument 9 missing$/],
    ];
    for (const [fn, args, message] of cases) {
      expect(() => (g[fn as keyof NativeAddon] as (...x: unknown[]) => unknown)(...args), `${fn} ${message}`).toThrow(message);
    }
    expect([...a, ...b, ...c, ...shared].every((x) => x === 0)).toBe(true);
  });

  it('applyUpdate and reduceShards reject wrong lengths and shared state with the same error on both paths, before changing anything', () => {
    const cfg: OptimizerConfig = { optimizer: 'adam', lr: 0.1, warmup: 0, lrSchedule: 'constant', steps: 1 };
    for (const native of [false, true]) {
      on(native, () => {
        const params = new Float32Array(4).fill(1);
        const state = newOptimizerState(cfg, 4);
        expect(() => applyUpdate(cfg, state, params, new Float32Array(3), 0.1)).toThrow('applyUpdate: gradient has 3 values, params 4');
        expect(() => applyUpdate(cfg, { ...state, v: new Float32Array(5) }, params, new Float32Array(4), 0.1)).toThrow(
          'applyUpdate: adam state v has 5 values, params 4',
        );
        expect(() => applyUpdate(cfg, { ...state, v: state.m }, params, new Float32Array(4), 0.1)).toThrow('applyUpdate: adam state m and v share memory');
        expect(() => applyUpdate({ ...cfg, optimizer: 'sgd' }, state, params, params, 0.1)).toThrow('applyUpdate: gradient shares memory with params');
        expect(() => applyUpdate(cfg, { ...state, m: params }, params, new Float32Array(4), 0.1)).toThrow(
          'applyUpdate: adam state m shares memory with params or grad',
        );
        const momentum: OptimizerConfig = { ...cfg, optimizer: 'momentum' };
        expect(() => applyUpdate(momentum, { t: 0, m: new Float32Array(0), v: new Float32Array(0) }, params, new Float32Array(4), 0.1)).toThrow(
          'applyUpdate: momentum state m has 0 values, params 4',
        );
        expect(state.t).toBe(0);
        expect([...params]).toEqual([1, 1, 1, 1]);
        const shard = (grad?: Float32Array): ChunkResult => ({ grad, loss: 0, penalty: 0, tokens: 1, finalStates: new Float32Array(0) });
        expect(() => reduceShards([shard(new Float32Array(4)), shard(new Float32Array(3))], 4)).toThrow('reduceShards: shard 1 gradient has 3 values, expected 4');
        expect(() => reduceShards([shard()], 4)).toThrow('reduceShards: shard 0 gradient has no values, expected 4');
      });
    }
  });
});
