// A captioner's data: caption words and the vocabulary, the shapes splits (the same images
// `gradpool shapes` writes), a Flickr8k-style directory with its errors (file and line),
// and the batches of a step (layout, determinism, epochs, captions too long).

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { shapesCommand } from '../../coordinator/caption/command.js';
import { type CaptionSplit, captionDirectory, shapesDataset, shapesSplitRange } from '../../coordinator/caption/dataset.js';
import { writePng } from '../../coordinator/caption/files.js';
import { parseCaption, referenceCaptions } from '../../coordinator/caption/grammar.js';
import { shapesImage } from '../../coordinator/caption/shapes.js';
import { CaptionSource } from '../../coordinator/caption/source.js';
import { buildCaptionVocab, captionWords, decodeCaption, encodeCaption, wordIndex } from '../../coordinator/caption/words.js';
import { END, PAD, START, UNK } from '../../model/caption.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-caption-data-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('caption words and vocabulary', () => {
  it('lower-cases and keeps letters, digits and apostrophes', () => {
    expect(captionWords('A dog, running (fast) on 2 legs; it\'s Ünïcode.')).toEqual(['a', 'dog', 'running', 'fast', 'on', '2', 'legs', "it's", 'ünïcode']);
    expect(captionWords(' . , ')).toEqual([]);
  });

  it('puts the special tokens first, then words by falling count, ties in code-point order, up to the cap', () => {
    const vocab = buildCaptionVocab(['a red circle', 'a blue circle', 'a red square', 'b'], 7);
    expect(vocab).toEqual({ kind: 'word', tokens: ['<pad>', '<start>', '<end>', '<unk>', 'a', 'circle', 'red'] });
    const index = wordIndex(vocab);
    expect(encodeCaption(index, 'A red square')).toEqual([4, 6, UNK]);
    expect(decodeCaption(vocab, [START, 4, 6, UNK, END, 5])).toBe('a red <unk>');
    expect(() => buildCaptionVocab(['a'], 4)).toThrow('"vocabCap" is 4; a captioner\'s vocabulary needs at least 5 tokens');
  });
});

describe('shapes splits', () => {
  it('are the images and captions gradpool shapes writes, split 80/10/10', async () => {
    const out = join(dir, 'shapes');
    expect(await shapesCommand(['--out', out, '--count', '30', '--seed', '5'])).toBe(0);
    const data = shapesDataset(30, 5);
    expect([shapesSplitRange(30, 'train'), shapesSplitRange(30, 'val'), shapesSplitRange(30, 'test')].map((r) => [r.first, r.count])).toEqual([[0, 24], [24, 3], [27, 3]]);
    const test = await data.split('test');
    const written = captionDirectory(out, 64);
    const fromFiles = await written.split('test');
    expect(fromFiles.count).toBe(test.count);
    for (let i = 0; i < test.count; i++) {
      expect(fromFiles.imageName(i)).toBe(test.imageName(i));
      expect(Buffer.from(fromFiles.image(i)).equals(Buffer.from(test.image(i)))).toBe(true);
      expect(fromFiles.references(i)).toEqual(test.references(i));
      expect(test.references(i)).toEqual(referenceCaptions(test.scene!(i)));
    }
    // Training reads one caption per image, its order a function of the image: left, or else upper, object first.
    const train = await data.split('train');
    for (let i = 0; i < train.count; i++) {
      const [only, ...rest] = train.trainingReferences!(i);
      expect(rest).toEqual([]);
      expect(train.references(i)).toContain(only);
      const scene = train.scene!(i);
      if (scene.length === 2) expect(parseCaption(only)!.relation).toMatch(/^(left of|above)$/);
    }
    expect(data.hasSplit('test-compositional')).toBe(false);
    await expect(data.split('test-compositional')).rejects.toThrow('the compositional test split needs a holdout');
  });
});

/** A directory in Flickr8k's layout; `lines` is the captions file. */
async function flickrDir(name: string, lines: string, images: string[], splits: Record<string, string> = {}): Promise<string> {
  const root = join(dir, name);
  mkdirSync(join(root, 'images'), { recursive: true });
  writeFileSync(join(root, 'captions.txt'), lines);
  for (const [i, image] of images.entries()) await writePng(join(root, 'images', image), shapesImage(1, i).rgb, 64);
  for (const [file, text] of Object.entries(splits)) writeFileSync(join(root, file), text);
  return root;
}

