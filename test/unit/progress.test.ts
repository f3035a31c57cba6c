// A run's terminal output (Progress): one report shows as a line, or as a JSON event with
// --json, or not at all with --quiet; reports made during set-up follow the run's header.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { TRAIN_DEFAULTS, type TrainConfig } from '../../coordinator/config.js';
import { Progress } from '../../coordinator/progress.js';

afterEach(() => vi.restoreAllMocks());

function printed(config: Partial<TrainConfig>, use: (p: Progress) => void): string[] {
  const out: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
  use(new Progress({ ...TRAIN_DEFAULTS, ...config } as TrainConfig, () => 1));
  vi.restoreAllMocks();
  return out;
}

const run = (p: Progress) => {
  p.report('remote worker w1 joined', { event: 'worker', id: 'w1' });
  p.begin(['header 1', 'header 2']);
  p.report('watch it at http://127.0.0.1:1', { event: 'start' });
  p.report('evaluator: broken');
};

describe('Progress.report', () => {
  it('prints lines on a terminal, set-up reports after the header', () => {
    expect(printed({}, run)).toEqual(['header 1', 'header 2', 'remote worker w1 joined', 'watch it at http://127.0.0.1:1', 'evaluator: broken']);
  });

  it('prints the events with --json, in the same order, and no line', () => {
    expect(printed({ json: true }, run)).toEqual(['{"event":"worker","id":"w1"}', '{"event":"start"}']);
  });

  it('prints nothing with --quiet', () => {
    expect(printed({ quiet: true }, run)).toEqual([]);
  });

  it('holds every report until begin()', () => {
    expect(printed({}, (p) => p.report('early'))).toEqual([]);
  });
});
