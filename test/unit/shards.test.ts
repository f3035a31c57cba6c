// Shards (coordinator/shards.ts): the plan cuts B streams into K contiguous, balanced groups;
// a shard's states slice out of and back into the (L, S, B, H) buffer; results reduce in shard order.

import { describe, expect, it } from 'vitest';
import { halvesOf, planShards, planTasks, putStates, reduceShards, reduceTree, sliceStates, tasksOf } from '../../coordinator/shards.js';
import type { ChunkResult } from '../../model/chunk.js';

describe('planShards', () => {
  it('for every B ≤ 40 and K ≤ B: indices 0..K−1, every stream once, contiguous, in order, sizes differing by at most 1', () => {
    let plans = 0;
    for (let B = 1; B <= 40; B++) {
      for (let K = 1; K <= B; K++) {
        const specs = planShards(B, K);
        expect(specs.map((s) => s.index)).toEqual([...Array(K).keys()]);
        const streams = specs.flatMap((s) => Array.from({ length: s.count }, (_, i) => s.first + i));
        expect(streams, `B=${B} K=${K}`).toEqual([...Array(B).keys()]);
        const counts = specs.map((s) => s.count);
        expect(Math.min(...counts), `B=${B} K=${K}`).toBeGreaterThanOrEqual(Math.floor(B / K));
        expect(Math.max(...counts), `B=${B} K=${K}`).toBeLessThanOrEqual(Math.ceil(B / K));
        plans++;
      }
    }
    expect(plans).toBe((40 * 41) / 2);
  });

  it('examples: 8 streams in 3 shards, one shard, one stream per shard', () => {
    expect(planShards(8, 3)).toEqual([{ index: 0, first: 0, count: 2 }, { index: 1, first: 2, count: 3 }, { index: 2, first: 5, count: 3 }]);
    expect(planShards(5, 1)).toEqual([{ index: 0, first: 0, count: 5 }]);
    expect(planShards(3, 3).map((s) => [s.first, s.count])).toEqual([[0, 1], [1, 1], [2, 1]]);
  });

  it('rejects K outside 1..B, naming B and K', () => {
    expect(() => planShards(4, 0)).toThrow('shards must be 1..4 for B=4, got 0');
    expect(() => planShards(4, 5)).toThrow('shards must be 1..4 for B=4, got 5');
    expect(() => planShards(4, 1.5)).toThrow('shards must be 1..4 for B=4, got 1.5');
  });
});

describe('sliceStates / putStates', () => {
  // L·S = 3 (layer, state) planes, B = 7 streams, H = 4.
  const LS = 3;
  const B = 7;
  const H = 4;
  const full = Float32Array.from({ length: LS * B * H }, (_, i) => i + 0.5);

  it("a shard's slice is its streams of every (layer, state) plane, laid out (L, S, count, H)", () => {
    const part = sliceStates(full, LS, B, H, 2, 3);
    expect(part.length).toBe(LS * 3 * H);
    for (let ls = 0; ls < LS; ls++) {
      for (let b = 0; b < 3; b++) {
        for (let j = 0; j < H; j++) expect(part[(ls * 3 + b) * H + j]).toBe(full[(ls * B + 2 + b) * H + j]);
      }
    }
  });

  it('slicing every shard and putting each back rebuilds the buffer exactly, for every K', () => {
    for (let K = 1; K <= B; K++) {
      const rebuilt = new Float32Array(full.length).fill(Number.NaN);
      for (const s of planShards(B, K)) putStates(rebuilt, sliceStates(full, LS, B, H, s.first, s.count), LS, B, H, s.first, s.count);
      expect([...rebuilt], `K=${K}`).toEqual([...full]);
    }
  });

  it("putStates writes only the shard's streams", () => {
    const states = new Float32Array(full.length);
    putStates(states, new Float32Array(LS * 2 * H).fill(9), LS, B, H, 5, 2);
    for (let ls = 0; ls < LS; ls++) {
      for (let b = 0; b < B; b++) {
        const want = b >= 5 ? 9 : 0;
        for (let j = 0; j < H; j++) expect(states[(ls * B + b) * H + j], `plane ${ls} stream ${b}`).toBe(want);
      }
    }
  });
});

