// `gradpool train --task caption`: the run's data (the dataset's splits, the word
// vocabulary, the batch source) and its validation, which runs on the coordinator's
// thread between steps: the validation images' reference loss, greedy captions, BLEU and
// (shapes) accuracy, and a few captions as the run's samples.

import { ConfigError, type ModelConfig } from '../../model/config.js';
import { initBackend } from '../../model/backend.js';
import { Network } from '../../model/network.js';
import type { ParamLayout } from '../../model/params.js';
import type { Vocab } from '../../model/tokenizer.js';
import type { TrainConfig } from '../config.js';
import { type CaptionDataset, type CaptionSplit, captionDirectory, shapesDataset } from './dataset.js';
import { type CaptionEval, evaluateCaptioner } from './evaluate.js';
import { encodePng } from './files.js';
import { readFeatureFile } from './features.js';
import { parseHoldout } from './shapes.js';
import { CaptionSource } from './source.js';
import { buildCaptionVocab } from './words.js';

/** Validation images per evaluation during training (the first ones of the split). */
export const CAPTION_VAL_IMAGES = 256;
/** Captions shown as a run's sample at each evaluation. */
const SAMPLE_CAPTIONS = 4;
/** Validation images in the dashboard's gallery: the split's first ones, the same at every evaluation. */
export const GALLERY_IMAGES = 12;

export interface CaptionData {
  dataset: CaptionDataset;
  train: CaptionSplit;
  val: CaptionSplit | null;
  vocab: Vocab;
  source: CaptionSource;
}

/** The dataset a captioner's config names: shapes from its seed, or a directory (its images, or the rows of a features file). */
export function captionDatasetOf(config: Pick<TrainConfig, 'dataset' | 'shapesCount' | 'shapesSeed' | 'holdout' | 'imageSize' | 'features'>): CaptionDataset {
  if (config.features !== null && config.dataset === 'shapes') throw new ConfigError('--features names the images of a directory\'s captions file; give --dataset DIR');
  if (config.dataset !== 'shapes') return captionDirectory(config.dataset!, config.imageSize ?? 0, config.features === null ? null : readFeatureFile(config.features));
  let holdout = new Set<string>() as ReadonlySet<string>;
  if (config.holdout !== null) {
    const parsed = parseHoldout(config.holdout);
    if ('problem' in parsed) throw new ConfigError(`--holdout: ${parsed.problem}`);
    holdout = parsed.pairs;
  }
  return shapesDataset(config.shapesCount!, config.shapesSeed!, holdout);
}

/** Everything a captioner's run reads, checked before the run makes anything. */
export async function openCaptionData(config: TrainConfig): Promise<CaptionData> {
  const dataset = captionDatasetOf(config);
  const train = await dataset.split('train');
  const val = dataset.hasSplit('val') ? await dataset.split('val') : null;
  const texts = function* () {
    for (let i = 0; i < train.count; i++) yield* train.references(i);
  };
  const vocab = buildCaptionVocab(texts(), config.vocabCap);
  return { dataset, train, val, vocab, source: new CaptionSource(train, vocab, config.seqLen, config.batch, config.seed) };
}

/** What a captioner's encoder reads, for the run's first line. */
export function describeEncoder(model: ModelConfig): string {
  if (model.featureSize > 0) return `linear encoder over ${model.featureSize} precomputed features per image`;
  return `CNN ${model.cnn.join(',')} on ${model.imageSize}×${model.imageSize} images`;
}

/** The run's header line about its data. */
export function describeCaptionData(data: CaptionData): string {
  const { source } = data;
  const left = source.skipped > 0 ? `; ${source.skipped} captions longer than ${source.T - 1} words left out` : '';
  return `${data.dataset.description}: ${source.images.toLocaleString('en-US')} training images, ${source.captions.toLocaleString('en-US')} captions${left} (vocabulary ${data.vocab.tokens.length})`;
}

/** Whether the run validates its captioner (a validation split, and --eval-every > 0): CaptionValidator.start's test. */
export function validatesCaptions(config: Pick<TrainConfig, 'evalEvery'>, data: CaptionData): data is CaptionData & { val: CaptionSplit } {
  return data.val !== null && config.evalEvery > 0;
}

/** The gallery's images as PNG: the validation split's first GALLERY_IMAGES (its captions are
 *  the first ones of every CaptionEval, CAPTION_VAL_IMAGES ≥ GALLERY_IMAGES). */
export async function galleryImages(val: CaptionSplit, imageSize: number): Promise<{ name: string; png: Uint8Array }[]> {
  const count = Math.min(GALLERY_IMAGES, val.count);
  return Promise.all(Array.from({ length: count }, async (_, i) => ({ name: val.imageName(i), png: await encodePng(val.image(i), imageSize) })));
}

/** Validation on this thread: a Network of its own, loaded with the weights of the step. */
export class CaptionValidator {
  private readonly net: Network;

  private constructor(layout: ParamLayout, private readonly vocab: Vocab, private readonly val: CaptionSplit, private readonly maxLength: number) {
    this.net = new Network(layout);
  }

  static async start(config: TrainConfig, layout: ParamLayout, data: CaptionData): Promise<CaptionValidator | null> {
    if (!validatesCaptions(config, data)) return null;
    await initBackend(config.backend);
    return new CaptionValidator(layout, data.vocab, data.val, config.seqLen);
  }

  validate(params: Float32Array): CaptionEval & { sample: string } {
    this.net.setParams(params);
    const r = evaluateCaptioner(this.net, this.vocab, this.val, { limit: CAPTION_VAL_IMAGES, beam: 1, maxLength: this.maxLength });
    const sample = r.captions.slice(0, SAMPLE_CAPTIONS).map((c) => `${c.image}: ${c.caption}  (reference: ${c.references[0]})`).join('\n');
    return { ...r, sample };
  }

  close(): void {
    this.net.dispose();
  }
}
