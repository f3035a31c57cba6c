// A step is a fixed set of shards: the B streams of the global batch cut into K
// contiguous groups. Shards, not workers, are the unit of work, so the reduction
// order (shard order) and hence the update are the same for any worker count.

import type { ChunkResult } from '../model/chunk.js';
import { nativeOps } from './native-ops.js';

export interface ShardSpec {
  index: number;
  /** First stream of the shard and how many. */
  first: number;
  count: number;
}

export function planShards(B: number, K: number): ShardSpec[] {
  if (!(Number.isInteger(K) && K >= 1 && K <= B)) throw new Error(`shards must be 1..${B} for B=${B}, got ${K}`);
  const specs: ShardSpec[] = [];
  for (let k = 0; k < K; k++) {
    const first = Math.floor((k * B) / K);
    specs.push({ index: k, first, count: Math.floor(((k + 1) * B) / K) - first });
  }
  return specs;
}

/** Streams first..first+count−1 of a state buffer laid out (L, S, B, H). */
export function sliceStates(states: Float32Array, LS: number, B: number, H: number, first: number, count: number): Float32Array {
  const out = new Float32Array(LS * count * H);
  for (let ls = 0; ls < LS; ls++) out.set(states.subarray((ls * B + first) * H, (ls * B + first + count) * H), ls * count * H);
  return out;
}

/** Write a shard's states back into the full (L, S, B, H) buffer. */
export function putStates(states: Float32Array, part: Float32Array, LS: number, B: number, H: number, first: number, count: number): void {
  for (let ls = 0; ls < LS; ls++) states.set(part.subarray(ls * count * H, (ls + 1) * count * H), (ls * B + first) * H);
}

export interface Reduced {
  /** Σ gradients in shard order, divided by the token count: the mean-loss gradient. */
  grad: Float32Array;
  loss: number;
  penalty: number;
  tokens: number;
}

/**
 * Sum shard results in shard order (fixed, so any worker count gives the same bits), into
 * `into` when given. The JS
 * loops define the result; the native addon (model/native/optim.c) gives the same bits.
 */
export function reduceShards(results: readonly ChunkResult[], size: number, into?: Float32Array): Reduced {
  results.forEach((r, k) => {
    if (r.grad?.length !== size) throw new Error(`reduceShards: shard ${k} gradient has ${r.grad?.length ?? 'no'} values, expected ${size}`);
  });
  const native = nativeOps();
  // `into`: a buffer to reuse (a step's gradient is dead once the update is applied).
  const grad = into?.length === size ? into.fill(0) : new Float32Array(size);
  let loss = 0;
  let penalty = 0;
  let tokens = 0;
  for (const r of results) {
    const g = r.grad!;
    if (native) native.addInto(grad, g);
    else for (let i = 0; i < size; i++) grad[i] += g[i];
    loss += r.loss;
    penalty += r.penalty;
    tokens += r.tokens;
  }
  const inv = 1 / tokens;
  if (native) native.scaleInPlace(grad, inv);
  else for (let i = 0; i < size; i++) grad[i] *= inv;
  return { grad, loss, penalty, tokens };
}
