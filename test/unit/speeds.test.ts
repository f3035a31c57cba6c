// Partitions that follow the workers' speeds (coordinator/speeds.ts): what is measured,
// when the even partition stays, and that a slower worker gets a smaller share.

import { describe, expect, it } from 'vitest';
import { planShards, planTasks, tasksOf } from '../../coordinator/shards.js';
import { EVEN_WITHIN, planBySpeed, predictFinish, SpeedBook, speedKey } from '../../coordinator/speeds.js';

const sizes = (tasks: { blocks?: number[] }[]) => tasks.map((t) => t.blocks?.length ?? 1);

describe('SpeedBook', () => {
  it('keys local threads together and remote workers by id', () => {
    expect(speedKey(7)).toBe('local');
    expect(speedKey('host-a/3')).toBe('host-a');
    expect(speedKey('host/b/1')).toBe('host/b');
    expect(speedKey('plain')).toBe('plain');
  });

  it('smooths the time per block and ignores failed or empty reports', () => {
    const book = new SpeedBook();
    book.observe('w/1', 2, 20); // 10 ms a block
    expect(book.get('w')).toBe(10);
    book.observe('w/2', 1, 20); // 20 ms a block: moves 30% of the way
    expect(book.get('w')).toBeCloseTo(13, 10);
    book.observe(-1, 1, 5);
    book.observe('w/1', 0, 5);
    book.observe('w/1', 1, NaN);
    book.observe('w/1', 1, 0);
    expect(book.get('w')).toBeCloseTo(13, 10);
    expect(book.get('local')).toBeUndefined();
  });

  it('observes a step: each task time over the blocks its task covered', () => {
    const book = new SpeedBook();
    book.observeStep([{ worker: 3, computeMs: 40 }, { worker: 'r/1', computeMs: 30 }], [4, 1]);
    expect(book.get('local')).toBe(10);
    expect(book.get('r')).toBe(30);
  });

  it('slot times: null until measured and while the speeds are within EVEN_WITHIN; unmeasured slots count as typical', () => {
    const book = new SpeedBook();
    expect(book.slotTimes(['local', 'local'])).toBeNull();
    book.observe(1, 1, 10);
    book.observe('r/0', 1, 10 * EVEN_WITHIN * 0.99);
    expect(book.slotTimes(['local', 'r'])).toBeNull();
    book.observe('s/0', 1, 30);
    expect(book.slotTimes(['s', 'local', 'new'])).toEqual([10, book.typical(), 30]);
    expect(book.typical()).toBeCloseTo(10 * EVEN_WITHIN * 0.99, 10);
  });
});

describe('predictFinish: largest task first, to the worker free first', () => {
  it('follows the dispatch rule', () => {
    // Workers of 1 and 3 ms a block. 4 → fast (ends 4); 2 → slow (6); 2 → fast (free at 4, ends 6).
    expect(predictFinish([2, 4, 2], [1, 3])).toBe(6);
    expect(predictFinish([4, 4], [1, 3])).toBe(12);
    expect(predictFinish([8], [1, 3])).toBe(8);
    expect(predictFinish([1, 1, 1, 1], [1, 1])).toBe(2);
  });
});

describe('planBySpeed', () => {
  it('gives a slower worker a smaller share', () => {
    const blocks = planShards(64, 8);
    const even = planTasks(blocks, 2);
    expect(sizes(even)).toEqual([4, 4]);
    const fast = planBySpeed(blocks, [1, 3]);
    expect(predictFinish(sizes(fast), [1, 3])).toBeLessThan(predictFinish(sizes(even), [1, 3]));
    expect(predictFinish(sizes(fast), [1, 3])).toBe(6); // the ideal share is 8·¾ = 6 blocks for the fast one
    // A valid partition: aligned, in order, every block once.
    expect(() => tasksOf(blocks, fast.map((t) => ({ lo: t.firstBlock!, width: 2 ** Math.ceil(Math.log2(t.blocks!.length)) })))).not.toThrow();
  });

  it('keeps the even split for equal workers; a far slower worker still gets a task (one block), so it stays measured', () => {
    expect(sizes(planBySpeed(planShards(64, 4), [10, 10]))).toEqual([2, 2]);
    expect(sizes(planBySpeed(planShards(64, 4), [1, 50]))).toEqual([1, 1, 2]);
    expect(sizes(planBySpeed(planShards(64, 1), [1, 50]))).toEqual([1]);
  });

  it('at least one task per worker (up to K), never more than four per worker nor one per block', () => {
    for (let K = 1; K <= 13; K++) {
      for (const times of [[1, 2], [1, 1.5, 4], [2, 2, 2, 9]]) {
        const tasks = planBySpeed(planShards(64, K), times);
        expect(tasks.length).toBeLessThanOrEqual(Math.min(K, 4 * times.length));
        expect(tasks.length).toBeGreaterThanOrEqual(Math.min(K, times.length));
        expect(sizes(tasks).reduce((a, b) => a + b, 0)).toBe(K);
      }
    }
  });
});
