// Shards (coordinator/shards.ts): the plan cuts B streams into K contiguous, balanced groups;
// a shard's states slice out of and back into the (L, S, B, H) buffer; results reduce in shard order.

import { describe, expect, it } from 'vitest';
import { planShards, putStates, reduceShards, sliceStates } from '../../coordinator/shards.js';
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
