// The captioning experiment's plan and report pieces: the full and quick plans, the run's
// config (the captioner's defaults, validated), the held-out-pair counts, and the report
// built from raw numbers.

import { describe, expect, it } from 'vitest';
import { captioningConfig } from '../../coordinator/experiments/captioning.js';
import { type CurvePoint, captioningPlan } from '../../coordinator/experiments/captioning-plan.js';
import { type CaptioningData, captioningReport, compositionalErrors, curveRows } from '../../coordinator/experiments/captioning-report.js';
import { CAPTION_DEFAULTS } from '../../coordinator/config.js';
import type { ShapeObject } from '../../coordinator/caption/shapes.js';

const budget = { workers: 2, backend: 'cpu' as const };

describe('captioningPlan', () => {
  it('the full plan is the default captioner with red squares and blue circles held out', () => {
    const plan = captioningPlan(false);
    expect(plan.holdout).toBe('red:square,blue:circle');
    const config = captioningConfig(plan, budget);
    expect(config.task).toBe('caption');
    for (const key of ['cnn', 'hidden', 'embed', 'batch', 'steps', 'evalEvery', 'shapesCount', 'lr', 'lrSchedule', 'seqLen'] as const) {
      expect(config[key], key).toBe(CAPTION_DEFAULTS[key]);
    }
    expect(config.holdout).toBe('red:square,blue:circle');
    expect(config.warmup).toBe(CAPTION_DEFAULTS.warmup);
    expect(plan.testImages).toBeNull();
    expect(plan.beam).toBe(3);
  });

  it('the quick plan is smaller in every direction', () => {
    const full = captioningPlan(false);
    const quick = captioningPlan(true);
    expect(quick.steps).toBeLessThan(full.steps);
    expect(quick.shapesCount).toBeLessThan(full.shapesCount);
    expect(quick.hidden).toBeLessThan(full.hidden);
    expect(quick.testImages).not.toBeNull();
    expect(quick.holdout).toBe(full.holdout);
    const config = captioningConfig(quick, { workers: 3, backend: 'cpu' });
    expect([config.cnn, config.hidden, config.steps, config.blocks, config.workers]).toEqual(['8,16,32', 128, 1500, null, 3]); // K from B alone, as gradpool train
    // The warm-up default fits the run: a tenth of its steps at most.
    expect(config.warmup).toBe(100);
  });

  it('--steps shortens the run to about four curve points and smaller evaluations', () => {
    const plan = captioningPlan(true, 20);
    expect([plan.steps, plan.evalEvery]).toEqual([20, 5]);
    expect(plan.valImages).toBeLessThanOrEqual(32);
    expect(plan.testImages).toBeLessThanOrEqual(32);
    expect(plan.beamImages).toBeLessThanOrEqual(plan.testImages!);
    expect(captioningPlan(false, 3).evalEvery).toBe(1);
    expect(captioningConfig(plan, budget).warmup).toBe(2);
  });
});

const obj = (colour: ShapeObject['colour'], shape: ShapeObject['shape'], x0: number): ShapeObject => ({ shape, colour, size: 'small', x0, y0: 10 });

describe('compositionalErrors', () => {
  it('counts held-out objects named by colour and shape, and what lone held-out objects are called', () => {
    const holdout = new Set(['red:square', 'blue:circle']);
    const items = [
      { scene: [obj('red', 'square', 0)], caption: 'a small red square' },
      { scene: [obj('red', 'square', 0)], caption: 'a small red triangle' },
      { scene: [obj('red', 'square', 0)], caption: 'a large red triangle' },
      { scene: [obj('blue', 'circle', 0)], caption: 'a small red' },
      // Two objects, both held out; the caption names one of them (the wrong size does not matter here).
      { scene: [obj('red', 'square', 0), obj('blue', 'circle', 40)], caption: 'a large red square left of a small blue triangle' },
      { scene: [obj('green', 'circle', 0), obj('blue', 'circle', 40)], caption: 'a small green circle left of a small blue circle' },
    ];
    const e = compositionalErrors(items, holdout);
    expect(e.heldOutObjects).toBe(7);
    expect(e.heldOutNamed).toBe(3);
    expect(e.singles).toEqual([
      { pair: 'red:square', said: 'red triangle', count: 2 },
      { pair: 'blue:circle', said: '(no single object)', count: 1 },
      { pair: 'red:square', said: 'red square', count: 1 },
    ]);
  });
});