describe('a Flickr8k-style directory', () => {
  it('reads captions, images and split lists; without lists splits 80/10/10', async () => {
    const root = await flickrDir('ok', 'a.png#0\tA dog .\na.png#1\tA brown dog\nb.png#0\tTwo cats\nc.png#0\tA bird\n', ['a.png', 'b.png', 'c.png'], { 'train.txt': 'a.png\nb.png\n', 'test.txt': 'c.png\n' });
    const data = captionDirectory(root, 32);
    const train = await data.split('train');
    expect([train.count, train.imageName(0), train.references(0)]).toEqual([2, 'a.png', ['A dog .', 'A brown dog']]);
    expect(train.image(0).length).toBe(32 * 32 * 3);
    expect(data.hasSplit('val')).toBe(false);
    await expect(data.split('val')).rejects.toThrow(`--dataset ${root}: no val split (val.txt or Flickr_8k.devImages.txt)`);
    const names = Array.from({ length: 10 }, (_, i) => `i${i}.png`);
    const plain = captionDirectory(await flickrDir('plain', names.map((n) => `${n}#0\ta caption\n`).join(''), names), 64);
    expect([(await plain.split('train')).count, (await plain.split('val')).count, (await plain.split('test')).imageName(0)]).toEqual([8, 1, 'i9.png']);
  });

  it.each([
    ['a missing image', 'a.png#0\tA dog\nzz.png#0\tA cat\n', ['a.png'], { 'train.txt': 'a.png\nzz.png\n' }, /captions\.txt:2: image .*zz\.png: cannot read it \(ENOENT\)/],
    ['a split naming an image without a caption', 'a.png#0\tA dog\n', ['a.png'], { 'train.txt': 'a.png\n\nb.png\n' }, /train\.txt:3: image b\.png has no caption in .*captions\.txt/],
    ['a caption without words', 'a.png#0\tA dog\na.png#1\t. . .\n', ['a.png'], {}, /captions\.txt:2: the caption of a\.png has no words/],
    ['a malformed line', 'a.png#0\tA dog\na.png A dog\n', ['a.png'], {}, /captions\.txt:2: expected IMAGE#N<TAB>caption/],
  ])('%s is an error naming the file and line', async (name, lines, images, splits, message) => {
    const root = await flickrDir(name.replace(/ /g, '-'), lines, images, splits);
    await expect((async () => (await captionDirectory(root, 64).split('train')).count)()).rejects.toThrow(message);
  });

  it('a directory without captions or images names what is missing', () => {
    expect(() => captionDirectory(join(dir, 'nowhere'), 64)).toThrow('no such directory');
    mkdirSync(join(dir, 'empty'));
    expect(() => captionDirectory(join(dir, 'empty'), 64)).toThrow('no captions file (captions.txt or Flickr8k.token.txt)');
  });
});

/** A split of n plain images (image i filled with byte i) with the given captions. */
function fakeSplit(captions: string[][]): CaptionSplit {
  return {
    name: 'train',
    count: captions.length,
    image: (i) => new Uint8Array(8 * 8 * 3).fill(i),
    references: (i) => captions[i],
    imageName: (i) => `img${i}`,
  };
}

describe('caption batches', () => {
  const captions = [['a red circle'], ['a blue square', 'a square'], ['a circle'], ['a red circle above a blue square and more words than fit']];
  const vocab = buildCaptionVocab(captions.flat(), 100);
  const index = wordIndex(vocab);

  it('hold each caption time-major, <start> first, <end> after its words, <pad> after that, and its image', () => {
    const source = new CaptionSource(fakeSplit(captions), vocab, 5, 3, 7);
    expect([source.images, source.captions, source.skipped]).toEqual([3, 5, 1]);
    const { tokens, images, resetStates } = source.batch(0);
    expect(resetStates).toBe(true);
    for (let b = 0; b < 3; b++) {
      const image = images![b * 192];
      expect(images!.subarray(b * 192, (b + 1) * 192).every((v) => v === image)).toBe(true);
      const column = Array.from({ length: 6 }, (_, t) => tokens![t * 3 + b]);
      const words = column.slice(1, column.indexOf(END));
      expect(column[0]).toBe(START);
      expect(column.slice(column.indexOf(END) + 1).every((t) => t === PAD)).toBe(true);
      expect(captions[image].map((c) => encodeCaption(index, c).join())).toContain(words.join());
    }
  });

  it('are a function of the step: the same with or without the batch made ahead, and every image once per epoch', () => {
    const a = new CaptionSource(fakeSplit(captions), vocab, 5, 3, 7);
    const b = new CaptionSource(fakeSplit(captions), vocab, 5, 3, 7);
    const seen: number[] = [];
    for (let step = 0; step < 4; step++) {
      const x = a.batch(step);
      const y = b.batch(3 - step); // b is asked in another order: nothing it made ahead applies
      void y;
      expect(Buffer.from(x.tokens!.buffer).equals(Buffer.from(new CaptionSource(fakeSplit(captions), vocab, 5, 3, 7).batch(step).tokens!.buffer))).toBe(true);
      for (let k = 0; k < 3; k++) seen.push(x.images![k * 192]);
    }
    // 12 visits of 3 usable images: 4 epochs, each a permutation.
    for (let e = 0; e < 4; e++) expect(seen.slice(3 * e, 3 * e + 3).sort()).toEqual([0, 1, 2]);
    const order = (seed: number) => Array.from({ length: 4 }, (_, step) => new CaptionSource(fakeSplit(captions), vocab, 5, 3, seed).batch(step).images!.filter((_, i) => i % 192 === 0).join()).join();
    expect(order(8)).not.toBe(order(7)); // another seed, another order
  });

  it('no caption that fits is an error saying what to raise', () => {
    expect(() => new CaptionSource(fakeSplit([['a b c d e f']]), vocab, 3, 1, 1)).toThrow('no training caption fits in 3 tokens (its words and <end>); every one of the 1 is longer: raise --seq-len');
  });
});
