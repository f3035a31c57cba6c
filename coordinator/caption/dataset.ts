// The captioning datasets as splits of (image, reference captions): `shapes`, drawn
// image by image from its seed (nothing is held in memory), or a directory in
// Flickr8k's layout, decoded once into memory at the model's image side — or, with a
// features file (features.ts), each image's row of precomputed features instead.
//
//   shapes, count N (as `gradpool shapes` writes it):  train [0, N−2n) · val [N−2n, N−n) · test [N−n, N),
//   n = round(N/10); with a holdout, test-compositional draws n images from its own stream.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../../model/tokenizer.js';
import type { FeatureFile } from './features.js';
import { type CaptionLine, parseCaptions, readImage } from './files.js';
import { canonicalCaption, referenceCaptions } from './grammar.js';
import { type Holdout, IMAGE_SIZE, type Scene, sampleScene, shapesImage } from './shapes.js';
import { Rng } from '../../model/rng.js';
import { captionWords } from './words.js';

export const SPLITS = ['train', 'val', 'test', 'test-compositional'] as const;
export type SplitName = (typeof SPLITS)[number];

export interface CaptionSplit {
  readonly name: SplitName;
  readonly count: number;
  /** Image i as side·side·3 RGB bytes (over features: its D float32 values as 4·D bytes). */
  image(i: number): Uint8Array;
  /** Its reference captions, as written. */
  references(i: number): readonly string[];
  /**
   * The captions to train on, when not all references (shapes: the one that names the left,
   * or else the upper, object first, so that the order of a caption is a function of the image).
   */
  trainingReferences?(i: number): readonly string[];
  /** shapes only: what image i shows (for accuracy). */
  scene?(i: number): Scene;
  /** The image's file name (as `gradpool shapes` names it). */
  imageName(i: number): string;
}

export interface CaptionDataset {
  /** "shapes (seed 1, 50,000 images)", "DIR (…)": for the run's first line. */
  readonly description: string;
  readonly imageSize: number;
  /** D when the images are rows of precomputed features, else 0. */
  readonly featureSize: number;
  readonly isShapes: boolean;
  hasSplit(name: SplitName): boolean;
  /** The split, its images decoded (a directory's on first use). */
  split(name: SplitName): Promise<CaptionSplit>;
}

/** Images per test (and validation) split of `count`: the rule of `gradpool shapes`. */
export function shapesTestCount(count: number): number {
  return Math.max(1, Math.round(count / 10));
}

/** The shapes split `name` of `count` images: [first, first + n) of the image stream, or the compositional stream. */
export function shapesSplitRange(count: number, name: SplitName): { first: number; count: number; compositional: boolean } {
  const n = shapesTestCount(count);
  switch (name) {
    case 'train':
      return { first: 0, count: count - 2 * n, compositional: false };
    case 'val':
      return { first: count - 2 * n, count: n, compositional: false };
    case 'test':
      return { first: count - n, count: n, compositional: false };
    case 'test-compositional':
      return { first: 0, count: n, compositional: true };
  }
}

export function shapesDataset(count: number, seed: number, holdout: Holdout = new Set()): CaptionDataset {
  return {
    description: `shapes (seed ${seed}, ${count.toLocaleString('en-US')} images${holdout.size ? `, holding out ${[...holdout].join(',')}` : ''})`,
    imageSize: IMAGE_SIZE,
    featureSize: 0,
    isShapes: true,
    hasSplit: (name) => name !== 'test-compositional' || holdout.size > 0,
    async split(name) {
      if (name === 'test-compositional' && holdout.size === 0) throw new DataError('the compositional test split needs a holdout (--holdout COLOUR:SHAPE,…)');
      const range = shapesSplitRange(count, name);
      const index = (i: number) => range.first + i;
      // The scene comes first in an image's stream: drawing it alone is cheap.
      const scene = (i: number) => sampleScene(new Rng(seed, range.compositional ? 0x5ca1ab1e : 0x5a9e5, index(i)), holdout, range.compositional);
      return {
        name,
        count: range.count,
        image: (i) => shapesImage(seed, index(i), holdout, range.compositional).rgb,
        references: (i) => referenceCaptions(scene(i)),
        trainingReferences: (i) => [canonicalCaption(scene(i))],
        scene,
        imageName: (i) => `shapes_${range.compositional ? 'c' : ''}${String(index(i)).padStart(6, '0')}.png`,
      };
    },
  };
}

/** The first of `names` that exists in `dir`. */
function firstExisting(dir: string, names: readonly string[]): string | null {
  for (const n of names) if (existsSync(join(dir, n))) return join(dir, n);
  return null;
}

