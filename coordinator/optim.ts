// The update rule, applied once per step on the coordinator: global-norm clipping
// (Pascanu et al. 2013), the learning-rate schedule, and SGD / momentum / Adam over
// the flat parameter buffer. Plain loops, float64 arithmetic, float32 storage:
// deterministic on every machine. The loops below define the result; the native addon
// (model/native/optim.c) computes the same bits faster and runs when it loaded.

import { nativeOps } from './native-ops.js';

export const OPTIMIZERS = ['sgd', 'momentum', 'adam'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];
export const LR_SCHEDULES = ['constant', 'cosine'] as const;
export type LrSchedule = (typeof LR_SCHEDULES)[number];

export interface OptimizerConfig {
  optimizer: OptimizerName;
  lr: number;
  /** Steps of linear warm-up from 0 to lr. */
  warmup: number;
  lrSchedule: LrSchedule;
  /** Total steps of the run (the cosine schedule reaches 0 there). */
  steps: number;
  momentum?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
}

export interface ClipResult {
  normBefore: number;
  normAfter: number;
  clipped: boolean;
}

/** ‖g‖₂ over every parameter (float64 accumulation). */
export function globalNorm(grad: Float32Array): number {
  const native = nativeOps();
  if (native) return Math.sqrt(native.sumSquares(grad));
  let s = 0;
  for (let i = 0; i < grad.length; i++) s += grad[i] * grad[i];
  return Math.sqrt(s);
}

/** If ‖g‖ > threshold, g ← g · threshold/‖g‖ (in place). threshold 0 = off. */
export function clipGlobalNorm(grad: Float32Array, threshold: number): ClipResult {
  const normBefore = globalNorm(grad);
  if (!(threshold > 0) || !(normBefore > threshold)) return { normBefore, normAfter: normBefore, clipped: false };
  const scale = threshold / normBefore;
  const native = nativeOps();
  if (native) native.scaleInPlace(grad, scale);
  else for (let i = 0; i < grad.length; i++) grad[i] *= scale;
  return { normBefore, normAfter: globalNorm(grad), clipped: true };
}

/** Learning rate at a 0-based step: linear warm-up, then constant or cosine decay to 0. */
export function learningRate(cfg: OptimizerConfig, step: number): number {
  if (step < cfg.warmup) return (cfg.lr * (step + 1)) / cfg.warmup;
  if (cfg.lrSchedule === 'constant') return cfg.lr;
  const span = Math.max(1, cfg.steps - cfg.warmup);
  const progress = Math.min(1, (step - cfg.warmup) / span);
  return cfg.lr * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** Everything the optimizer carries between steps; saved in checkpoints. */
export interface OptimizerState {
  /** Updates applied so far (Adam's bias correction uses it). */
  t: number;
  /** First moment (Adam) or velocity (momentum); empty for SGD. */
  m: Float32Array;
  /** Second moment (Adam); empty otherwise. */
  v: Float32Array;
}

export function newOptimizerState(cfg: OptimizerConfig, size: number): OptimizerState {
  return {
    t: 0,
    m: new Float32Array(cfg.optimizer === 'sgd' ? 0 : size),
    v: new Float32Array(cfg.optimizer === 'adam' ? size : 0),
  };
}

/** params ← update(params, grad) in place, PyTorch's formulas (torch.optim.SGD / Adam). */
export function applyUpdate(
  cfg: OptimizerConfig,
  state: OptimizerState,
  params: Float32Array,
  grad: Float32Array,
  lr: number,
): void {
  checkUpdateBuffers(cfg, state, params, grad);
  state.t += 1;
  const n = params.length;
  const native = nativeOps();
  if (cfg.optimizer === 'sgd') {
    if (native) return native.sgdUpdate(params, grad, lr);
    for (let i = 0; i < n; i++) params[i] -= lr * grad[i];
  } else if (cfg.optimizer === 'momentum') {
    const mu = cfg.momentum ?? 0.9;
    const m = state.m;
    if (native) return native.momentumUpdate(params, grad, m, lr, mu, state.t === 1);
    for (let i = 0; i < n; i++) {
      m[i] = state.t === 1 ? grad[i] : mu * m[i] + grad[i];
      params[i] -= lr * m[i];
    }
  } else {
    const b1 = cfg.beta1 ?? 0.9;
    const b2 = cfg.beta2 ?? 0.999;
    const eps = cfg.eps ?? 1e-8;
    const c1 = 1 - Math.pow(b1, state.t);
    const c2 = Math.sqrt(1 - Math.pow(b2, state.t));
    const { m, v } = state;
    if (native) return native.adamUpdate(params, grad, m, v, lr, b1, b2, eps, c1, c2);
    for (let i = 0; i < n; i++) {
      const g = grad[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      params[i] -= (lr * (m[i] / c1)) / (Math.sqrt(v[i]) / c2 + eps);
    }
  }
}

/** Whether two arrays share memory (the native update works on blocks of elements: overlap would change its result). */
function overlaps(a: Float32Array, b: Float32Array): boolean {
  return a.buffer === b.buffer && a.length > 0 && b.length > 0 && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

function checkUpdateBuffers(cfg: OptimizerConfig, state: OptimizerState, params: Float32Array, grad: Float32Array): void {
  const n = params.length;
  if (grad.length !== n) throw new Error(`applyUpdate: gradient has ${grad.length} values, params ${n}`);
  if (overlaps(grad, params)) throw new Error('applyUpdate: gradient shares memory with params');
  const carried: [string, Float32Array][] =
    cfg.optimizer === 'sgd' ? [] : cfg.optimizer === 'momentum' ? [['m', state.m]] : [['m', state.m], ['v', state.v]];
  for (const [name, x] of carried) {
    if (x.length !== n) throw new Error(`applyUpdate: ${cfg.optimizer} state ${name} has ${x.length} values, params ${n}`);
    if (overlaps(x, params) || overlaps(x, grad)) throw new Error(`applyUpdate: ${cfg.optimizer} state ${name} shares memory with params or grad`);
  }
  if (carried.length === 2 && overlaps(state.m, state.v)) throw new Error('applyUpdate: adam state m and v share memory');
}
