// Synthetic sequence tasks for the long-range experiments, as DataSources: every
// step draws a fresh batch from (seed, step), so runs are reproducible and shards
// of a step are the same for any worker count. Held-out sets come from another seed stream.

import { Rng } from '../../model/rng.js';
import type { DataSource, StepBatch } from '../source.js';

/**
 * Bit memory: the class is the sign of the first input (x_1 = ±1, equally likely);
 * the other T−1 inputs are Gaussian noise N(0, σ²) with σ = BIT_MEMORY_NOISE. The
 * model must output the class after the last step, so it must carry one bit across T steps.
 */
export const BIT_MEMORY_NOISE = 0.5;

export class BitMemory implements DataSource {
  constructor(readonly T: number, readonly B: number, readonly seed: number) {}

  batch(step: number): StepBatch {
    return bitMemoryBatch(this.T, this.B, new Rng(this.seed, 0xb17, step));
  }

  heldOut(n: number): StepBatch {
    return bitMemoryBatch(this.T, n, new Rng(this.seed, 0xb17e, 0));
  }
}

function bitMemoryBatch(T: number, B: number, rng: Rng): StepBatch {
  const inputs = new Float32Array(T * B); // (T, B, 1)
  const labels = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    labels[b] = rng.uniform() < 0.5 ? 0 : 1;
    inputs[b] = labels[b] === 1 ? 1 : -1;
    for (let t = 1; t < T; t++) inputs[t * B + b] = BIT_MEMORY_NOISE * rng.normal();
  }
  return { inputs, labels, resetStates: true };
}

/**
 * The adding problem (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015):
 * each step reads a pair (value, marker); values are U(0, 1); exactly two markers are 1,
 * one at a uniform position in the first half of the sequence and one in the second
 * half; the target is the sum of the two marked values. Always predicting the mean
 * (1) gives MSE 1/6 ≈ 0.167.
 */
export class Adding implements DataSource {
  constructor(readonly T: number, readonly B: number, readonly seed: number) {}

  batch(step: number): StepBatch {
    return addingBatch(this.T, this.B, new Rng(this.seed, 0xadd, step));
  }

  heldOut(n: number): StepBatch {
    return addingBatch(this.T, n, new Rng(this.seed, 0xadde, 0));
  }
}

function addingBatch(T: number, B: number, rng: Rng): StepBatch {
  const inputs = new Float32Array(T * B * 2); // (T, B, 2): value, marker
  const values = new Float32Array(B);
  const half = Math.floor(T / 2);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) inputs[(t * B + b) * 2] = rng.uniform();
    const first = rng.int(half);
    const second = half + rng.int(T - half);
    inputs[(first * B + b) * 2 + 1] = 1;
    inputs[(second * B + b) * 2 + 1] = 1;
    values[b] = inputs[(first * B + b) * 2] + inputs[(second * B + b) * 2];
  }
  return { inputs, values, resetStates: true };
}
