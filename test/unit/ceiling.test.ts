// The pool bench's ceiling (bench/ceiling.ts): two replica threads, alternating rounds of
// one thread with both blocks and two threads with one block each.
import { describe, expect, it } from 'vitest';
import { computeCeiling } from '../../bench/ceiling.js';

describe('computeCeiling', () => {
  it('times both kinds of round and ends its threads', async () => {
    const c = await computeCeiling({ backend: 'cpu', E: 8, H: 16, rows: 8, warmup: 1, pairs: 5 });
    for (const ms of [c.oneMs, c.twoMs]) {
      expect(Number.isFinite(ms)).toBe(true);
      expect(ms).toBeGreaterThan(0);
    }
    // Two threads at once run half the rows each: never more than twice as fast, and (on any machine
    // with two cores, or one) not ten times slower than one thread with all the rows.
    expect(c.ratio).toBeGreaterThan(0.1);
    expect(c.ratio).toBeLessThan(2.5);
  }, 60_000);
});
