// The captioning part of `gradpool train`'s config: a captioner's defaults, the keys each
// task refuses, and the CNN's channel list (coordinator/config.ts resolves the whole).

import { ConfigError } from '../../model/config.js';
import type { TrainConfig } from '../config.js';
import { checkFeatureKeys } from './features.js';

/**
 * A captioner's defaults where they differ from a language model's (chosen to reach ≥ 95%
 * test accuracy on shapes; docs/CAPTIONING.md has the measurement). `seqLen` is the most
 * tokens of a caption, its words and <end>; longer captions are left out.
 */
export const CAPTION_DEFAULTS = Object.freeze({
  dataset: 'shapes', cnn: '16,32,64', imageSize: 64, shapesCount: 50_000, shapesSeed: 1, tokens: 'word',
  seqLen: 16, batch: 32, embed: 64, hidden: 256, steps: 6000, lr: 1e-3, warmup: 100, lrSchedule: 'cosine',
  evalEvery: 500, sampleEvery: 0, checkpointEvery: 500,
} satisfies Partial<Record<keyof TrainConfig, unknown>>);

/** The keys of one task are errors in the other's config, each named. */
export function checkTaskKeys(cfg: TrainConfig): void {
  if (cfg.task === 'lm') {
    for (const key of ['dataset', 'cnn', 'imageSize', 'shapesCount', 'shapesSeed', 'holdout', 'features'] as const) {
      if (cfg[key] !== null) throw new ConfigError(`"${key}" is for --task caption; a language model reads --data`);
    }
    return;
  }
  if (cfg.data !== null) throw new ConfigError('"data" is for language models; a captioner reads --dataset shapes or --dataset DIR');
  if (cfg.init !== null) throw new ConfigError('"init" starts language models only; a captioner starts from fresh weights');
  if (cfg.tokens !== 'word') throw new ConfigError(`"tokens" is ${JSON.stringify(cfg.tokens)}; a captioner reads words`);
  const shapes = cfg.dataset === 'shapes';
  if (!checkFeatureKeys(cfg)) cnnChannels(cfg.cnn!);
  if (shapes && cfg.imageSize !== 64) throw new ConfigError(`"imageSize" is ${cfg.imageSize}; shapes images are 64 pixels wide`);
  if (!shapes) {
    for (const key of ['shapesCount', 'shapesSeed', 'holdout'] as const) {
      if (cfg[key] !== null && cfg[key] !== (CAPTION_DEFAULTS as Record<string, unknown>)[key]) {
        throw new ConfigError(`"${key}" is for --dataset shapes; the dataset is ${JSON.stringify(cfg.dataset)}`);
      }
    }
  }
}

/** "16,32,64" as channel counts (each block: 3×3 conv, ReLU, 2×2 max-pool). */
export function cnnChannels(text: string): number[] {
  const parts = text.split(',').map((p) => p.trim());
  const channels = parts.map(Number);
  if (parts.some((p) => !/^\d+$/.test(p)) || channels.some((c) => c < 1 || c > 4096) || channels.length > 8) {
    throw new ConfigError(`"cnn" is ${JSON.stringify(text)}; allowed: 1 to 8 channel counts, each an integer from 1 to 4096, comma-separated (e.g. 16,32,64)`);
  }
  return channels;
}
