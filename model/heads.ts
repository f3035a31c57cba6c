// The output heads, forward and backward: `lm` predicts the next token at every
// step; `classify` and `regress` predict from the last step's hidden state only;
// `caption` predicts the next word at every step whose target is not `<pad>`.
//
//   lm:        y_t = h_t W + b for every t,  loss Σ_t,b CE(softmax(y), next token)
//   classify:  y = h_T W + b,                loss Σ_b CE(softmax(y), class)
//   regress:   y = h_T W + b,                loss Σ_b ‖y − target‖²
//   caption:   y_t = h_t W + b,              loss Σ_{t,b: target ≠ <pad>} CE(softmax(y), target)

import * as tf from '@tensorflow/tfjs';
import type { ChunkInput } from './chunk.js';
import { defineKernel, runKernel } from './kernels.js';
import { PAD } from './caption.js';
import { type T1, type T2, colSum, gatherRows, matMul, rows as rowRange, scatterAddRows, softmaxXent, transpose } from './primitives.js';

defineKernel('GpSquaredError', {
  outputs: ([z], a) => (a.grad ? [[1], [...z!], [...z!]] : [[1], [...z!]]),
  run([z, bias, target], outs, a) {
    const O = bias!.length;
    const y = outs[a.grad ? 2 : 1];
    const dy = a.grad ? outs[1] : null;
    let loss = 0;
    for (let k = 0; k < z!.length; k++) {
      y[k] = z![k] + bias![k % O];
      const d = y[k] - target![k];
      loss += d * d;
      if (dy) dy[k] = 2 * d;
    }
    outs[0][0] = loss;
    (a.sink as { loss: number }).loss = loss;
  },
});

export interface HeadResult {
  /** Summed loss over the chunk's targets. */
  loss: number;
  /** Number of targets: T·B for lm, B otherwise. */
  tokens: number;
  /** Outputs (rows × O): every step for lm, the last step otherwise. */
  logits?: T2;
  /** Backward only: the gradient reaching each h_t of the top layer, (T·B, H). */
  dTop?: T2;
  dW?: T2;
  db?: T1;
}

/**
 * Forward (and backward when `grad`) of the head on the top layer's states.
 * top: (T·B, H), rows t·B + b; W: (H, O); b: (O).
 */
export function runHead(
  task: 'lm' | 'classify' | 'regress',
  top: T2,
  W: T2,
  b: T1,
  input: ChunkInput,
  opts: { grad: boolean; logits?: boolean },
): HeadResult {
  const { T, B } = input;
  const H = top.shape[1];
  // lm reads every step; the others only h_T, the last B rows.
  const rows = task === 'lm' ? top : (tf.slice(top, [(T - 1) * B, 0], [B, H]) as T2);
  const z = matMul(rows, W);
  let loss: number;
  let dZ: T2 | undefined;
  let logits: T2 | undefined;
  if (task === 'regress') {
    const target = tf.tensor2d(input.values!, [B, b.shape[0]]);
    const sink = { loss: NaN };
    const outs = runKernel('GpSquaredError', [z, b, target], { grad: opts.grad, sink }) as T2[];
    loss = sink.loss;
    dZ = opts.grad ? outs[1] : undefined;
    logits = outs[opts.grad ? 2 : 1];
  } else {
    const targets = task === 'lm' ? input.tokens!.subarray(B, B + T * B) : input.labels!;
    const x = softmaxXent(z, b, targets, { grad: opts.grad, logits: opts.logits });
    loss = x.loss;
    dZ = x.dLogits;
    logits = x.logits;
  }
  const result: HeadResult = { loss, tokens: task === 'lm' ? T * B : B, logits: opts.logits ? logits : undefined };
  if (!opts.grad) return result;
  result.dW = matMul(transpose(rows), dZ!);
  result.db = colSum(dZ!);
  const dRows = matMul(dZ!, transpose(W));
  // Only the last step receives a gradient from a last-step head.
  result.dTop = task === 'lm' || T === 1 ? dRows : (tf.concat([tf.zeros([(T - 1) * B, H]), dRows], 0) as T2);
  return result;
}

/**
 * The caption head: only the rows whose target is a word or `<end>` are gathered and
 * scored, so `<pad>` costs nothing and gets an exact zero gradient (scattered back).
 * top: (R, H); targets: R ids, PAD for rows without a target (the image step, padding).
 * Logits, when asked, are those of rows `from`..R−1, every one of them.
 */
export function runCaptionHead(top: T2, W: T2, b: T1, targets: Int32Array, opts: { grad: boolean; logits?: boolean; from: number }): HeadResult {
  const R = top.shape[0];
  const H = top.shape[1];
  let n = 0;
  for (let r = 0; r < R; r++) if (targets[r] !== PAD) n++;
  const ids = new Int32Array(n);
  const wanted = new Int32Array(n);
  for (let r = 0, k = 0; r < R; r++) {
    if (targets[r] === PAD) continue;
    ids[k] = r;
    wanted[k++] = targets[r];
  }
  const result: HeadResult = { loss: 0, tokens: n };
  if (opts.logits) result.logits = tf.add(matMul(rowRange(top, opts.from, R - opts.from), W), b) as T2;
  if (n === 0) {
    if (opts.grad) Object.assign(result, { dTop: tf.zeros([R, H]) as T2, dW: tf.zerosLike(W) as T2, db: tf.zerosLike(b) as T1 });
    return result;
  }
  const picked = gatherRows(top, ids); // (n, H)
  const x = softmaxXent(matMul(picked, W), b, wanted, { grad: opts.grad });
  result.loss = x.loss;
  if (!opts.grad) return result;
  result.dW = matMul(transpose(picked), x.dLogits!);
  result.db = colSum(x.dLogits!);
  result.dTop = scatterAddRows(matMul(x.dLogits!, transpose(W)), ids, R);
  return result;
}
