// The captioning experiment's report from its raw numbers (so it can be rebuilt from the
// JSON): learning curves as SVG, the test and compositional tables, what the captioner says
// about held-out pairs, and the gallery picture's caption list.

import { parseCaption } from '../caption/grammar.js';
import { type Holdout, type Scene, pairOf } from '../caption/shapes.js';
import { type CaptioningPlan, type CurvePoint, captioningPlan } from './captioning-plan.js';
import { lineChartSvg } from './plot.js';
import { type Report, table } from './report.js';

export interface EvalRow {
  split: string;
  decoding: string;
  images: number;
  loss: number;
  bleu1: number;
  bleu2: number;
  bleu3: number;
  bleu4: number;
  accuracy: number;
  seconds: number;
}

/** How the captioner names the held-out objects of the compositional split. */
export interface CompositionalErrors {
  /** Held-out objects in the scenes, and how many of them the caption names by colour and shape. */
  heldOutObjects: number;
  heldOutNamed: number;
  /** One-object scenes (the object is a held-out pair): what the caption calls it, commonest first. */
  singles: { pair: string; said: string; count: number }[];
}

export interface CaptioningData {
  plan: CaptioningPlan;
  parameters: number;
  vocabulary: number;
  trainingImages: number;
  curve: CurvePoint[];
  results: EvalRow[];
  errors: CompositionalErrors;
  gallery: { split: string; caption: string; correct: boolean }[];
  trainSeconds: number;
  totalSeconds: number;
  /** CPU seconds of the experiment's process (all its threads). */
  cpuSeconds: number;
  /** The machine's 1-minute load average when the experiment started and ended. */
  loadAverage: { start: number; end: number };
}

/** Counts, over compositional scenes, whether each held-out object's colour–shape pair is named, and what one-object scenes are called. */
export function compositionalErrors(items: readonly { caption: string; scene: Scene }[], holdout: Holdout): CompositionalErrors {
  let heldOutObjects = 0;
  let heldOutNamed = 0;
  const said = new Map<string, number>();
  for (const { caption, scene } of items) {
    const parsed = parseCaption(caption);
    const named = new Set(parsed?.objects.map(pairOf) ?? []);
    for (const o of scene) {
      if (!holdout.has(pairOf(o))) continue;
      heldOutObjects++;
      if (named.has(pairOf(o))) heldOutNamed++;
    }
    if (scene.length === 1) {
      const what = parsed?.objects.length === 1 ? `${parsed.objects[0].colour} ${parsed.objects[0].shape}` : '(no single object)';
      const key = `${pairOf(scene[0])}\t${what}`;
      said.set(key, (said.get(key) ?? 0) + 1);
    }
  }
  const singles = [...said.entries()]
    .map(([key, count]) => ({ pair: key.split('\t')[0], said: key.split('\t')[1], count }))
    .sort((a, b) => b.count - a.count || a.pair.localeCompare(b.pair) || a.said.localeCompare(b.said));
  return { heldOutObjects, heldOutNamed, singles };
}

