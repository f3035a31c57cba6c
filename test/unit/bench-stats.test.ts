import { describe, expect, it } from 'vitest';
import { median } from '../../bench/stats.js';

describe('bench median', () => {
  it('takes the middle value, the lower one for an even count, without reordering its input; NaN for none', () => {
    const xs = [5, 1, 4, 2, 3];
    expect(median(xs)).toBe(3);
    expect(xs).toEqual([5, 1, 4, 2, 3]);
    expect(median([4, 1, 3, 2])).toBe(2);
    expect(median([7])).toBe(7);
    expect(median([])).toBeNaN();
  });
});
