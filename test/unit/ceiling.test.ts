// The pool bench's ceiling (bench/ceiling.ts): two replica threads, alternating rounds of
// one thread with both blocks and two threads with one block each.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { ceilingOf, computeCeiling } from '../../bench/ceiling.js';

describe('computeCeiling', () => {
  it('times both kinds of round and ends its threads', async () => {
    const c = await computeCeiling({ backend: 'cpu', E: 8, H: 16, rows: 8, warmup: 1 }, 5);
    for (const ms of [c.oneMs, c.twoMs]) {
      expect(Number.isFinite(ms)).toBe(true);
      expect(ms).toBeGreaterThan(0);
    }
    // Two threads at once run half the rows each: never more than twice as fast, and (on any machine
    // with two cores, or one) not ten times slower than one thread with all the rows.
    expect(c.ratio).toBeGreaterThan(0.1);
    expect(c.ratio).toBeLessThan(2.5);
    expect(c.wallRatio).toBeGreaterThan(0.1);
    expect(c.wallRatio).toBeLessThan(2.5);
  }, 30_000);

  it('never loses a round: the first round may be posted before a thread first looks (five starts in a row, the cores taken)', async () => {
    // A thread that read the round word only after saying it was ready could miss the first
    // round and wait forever (it did, under load): each start must finish, here with two
    // spinning threads taking the cores so that the threads are often preempted.
    const spinners = [0, 1].map(() => new Worker('for (;;) {}', { eval: true }));
    try {
      for (let i = 0; i < 5; i++) {
        const c = await computeCeiling({ backend: 'cpu', E: 8, H: 16, rows: 4, warmup: 0 }, 1);
        expect(c.oneMs).toBeGreaterThan(0);
      }
    } finally {
      await Promise.all(spinners.map((w) => w.terminate()));
    }
  }, 30_000);
});

describe('ceilingOf', () => {
  it('the median pair ratio ignores a slow round; the total-time ratio counts it', () => {
    const c = ceilingOf({ one: [10, 10, 40], two: [5, 5, 5] });
    expect(c.oneMs).toBe(10);
    expect(c.twoMs).toBe(5);
    expect(c.ratio).toBe(2);
    expect(c.wallRatio).toBe(60 / 15);
  });
});
