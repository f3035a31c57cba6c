// A sweep's plan (coordinator/sweep/spec.ts, plan.ts): sweep.json checked strictly, with a
// test per message; the grid's order; random search seeded, reproducible and within its
// bounds; every trial checked by `gradpool train`'s own rules; the threads rule.

import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../model/config.js';
import { Rng } from '../../model/rng.js';
import { checkTrials, draw, planTrials, threadShare } from '../../coordinator/sweep/plan.js';
import { nameFromPath, parseSweepSpec, type RangeSpec, type SweepSpec } from '../../coordinator/sweep/spec.js';

const parse = (raw: Record<string, unknown>) => parseSweepSpec(raw, 'sweep.json', 'test');
const grid = (parameters: Record<string, unknown>, base: Record<string, unknown> = {}) => parse({ method: 'grid', base, parameters });
const random = (parameters: Record<string, unknown>, extra: Record<string, unknown> = {}) => parse({ method: 'random', trials: 200, parameters, ...extra });

describe('grid search', () => {
  it('runs every combination, the first parameter varying slowest, the last fastest', () => {
    const trials = planTrials(grid({ lr: [0.001, 0.003], cell: ['lstm', 'gru', 'rnn'] }));
    expect(trials).toEqual([
      { lr: 0.001, cell: 'lstm' }, { lr: 0.001, cell: 'gru' }, { lr: 0.001, cell: 'rnn' },
      { lr: 0.003, cell: 'lstm' }, { lr: 0.003, cell: 'gru' }, { lr: 0.003, cell: 'rnn' },
    ]);
  });

  it('follows the order the parameters are written in', () => {
    const trials = planTrials(grid({ cell: ['lstm', 'gru'], layerNorm: [false, true], hidden: [16, 32] }));
    expect(trials).toHaveLength(8);
    expect(trials.slice(0, 3)).toEqual([
      { cell: 'lstm', layerNorm: false, hidden: 16 }, { cell: 'lstm', layerNorm: false, hidden: 32 }, { cell: 'lstm', layerNorm: true, hidden: 16 },
    ]);
    expect(new Set(trials.map((t) => JSON.stringify(t))).size).toBe(8);
  });
});

describe('random search', () => {
  const parameters = { lr: { min: 1e-4, max: 1e-1, log: true }, hidden: { min: 16, max: 19, int: true }, clip: { min: 0.5, max: 2 }, cell: ['lstm', 'gru'] };

  it('draws the same trials from the same seed, and others from another seed', () => {
    const spec = random(parameters, { seed: 7 });
    const a = planTrials(spec);
    expect(planTrials(random(parameters, { seed: 7 }))).toEqual(a);
    expect(planTrials(random(parameters, { seed: 8 }))).not.toEqual(a);
    expect(a).toHaveLength(200);
    // The draws are the project's seeded generator's, parameter by parameter in written order.
    const rng = new Rng(7);
    const p = spec.parameters;
    const first = { lr: draw(p.lr as RangeSpec, rng), hidden: draw(p.hidden as RangeSpec, rng), clip: draw(p.clip as RangeSpec, rng), cell: ['lstm', 'gru'][rng.int(2)] };
    expect(a[0]).toEqual(first);
    expect(p.hidden).toEqual({ min: 16, max: 19, log: false, int: true });
  });

  it('keeps every value within its range: integers where asked, log-uniform where asked, list members only', () => {
    const trials = planTrials(random(parameters, { trials: 2000 }));
    const hidden = trials.map((t) => t.hidden as number);
    expect(hidden.every((h) => Number.isInteger(h) && h >= 16 && h <= 19)).toBe(true);
    expect(new Set(hidden)).toEqual(new Set([16, 17, 18, 19]));
    const lr = trials.map((t) => t.lr as number);
    expect(lr.every((v) => v >= 1e-4 && v <= 1e-1 && Number(v.toPrecision(6)) === v)).toBe(true);
    // Log-uniform: about half below the geometric mean (1e-2.5), not a tenth as uniform would give.
    const below = lr.filter((v) => v < 10 ** -2.5).length / lr.length;
    expect(below).toBeGreaterThan(0.45);
    expect(below).toBeLessThan(0.55);
    const clip = trials.map((t) => t.clip as number);
    expect(clip.every((v) => v >= 0.5 && v <= 2)).toBe(true);
    expect(clip.filter((v) => v < 1.25).length / clip.length).toBeGreaterThan(0.45);
    expect(new Set(trials.map((t) => t.cell))).toEqual(new Set(['lstm', 'gru']));
  });

  it('draws a range\'s ends: u = 0 gives min, u → 1 gives max (int) or just below it', () => {
    const fixed = (u: number) => ({ uniform: () => u }) as unknown as Rng;
    expect(draw({ min: 3, max: 9, log: false, int: true }, fixed(0))).toBe(3);
    expect(draw({ min: 3, max: 9, log: false, int: true }, fixed(1 - 2 ** -32))).toBe(9);
    expect(draw({ min: 1, max: 100, log: true, int: true }, fixed(1 - 2 ** -32))).toBe(100);
    expect(draw({ min: 1e-3, max: 1, log: true, int: false }, fixed(0))).toBe(1e-3);
    expect(draw({ min: 0.5, max: 2, log: false, int: false }, fixed(1 - 2 ** -32))).toBe(2); // 6 significant digits round to the end
  });
});

