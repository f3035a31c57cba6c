// Row blocks: a task's B streams cut into blocks inside every time step's rows. A step's
// tensors have B rows (stream b at row b); a stack over the T steps is time-major, row
// t·B + b. A task that runs its blocks' recurrences together (model/rowbatch.ts) keeps
// every sum over rows per block: these helpers hand a block exactly the rows, in the
// order, that the block's own run would stack, so the block's reductions call the same
// primitives on the same values.
//
//   step t:   [ b₀ rows | b₁ rows | b₂ rows ]     (B rows)
//   block 1's stack = step 0's b₁ rows, step 1's b₁ rows, …   ((T·b₁) rows: the block's own concatRows)

import { defineKernel, runKernel } from './kernels.js';
import { type T2, concatRows } from './primitives.js';

defineKernel('GpStackRows', {
  outputs: (shapes, a) => [[shapes.length * (a.count as number), shapes[0]![1]]],
  run(parts, [out], a) {
    const C = parts[0]!.length / (a.rows as number);
    const [start, count] = [a.start as number, a.count as number];
    parts.forEach((p, k) => out.set(p!.subarray(start * C, (start + count) * C), k * count * C));
  },
});

defineKernel('GpSpreadBlocks', {
  outputs: (shapes, a) => [[(a.steps as number) * (a.B as number), shapes[0]![1]]],
  run(stacks, [out], a) {
    const sizes = a.sizes as number[];
    const [steps, B] = [a.steps as number, a.B as number];
    const C = out.length / (steps * B);
    let start = 0;
    stacks.forEach((s, i) => {
      const b = sizes[i];
      for (let t = 0; t < steps; t++) out.set(s!.subarray(t * b * C, (t + 1) * b * C), (t * B + start) * C);
      start += b;
    });
  },
});

/**
 * Rows start..start+count−1 of every part (each with the same row count), stacked in the
 * parts' order. When that is every row of each part: concatRows(parts) itself.
 */
export function stackRows(parts: T2[], start: number, count: number): T2 {
  const rows = parts[0].shape[0];
  if (start === 0 && count === rows) return concatRows(parts);
  return runKernel('GpStackRows', parts, { start, count, rows })[0] as T2;
}

export class RowBlocks {
  /** Streams per block, in order. */
  readonly sizes: readonly number[];
  /** First stream of each block. */
  readonly starts: readonly number[];
  /** All streams: Σ sizes. */
  readonly B: number;

  constructor(sizes: readonly number[]) {
    if (sizes.length === 0 || sizes.some((b) => !(Number.isInteger(b) && b >= 1))) {
      throw new Error(`row blocks ${JSON.stringify(sizes)}: expected one or more blocks of at least one stream`);
    }
    this.sizes = [...sizes];
    let at = 0;
    this.starts = sizes.map((b) => ((at += b), at - b));
    this.B = at;
  }

  /** One block of all B streams: a single block's own run. */
  static one(B: number): RowBlocks {
    return new RowBlocks([B]);
  }

  get count(): number {
    return this.sizes.length;
  }

  /** Block i's rows of each per-step tensor (B, C), stacked over the steps: its own run's concatRows. */
  stack(parts: T2[], i: number): T2 {
    return stackRows(parts, this.starts[i], this.sizes[i]);
  }

  /** Block i's rows of one (B, C) tensor (with one block, x itself). */
  rowsOf(x: T2, i: number): T2 {
    return this.count === 1 ? x : stackRows([x], this.starts[i], this.sizes[i]);
  }

  /** The blocks' stacks (steps·b_i, C) as one time-major stack (steps·B, C); with one block, that stack itself. */
  spread(stacks: T2[], steps: number): T2 {
    if (this.count === 1) return stacks[0];
    return runKernel('GpSpreadBlocks', stacks, { sizes: this.sizes, steps, B: this.B })[0] as T2;
  }
}
