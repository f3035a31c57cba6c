// The pool bench's window speeds (bench/parallel.ts): by wall time and by the median step.
import { describe, expect, it } from 'vitest';
import { windowSpeed } from '../../bench/parallel.js';

describe('windowSpeed', () => {
  const window = (steps: number[], overheadMs = 0) => ({
    reports: steps.map((stepMs) => ({ tokens: 4096, stepMs })),
    wall: steps.reduce((a, b) => a + b, 0) + overheadMs,
  });

  it('by wall time: all tokens over the whole window, slow steps and time between steps included', () => {
    expect(windowSpeed(window([30, 30, 30, 30]), 'wall')).toBeCloseTo((4 * 4096) / 120, 12);
    expect(windowSpeed(window([30, 30, 30, 30], 12), 'wall')).toBeCloseTo((4 * 4096) / 132, 12);
    expect(windowSpeed(window([30, 30, 30, 90]), 'wall')).toBeCloseTo((4 * 4096) / 180, 12);
  });

  it('by the median step: a few steps slowed by the machine do not move it', () => {
    const quiet = windowSpeed(window([30, 29, 31, 30, 30]), 'median');
    expect(quiet).toBeCloseTo(4096 / 30, 12);
    expect(windowSpeed(window([30, 29, 31, 90, 60]), 'median')).toBeCloseTo(4096 / 31, 12);
    // …but a window that is slow throughout is slow by its median too.
    expect(windowSpeed(window([45, 44, 46, 45, 45]), 'median')).toBeCloseTo(4096 / 45, 12);
  });

  it('the lower middle of an even count, as bench/stats.ts median', () => {
    expect(windowSpeed(window([10, 40, 20, 30]), 'median')).toBeCloseTo(4096 / 20, 12);
  });
});
