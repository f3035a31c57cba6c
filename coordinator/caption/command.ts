// `gradpool shapes`: writes a `shapes` dataset to disk as PNG files plus a captions
// file in Flickr8k's format and the split lists, so it can be looked at, or used as
// `--dataset DIR` like any other captioned image folder.

import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../../model/config.js';
import { shapesTestCount } from './dataset.js';
import { formatCaptions, writePng } from './files.js';
import { referenceCaptions } from './grammar.js';
import { type Holdout, IMAGE_SIZE, parseHoldout, shapesImage } from './shapes.js';

export const SHAPES_HELP = `Usage: gradpool shapes --out DIR [--count N] [--seed S] [--holdout COLOUR:SHAPE,…]

Writes the shapes captioning dataset (docs/CAPTIONING.md): DIR/images/*.png,
DIR/captions.txt (IMAGE#N<TAB>caption, both orders for two objects), and the splits
DIR/train.txt, DIR/val.txt, DIR/test.txt (80/10/10% of N).
  --out DIR          a new or empty directory
  --count N          images, an integer from 10 to 1000000 (default: 1000)
  --seed S           an integer from 0 to 4294967295 (default: 1)
  --holdout PAIRS    colour–shape pairs kept out of train, val and test, e.g.
                     red:square,blue:circle; adds DIR/test-compositional.txt, as many
                     images as test.txt, each with at least one held-out pair`;

function intFlag(text: string | undefined, flag: string, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === '' || !Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${flag} is ${JSON.stringify(text)}; allowed: an integer from ${min} to ${max}`);
  return n;
}

export async function shapesCommand(args: string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args,
      options: { out: { type: 'string' }, count: { type: 'string' }, seed: { type: 'string' }, holdout: { type: 'string' }, help: { type: 'boolean' } },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    throw new ConfigError(`${(e as Error).message.split('\n')[0]}; see gradpool shapes --help`);
  }
  if (values.help) {
    console.log(SHAPES_HELP);
    return 0;
  }
  if (!values.out) throw new ConfigError(`--out is required\n\n${SHAPES_HELP}`);
  const count = intFlag(values.count, '--count', 1000, 10, 1_000_000);
  const seed = intFlag(values.seed, '--seed', 1, 0, 2 ** 32 - 1);
  let holdout: Holdout = new Set();
  if (values.holdout !== undefined) {
    const parsed = parseHoldout(values.holdout);
    if ('problem' in parsed) throw new ConfigError(`--holdout: ${parsed.problem}`);
    holdout = parsed.pairs;
  }
  const out = values.out;
  if (existsSync(out) && readdirSync(out).length > 0) throw new ConfigError(`--out ${out}: the directory is not empty; give a new or empty one`);
  mkdirSync(join(out, 'images'), { recursive: true });
  const nTest = shapesTestCount(count);
  const splits: Record<string, string[]> = { train: [], val: [], test: [] };
  const captions: { image: string; index: number; caption: string }[] = [];
  const write = async (name: string, index: number, compositional: boolean) => {
    const { scene, rgb } = shapesImage(seed, index, holdout, compositional);
    await writePng(join(out, 'images', name), rgb, IMAGE_SIZE);
    referenceCaptions(scene).forEach((caption, k) => captions.push({ image: name, index: k, caption }));
  };
  for (let i = 0; i < count; i++) {
    const name = `shapes_${String(i).padStart(6, '0')}.png`;
    await write(name, i, false);
    splits[i >= count - nTest ? 'test' : i >= count - 2 * nTest ? 'val' : 'train'].push(name);
  }
  if (holdout.size > 0) {
    splits['test-compositional'] = [];
    for (let i = 0; i < nTest; i++) {
      const name = `shapes_c${String(i).padStart(6, '0')}.png`;
      await write(name, i, true);
      splits['test-compositional'].push(name);
    }
  }
  writeFileSync(join(out, 'captions.txt'), formatCaptions(captions));
  for (const [split, names] of Object.entries(splits)) writeFileSync(join(out, `${split}.txt`), names.map((n) => `${n}\n`).join(''));
  console.log(`wrote ${captions.length} captions of ${count + (holdout.size > 0 ? nTest : 0)} images to ${out} (train ${splits.train.length}, val ${splits.val.length}, test ${splits.test.length}${holdout.size > 0 ? `, compositional test ${nTest}` : ''})`);
  return 0;
}
