// The output heads, forward and backward: `lm` predicts the next token at every
// step; `classify` and `regress` predict from the last step's hidden state only.
//
//   lm:        y_t = h_t W + b for every t,  loss Σ_t,b CE(softmax(y), next token)
//   classify:  y = h_T W + b,                loss Σ_b CE(softmax(y), class)
//   regress:   y = h_T W + b,                loss Σ_b ‖y − target‖²

import * as tf from '@tensorflow/tfjs';
import type { ChunkInput } from './chunk.js';
import { defineKernel, runKernel } from './kernels.js';
import { type T1, type T2, colSum, matMul, softmaxXent, transpose } from './primitives.js';

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
