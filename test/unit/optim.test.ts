// The update rule (coordinator/optim.ts) against PyTorch: SGD, momentum and Adam over four
// steps, global-norm clipping and the warm-up / cosine schedules, from the fixture written by
// test/golden/make_optim_golden.py (torch.optim.SGD / Adam, clip_grad_norm_, LinearLR,
// CosineAnnealingLR); the schedules also against hand-computed values. The update and the
// clipping run twice: on the JS loops and on the native addon.

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeOps, setNativeOps } from '../../coordinator/native-ops.js';
import {
  type OptimizerConfig, applyUpdate, clipGlobalNorm, globalNorm, learningRate, newOptimizerState,
} from '../../coordinator/optim.js';
import { describeNative } from '../helpers/native-guard.js';

interface Golden {
  params0: number[];
  grads: number[][];
  optimizers: {
    name: string; optimizer: 'sgd' | 'momentum' | 'adam'; lrs: number[];
    momentum?: number; beta1?: number; beta2?: number; eps?: number;
    steps: { params: number[]; m?: number[]; v?: number[] }[];
  }[];
  clip: { threshold: number; grad: number[]; norm: number; clipped: number[] }[];
  schedules: { lr: number; warmup: number; steps: number; warmupLr: number[]; cosineLr: number[] }[];
}
const golden: Golden = JSON.parse(readFileSync(new URL('../golden/optim.json', import.meta.url), 'utf8'));

/**
 * |got − want| ≤ rel·|want| + abs, element by element. gradpool keeps params and moments in
 * float32 (rounding ~6e-8 relative per step) and torch computed in float64.
 */
function expectClose(what: string, got: ArrayLike<number>, want: number[], rel = 1e-6, abs = 1e-9): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  const bad: string[] = [];
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= rel * Math.abs(want[i]) + abs)) bad.push(`[${i}] ${got[i]} vs torch ${want[i]}`);
  }
  expect(bad, what).toEqual([]);
}

const base: OptimizerConfig = { optimizer: 'sgd', lr: 0, warmup: 0, lrSchedule: 'constant', steps: 100 };

// The optimizer and clipping goldens run on the JS loops (the definition) and on the native
// addon (model/native/optim.c, bit-identical: test/unit/native-optim.test.ts) when it loaded.
for (const native of [false, true]) {
  (native ? describeNative : describe)(native ? 'on the native addon' : 'on the JS loops', () => {
    beforeAll(() => {
      setNativeOps(native);
    });
    afterAll(() => {
      setNativeOps(true);
    });

    it(`the coordinator's vector loops run ${native ? 'in the addon' : 'in JS'}`, () => {
      expect(nativeOps() !== null).toBe(native);
    });

    describe('optimizers against torch.optim (4 steps, P=6)', () => {
      it('the fixture has every optimizer and four steps each', () => {
        expect(golden.optimizers.map((c) => c.optimizer).sort()).toEqual(['adam', 'adam', 'momentum', 'momentum', 'sgd']);
        for (const c of golden.optimizers) expect(c.steps, c.name).toHaveLength(4);
      });

      for (const c of golden.optimizers) {
        it(c.name, () => {
          const cfg: OptimizerConfig = { ...base, optimizer: c.optimizer, lr: c.lrs[0], momentum: c.momentum, beta1: c.beta1, beta2: c.beta2, eps: c.eps };
          const params = Float32Array.from(golden.params0);
          const state = newOptimizerState(cfg, params.length);
          c.steps.forEach((want, step) => {
            applyUpdate(cfg, state, params, Float32Array.from(golden.grads[step]), c.lrs[step]);
            expect(state.t).toBe(step + 1);
            expectClose(`${c.name}: params after step ${step + 1}`, params, want.params);
            if (want.m) expectClose(`${c.name}: m after step ${step + 1}`, state.m, want.m);
            if (want.v) expectClose(`${c.name}: v after step ${step + 1}`, state.v, want.v);
          });
          // The update moved every parameter with a nonzero gradient: the comparison was not vacuous.
          expect(params.some((p, i) => p !== Math.fround(golden.params0[i]))).toBe(true);
        });
      }

      it('plain SGD keeps no state; momentum keeps m; Adam keeps m and v', () => {
        expect([newOptimizerState({ ...base, optimizer: 'sgd' }, 6).m.length, newOptimizerState({ ...base, optimizer: 'sgd' }, 6).v.length]).toEqual([0, 0]);
        expect([newOptimizerState({ ...base, optimizer: 'momentum' }, 6).m.length, newOptimizerState({ ...base, optimizer: 'momentum' }, 6).v.length]).toEqual([6, 0]);
        expect([newOptimizerState({ ...base, optimizer: 'adam' }, 6).m.length, newOptimizerState({ ...base, optimizer: 'adam' }, 6).v.length]).toEqual([6, 6]);
      });
    });

    describe('global-norm clipping against torch.nn.utils.clip_grad_norm_', () => {
      for (const c of golden.clip) {
        it(`threshold ${c.threshold} (norm ${c.norm.toFixed(4)})`, () => {
          const grad = Float32Array.from(c.grad);
          const r = clipGlobalNorm(grad, c.threshold);
          expect(r.normBefore).toBeCloseTo(c.norm, 5);
          expect(r.clipped).toBe(c.norm > c.threshold);
          // torch scales by threshold / (norm + 1e-6); gradpool by threshold / norm: 1e-6/‖g‖ ≈ 1e-7 apart here.
          expectClose('clipped gradient', grad, c.clipped);
          expect(r.normAfter).toBeCloseTo(Math.min(c.norm, c.threshold), 5);
          expect(r.normAfter).toBeCloseTo(globalNorm(grad), 12);
        });
      }

      it('the fixture clips in one case and not in the other', () => {
        expect(golden.clip.map((c) => c.norm > c.threshold)).toEqual([true, false]);
      });

      it('threshold 0 turns clipping off, and a norm equal to the threshold is left alone', () => {
        const grad = Float32Array.from([3, 4]);
        expect(clipGlobalNorm(grad, 0)).toEqual({ normBefore: 5, normAfter: 5, clipped: false });
        expect(clipGlobalNorm(grad, 5)).toEqual({ normBefore: 5, normAfter: 5, clipped: false });
        expect([...grad]).toEqual([3, 4]);
        expect(clipGlobalNorm(grad, 2.5)).toEqual({ normBefore: 5, normAfter: 2.5, clipped: true });
        expect([...grad]).toEqual([1.5, 2]);
      });
    });
  });
}

