// Where a step's batch comes from, and how a batch is cut into shards. Language
// models read B contiguous token streams (coordinator/data.ts); task models
// (classify, regress) read freshly generated sequences (coordinator/experiments/);
// captioners read B (image, caption) pairs (coordinator/caption/source.ts).

import { shard as shardTokens } from './data.js';

export interface StepBatch {
  /** lm: (T+1)·B token ids, time-major; caption: the B captions, time-major, <pad>ded. */
  tokens?: Int32Array;
  /** caption: B images, S·S·3 bytes each. */
  images?: Uint8Array;
  /** Task models: T·B·D inputs, row t·B + b. */
  inputs?: Float32Array;
  /** classify: B class ids. */
  labels?: Int32Array;
  /** regress: B·O targets. */
  values?: Float32Array;
  /** True when the streams restart: carried states are zeroed first. */
  resetStates: boolean;
}

export interface DataSource {
  readonly T: number;
  readonly B: number;
  batch(step: number): StepBatch;
}

/** Streams first..first+count−1 of a batch, in the same layouts. */
export function shardBatch(batch: StepBatch, T: number, B: number, first: number, count: number): Omit<StepBatch, 'resetStates'> {
  if (batch.images) {
    const bytes = batch.images.length / B;
    return { tokens: shardTokens(batch.tokens!, B, first, count), images: batch.images.slice(first * bytes, (first + count) * bytes) };
  }
  if (batch.tokens) return { tokens: shardTokens(batch.tokens, B, first, count) };
  const D = batch.inputs!.length / (T * B);
  const inputs = new Float32Array(T * count * D);
  for (let t = 0; t < T; t++) inputs.set(batch.inputs!.subarray((t * B + first) * D, (t * B + first + count) * D), t * count * D);
  const out: Omit<StepBatch, 'resetStates'> = { inputs };
  if (batch.labels) out.labels = batch.labels.slice(first, first + count);
  if (batch.values) {
    const O = batch.values.length / B;
    out.values = batch.values.slice(first * O, (first + count) * O);
  }
  return out;
}
