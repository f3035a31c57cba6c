// `gradpool caption` (captions of image files) and `gradpool eval --dataset` (a
// captioner's loss, BLEU and, on shapes, accuracy on a split), both from a model file
// written by `gradpool train --task caption`. A captioner over precomputed features reads
// rows of a features file (--features FILE) instead of image files.

import { parseArgs } from 'node:util';
import { initBackend } from '../../model/backend.js';
import { beamCaption, decodeCaptions } from '../../model/captioner.js';
import { ConfigError } from '../../model/config.js';
import { type ModelFile, loadModelFile } from '../../model/modelfile.js';
import { DataError } from '../../model/tokenizer.js';
import { Network } from '../../model/network.js';
import { InputError, numberFlag } from '../../proto/flags.js';
import { backendFlag, CAPTION_DEFAULTS } from '../config.js';
import { SPLITS, type SplitName } from './dataset.js';
import { evaluateCaptioner } from './evaluate.js';
import { type FeatureFile, readFeatureFile } from './features.js';
import { readImage } from './files.js';
import { captionDatasetOf } from './task.js';
import { decodeCaption } from './words.js';

export const CAPTION_HELP = `Usage: gradpool caption --model FILE --image FILE… [options]
       gradpool caption --model FILE --features FEATURES --image NAME… [options]

Captions PNG or JPEG images with a captioner (gradpool train --task caption): greedy
by default, with --beam K by beam search, with --temperature X by sampling. A captioner
trained on precomputed features (--features) captions rows of a features file instead.
  --model FILE        the captioner's model file (.safetensors)
  --image FILE…       images to caption (the flag may repeat; further file names follow it);
                      with --features, the names of their rows in FEATURES
  --features FILE     a features file (safetensors: "features" [N, D], metadata "images"),
                      for a captioner over precomputed features
  --beam K            beam search with K hypotheses, an integer from 1 to 100 (1 = greedy)
  --temperature X     sample each word from softmax(logits / X) instead, X > 0
  --seed S            seed of the sampling (default: 1)
  --max-length N      most words generated, <end> included (default: the run's caption length)
  --json              one line per image: {"image": PATH, "caption": TEXT}
  --backend NAME      wasm, cpu or native (default: wasm)`;

export const EVAL_CAPTION_HELP = `Usage: gradpool eval --model FILE --dataset shapes|DIR [options]

A captioner on a split: the mean cross-entropy of the reference captions (nats per word
and <end>), corpus BLEU-1…4 of its captions against every reference, and on shapes the
accuracy (the share of images whose caption is correct; docs/CAPTIONING.md).
  --split NAME        train, val, test or test-compositional (default: test)
  --beam K            beam search with K hypotheses (default: 1, greedy)
  --limit N           the split's first N images only
  --max-length N      most words generated, <end> included (default: the run's caption length)
  --shapes-count N, --shapes-seed S, --holdout PAIRS
                      the shapes dataset (default: the training run's, from the model file)
  --features FILE     the directory's precomputed image features, for a captioner over
                      features (safetensors: "features" [N, D], metadata "images")
  --json              print {"loss", "bleu1", "bleu2", "bleu3", "bleu4", "accuracy", "images"}
  --backend NAME      wasm, cpu or native (default: wasm)`;

/** A captioner's model file, and the config of the run that wrote it (when it says). */
async function loadCaptioner(path: string): Promise<{ model: ModelFile; run: Record<string, unknown> }> {
  const model = await loadModelFile(path);
  if (model.config.task !== 'caption') throw new ConfigError(`${path} holds a language model, not a captioner; gradpool sample and gradpool eval --data read it`);
  let run: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(model.metadata['gradpool.run'] ?? '{}') as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) run = parsed as Record<string, unknown>;
  } catch {
    /* a file from elsewhere: the defaults apply */
  }
  return { model, run };
}

/**
 * A features file for a captioner over D features, or null for one of images; `given` is
 * --features. Each mismatch (no file for a features model, a file for an image model,
 * another D) is an error naming both files.
 */
function featuresFor(model: ModelFile, modelPath: string, given: string | undefined, images: string): FeatureFile | null {
  const D = model.config.featureSize;
  if (D === 0) {
    if (given !== undefined) throw new ConfigError(`--features is for a captioner over precomputed features; ${modelPath} reads ${model.config.imageSize}-pixel images`);
    return null;
  }
  if (given === undefined || given === '') {
    throw new ConfigError(`${modelPath} is a captioner over ${D} precomputed features per image, not images: give --features FILE (${images})`);
  }
  const file = readFeatureFile(given);
  checkFeatureSize(file.size, file.path, model, modelPath);
  return file;
}

