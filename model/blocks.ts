// A task of several blocks: the unit of a step's math is the block (a fixed group of
// streams); a task covers an aligned power-of-two range of blocks and returns their
// sum, combined by the same fixed binary tree the coordinator uses above the tasks
// (docs/PARALLEL.md). So any partition of a step into tasks gives the same bits.
//
//            [0, 4)                  a node's value = left child + right child, in that
//        [0, 2)    [2, 4)            order (float32 gradient, float64 loss); a node with
//      [0,1) [1,2) [2,3) [3,4)       no right child (past the last block) is its left one
//
// A block's result never depends on which blocks share its task: where the backend is
// row-independent (model/rowbatch.ts, rowBatchable), the task runs all its streams through
// one forward and backward pass (its recurrent products keep the task's rows) and gets each
// block's own result, bit for bit; elsewhere, and with `rowBatch: false`, each block runs
// its own pass (Network.run over its streams), one after another.

import type { ChunkInput, ChunkResult } from './chunk.js';
import { isLstm } from './config.js';
import type { Network, RunOptions } from './network.js';
import { rowBatchable } from './rowbatch.js';

export interface BlocksOptions extends RunOptions {
  /** Run the blocks together (default: where rowBatchable says so) or, false, one after another. */
  rowBatch?: boolean;
}

/** The smallest power of two ≥ n (n ≥ 1). */
export function span(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Streams first..first+count−1 of a chunk, with their states ((L·S) groups of B·H values). */
export function blockOf(input: ChunkInput, first: number, count: number, stateGroups: number): ChunkInput {
  const { T, B } = input;
  const rows = <A extends Int32Array | Float32Array>(a: A, steps: number, width: number): A => {
    const out = new (a.constructor as new (n: number) => A)(steps * count * width);
    for (let t = 0; t < steps; t++) out.set(a.subarray((t * B + first) * width, (t * B + first + count) * width), t * count * width);
    return out;
  };
  const H = input.states.length / (stateGroups * B);
  const out: { -readonly [K in keyof ChunkInput]: ChunkInput[K] } = { T, B: count, states: rows(input.states, stateGroups, H) };
  if (input.tokens) out.tokens = rows(input.tokens, T + 1, 1);
  if (input.inputs) out.inputs = rows(input.inputs, T, input.inputs.length / (T * B));
  if (input.labels) out.labels = input.labels.slice(first, first + count);
  if (input.values) out.values = rows(input.values, 1, input.values.length / B);
  if (input.images) {
    const bytes = input.images.length / B; // one image per stream
    out.images = input.images.slice(first * bytes, (first + count) * bytes);
  }
  return out;
}

const scratchOf = new WeakMap<Network, Float32Array[]>();
const leafBuffersOf = new WeakMap<Network, Float32Array[]>();

/** out = a + b, elementwise in float32 (JS adds in double and rounds once: the float32 sum, exactly). */
function addTo(out: Float32Array, a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i] + b[i];
}

/**
 * Forward and backward over a task's blocks (`blocks`: stream counts, consecutive,
 * summing to input.B), combined by the binary tree over the blocks' indices within the
 * task. The gradient lands in opts.gradInto when given. One block: Network.run itself.
 */
export function runBlocks(net: Network, input: ChunkInput, blocks: readonly number[] | undefined, opts: BlocksOptions): ChunkResult {
  if (!blocks || blocks.length <= 1) return net.run(input, opts);
  const stateGroups = net.layout.config.layers * (isLstm(net.layout.config.cell) ? 2 : 1);
  if (opts.logits) throw new Error('runBlocks: logits are returned for single-block runs only');
  const total = blocks.reduce((a, b) => a + b, 0);
  if (total !== input.B || blocks.some((b) => !(Number.isInteger(b) && b >= 1))) {
    throw new Error(`blocks ${JSON.stringify(blocks)} do not cut the chunk's ${input.B} streams into groups of at least one`);
  }
  const starts = blocks.map((_, i) => blocks.slice(0, i).reduce((a, b) => a + b, 0));
  const size = net.layout.size;
  const rootInto = opts.gradInto?.length === size ? opts.gradInto : undefined;
  const { gradInto: _, rowBatch, ...runOpts } = opts;
  let finalStates: Float32Array = new Float32Array(input.states.length);
  const H = input.states.length / (stateGroups * input.B);
  // One scratch gradient per tree level below the root (kept with the network for its next
  // task); the left spine writes into `into`.
  let scratch = scratchOf.get(net);
  if (!scratch) scratchOf.set(net, (scratch = []));

  // Together: every block's result at once, each gradient in its own buffer (block 0's is the root's).
  let together: ChunkResult[] | null = null;
  if (rowBatch ?? rowBatchable(net.layout.config)) {
    let own = leafBuffersOf.get(net);
    if (!own) leafBuffersOf.set(net, (own = []));
    const grads = !runOpts.training ? [] : blocks.map((_, i) => (i === 0 ? rootInto ?? new Float32Array(size) : (own[i - 1] ??= new Float32Array(size))));
    const parts = blocks.map((b, i) => blockOf(input, starts[i], b, stateGroups));
    const r = net.runTogether(input, parts, runOpts.training, grads);
    finalStates = r.finalStates;
    together = r.results.map((b) => ({ ...b, finalStates }));
  }
  const leaf = (lo: number, into: Float32Array | undefined): ChunkResult => {
    if (together) return together[lo];
    const r = net.run(blockOf(input, starts[lo], blocks[lo], stateGroups), { ...runOpts, gradInto: into });
    for (let g = 0; g < stateGroups; g++) {
      finalStates.set(r.finalStates.subarray(g * blocks[lo] * H, (g + 1) * blocks[lo] * H), (g * input.B + starts[lo]) * H);
    }
    return r;
  };
  const node = (lo: number, width: number, into: Float32Array | undefined, depth: number): ChunkResult | null => {
    if (lo >= blocks.length) return null;
    if (width === 1) return leaf(lo, into);
    const half = width / 2;
    const left = node(lo, half, into, depth + 1);
    if (lo + half >= blocks.length) return left;
    const right = node(lo + half, half, (scratch[depth] ??= new Float32Array(size)), depth + 1)!;
    let grad = left!.grad;
    if (left!.grad && right.grad) {
      grad = into ?? new Float32Array(size);
      addTo(grad, left!.grad, right.grad);
    }
    return { loss: left!.loss + right.loss, penalty: left!.penalty + right.penalty, tokens: left!.tokens + right.tokens, grad, finalStates };
  };
  const root = node(0, span(blocks.length), rootInto, 0)!;
  return { ...root, finalStates };
}
