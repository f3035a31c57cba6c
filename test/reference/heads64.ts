// Float64 reference of the output heads (model/heads.ts), for ref64.ts: which steps a
// task reads, the decoder y = h W + b, and each task's loss for one output row.
//
//   lm:        y_t = h_t W + b for every t,  loss Σ_t,b CE(softmax(y), next token)
//   classify:  y = h_T W + b,                loss Σ_b CE(softmax(y), label_b)
//   regress:   y = h_T W + b,                loss Σ_b ‖y − target_b‖²
//
// Written for obviousness: loops over units, nothing shared with model/.

import type { TaskName } from '../../model/config.js';

/** The target part of a chunk, as ref64's RefChunkInput holds it. */
export interface HeadTargets {
  readonly T: number;
  readonly B: number;
  /** lm: (T+1)·B token ids, time-major; the target of row t·B + b is token (t+1)·B + b. */
  readonly tokens?: ArrayLike<number>;
  /** classify: B class ids. */
  readonly labels?: ArrayLike<number>;
  /** regress: B·O target values, row b. */
  readonly values?: ArrayLike<number>;
}

/** Whether the head reads the top layer's h at step t (0-based): lm every step, the others only the last. */
export function headReadsStep(task: TaskName, t: number, T: number): boolean {
  return task === 'lm' || t === T - 1;
}

/** Output rows of a chunk (= its target count): T·B for lm, B for the last-step heads. */
export function headRows(task: TaskName, T: number, B: number): number {
  return task === 'lm' ? T * B : B;
}

/** Row of an output of step t, stream b in the (rows, O) logits: t·B + b for lm, b otherwise. */
export function headRow(task: TaskName, t: number, b: number, B: number): number {
  return task === 'lm' ? t * B + b : b;
}

/** y = h W + b for one row h; W is (H, O) row-major. */
export function decode(h: readonly number[], W: Float64Array, bias: Float64Array, O: number): number[] {
  const y: number[] = [];
  for (let v = 0; v < O; v++) {
    let sum = bias[v];
    for (let j = 0; j < h.length; j++) sum += h[j] * W[j * O + v];
    y.push(sum);
  }
  return y;
}

/** −log softmax(y)[target] = logsumexp(y) − y[target]. */
export function crossEntropy(y: readonly number[], target: number): number {
  const yMax = Math.max(...y);
  const logSumExp = yMax + Math.log(y.reduce((acc, yv) => acc + Math.exp(yv - yMax), 0));
  return logSumExp - y[target];
}

/** ‖y − target‖² with target = values[from .. from + len(y)). */
export function squaredError(y: readonly number[], values: ArrayLike<number>, from: number): number {
  let sum = 0;
  for (let k = 0; k < y.length; k++) sum += (y[k] - values[from + k]) ** 2;
  return sum;
}

/** The loss of one output row y (step t, stream b). */
export function headLoss(task: TaskName, y: readonly number[], targets: HeadTargets, t: number, b: number): number {
  switch (task) {
    case 'lm':
      return crossEntropy(y, targets.tokens![(t + 1) * targets.B + b]);
    case 'classify':
      return crossEntropy(y, targets.labels![b]);
    case 'regress':
      return squaredError(y, targets.values!, b * y.length);
    case 'caption':
      throw new Error('the captioner has its own reference: caption64.ts');
  }
}

/** The classify and regress targets are present, of the right size and (labels) in 0..O−1. */
export function checkHeadTargets(task: TaskName, targets: HeadTargets, O: number): void {
  const { B } = targets;
  if (task === 'classify') {
    const labels = targets.labels;
    if (!labels) throw new Error(`labels missing: task "classify" needs B = ${B} class ids`);
    if (labels.length !== B) throw new Error(`labels has ${labels.length} values, want B = ${B}`);
    for (let b = 0; b < B; b++) {
      const c = labels[b];
      if (!Number.isInteger(c) || c < 0 || c >= O) throw new Error(`label ${c} at ${b} is outside 0..${O - 1}`);
    }
  } else if (task === 'regress') {
    const values = targets.values;
    if (!values) throw new Error(`values missing: task "regress" needs B·outputs = ${B * O} targets`);
    if (values.length !== B * O) throw new Error(`values has ${values.length} values, want B·outputs = ${B * O}`);
  }
}