describe('sweep.json is checked strictly', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['an unknown key', { method: 'grid', metod: 'grid', parameters: { lr: [1] } }, 'sweep.json: unknown key "metod"; allowed: name, method, trials, seed, base, parameters'],
    ['no method', { parameters: { lr: [1] } }, 'sweep.json: "method" is missing; allowed: grid, random'],
    ['an unknown method', { method: 'bayes', parameters: { lr: [1] } }, 'sweep.json: "method" is "bayes"; allowed: grid, random'],
    ['a bad name', { name: 'my sweep', method: 'grid', parameters: { lr: [1] } }, 'sweep.json: "name" is "my sweep"; allowed: 1 to 64 letters, digits, ".", "_" or "-"'],
    ['trials for a grid', { method: 'grid', trials: 3, parameters: { lr: [1] } }, 'sweep.json: "trials" is for method random; a grid runs every combination of its lists'],
    ['a seed for a grid', { method: 'grid', seed: 3, parameters: { lr: [1] } }, 'sweep.json: "seed" is for method random; a grid draws nothing at random'],
    ['random without trials', { method: 'random', parameters: { lr: [1] } }, 'sweep.json: "trials" is missing; method random needs it: an integer from 1 to 10000'],
    ['zero trials', { method: 'random', trials: 0, parameters: { lr: [1] } }, 'sweep.json: "trials" is 0; allowed: an integer from 1 to 10000'],
    ['a fractional seed', { method: 'random', trials: 2, seed: 1.5, parameters: { lr: [1] } }, 'sweep.json: "seed" is 1.5; allowed: an integer from 0 to 4294967295'],
    ['base not an object', { method: 'grid', base: [1], parameters: { lr: [1] } }, 'sweep.json: "base" is [1]; allowed: an object of gradpool train options'],
    ['an unknown option in base', { method: 'grid', base: { learningRate: 1 }, parameters: { lr: [1] } }, 'sweep.json: base: unknown option "learningRate"; allowed: data, tokens,'],
    ['a bad value in base', { method: 'grid', base: { hidden: -3 }, parameters: { lr: [1] } }, 'sweep.json: base: "hidden" is -3; allowed: an integer from 1 to'],
    ['a rule between base keys', { method: 'grid', base: { steps: 10, warmup: 20 }, parameters: { lr: [1] } }, 'sweep.json: base: "warmup" is 20; allowed: at most "steps" (10)'],
    ['the sweep\'s own option in base', { method: 'grid', base: { workers: 4 }, parameters: { lr: [1] } }, 'sweep.json: base: "workers" is set by the sweep itself: gradpool sweep --threads and --parallel'],
    ['no validation', { method: 'grid', base: { evalEvery: 0 }, parameters: { lr: [1] } }, 'sweep.json: base: "evalEvery" is 0; a sweep ranks its trials by validation loss'],
    ['no parameters', { method: 'grid' }, 'sweep.json: "parameters" is missing; allowed: an object of the options to vary'],
    ['an empty grid', { method: 'grid', parameters: {} }, 'sweep.json: "parameters" is empty; a sweep varies at least one option'],
    ['parameters not an object', { method: 'grid', parameters: [['lr', 1]] }, 'sweep.json: "parameters" is [["lr",1]]; allowed: an object of the options to vary'],
    ['an unknown parameter', { method: 'grid', parameters: { lr: [1], hiddn: [8] } }, 'sweep.json: parameters: unknown option "hiddn"; allowed: data, tokens,'],
    ['the sweep\'s own option swept', { method: 'grid', parameters: { out: ['a', 'b'] } }, 'sweep.json: parameters: "out" is set by the sweep itself: each trial runs in its own directory'],
    ['a key in base and parameters', { method: 'grid', base: { lr: 1 }, parameters: { lr: [1, 2] } }, 'sweep.json: "lr" is in both "base" and "parameters"; give it in one of them'],
    ['an empty list', { method: 'grid', parameters: { lr: [] } }, 'sweep.json: parameters.lr is []; allowed: a non-empty list of values or a range {"min", "max", "log", "int"}'],
    ['a bare value', { method: 'grid', parameters: { lr: 0.1 } }, 'sweep.json: parameters.lr is 0.1; allowed: a non-empty list of values or a range'],
    ['a value twice', { method: 'grid', parameters: { cell: ['gru', 'lstm', 'gru'] } }, 'sweep.json: parameters.cell lists "gru" twice'],
    ['an object in a list', { method: 'grid', parameters: { lr: [0.1, { v: 1 }] } }, 'sweep.json: parameters.lr[1] is {"v":1}; allowed: a number, string, boolean or null'],
    ['a bad value in a list', { method: 'grid', parameters: { cell: ['lstm', 'lstn'] } }, 'sweep.json: parameters.cell[1]: "cell" is "lstn"; allowed: one of rnn, lstm,'],
    ['a bad value against base', { method: 'grid', base: { batch: 4 }, parameters: { blocks: [2, 8] } }, 'sweep.json: parameters.blocks[1]: "blocks" is 8; allowed: at most the batch size (4)'],
    ['no validation swept', { method: 'grid', parameters: { evalEvery: [10, 0] } }, 'sweep.json: parameters.evalEvery[1] is 0; a sweep ranks its trials by validation loss'],
    ['a range in a grid', { method: 'grid', parameters: { lr: { min: 0.1, max: 1 } } }, 'sweep.json: parameters.lr is a range; method grid takes a list of values (a range needs method random)'],
    ['an unknown range key', { method: 'random', trials: 2, parameters: { lr: { min: 0.1, max: 1, step: 0.1 } } }, 'sweep.json: parameters.lr: unknown key "step"; allowed: min, max, log, int'],
    ['a range without max', { method: 'random', trials: 2, parameters: { lr: { min: 0.1 } } }, 'sweep.json: parameters.lr.max is undefined; allowed: a finite number'],
    ['a range upside down', { method: 'random', trials: 2, parameters: { lr: { min: 1, max: 0.1 } } }, 'sweep.json: parameters.lr: "min" (1) must be below "max" (0.1)'],
    ['a log range from 0', { method: 'random', trials: 2, parameters: { lr: { min: 0, max: 1, log: true } } }, 'sweep.json: parameters.lr: a log range needs "min" > 0; it is 0'],
    ['a log flag not boolean', { method: 'random', trials: 2, parameters: { lr: { min: 0.1, max: 1, log: 'yes' } } }, 'sweep.json: parameters.lr.log is "yes"; allowed: true or false'],
    ['an int range with fractions', { method: 'random', trials: 2, parameters: { hidden: { min: 8.5, max: 64, int: true } } }, 'sweep.json: parameters.hidden: an "int" range needs integer "min" and "max"; they are 8.5 and 64'],
    ['fractions for an integer option', { method: 'random', trials: 2, parameters: { hidden: { min: 8, max: 64 } } }, '(a range draws fractions unless it has "int": true)'],
    ['a range past the option\'s limits', { method: 'random', trials: 2, parameters: { lr: { min: 0.1, max: 5000 } } }, 'sweep.json: parameters.lr.max: "lr" is 5000; allowed: a number from 0 to 1000'],
    ['a range for a word option', { method: 'random', trials: 2, parameters: { cell: { min: 1, max: 2 } } }, 'sweep.json: parameters.cell.min: "cell" is 1; allowed: one of'],
    ['a grid too large', { method: 'grid', parameters: { seed: Array.from({ length: 101 }, (_, i) => i), lr: Array.from({ length: 100 }, (_, i) => i / 100) } }, 'sweep.json: the grid has 10100 combinations; allowed: at most 10000'],
  ];
  for (const [name, raw, message] of cases) {
    it(name, () => {
      let error: unknown;
      try {
        parse(raw);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toContain(message);
    });
  }

  it('fills in defaults and makes data and model file paths absolute', () => {
    const spec = parse({ method: 'random', trials: 3, base: { data: 'corpus.txt' }, parameters: { init: ['a.safetensors', 'b.safetensors'] } });
    expect(spec).toEqual<SweepSpec>({
      name: 'test', method: 'random', trials: 3, seed: 1, base: { data: resolve('corpus.txt') }, parameters: { init: [resolve('a.safetensors'), resolve('b.safetensors')] },
    });
    expect(nameFromPath('configs/lr search.json')).toBe('lr-search');
    expect(nameFromPath('/tmp/.json')).toBe('sweep');
  });
});