describe('learning-rate schedules', () => {
  for (const s of golden.schedules) {
    it(`warm-up ${s.warmup} then cosine to step ${s.steps}, as torch's LinearLR then CosineAnnealingLR`, () => {
      const cfg: OptimizerConfig = { ...base, lr: s.lr, warmup: s.warmup, lrSchedule: 'cosine', steps: s.steps };
      expect(s.warmupLr).toHaveLength(s.warmup);
      expect(s.cosineLr).toHaveLength(s.steps - s.warmup + 1);
      expectClose('warm-up', s.warmupLr.map((_, step) => learningRate(cfg, step)), s.warmupLr, 1e-12, 1e-15);
      expectClose('cosine', s.cosineLr.map((_, e) => learningRate(cfg, s.warmup + e)), s.cosineLr, 1e-9, 1e-15);
    });
  }

  it('hand-computed: lr 1, warm-up 4, cosine over 12 steps', () => {
    const cfg: OptimizerConfig = { ...base, lr: 1, warmup: 4, lrSchedule: 'cosine', steps: 12 };
    const at = (step: number) => learningRate(cfg, step);
    expect([0, 1, 2, 3].map(at)).toEqual([0.25, 0.5, 0.75, 1]);
    expect(at(4)).toBe(1); // the end of warm-up is the start of the decay
    expect(at(6)).toBeCloseTo((1 + Math.SQRT1_2) / 2, 15); // a quarter of the way: cos(π/4)
    expect(at(8)).toBeCloseTo(0.5, 15); // half way
    expect(at(12)).toBeCloseTo(0, 15);
    expect(at(20)).toBe(0); // stays at 0 past the end (torch's CosineAnnealingLR would rise again)
  });

  it('hand-computed: constant after warm-up, and no warm-up at all', () => {
    expect([0, 1, 2, 50].map((step) => learningRate({ ...base, lr: 0.2, warmup: 2 }, step))).toEqual([0.1, 0.2, 0.2, 0.2]);
    expect([0, 99].map((step) => learningRate({ ...base, lr: 0.2 }, step))).toEqual([0.2, 0.2]);
    expect(learningRate({ ...base, lr: 0.2, lrSchedule: 'cosine', steps: 10 }, 0)).toBe(0.2);
  });
});