describe('captioningReport', () => {
  const curve: CurvePoint[] = [
    { step: 5, trainLoss: 2.9, valLoss: 2.8, bleu4: 0.1, accuracy: 0 },
    { step: 10, trainLoss: 1.2, valLoss: 1.1, bleu4: 0.5, accuracy: 0.25 },
  ];
  const row = (split: string, decoding: string, images: number, accuracy: number) => ({ split, decoding, images, loss: 0.5, bleu1: 0.9, bleu2: 0.8, bleu3: 0.7, bleu4: 0.6, accuracy, seconds: 1.5 });
  const data = (quick: boolean): CaptioningData => ({
    plan: { ...captioningPlan(quick, 10), beamImages: 16 },
    parameters: 1234, vocabulary: 21, trainingImages: 800, curve,
    results: [
      row('test', 'greedy', 64, 0.5), row('test', 'greedy', 16, 0.5), row('test', 'beam 3', 16, 0.5625),
      row('compositional', 'greedy', 64, 0.125), row('compositional', 'greedy', 16, 0.0625), row('compositional', 'beam 3', 16, 0.125),
    ],
    errors: { heldOutObjects: 80, heldOutNamed: 20, singles: [{ pair: 'red:square', said: 'red triangle', count: 9 }] },
    gallery: [{ split: 'test', caption: 'a small red', correct: false }],
    trainSeconds: 12.3, totalSeconds: 20.7, cpuSeconds: 30.2, loadAverage: { start: 1.5, end: 2.4 },
  });

  it('plots losses and quality from the curve', () => {
    const rows = curveRows(curve);
    expect(rows.losses.filter((r) => r.curve === 'validation').map((r) => r.loss)).toEqual([2.8, 1.1]);
    expect(rows.quality.filter((r) => r.metric === 'accuracy').map((r) => r.value)).toEqual([0, 0.25]);
  });

  it('writes the tables, figures and numbers of a run, named by its mode', async () => {
    const r = await captioningReport(data(false), { workers: 2, backend: 'native', quick: false });
    expect(r.name).toBe('captioning');
    expect(Object.keys(r.figures).sort()).toEqual(['captioning-loss.svg', 'captioning-quality.svg']);
    for (const svg of Object.values(r.figures)) expect(svg).toMatch(/^<svg[\s\S]*<\/svg>$/);
    expect(r.markdown).toContain('| 10 | 1.2000 | 1.1000 | 0.500 | 25.0% |');
    expect(r.markdown).toContain('| test | 64 | 50.0% | 0.900 | 0.800 | 0.700 | 0.600 | 0.5000 |');
    expect(r.markdown).toContain('| compositional | 16 | 6.3% | 12.5% | 0.600 | 0.600 | 1.5 s / 1.5 s |');
    expect(r.markdown).toContain('| red square | red triangle | 9 |');
    expect(r.markdown).toContain('name 20 (25.0%)');
    expect(r.markdown).toContain('whole experiment 21 s (0.3 min) of wall-clock time with 2 worker threads, and 30 CPU seconds');
    expect(r.markdown).toContain('load average was 1.5 at the start and 2.4 at the end');
    expect(r.markdown).toContain('![test images and their greedy captions](captioning-gallery.png)');
    expect(r.markdown).toContain('(CNN 8,16,32, H=128, 1,500 steps on 10,000 images) and writes [captioning-quick.md](captioning-quick.md)');
    expect(r.data).toEqual(data(false));
    const quick = await captioningReport(data(true), { workers: 2, backend: 'native', quick: true });
    expect(quick.name).toBe('captioning-quick');
    expect(quick.markdown).toContain('captioning-quick-gallery.png');
    expect(quick.markdown).toContain('`gradpool experiment captioning --quick`');
  });
});
