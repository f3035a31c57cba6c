// Captioning files: PNG written and read back bit for bit, JPEG and resizing, errors that
// name the file (and line), the Flickr8k captions format, and `gradpool shapes`.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { shapesCommand } from '../../coordinator/caption/command.js';
import { formatCaptions, parseCaptions, readImage, writePng } from '../../coordinator/caption/files.js';
import { referenceCaptions } from '../../coordinator/caption/grammar.js';
import { pairOf, shapesImage } from '../../coordinator/caption/shapes.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-caption-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('image files', () => {
  it('a PNG round-trips bit for bit', async () => {
    const { rgb } = shapesImage(1, 0);
    const path = join(dir, 'a.png');
    await writePng(path, rgb, 64);
    expect(readFileSync(path).subarray(1, 4).toString()).toBe('PNG');
    expect(Buffer.from(await readImage(path, 64)).equals(Buffer.from(rgb))).toBe(true);
  });

  it('decodes a JPEG and resizes to the model side (a 128-pixel red image stays red)', async () => {
    const path = join(dir, 'big.jpg');
    await sharp({ create: { width: 128, height: 96, channels: 3, background: { r: 220, g: 40, b: 40 } } }).jpeg({ quality: 95 }).toFile(path);
    const rgb = await readImage(path, 64);
    expect(rgb.length).toBe(64 * 64 * 3);
    for (let i = 0; i < rgb.length; i += 3) {
      expect(Math.abs(rgb[i] - 220)).toBeLessThan(8);
      expect(Math.abs(rgb[i + 1] - 40)).toBeLessThan(8);
    }
  });

  it('a missing or undecodable image is an error naming the file', async () => {
    await expect(readImage(join(dir, 'none.png'), 64)).rejects.toThrow(`image ${join(dir, 'none.png')}: cannot read it (ENOENT)`);
    const bad = join(dir, 'bad.png');
    writeFileSync(bad, 'not an image at all');
    await expect(readImage(bad, 64)).rejects.toThrow(new RegExp(`^image ${bad}: not a decodable PNG or JPEG image`));
  });
});

describe('captions file (Flickr8k format)', () => {
  it('reads IMAGE#N<TAB>caption lines and writes them back', () => {
    const text = '1000268201_693b08cb0e.jpg#0\tA child in a pink dress .\n1000268201_693b08cb0e.jpg#1\tA girl going into a wooden building .\n\n';
    const lines = parseCaptions(text, 'c.txt');
    expect(lines).toEqual([
      { image: '1000268201_693b08cb0e.jpg', index: 0, caption: 'A child in a pink dress .', line: 1 },
      { image: '1000268201_693b08cb0e.jpg', index: 1, caption: 'A girl going into a wooden building .', line: 2 },
    ]);
    expect(formatCaptions(lines)).toBe(text.trimEnd() + '\n');
  });

  it.each([
    ['no tab', 'a.png#0 a caption\n', 'c.txt:1: expected IMAGE#N<TAB>caption, found no tab'],
    ['no #N', 'ok.png#0\tfine\na.png\ta caption\n', 'c.txt:2: "a.png" is not IMAGE#N'],
    ['an empty caption', 'a.png#0\t  \n', 'c.txt:1: empty caption for a.png#0'],
    ['no captions', '\n\n', 'c.txt: no captions'],
  ])('%s is an error naming the file and line', (_, text, message) => {
    expect(() => parseCaptions(text, 'c.txt')).toThrow(message);
  });
});

describe('gradpool shapes', () => {
  it('writes images, captions and splits that match the generator', async () => {
    const out = join(dir, 'set');
    expect(await shapesCommand(['--out', out, '--count', '20', '--seed', '4', '--holdout', 'red:square,blue:circle'])).toBe(0);
    const split = (name: string) => readFileSync(join(out, `${name}.txt`), 'utf8').trim().split('\n');
    expect([split('train').length, split('val').length, split('test').length, split('test-compositional').length]).toEqual([16, 2, 2, 2]);
    const captions = parseCaptions(readFileSync(join(out, 'captions.txt'), 'utf8'), 'captions.txt');
    for (let i = 0; i < 20; i++) {
      const { scene, rgb } = shapesImage(4, i, new Set(['red:square', 'blue:circle']));
      const name = `shapes_${String(i).padStart(6, '0')}.png`;
      expect(Buffer.from(await readImage(join(out, 'images', name), 64)).equals(Buffer.from(rgb))).toBe(true);
      expect(captions.filter((c) => c.image === name).map((c) => c.caption)).toEqual(referenceCaptions(scene));
    }
    for (let i = 0; i < 2; i++) expect(shapesImage(4, i, new Set(['red:square', 'blue:circle']), true).scene.some((o) => ['red:square', 'blue:circle'].includes(pairOf(o)))).toBe(true);
  });

  it.each([
    [['--count', '20'], '--out is required'],
    [['--out', 'x', '--count', '5'], '--count is "5"; allowed: an integer from 10 to 1000000'],
    [['--out', 'x', '--seed=-1'], '--seed is "-1"; allowed: an integer from 0 to 4294967295'],
    [['--out', 'x', '--holdout', 'red:hexagon'], '--holdout: "red:hexagon" is not COLOUR:SHAPE'],
    [['--out', 'x', '--colour', 'red'], "Unknown option '--colour'"],
  ])('%j is refused: %s', async (args, message) => {
    await expect(shapesCommand(args)).rejects.toThrow(message);
  });

  it('refuses a directory that is not empty, and leaves it alone', async () => {
    const out = join(dir, 'full');
    await shapesCommand(['--out', out, '--count', '10']);
    const before = readFileSync(join(out, 'captions.txt'));
    await expect(shapesCommand(['--out', out, '--count', '10', '--seed', '2'])).rejects.toThrow(`--out ${out}: the directory is not empty`);
    expect(readFileSync(join(out, 'captions.txt')).equals(before)).toBe(true);
  });
});
