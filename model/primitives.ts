// The primitives the hand-written BPTT is expressed in: matrix products (tfjs,
// XNNPACK on wasm, never with transposed operands — the wasm kernel is 10× slower
// then) and gradpool's fused kernels for rows, layer norm and softmax cross-entropy.
// The cells add their own fused gate kernels (model/cells/). A faster kernel set
// replaces this file and those kernels, not the cells' math. On the native backend the
// row kernels run in C (model/native/rows.c).

import * as tf from '@tensorflow/tfjs';
import { defineKernel, runKernel } from './kernels.js';
import { lnRowBackward, lnRowForward } from './rowmath.js';
import { nativeAddon } from './native/addon.js';

const native = nativeAddon();

export type T2 = tf.Tensor2D;
export type T1 = tf.Tensor1D;

/** a (M, K) · b (K, N). */
export function matMul(a: T2, b: T2): T2 {
  return tf.matMul(a, b);
}

/**
 * op(a) · op(b), op transposing where asked. On native the GEMM reads a transposed operand
 * while packing it (the same values in the same order: the bits of an explicit transpose,
 * tested), so no transposed copy is made; elsewhere the operand is transposed first.
 */
export function matMulT(a: T2, b: T2, transA: boolean, transB: boolean): T2 {
  if (tf.getBackend() === 'native') return tf.matMul(a, b, transA, transB);
  const at = transA ? transpose(a) : a;
  const bt = transB ? transpose(b) : b;
  const out = matMul(at, bt);
  if (at !== a) at.dispose();
  if (bt !== b) bt.dispose();
  return out;
}

/** Explicit transpose, so that products never run on transposed operands. */
export function transpose(a: T2): T2 {
  return tf.transpose(a);
}

defineKernel('GpConcatRows', {
  outputs: (shapes) => [[shapes.reduce((rows, s) => rows + s![0], 0), shapes[0]![1]]],
  run(parts, [out]) {
    let at = 0;
    for (const p of parts) {
      out.set(p!, at);
      at += p!.length;
    }
  },
});

/** Stack tensors with the same column count on top of each other. On native, into recycled memory (kernels.ts). */
export function concatRows(parts: T2[]): T2 {
  if (parts.length === 1) return tf.clone(parts[0]);
  if (tf.getBackend() !== 'native') return tf.concat(parts, 0);
  const C = parts[0].shape[1];
  for (const p of parts) if (p.shape[1] !== C) throw new Error(`concatRows: ${p.shape[1]} columns, expected ${C}`);
  return runKernel('GpConcatRows', parts)[0] as T2;
}

defineKernel('GpColSum', {
  native: () => (native ? ([a], [out]) => native.colSum(a!, out, out.length ? a!.length / out.length : 0, out.length) : null),
  outputs: ([a]) => [[a![1]]],
  run([a], [out]) {
    const C = out.length;
    out.fill(0);
    for (let o = 0; o < a!.length; o += C) for (let j = 0; j < C; j++) out[j] += a![o + j];
  },
});

/** Column sums: (M, N) → (N). On native, one pass over the rows (the cpu backend's tf.sum transposes first). */
export function colSum(a: T2): T1 {
  return tf.getBackend() === 'native' ? (runKernel('GpColSum', [a])[0] as T1) : tf.sum(a, 0);
}

defineKernel('GpGatherRows', {
  native: (a) =>
    native
      ? ([table], [out]) => {
          const ids = a.ids as Int32Array;
          const C = out.length / ids.length || 0;
          native.gatherRows(table!, ids, out, C, C ? table!.length / C : 0);
        }
      : null,
  outputs: ([table], a) => [[(a.ids as Int32Array).length, table![1]]],
  run([table], [out], a) {
    const ids = a.ids as Int32Array;
    const C = out.length / ids.length || 0;
    for (let r = 0; r < ids.length; r++) out.set(table!.subarray(ids[r] * C, ids[r] * C + C), r * C);
  },
});

