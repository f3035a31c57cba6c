// A step's B streams are cut into K contiguous blocks, fixed for the run: the unit of
// its math. Each step they are grouped into tasks — aligned power-of-two ranges of
// blocks, as many as there are workers to run them — and every task's sum and the
// step's total are combined by one fixed binary tree over the block indices
// (model/blocks.ts inside a task, reduceTree here above the tasks). So the update is
// the same for any worker count and any partition into tasks (docs/PARALLEL.md).
//
// Runs started before the tree (checkpoint format ≤ 2) keep their math: one block per
// task, summed in block order (reduceShards).

import type { ChunkResult } from '../model/chunk.js';
import { nativeOps } from './native-ops.js';

export interface ShardSpec {
  /** The task's index in its step's partition (the block's index for a one-block task). */
  index: number;
  /** First stream of the task and how many. */
  first: number;
  count: number;
  /** The blocks it covers: the first one's index and each one's stream count (absent: one block, index `index`). */
  firstBlock?: number;
  blocks?: number[];
}

/** How a step's task results are summed: 'tree' (this version), or 'sequential' (runs from before it). */
export type Reduction = 'tree' | 'sequential';

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

/** The smallest power of two ≥ n (n ≥ 1). */
function pow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

type Range = { lo: number; width: number };

/** Split the range with the most real blocks (the leftmost of equals) in two; false when every range is one block. */
function splitLargest(ranges: Range[], K: number): boolean {
  const real = (r: Range) => Math.min(r.width, K - r.lo);
  let at = -1;
  ranges.forEach((r, i) => {
    if (real(r) > 1 && (at < 0 || real(r) > real(ranges[at]))) at = i;
  });
  if (at < 0) return false;
  const { lo, width } = ranges[at];
  const right = { lo: lo + width / 2, width: width / 2 };
  ranges.splice(at, 1, { lo, width: width / 2 }, ...(right.lo < K ? [right] : []));
  return true;
}

/**
 * A step's tasks: aligned power-of-two ranges of the K blocks, at least min(parallelism,
 * K) of them and none larger than ⌈K / parallelism⌉ blocks (so that no worker gets more
 * than its share: 5 blocks on 2 workers make tasks of 2, 2 and 1, not 4 and 1). The
 * root range is split, largest first, until both hold; any such partition gives the same
 * update (workers of unequal speed: planBySpeed in speeds.ts). 'sequential' (an old
 * run's math): one block per task.
 */
export function planTasks(blocks: readonly ShardSpec[], parallelism: number, reduction: Reduction = 'tree'): ShardSpec[] {
  const K = blocks.length;
  if (reduction === 'sequential') return blocks.map((b) => ({ ...b }));
  const ranges: Range[] = [{ lo: 0, width: pow2(K) }];
  const real = (r: Range) => Math.min(r.width, K - r.lo);
  const share = Math.ceil(K / Math.max(1, parallelism));
  while (!(ranges.length >= parallelism && Math.max(...ranges.map(real)) <= share) && splitLargest(ranges, K));
  return tasksOf(blocks, ranges);
}

/** The partitions made by splitting the largest range, from one task up to `maxTasks` tasks (or one per block). */
export function* splitPlans(blocks: readonly ShardSpec[], maxTasks: number): Generator<ShardSpec[]> {
  const K = blocks.length;
  const ranges: Range[] = [{ lo: 0, width: pow2(K) }];
  yield tasksOf(blocks, ranges);
  while (ranges.length < maxTasks && splitLargest(ranges, K)) yield tasksOf(blocks, ranges);
}

/** Tasks for the given aligned ranges of blocks (checked: aligned, in order, covering every block once). */
export function tasksOf(blocks: readonly ShardSpec[], ranges: readonly { lo: number; width: number }[]): ShardSpec[] {
  const K = blocks.length;
  let next = 0;
  const tasks = ranges.map(({ lo, width }, index) => {
    if (!(width >= 1 && pow2(width) === width && lo % width === 0 && lo === next && lo < K)) {
      throw new Error(`task range [${lo}, ${lo + width}) is not the next aligned power-of-two range of the ${K} blocks`);
    }
    const part = blocks.slice(lo, Math.min(lo + width, K));
    next = lo + part.length;
    return { index, first: part[0].first, count: part.reduce((a, b) => a + b.count, 0), firstBlock: lo, blocks: part.map((b) => b.count) };
  });
  if (next !== K) throw new Error(`the task ranges cover blocks [0, ${next}) of ${K}`);
  return tasks;
}