function checkFeatureSize(size: number, path: string, model: ModelFile, modelPath: string): void {
  if (size !== model.config.featureSize) {
    throw new ConfigError(`features file ${path} has ${size} values per image; the model ${modelPath} reads ${model.config.featureSize}`);
  }
}

function maxLengthOf(text: string | undefined, run: Record<string, unknown>): number {
  const given = numberFlag(text, '--max-length', { integer: true, min: 1, max: 1000 });
  return given ?? (typeof run.seqLen === 'number' ? run.seqLen : CAPTION_DEFAULTS.seqLen);
}

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(args: string[], options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>, command: string, positionals: boolean): { values: Values; positionals: string[] } {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean' } }, strict: true, allowPositionals: positionals }) as { values: Values; positionals: string[] };
  } catch (e) {
    throw new InputError(`${(e as Error).message.replace(/\. To specify a positional argument.*$/s, '').replace(/\n+/g, ' ')}; see gradpool ${command} --help`);
  }
}

export async function captionCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    model: { type: 'string' }, image: { type: 'string', multiple: true }, features: { type: 'string' }, beam: { type: 'string' }, temperature: { type: 'string' },
    seed: { type: 'string' }, 'max-length': { type: 'string' }, json: { type: 'boolean' }, backend: { type: 'string' },
  }, 'caption', true);
  if (values.help) {
    console.log(CAPTION_HELP);
    return 0;
  }
  if (typeof values.model !== 'string' || values.model === '') throw new ConfigError(`--model is required\n\n${CAPTION_HELP}`);
  const images = [...((values.image as string[] | undefined) ?? []), ...positionals];
  if (images.length === 0) throw new ConfigError(`--image is required: one or more PNG or JPEG files\n\n${CAPTION_HELP}`);
  const beam = numberFlag(values.beam as string | undefined, '--beam', { integer: true, min: 1, max: 100 }) ?? 1;
  const temperature = numberFlag(values.temperature as string | undefined, '--temperature', { integer: false, min: 0, minExclusive: true, max: 100 }) ?? null;
  if (temperature !== null && values.beam !== undefined) throw new ConfigError('--beam and --temperature exclude each other');
  const seed = numberFlag(values.seed as string | undefined, '--seed', { integer: true, min: 0, max: 2 ** 32 - 1 }) ?? 1;
  const backend = backendFlag(values.backend as string | undefined);
  const { model, run } = await loadCaptioner(values.model);
  const maxLength = maxLengthOf(values['max-length'] as string | undefined, run);
  const side = model.config.imageSize;
  const features = featuresFor(model, values.model, values.features as string | undefined, 'and the names of its rows as --image NAME…');
  const pixels: Uint8Array[] = [];
  for (const path of images) {
    if (!features) pixels.push(await readImage(path, side));
    else pixels.push(features.row(path) ?? noRow(path, features));
  }
  await initBackend(backend);
  const net = new Network(model.layout);
  try {
    net.setParams(model.params);
    const vocab = { kind: model.tokens, tokens: model.vocab };
    const ids =
      beam > 1 || temperature === null
        ? pixels.map((rgb) => beamCaption(net, rgb, beam, maxLength))
        : decodeCaptions(net, concat(pixels), pixels.length, { maxLength, temperature, seed });
    ids.forEach((caption, i) => {
      const text = decodeCaption(vocab, caption);
      console.log(values.json ? JSON.stringify({ image: images[i], caption: text }) : `${images[i]}: ${text}`);
    });
  } finally {
    net.dispose();
  }
  return 0;
}