/** Rows ids[r] of table: (R, C) → (ids.length, C). */
export function gatherRows(table: T2, ids: Int32Array): T2 {
  checkIds(ids, table.shape[0], 'gatherRows');
  return runKernel('GpGatherRows', [table], { ids })[0] as T2;
}

defineKernel('GpScatterAddRows', {
  native: (a) => (native ? ([src], [out]) => native.scatterAddRows(src!, a.ids as Int32Array, out, out.length / (a.rows as number) || 0, a.rows as number) : null),
  outputs: ([src], a) => [[a.rows as number, src![1]]],
  run([src], [out], a) {
    const ids = a.ids as Int32Array;
    const C = src!.length / ids.length || 0;
    out.fill(0);
    for (let r = 0; r < ids.length; r++) {
      const o = ids[r] * C;
      const s = r * C;
      for (let j = 0; j < C; j++) out[o + j] += src![s + j];
    }
  },
});

/** out[ids[r]] += src[r]: (N, C) → (rows, C); the adjoint of gatherRows. */
export function scatterAddRows(src: T2, ids: Int32Array, rows: number): T2 {
  checkIds(ids, rows, 'scatterAddRows');
  return runKernel('GpScatterAddRows', [src], { ids, rows })[0] as T2;
}

function checkIds(ids: Int32Array, rows: number, what: string): void {
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] < 0 || ids[i] >= rows) throw new Error(`${what}: row id ${ids[i]} at ${i} outside [0, ${rows})`);
  }
}

defineKernel('GpRows', {
  native: (a) =>
    native ? ([x], [out]) => native.copyRows(x!, out, a.start as number, a.count as number, out.length / (a.count as number) || 0) : null,
  outputs: ([x], a) => [[a.count as number, x![1]]],
  run([x], [out], a) {
    const C = out.length / (a.count as number) || 0;
    out.set(x!.subarray((a.start as number) * C, ((a.start as number) + (a.count as number)) * C));
  },
});

/** Rows start..start+count−1 of x, copying only those rows (wasm's Slice copies all of x). */
export function rows(x: T2, start: number, count: number): T2 {
  if (start < 0 || start + count > x.shape[0]) throw new Error(`rows: ${start}+${count} outside ${x.shape[0]} rows`);
  return runKernel('GpRows', [x], { start, count })[0] as T2;
}

defineKernel('GpLayerNorm', {
  native: () => (native ? ([x, gamma, beta], [y, xhat, rstd]) => native.layerNorm(x!, gamma!, beta!, y, xhat, rstd, rstd.length, gamma!.length) : null),
  outputs: ([x]) => [[...x!], [...x!], [x![0], 1]],
  run([x, gamma, beta], [y, xhat, rstd]) {
    const C = gamma!.length;
    for (let r = 0, o = 0; o < x!.length; r++, o += C) {
      rstd[r] = lnRowForward(x!, o, gamma!, beta!, C, y, xhat, o);
    }
  },
});

export interface LayerNormOut {
  y: T2;
  xhat: T2;
  rstd: T2;
}

/** Row-wise LN(x) = γ ⊙ (x − μ)/√(σ² + ε) + β, saving x̂ and 1/√(σ² + ε) for the backward pass. */
export function layerNorm(x: T2, gamma: T1, beta: T1): LayerNormOut {
  const [y, xhat, rstd] = runKernel('GpLayerNorm', [x, gamma, beta]) as T2[];
  return { y, xhat, rstd };
}

defineKernel('GpLayerNormBackward', {
  native: () => (native ? ([dy, xhat, rstd, gamma], [dx]) => native.layerNormBackward(dy!, xhat!, rstd!, gamma!, dx, rstd!.length, gamma!.length) : null),
  outputs: ([dy]) => [[...dy!]],
  run([dy, xhat, rstd, gamma], [dx]) {
    const C = gamma!.length;
    for (let r = 0, o = 0; o < dy!.length; r++, o += C) lnRowBackward(dy!, o, xhat!, o, rstd![r], gamma!, C, dx, o);
  },
});