/**
 * The two halves of a task (aligned ranges of the K `blocks`), as tasks with the given
 * indices; null for a task of one block. A task of n blocks starting at block lo spans
 * the tree node [lo, lo + 2^⌈log₂ n⌉): its halves are that node's children (the right
 * one cut at the last block).
 */
export function halvesOf(blocks: readonly ShardSpec[], task: ShardSpec, indices: readonly [number, number]): [ShardSpec, ShardSpec] | null {
  const lo = task.firstBlock ?? task.index;
  const n = task.blocks?.length ?? 1;
  if (n < 2) return null;
  const half = pow2(n) / 2;
  if (lo % (2 * half) !== 0 || lo + n > blocks.length) throw new Error(`task of blocks [${lo}, ${lo + n}) is not an aligned range of the ${blocks.length} blocks`);
  const range = (first: number, count: number, index: number): ShardSpec => {
    const part = blocks.slice(first, first + count);
    return { index, first: part[0].first, count: part.reduce((a, b) => a + b.count, 0), firstBlock: first, blocks: part.map((b) => b.count) };
  };
  return [range(lo, half, indices[0]), range(lo + half, n - half, indices[1])];
}

/**
 * Sum the tasks' results by the binary tree over block indices (each task's result is
 * already its own subtree's sum), then divide by the token count; into `into` when given.
 * The tasks must be as planTasks / tasksOf make them. Float32 additions, in the same
 * order for any partition; the native addon's add gives the JS loop's bits.
 * An inner node whose right child is not a task's result needs memory for that child's
 * sum: `scratch[depth]`, made when first needed and kept in `scratch` for the next call
 * (a trainer passes the same array every step, so a step allocates nothing: at W = 2 a
 * fresh 1.3 MB array a step made V8 run a full GC every ~8 steps on the coordinator's
 * thread, time taken from the worker threads on a 2-core machine).
 */
export function reduceTree(
  tasks: readonly ShardSpec[],
  results: readonly ChunkResult[],
  K: number,
  size: number,
  into?: Float32Array,
  scratch: Float32Array[] = [],
): Reduced {
  results.forEach((r, k) => {
    if (r.grad?.length !== size) throw new Error(`reduceTree: task ${k} gradient has ${r.grad?.length ?? 'no'} values, expected ${size}`);
  });
  const byStart = new Map<number, { n: number; r: ChunkResult }>();
  tasks.forEach((t, k) => byStart.set(t.firstBlock ?? t.index, { n: t.blocks?.length ?? 1, r: results[k] }));
  const native = nativeOps();
  const out = into?.length === size ? into : new Float32Array(size);
  const scratchAt = (depth: number) => {
    if (scratch[depth]?.length !== size) scratch[depth] = new Float32Array(size);
    return scratch[depth];
  };
  // A node's value: a task's result, or left + right computed into `dest()`.
  const node = (lo: number, width: number, dest: () => Float32Array, depth: number): { grad: Float32Array; loss: number; penalty: number; tokens: number } => {
    const task = byStart.get(lo);
    if (task && task.n === Math.min(width, K - lo)) return { grad: task.r.grad!, loss: task.r.loss, penalty: task.r.penalty, tokens: task.r.tokens };
    if (width === 1) throw new Error(`reduceTree: no task covers block ${lo}`);
    const half = width / 2;
    const left = node(lo, half, dest, depth + 1);
    if (lo + half >= K) return left;
    const right = node(lo + half, half, () => scratchAt(depth), depth + 1);
    const sum = dest();
    if (native) {
      if (left.grad !== sum) sum.set(left.grad);
      native.addInto(sum, right.grad);
    } else {
      for (let i = 0; i < size; i++) sum[i] = left.grad[i] + right.grad[i];
    }
    return { grad: sum, loss: left.loss + right.loss, penalty: left.penalty + right.penalty, tokens: left.tokens + right.tokens };
  };
  const root = node(0, pow2(K), () => out, 0);
  if (root.grad !== out) out.set(root.grad);
  const inv = 1 / root.tokens;
  if (native) native.scaleInPlace(out, inv);
  else for (let i = 0; i < size; i++) out[i] *= inv;
  return { grad: out, loss: root.loss, penalty: root.penalty, tokens: root.tokens };
}