describe('reduceShards', () => {
  const result = (grad: number[], loss: number, tokens: number, penalty = 0): ChunkResult => ({
    grad: Float32Array.from(grad), loss, penalty, tokens, finalStates: new Float32Array(0),
  });

  it('sums gradients, losses, penalties and tokens, and divides the gradient by the token count', () => {
    const r = reduceShards([result([1, 2, 3], 10, 4, 0.5), result([3, 2, 1], 6, 4, 0.25)], 3);
    expect([...r.grad]).toEqual([0.5, 0.5, 0.5]);
    expect({ loss: r.loss, penalty: r.penalty, tokens: r.tokens }).toEqual({ loss: 16, penalty: 0.75, tokens: 8 });
  });

  it('adds in shard order: float32 sums that depend on the order give the shard-order answer', () => {
    // In float32, 1 + 2^24 rounds to 2^24. Shard order (1, 2^24, −2^24) gives 0; adding the
    // big ones first would give 1, the exact sum.
    const big = 2 ** 24;
    const shards = [result([1], 0, 1), result([big], 0, 1), result([-big], 0, 1)];
    expect(reduceShards(shards, 1).grad[0]).toBe(0);
    expect(reduceShards([shards[1], shards[2], shards[0]], 1).grad[0]).toBe(Math.fround(1 / 3));
  });
});

describe('planTasks: aligned power-of-two ranges of blocks', () => {
  const isPow2 = (n: number) => n >= 1 && (n & (n - 1)) === 0;
  it('for every K ≤ 20 and parallelism ≤ 24: every block once, in order, aligned ranges, at least min(parallelism, K) tasks, none above ⌈K/parallelism⌉ blocks', () => {
    for (let K = 1; K <= 20; K++) {
      const blocks = planShards(3 * K, K);
      for (let W = 1; W <= 24; W++) {
        const tasks = planTasks(blocks, W);
        const covered = tasks.flatMap((t) => Array.from({ length: t.blocks!.length }, (_, i) => t.firstBlock! + i));
        expect(covered, `K=${K} W=${W}`).toEqual([...Array(K).keys()]);
        expect(tasks.map((t) => t.index)).toEqual([...Array(tasks.length).keys()]);
        for (const t of tasks) {
          const width = 2 ** Math.ceil(Math.log2(t.blocks!.length));
          expect(isPow2(width) && t.firstBlock! % width === 0, `K=${K} W=${W} task at ${t.firstBlock}`).toBe(true);
          expect(t.first).toBe(blocks[t.firstBlock!].first);
          expect(t.count).toBe(t.blocks!.reduce((a, b) => a + b, 0));
        }
        expect(tasks.length, `K=${K} W=${W}`).toBeGreaterThanOrEqual(Math.min(W, K));
        const sizes = tasks.map((t) => t.blocks!.length);
        expect(Math.max(...sizes), `K=${K} W=${W}`).toBeLessThanOrEqual(Math.ceil(K / W));
      }
    }
  });
  it('examples: 4 blocks on 1, 2 and 3 workers; 3 blocks on 2; 5 on 2', () => {
    const blocks = planShards(8, 4);
    expect(planTasks(blocks, 1).map((t) => [t.firstBlock, t.blocks])).toEqual([[0, [2, 2, 2, 2]]]);
    expect(planTasks(blocks, 2).map((t) => [t.firstBlock, t.blocks])).toEqual([[0, [2, 2]], [2, [2, 2]]]);
    expect(planTasks(blocks, 3).map((t) => [t.firstBlock, t.blocks])).toEqual([[0, [2]], [1, [2]], [2, [2, 2]]]);
    expect(planTasks(planShards(6, 3), 2).map((t) => [t.firstBlock, t.blocks])).toEqual([[0, [2, 2]], [2, [2]]]);
    expect(planTasks(planShards(5, 5), 2).map((t) => [t.firstBlock, t.blocks!.length])).toEqual([[0, 2], [2, 2], [4, 1]]);
  });
  it('the sequential math of old runs: one block per task', () => {
    expect(planTasks(planShards(8, 4), 1, 'sequential').map((t) => t.index)).toEqual([0, 1, 2, 3]);
  });
  it('tasksOf refuses ranges that are not aligned, out of order, or leave blocks out', () => {
    const blocks = planShards(8, 4);
    expect(() => tasksOf(blocks, [{ lo: 1, width: 2 }])).toThrow('task range [1, 3) is not the next aligned power-of-two range of the 4 blocks');
    expect(() => tasksOf(blocks, [{ lo: 0, width: 3 }])).toThrow('task range [0, 3) is not the next aligned');
    expect(() => tasksOf(blocks, [{ lo: 0, width: 2 }])).toThrow('the task ranges cover blocks [0, 2) of 4');
  });
});