function noRow(name: string, features: FeatureFile): never {
  throw new DataError(`--image ${name}: no row in features file ${features.path} (its metadata "images" does not name it)`);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** `gradpool eval --dataset …`: the flags cli.ts does not know, parsed here. */
export async function evalCaptionCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {
    model: { type: 'string' }, dataset: { type: 'string' }, split: { type: 'string' }, beam: { type: 'string' }, limit: { type: 'string' },
    'max-length': { type: 'string' }, 'shapes-count': { type: 'string' }, 'shapes-seed': { type: 'string' }, holdout: { type: 'string' },
    features: { type: 'string' }, json: { type: 'boolean' }, backend: { type: 'string' },
  }, 'eval', false);
  if (values.help) {
    console.log(EVAL_CAPTION_HELP);
    return 0;
  }
  if (typeof values.model !== 'string' || values.model === '') throw new ConfigError(`--model is required\n\n${EVAL_CAPTION_HELP}`);
  const dataset = values.dataset as string;
  if (dataset === '') throw new ConfigError('--dataset is empty; allowed: shapes or a directory');
  const split = (values.split as string | undefined) ?? 'test';
  if (!(SPLITS as readonly string[]).includes(split)) throw new ConfigError(`--split is ${JSON.stringify(split)}; allowed: ${SPLITS.join(', ')}`);
  const beam = numberFlag(values.beam as string | undefined, '--beam', { integer: true, min: 1, max: 100 }) ?? 1;
  const limit = numberFlag(values.limit as string | undefined, '--limit', { integer: true, min: 1, max: 1e9 }) ?? null;
  const backend = backendFlag(values.backend as string | undefined);
  const { model, run } = await loadCaptioner(values.model);
  const maxLength = maxLengthOf(values['max-length'] as string | undefined, run);
  const shapes = dataset === 'shapes';
  const features = values.features as string | undefined;
  if (model.config.featureSize > 0 && (features === undefined || features === '')) {
    throw new ConfigError(`${values.model} is a captioner over ${model.config.featureSize} precomputed features per image, not images: give --features FILE for --dataset DIR`);
  }
  if (model.config.featureSize === 0 && features !== undefined) {
    throw new ConfigError(`--features is for a captioner over precomputed features; ${values.model} reads ${model.config.imageSize}-pixel images`);
  }
  if (!shapes && (values['shapes-count'] ?? values['shapes-seed'] ?? values.holdout) !== undefined) {
    throw new ConfigError('--shapes-count, --shapes-seed and --holdout are for --dataset shapes');
  }
  const fromRun = (key: string, flag: string, fallback: number) =>
    numberFlag(values[flag] as string | undefined, `--${flag}`, { integer: true, min: key === 'shapesSeed' ? 0 : 10, max: key === 'shapesSeed' ? 2 ** 32 - 1 : 10_000_000 }) ??
    (run.dataset === 'shapes' && typeof run[key] === 'number' ? (run[key] as number) : fallback);
  const data = captionDatasetOf({
    dataset,
    imageSize: model.config.imageSize,
    shapesCount: fromRun('shapesCount', 'shapes-count', CAPTION_DEFAULTS.shapesCount),
    shapesSeed: fromRun('shapesSeed', 'shapes-seed', CAPTION_DEFAULTS.shapesSeed),
    holdout: (values.holdout as string | undefined) ?? (run.dataset === 'shapes' && typeof run.holdout === 'string' ? run.holdout : null),
    features: features ?? null,
  });
  if (features !== undefined) checkFeatureSize(data.featureSize, features, model, values.model);
  if (shapes && model.config.imageSize !== data.imageSize) {
    throw new ConfigError(`${values.model} reads ${model.config.imageSize}-pixel images; shapes images are ${data.imageSize}`);
  }
  const images = await data.split(split as SplitName);
  await initBackend(backend);
  const net = new Network(model.layout);
  try {
    net.setParams(model.params);
    const r = evaluateCaptioner(net, { kind: model.tokens, tokens: model.vocab }, images, { limit, beam, maxLength });
    const { loss, bleu1, bleu2, bleu3, bleu4, accuracy } = r;
    if (values.json) {
      console.log(JSON.stringify({ loss, bleu1, bleu2, bleu3, bleu4, accuracy, images: r.images }));
    } else {
      const acc = accuracy === null ? '' : `, accuracy ${(100 * accuracy).toFixed(2)}%`;
      console.log(
        `${split} split of ${data.description}: loss ${loss.toFixed(4)} nats/token, BLEU-1 ${bleu1.toFixed(4)}, BLEU-2 ${bleu2.toFixed(4)}, ` +
          `BLEU-3 ${bleu3.toFixed(4)}, BLEU-4 ${bleu4.toFixed(4)}${acc} over ${r.images} images (${beam > 1 ? `beam ${beam}` : 'greedy'})`,
      );
    }
  } finally {
    net.dispose();
  }
  return 0;
}