/** The quick plan in words, for the full report. */
function quickSizes(): string {
  const q = captioningPlan(true);
  return `CNN ${q.cnn}, H=${q.hidden}, ${q.steps.toLocaleString('en-US')} steps on ${q.shapesCount.toLocaleString('en-US')} images`;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const f3 = (x: number) => x.toFixed(3);

/** Learning-curve rows for the two plots: losses, and BLEU-4 with accuracy. */
export function curveRows(curve: readonly CurvePoint[]): { losses: { step: number; loss: number; curve: string }[]; quality: { step: number; value: number; metric: string }[] } {
  return {
    losses: curve.flatMap((p) => [
      { step: p.step, loss: p.trainLoss, curve: 'training (mean since the last point)' },
      { step: p.step, loss: p.valLoss, curve: 'validation' },
    ]),
    quality: curve.flatMap((p) => [
      { step: p.step, value: p.bleu4, metric: 'BLEU-4' },
      { step: p.step, value: p.accuracy, metric: 'accuracy' },
    ]),
  };
}

export async function captioningReport(data: CaptioningData, o: { workers: number; backend: string; quick: boolean }): Promise<Report> {
  const { plan, curve, results, errors } = data;
  const name = o.quick ? 'captioning-quick' : 'captioning';
  const rows = curveRows(curve);
  const lossSvg = await lineChartSvg({
    title: 'Captioning: loss (nats per word and <end>)', rows: rows.losses, x: 'step', y: 'loss', color: 'curve', xTitle: 'step', yTitle: 'nats/token', yScale: 'log', points: true,
  });
  const qualitySvg = await lineChartSvg({
    title: `Captioning: validation BLEU-4 and accuracy (first ${plan.valImages} images, greedy)`, rows: rows.quality, x: 'step', y: 'value', color: 'metric',
    xTitle: 'step', yTitle: 'BLEU-4 / accuracy', yDomain: [0, 1], points: true,
  });
  const find = (split: string, decoding: string, images: number) => results.find((r) => r.split === split && r.decoding === decoding && r.images === images);
  const pairedRows = ['test', 'compositional'].flatMap((split) => {
    const greedy = find(split, 'greedy', Math.min(plan.beamImages, results.find((r) => r.split === split)?.images ?? 0));
    const beam = find(split, `beam ${plan.beam}`, greedy?.images ?? -1);
    return greedy && beam ? [[split, greedy.images, pct(greedy.accuracy), pct(beam.accuracy), f3(greedy.bleu4), f3(beam.bleu4), `${greedy.seconds.toFixed(1)} s / ${beam.seconds.toFixed(1)} s`]] : [];
  });
  const full = ['test', 'compositional'].map((split) => results.find((r) => r.split === split && r.decoding === 'greedy')!).filter((r) => r !== undefined);
  const singles = errors.singles.slice(0, 8).map((s) => [s.pair.replace(':', ' '), s.said, s.count]);
  const markdown = [
    o.quick ? '# Captioning (quick mode)' : '# Captioning',
    '',
    `A captioner (docs/CAPTIONING.md: a CNN ${plan.cnn} encoder, an LSTM decoder with H=${plan.hidden}, E=${plan.embed}; ` +
      `${data.parameters.toLocaleString('en-US')} parameters, vocabulary ${data.vocabulary}) trained on the shapes dataset ` +
      `(${plan.shapesCount.toLocaleString('en-US')} images, ${data.trainingImages.toLocaleString('en-US')} for training) with the colour–shape pairs ` +
      `**${plan.holdout.split(',').map((p) => p.replace(':', ' ')).join('** and **')}** held out of training, validation and test: ` +
      `no training image shows a red square or a blue circle, though red, square, blue and circle each appear in other pairs. The ` +
      `compositional split draws only scenes with at least one held-out pair.`,
    '',
    `Protocol: ${plan.steps.toLocaleString('en-US')} steps of B=${plan.batch} (image, caption) pairs, Adam at lr 0.001 with warm-up and cosine decay ` +
      `(the captioner's defaults), trained through the real coordinator and ${o.workers} worker threads (${o.backend} backend), seed 1. ` +
      `Every ${plan.evalEvery} steps the first ${plan.valImages} validation images are captioned greedily. At the end the test and compositional ` +
      `splits are captioned greedily${plan.testImages === null ? '' : ` (first ${plan.testImages} images each)`}, and their first ${plan.beamImages} images ` +
      `also with a beam of ${plan.beam}. Accuracy is the share of images whose caption parses and is true of the scene; BLEU is corpus BLEU against both ` +
      `reference orders. Reproduce: \`gradpool experiment captioning${o.quick ? ' --quick' : ''}\`.` +
      (o.quick
        ? ' **Quick mode**: a smaller CNN and decoder, fewer images and steps; without `--quick` the experiment writes captioning.md.'
        : ` \`--quick\` runs a smaller version (${quickSizes()}) and writes [captioning-quick.md](captioning-quick.md).`),
    '',
    '## Learning curves',
    '',
    `![loss](${name}-loss.svg)`,
    '',
    `![BLEU-4 and accuracy](${name}-quality.svg)`,
    '',
    table(['step', 'training loss', 'validation loss', 'BLEU-4', 'accuracy'], curve.map((p) => [p.step, p.trainLoss.toFixed(4), p.valLoss.toFixed(4), f3(p.bleu4), pct(p.accuracy)])),
    '',
    '## Test and compositional splits (greedy)',
    '',
    table(
      ['split', 'images', 'accuracy', 'BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'loss (nats/token)'],
      full.map((r) => [r.split, r.images.toLocaleString('en-US'), pct(r.accuracy), f3(r.bleu1), f3(r.bleu2), f3(r.bleu3), f3(r.bleu4), r.loss.toFixed(4)]),
    ),
    '',
    `## Greedy against beam ${plan.beam} (the same first ${plan.beamImages} images)`,
    '',
    table(['split', 'images', 'accuracy, greedy', `accuracy, beam ${plan.beam}`, 'BLEU-4, greedy', `BLEU-4, beam ${plan.beam}`, 'time greedy / beam'], pairedRows),
    '',
    '## The held-out pairs',
    '',
    `Of the ${errors.heldOutObjects.toLocaleString('en-US')} held-out objects in the compositional scenes, the greedy captions name ` +
      `${errors.heldOutNamed.toLocaleString('en-US')} (${pct(errors.heldOutNamed / Math.max(1, errors.heldOutObjects))}) by their colour and shape. ` +
      'What the captioner calls a held-out object when it is alone in the image (commonest first):',
    '',
    table(['object', 'caption says', 'images'], singles),
    '',
    '## Gallery',
    '',
    `![test images and their greedy captions](${name}-gallery.png)`,
    '',
    `The first ${plan.gallery.test} test images, then the first ${plan.gallery.compositional} compositional ones (bottom row), each with its greedy caption ` +
      '(✓ correct, ✗ not), upscaled 2×.',
    '',
    '## Time',
    '',
    `Training took ${data.trainSeconds.toFixed(0)} s, the whole experiment ${data.totalSeconds.toFixed(0)} s (${(data.totalSeconds / 60).toFixed(1)} min) ` +
      `of wall-clock time with ${o.workers} worker threads, and ${data.cpuSeconds.toFixed(0)} CPU seconds (all threads of the process). The machine's ` +
      `load average was ${data.loadAverage.start.toFixed(1)} at the start and ${data.loadAverage.end.toFixed(1)} at the end: with other work on its cores ` +
      'the wall-clock time is an upper bound, the CPU time the cost.',
    '',
  ].join('\n');
  return { name, markdown, figures: { [`${name}-loss.svg`]: lossSvg, [`${name}-quality.svg`]: qualitySvg }, data };
}