const CAPTION_FILES = ['captions.txt', 'Flickr8k.token.txt'];
const IMAGE_DIRS = ['images', 'Flicker8k_Dataset', 'Flickr8k_Dataset'];
const SPLIT_FILES: Record<SplitName, string[]> = {
  train: ['train.txt', 'Flickr_8k.trainImages.txt'],
  val: ['val.txt', 'Flickr_8k.devImages.txt'],
  test: ['test.txt', 'Flickr_8k.testImages.txt'],
  'test-compositional': ['test-compositional.txt'],
};

/**
 * A directory of captioned images: a captions file (`captions.txt` or Flickr8k's
 * `Flickr8k.token.txt`, lines `IMAGE#N<TAB>caption`), the images (`images/` or
 * `Flicker8k_Dataset/`) and optional split lists (`train.txt`, … or Flickr8k's). Without
 * split lists the images, in the order the captions file first names them, are split
 * 80/10/10. With `features`, every captioned image must have its row there, and the image
 * folder is not read. Every problem names the file and line.
 */
export function captionDirectory(dir: string, side: number, features: FeatureFile | null = null): CaptionDataset {
  if (!existsSync(dir)) throw new DataError(`--dataset ${dir}: no such directory (or give "shapes")`);
  const captionsPath = firstExisting(dir, CAPTION_FILES);
  if (!captionsPath) throw new DataError(`--dataset ${dir}: no captions file (${CAPTION_FILES.join(' or ')})`);
  const imagesDir = features ? null : firstExisting(dir, IMAGE_DIRS);
  if (!features && !imagesDir) throw new DataError(`--dataset ${dir}: no image folder (${IMAGE_DIRS.join(' or ')})`);
  const lines = parseCaptions(readFileSync(captionsPath, 'utf8'), captionsPath);
  const byImage = new Map<string, CaptionLine[]>();
  for (const l of lines) {
    if (captionWords(l.caption).length === 0) throw new DataError(`${captionsPath}:${l.line}: the caption of ${l.image} has no words`);
    if (features && !byImage.has(l.image) && !features.row(l.image)) {
      throw new DataError(`${captionsPath}:${l.line}: image ${l.image} has no row in features file ${features.path} (its metadata "images" does not name it)`);
    }
    byImage.set(l.image, [...(byImage.get(l.image) ?? []), l]);
  }
  const names = splitNames(dir, captionsPath, byImage);
  const loaded = new Map<SplitName, CaptionSplit>();
  return {
    description: `${dir} (${byImage.size.toLocaleString('en-US')} images, ${lines.length.toLocaleString('en-US')} captions${features ? `, ${features.size} features per image from ${features.path}` : ''})`,
    imageSize: features ? 0 : side,
    featureSize: features?.size ?? 0,
    isShapes: false,
    hasSplit: (name) => names.has(name),
    async split(name) {
      const list = names.get(name);
      if (!list) throw new DataError(`--dataset ${dir}: no ${name} split (${SPLIT_FILES[name].join(' or ')})`);
      let split = loaded.get(name);
      if (!split) {
        const images: Uint8Array[] = [];
        for (const image of list) {
          const first = byImage.get(image)![0];
          if (features) {
            images.push(features.row(image)!); // every captioned image's row was checked above
            continue;
          }
          try {
            images.push(await readImage(join(imagesDir!, image), side));
          } catch (e) {
            if (e instanceof DataError) throw new DataError(`${captionsPath}:${first.line}: ${e.message}`);
            throw e;
          }
        }
        split = {
          name,
          count: list.length,
          image: (i) => images[i],
          references: (i) => byImage.get(list[i])!.map((l) => l.caption),
          imageName: (i) => list[i],
        };
        loaded.set(name, split);
      }
      return split;
    },
  };
}

/** Each split's image names: from its list file, or 80/10/10 of the captioned images. */
function splitNames(dir: string, captionsPath: string, byImage: ReadonlyMap<string, CaptionLine[]>): Map<SplitName, string[]> {
  const out = new Map<SplitName, string[]>();
  for (const name of SPLITS) {
    const path = firstExisting(dir, SPLIT_FILES[name]);
    if (!path) continue;
    const list: string[] = [];
    readFileSync(path, 'utf8').split(/\r?\n/).forEach((raw, i) => {
      const image = raw.trim();
      if (image === '') return;
      if (!byImage.has(image)) throw new DataError(`${path}:${i + 1}: image ${image} has no caption in ${captionsPath}`);
      list.push(image);
    });
    if (list.length === 0) throw new DataError(`${path}: lists no image`);
    out.set(name, list);
  }
  if (out.size > 0) return out;
  const all = [...byImage.keys()];
  const n = shapesTestCount(all.length);
  if (all.length - 2 * n < 1) throw new DataError(`${captionsPath}: ${all.length} captioned images are too few to split into train, validation and test`);
  out.set('train', all.slice(0, all.length - 2 * n));
  out.set('val', all.slice(all.length - 2 * n, all.length - n));
  out.set('test', all.slice(all.length - n));
  return out;
}
