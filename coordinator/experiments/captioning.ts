// `gradpool experiment captioning`: a captioner trained on shapes with some colour–shape
// pairs held out, through the real coordinator and worker pool. Learning curves (training
// and validation loss, BLEU-4, accuracy), then the test split greedy and with a beam, the
// compositional split (only scenes with a held-out pair), and a gallery picture.

import { loadavg } from 'node:os';
import { Network } from '../../model/network.js';
import { buildLayout } from '../../model/params.js';
import { initBackend } from '../../model/backend.js';
import { effectiveShards, type TrainConfig, modelConfigOf, resolveTrainConfig } from '../config.js';
import { type CaptionEval, evaluateCaptioner } from '../caption/evaluate.js';
import type { CaptionSplit } from '../caption/dataset.js';
import { openCaptionData } from '../caption/task.js';
import { PoolExecutor } from '../pool.js';
import { Trainer } from '../trainer.js';
import { galleryPng } from './gallery.js';
import { type CaptioningData, captioningReport, compositionalErrors } from './captioning-report.js';
import type { Report } from './report.js';
import type { Budget } from './runner.js';
import { type CaptioningPlan, type CurvePoint, captioningPlan } from './captioning-plan.js';

/** The run's config: the captioner's defaults with the plan's sizes (validated as `gradpool train` validates). */
export function captioningConfig(plan: CaptioningPlan, budget: Budget): TrainConfig {
  return resolveTrainConfig(
    {
      task: 'caption', dataset: 'shapes', holdout: plan.holdout, shapesCount: plan.shapesCount, cnn: plan.cnn, hidden: plan.hidden, embed: plan.embed,
      batch: plan.batch, workers: budget.workers, steps: plan.steps, evalEvery: plan.evalEvery,
      backend: budget.backend, seed: 1,
    },
    {},
    'captioning experiment',
  );
}

export type CaptioningOptions = Budget & { quick: boolean; steps?: number; log?: (line: string) => void };

export async function captioningExperiment(o: CaptioningOptions): Promise<Report> {
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const loadAtStart = loadavg()[0];
  const plan = captioningPlan(o.quick, o.steps);
  const config = captioningConfig(plan, o);
  const data = await openCaptionData(config);
  const layout = buildLayout(modelConfigOf(config), data.vocab.tokens.length);
  o.log?.(`captioning: CNN ${plan.cnn} → LSTM H=${plan.hidden}, ${layout.size.toLocaleString('en-US')} parameters; ${data.train.count.toLocaleString('en-US')} training images, holding out ${plan.holdout}; ${plan.steps} steps`);
  await initBackend(o.backend);
  const net = new Network(layout);
  const curve: CurvePoint[] = [];
  const executor = new PoolExecutor({ runId: 'exp-captioning', layout, backend: o.backend, workers: o.workers, stepTimeoutMs: 600_000, maxAttempts: 3 });
  const trainer = new Trainer(config, { executor, task: { model: layout.config, source: data.source, vocab: data.vocab }, shards: effectiveShards(config) });
  const evaluate = (split: CaptionSplit, limit: number | null, beam: number): CaptionEval => {
    net.setParams(trainer.state.params);
    return evaluateCaptioner(net, data.vocab, split, { limit, beam, maxLength: config.seqLen });
  };
  let lossSum = 0;
  let lossCount = 0;
  try {
    executor.publish(trainer.state.params, trainer.state.step);
    while (trainer.state.step < plan.steps) {
      const r = await trainer.step();
      lossSum += r.loss;
      lossCount += 1;
      if (r.step % plan.evalEvery === 0 || r.step === plan.steps) {
        const v = evaluate(data.val!, plan.valImages, 1);
        curve.push({ step: r.step, trainLoss: lossSum / lossCount, valLoss: v.loss, bleu4: v.bleu4, accuracy: v.accuracy! });
        o.log?.(`captioning step ${r.step}: training loss ${(lossSum / lossCount).toFixed(4)}, validation loss ${v.loss.toFixed(4)} nats/token, BLEU-4 ${v.bleu4.toFixed(3)}, accuracy ${(100 * v.accuracy!).toFixed(1)}% (${v.images} images, greedy)`);
        lossSum = 0;
        lossCount = 0;
      }
    }
  } catch (e) {
    net.dispose();
    throw e;
  } finally {
    await trainer.close();
  }
  const trainSeconds = (performance.now() - started) / 1000;
  try {
    const test = await data.dataset.split('test');
    const compositional = await data.dataset.split('test-compositional');
    const results: CaptioningData['results'] = [];
    const measure = (split: CaptionSplit, label: string, limit: number | null, beam: number): CaptionEval => {
      const since = performance.now();
      const r = evaluate(split, limit, beam);
      const seconds = (performance.now() - since) / 1000;
      const { loss, bleu1, bleu2, bleu3, bleu4, accuracy, images } = r;
      results.push({ split: label, decoding: beam > 1 ? `beam ${beam}` : 'greedy', images, loss, bleu1, bleu2, bleu3, bleu4, accuracy: accuracy!, seconds });
      o.log?.(`captioning ${label}, ${beam > 1 ? `beam ${beam}` : 'greedy'}: BLEU-4 ${bleu4.toFixed(3)}, accuracy ${(100 * accuracy!).toFixed(2)}% over ${images} images (${seconds.toFixed(0)} s)`);
      return r;
    };
    const testGreedy = measure(test, 'test', plan.testImages, 1);
    measure(test, 'test', plan.beamImages, 1);
    measure(test, 'test', plan.beamImages, plan.beam);
    const compGreedy = measure(compositional, 'compositional', plan.testImages, 1);
    measure(compositional, 'compositional', plan.beamImages, 1);
    measure(compositional, 'compositional', plan.beamImages, plan.beam);
    const tiles = [
      ...testGreedy.captions.slice(0, plan.gallery.test).map((c, i) => ({ rgb: test.image(i), caption: c.caption, correct: c.correct! })),
      ...compGreedy.captions.slice(0, plan.gallery.compositional).map((c, i) => ({ rgb: compositional.image(i), caption: c.caption, correct: c.correct! })),
    ];
    const gallery = await galleryPng(tiles, { side: data.dataset.imageSize, columns: 4, scale: 2 });
    const holdout = new Set(plan.holdout.split(','));
    const errors = compositionalErrors(compGreedy.captions.map((c, i) => ({ caption: c.caption, scene: compositional.scene!(i) })), holdout);
    const report = await captioningReport(
      {
        plan, parameters: layout.size, vocabulary: data.vocab.tokens.length, trainingImages: data.train.count, curve, results, errors,
        gallery: tiles.map((t, i) => ({ split: i < plan.gallery.test ? 'test' : 'compositional', caption: t.caption, correct: t.correct })),
        trainSeconds, totalSeconds: (performance.now() - started) / 1000,
        // This process's CPU time, worker threads included: what the run cost, whatever else the machine ran.
        cpuSeconds: cpuSecondsSince(cpuStarted), loadAverage: { start: loadAtStart, end: loadavg()[0] },
      },
      o,
    );
    report.figures[`${report.name}-gallery.png`] = gallery;
    return report;
  } finally {
    net.dispose();
  }
}

function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}