describe('each trial is checked as gradpool train checks its options', () => {
  it('a combination train would refuse names the trial and its values', () => {
    const spec = grid({ cell: ['lstm', 'gru'], forgetBias: [2, 3] });
    expect(() => checkTrials(spec, planTrials(spec), 'sweep.json')).toThrow(
      'sweep.json: trial 3 (cell=gru forgetBias=2): "forgetBias" needs an LSTM with a forget gate (lstm, lstm-peephole); the cell is gru',
    );
    const batches = grid({ batch: [2, 8], blocks: [1, 4] });
    expect(() => checkTrials(batches, planTrials(batches), 'sweep.json')).toThrow('sweep.json: trial 2 (batch=2 blocks=4): "blocks" is 4; allowed: at most the batch size (2)');
  });

  it('returns every trial\'s resolved config, with its swept values', () => {
    const spec = grid({ lr: [0.001, 0.003], hidden: [16] }, { steps: 6, backend: 'cpu' });
    const configs = checkTrials(spec, planTrials(spec), 'sweep.json');
    expect(configs.map((c) => [c.lr, c.hidden, c.steps, c.backend])).toEqual([[0.001, 16, 6, 'cpu'], [0.003, 16, 6, 'cpu']]);
  });
});

describe('the threads rule', () => {
  it('each running trial gets ⌊threads / running⌋ workers, at least 1; never more running than trials left', () => {
    expect(threadShare(2, 1, 4)).toEqual({ running: 1, workersPerTrial: 2 });
    expect(threadShare(2, 2, 4)).toEqual({ running: 2, workersPerTrial: 1 });
    expect(threadShare(2, 3, 4)).toEqual({ running: 3, workersPerTrial: 1 });
    expect(threadShare(8, 3, 10)).toEqual({ running: 3, workersPerTrial: 2 });
    expect(threadShare(8, 4, 2)).toEqual({ running: 2, workersPerTrial: 4 });
    expect(threadShare(4, 2, 0)).toEqual({ running: 1, workersPerTrial: 4 });
  });
});