/** dL/dx of a row-wise layer norm, given dL/dy. */
export function layerNormBackward(dy: T2, saved: LayerNormOut, gamma: T1): T2 {
  return runKernel('GpLayerNormBackward', [dy, saved.xhat, saved.rstd, gamma])[0] as T2;
}

defineKernel('GpColSumProduct', {
  native: () => (native ? ([a, b], [out]) => native.colSumProduct(a!, b!, out, out.length ? a!.length / out.length : 0, out.length) : null),
  outputs: ([a]) => [[a![1]]],
  run([a, b], [out]) {
    const C = out.length;
    out.fill(0);
    for (let o = 0; o < a!.length; o += C) for (let j = 0; j < C; j++) out[j] += a![o + j] * b![o + j];
  },
});

/** Σ_rows a ⊙ b: (M, N) → (N); the gain gradient of a layer norm. */
export function colSumProduct(a: T2, b: T2): T1 {
  return runKernel('GpColSumProduct', [a, b])[0] as T1;
}

defineKernel('GpSoftmaxXent', {
  // exp from the C kernel set's vectorized float exp, so the loss agrees with `run` to ~1e-7 (rows.c).
  native: (a) =>
    native
      ? ([z, bias], outs) => {
          const dz = a.grad ? outs[1] : null;
          const logits = a.logits ? outs[a.grad ? 2 : 1] : null;
          const loss = native.softmaxXent(z!, bias!, a.targets as Int32Array, dz, logits, bias!.length);
          outs[0][0] = loss;
          (a.sink as { loss: number }).loss = loss;
        }
      : null,
  outputs: ([z], a) => {
    const shapes = [[1]];
    if (a.grad) shapes.push([...z!]);
    if (a.logits) shapes.push([...z!]);
    return shapes;
  },
  run([z, bias], outs, a) {
    const targets = a.targets as Int32Array;
    const V = bias!.length;
    const dz = a.grad ? outs[1] : null;
    const logits = a.logits ? outs[a.grad ? 2 : 1] : null;
    let loss = 0;
    for (let r = 0, o = 0; r < targets.length; r++, o += V) {
      let max = -Infinity;
      for (let j = 0; j < V; j++) max = Math.max(max, z![o + j] + bias![j]);
      let sum = 0;
      for (let j = 0; j < V; j++) sum += Math.exp(z![o + j] + bias![j] - max);
      const logSum = Math.log(sum) + max;
      loss += logSum - (z![o + targets[r]] + bias![targets[r]]);
      if (dz) {
        for (let j = 0; j < V; j++) dz[o + j] = Math.exp(z![o + j] + bias![j] - logSum);
        dz[o + targets[r]] -= 1;
      }
      if (logits) for (let j = 0; j < V; j++) logits[o + j] = z![o + j] + bias![j];
    }
    outs[0][0] = loss;
    (a.sink as { loss: number }).loss = loss; // the float64 sum, not its float32 copy
  },
});

export interface XentOut {
  /** Summed cross-entropy in nats (float64 accumulation). */
  loss: number;
  /** d(summed loss)/d(logits) = softmax − one-hot, when asked. */
  dLogits?: T2;
  logits?: T2;
}

/** Softmax cross-entropy of (z + bias) against targets, summed over rows. */
export function softmaxXent(z: T2, bias: T1, targets: Int32Array, opts: { grad: boolean; logits?: boolean }): XentOut {
  checkIds(targets, bias.shape[0], 'softmaxXent targets');
  const sink = { loss: NaN };
  const outs = runKernel('GpSoftmaxXent', [z, bias], { targets, grad: opts.grad, logits: !!opts.logits, sink });
  outs.shift()!.dispose();
  const loss = sink.loss;
  const dLogits = opts.grad ? (outs.shift() as T2) : undefined;
  const logits = opts.logits ? (outs.shift() as T2) : undefined;
  return { loss, dLogits, logits };
}