describe('reduceTree: the same bits for every partition', () => {
  const P = 257;
  /** Block k's result: a gradient whose sums round differently in different orders. */
  const blockResult = (k: number): ChunkResult => ({
    grad: Float32Array.from({ length: P }, (_, i) => Math.fround(Math.sin(k * 7.1 + i) * 10 ** ((i + k) % 9 - 4))),
    loss: Math.sin(k) * 1e3 + 1e-9 * k, penalty: k * 0.1, tokens: 10 + k, finalStates: new Float32Array(0),
  });
  /** A task's result: its blocks combined by the same tree (model/blocks.ts does this inside a worker). */
  const taskResult = (lo: number, n: number): ChunkResult => {
    const rec = (a: number, w: number): ChunkResult => {
      if (w === 1) return blockResult(a);
      const l = rec(a, w / 2);
      if (a + w / 2 >= lo + n) return l;
      const r = rec(a + w / 2, w / 2);
      return { grad: l.grad!.map((x, i) => x + r.grad![i]), loss: l.loss + r.loss, penalty: l.penalty + r.penalty, tokens: l.tokens + r.tokens, finalStates: l.finalStates };
    };
    return rec(lo, 2 ** Math.ceil(Math.log2(n)));
  };
  /** A random partition of K blocks into aligned power-of-two ranges. */
  const randomRanges = (K: number, rand: () => number) => {
    const out: { lo: number; width: number }[] = [];
    const split = (lo: number, w: number) => {
      if (lo >= K) return;
      if (w === 1 || rand() < 0.4) out.push({ lo, width: w });
      else {
        split(lo, w / 2);
        split(lo + w / 2, w / 2);
      }
    };
    split(0, 2 ** Math.ceil(Math.log2(K)));
    return out;
  };
  const bitsOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

  it('K = 1..13: 20 random partitions each give the bits of one block per task; the tree differs from the sequential sum', () => {
    let seed = 12345;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    let differs = 0;
    for (let K = 1; K <= 13; K++) {
      const blocks = planShards(K, K);
      const single = tasksOf(blocks, blocks.map((_, k) => ({ lo: k, width: 1 })));
      const ref = reduceTree(single, single.map((t) => blockResult(t.firstBlock!)), K, P);
      for (let trial = 0; trial < 20; trial++) {
        const tasks = tasksOf(blocks, randomRanges(K, rand));
        const r = reduceTree(tasks, tasks.map((t) => taskResult(t.firstBlock!, t.blocks!.length)), K, P);
        expect(bitsOf(r.grad), `K=${K} partition ${JSON.stringify(tasks.map((t) => [t.firstBlock, t.blocks!.length]))}`).toBe(bitsOf(ref.grad));
        expect([r.loss, r.penalty, r.tokens]).toEqual([ref.loss, ref.penalty, ref.tokens]);
      }
      const seq = reduceShards(single.map((t) => blockResult(t.firstBlock!)), P);
      if (bitsOf(seq.grad) !== bitsOf(ref.grad)) differs++;
    }
    expect(differs, 'the tree is a different order than the sequential sum from K = 4 on').toBeGreaterThan(0);
  });

  it('is the tree: ((g0 + g1) + (g2 + g3)) + g4 for K = 5, divided by the tokens', () => {
    const g = [0, 1, 2, 3, 4].map(blockResult);
    const add = (a: Float32Array, b: Float32Array) => a.map((x, i) => x + b[i]);
    const sum = add(add(add(g[0].grad!, g[1].grad!), add(g[2].grad!, g[3].grad!)), g[4].grad!);
    const tokens = g.reduce((a, r) => a + r.tokens, 0);
    const blocks = planShards(5, 5);
    const single = tasksOf(blocks, blocks.map((_, k) => ({ lo: k, width: 1 })));
    const r = reduceTree(single, g, 5, P, new Float32Array(P));
    expect(bitsOf(r.grad)).toBe(bitsOf(sum.map((x) => x * (1 / tokens))));
    expect(r.tokens).toBe(tokens);
  });

  it("a straggler's task split into halves (recursively, one task at random each time, as the scheduler may) reduces to the planned partition's bits, K = 1..13", () => {
    let seed = 777;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    let splits = 0;
    for (let K = 1; K <= 13; K++) {
      const blocks = planShards(3 * K + 1, K); // streams per block differ (3 or 4): the halves' first/count must follow them
      for (const parallelism of [1, 2, 3]) {
        const planned = planTasks(blocks, parallelism);
        const ref = reduceTree(planned, planned.map((t) => taskResult(t.firstBlock!, t.blocks!.length)), K, P);
        let tasks = planned;
        for (let round = 0; round < 4; round++) {
          const at = Math.floor(rand() * tasks.length);
          const halves = halvesOf(blocks, tasks[at], [tasks.length, tasks.length + 1]);
          if (!halves) continue;
          splits++;
          const [l, r] = halves;
          // Halves: the node's two children, the right one cut at the last block, with the blocks' streams.
          expect(l.firstBlock! + l.blocks!.length).toBe(r.firstBlock);
          expect([l.first, r.first, l.count + r.count]).toEqual([tasks[at].first, l.first + l.count, tasks[at].count]);
          expect([...l.blocks!, ...r.blocks!]).toEqual(tasks[at].blocks);
          expect([l.index, r.index]).toEqual([tasks.length, tasks.length + 1]);
          tasks = [...tasks.slice(0, at), l, r, ...tasks.slice(at + 1)];
        }
        // The partition is still aligned power-of-two ranges (tasksOf checks), and reduces to the same bits.
        tasksOf(blocks, tasks.map((t) => ({ lo: t.firstBlock!, width: 2 ** Math.ceil(Math.log2(t.blocks!.length)) })));
        const r = reduceTree(tasks, tasks.map((t) => taskResult(t.firstBlock!, t.blocks!.length)), K, P);
        expect(bitsOf(r.grad), `K=${K} W=${parallelism} ${JSON.stringify(tasks.map((t) => [t.firstBlock, t.blocks!.length]))}`).toBe(bitsOf(ref.grad));
        expect([r.loss, r.penalty, r.tokens]).toEqual([ref.loss, ref.penalty, ref.tokens]);
      }
    }
    expect(splits).toBeGreaterThan(50);
    // Examples: 4 blocks → 2 + 2; 3 blocks at 4 of K = 7 → [4, 6) + [6, 7); one block cannot be split.
    expect(halvesOf(planShards(4, 4), tasksOf(planShards(4, 4), [{ lo: 0, width: 4 }])[0], [1, 2])!.map((h) => [h.index, h.firstBlock, h.blocks!.length])).toEqual([[1, 0, 2], [2, 2, 2]]);
    const seven = planShards(7, 7);
    const tail = tasksOf(seven, [{ lo: 0, width: 4 }, { lo: 4, width: 4 }])[1];
    expect(halvesOf(seven, tail, [2, 3])!.map((h) => [h.firstBlock, h.blocks!.length])).toEqual([[4, 2], [6, 1]]);
    expect(halvesOf(seven, tasksOf(seven, seven.map((_, k) => ({ lo: k, width: 1 })))[3], [7, 8])).toBeNull();
  });

  it("keeps inner sums in the caller's scratch: made only where a right child is not a task's result, reused by later calls without changing a bit", () => {
    // Two tasks of one block each (W = 2, K = 2): the root adds two results, no inner sum.
    const two = tasksOf(planShards(2, 2), [{ lo: 0, width: 1 }, { lo: 1, width: 1 }]);
    const scratch: Float32Array[] = [];
    reduceTree(two, two.map((t) => blockResult(t.firstBlock!)), 2, P, new Float32Array(P), scratch);
    expect(scratch.filter(Boolean)).toHaveLength(0);
    // One block per task, K = 4: the root's right child [2, 4) is an inner sum (scratch[0]).
    const blocks = planShards(8, 8);
    const four = tasksOf(planShards(4, 4), [0, 1, 2, 3].map((lo) => ({ lo, width: 1 })));
    reduceTree(four, four.map((t) => blockResult(t.firstBlock!)), 4, P, undefined, scratch);
    const made = [...scratch];
    expect(made.filter(Boolean)).toHaveLength(1);
    // Random partitions of K = 8 with one scratch throughout (stale sums in it) give the bits of fresh memory.
    let seed = 4242;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (let trial = 0; trial < 30; trial++) {
      const tasks = tasksOf(blocks, randomRanges(8, rand));
      const results = tasks.map((t) => taskResult(t.firstBlock!, t.blocks!.length));
      const fresh = reduceTree(tasks, results, 8, P);
      const reused = reduceTree(tasks, results, 8, P, new Float32Array(P), scratch);
      expect(bitsOf(reused.grad)).toBe(bitsOf(fresh.grad));
    }
    expect(scratch[0], 'the array made first is the one reused').toBe(made[0]);
    expect(scratch.length).toBeLessThanOrEqual(3);
  });

  it('refuses a partition that leaves a block out', () => {
    const blocks = planShards(4, 4);
    const tasks = tasksOf(blocks, [{ lo: 0, width: 2 }, { lo: 2, width: 1 }, { lo: 3, width: 1 }]);
    expect(() => reduceTree(tasks.slice(0, 2), [taskResult(0, 2), taskResult(2, 1)], 4, P)).toThrow('reduceTree: no task covers block 3');
  });
});
