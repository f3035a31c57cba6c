// The gallery picture of the captioning report: the 5×7 font, text drawn pixel for pixel,
// word wrapping, the grid's dimensions, upscaled images, the ✓/✗ marks, and the PNG.

import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { GLYPH_HEIGHT, GLYPH_WIDTH, glyph, hasGlyph } from '../../coordinator/experiments/font.js';
import { CHAR_WIDTH, LINE_HEIGHT, blankRaster, drawText, galleryPng, renderGallery, wrapWords } from '../../coordinator/experiments/gallery.js';
import { COLOUR_NAMES, SHAPES, SIZE_NAMES } from '../../coordinator/caption/shapes.js';
import { RELATIONS } from '../../coordinator/caption/grammar.js';

const pixel = (r: { width: number; rgb: Uint8Array }, x: number, y: number) => [...r.rgb.subarray((y * r.width + x) * 3, (y * r.width + x) * 3 + 3)];
const isInk = (r: { width: number; rgb: Uint8Array }, x: number, y: number) => pixel(r, x, y).join() !== '255,255,255';

describe('font', () => {
  it('has a 5×7 glyph for every character of a shapes caption, digits and the marks', () => {
    const words = ['a', ...SIZE_NAMES, ...COLOUR_NAMES, ...SHAPES, ...RELATIONS].join(' ');
    for (const ch of new Set([...words, ...'0123456789.,:-%()✓✗'])) {
      expect(hasGlyph(ch), JSON.stringify(ch)).toBe(true);
      const rows = glyph(ch);
      expect(rows).toHaveLength(GLYPH_HEIGHT);
      for (const row of rows) expect(row, JSON.stringify(ch)).toMatch(new RegExp(`^[.#]{${GLYPH_WIDTH}}$`));
    }
  });

  it('draws every letter and digit differently, and an unknown character as "?"', () => {
    const chars = [...'abcdefghijklmnopqrstuvwxyz0123456789'];
    expect(new Set(chars.map((c) => glyph(c).join('/'))).size).toBe(chars.length);
    expect(hasGlyph('€')).toBe(false);
    expect(glyph('€')).toEqual(glyph('?'));
    expect(glyph('A')).toEqual(glyph('a'));
  });
});

describe('drawText', () => {
  it('puts exactly the glyphs\' ink at their cells, one pixel apart, in the colour given', () => {
    const r = blankRaster(40, 10);
    const width = drawText(r, 'ab1', 2, 1, [10, 20, 30]);
    expect(width).toBe(3 * CHAR_WIDTH);
    for (let y = 0; y < 10; y++) {
      for (let x = 0; x < 40; x++) {
        const k = Math.floor((x - 2) / CHAR_WIDTH);
        const gx = x - 2 - k * CHAR_WIDTH;
        const gy = y - 1;
        const expected = k >= 0 && k < 3 && gx < GLYPH_WIDTH && gy >= 0 && gy < GLYPH_HEIGHT && glyph('ab1'[k])[gy][gx] === '#';
        expect(pixel(r, x, y), `(${x}, ${y})`).toEqual(expected ? [10, 20, 30] : [255, 255, 255]);
      }
    }
  });

  it('drops what falls outside the raster', () => {
    const r = blankRaster(4, 4);
    expect(() => drawText(r, 'mmm', -3, -2)).not.toThrow();
    expect(r.rgb.some((v) => v !== 255)).toBe(true);
  });
});

describe('wrapWords', () => {
  it('fills lines up to the width, cuts words longer than it, and ends a cut-off text in "..."', () => {
    expect(wrapWords('a small red square left of a large blue circle', 19)).toEqual(['a small red square', 'left of a large', 'blue circle']);
    expect(wrapWords('  a   b ', 5)).toEqual(['a b']);
    expect(wrapWords('abcdefghij x', 4)).toEqual(['abcd', 'efgh', 'ij x']);
    expect(wrapWords('one two three four five six', 9, 2)).toEqual(['one two', 'three...']);
    expect(wrapWords('', 10)).toEqual([]);
  });
});

describe('renderGallery', () => {
  const side = 4;
  const image = (seed: number) => Uint8Array.from({ length: side * side * 3 }, (_, i) => (i * 7 + seed * 31) % 250);

  it('lays tiles in a grid sized by the longest caption, images upscaled by nearest neighbour', () => {
    const tiles = [
      { rgb: image(1), caption: 'a b', correct: true },
      { rgb: image(2), caption: 'a b c d e', correct: false },
      { rgb: image(3), caption: 'c', correct: null },
    ];
    const r = renderGallery(tiles, { side, columns: 2, scale: 6 });
    // Tiles of 24 pixels: 4 characters a line, 2 for the caption; "a b c d e" wraps to 5 lines.
    const tileHeight = 24 + 4 + 5 * LINE_HEIGHT;
    expect(r.width).toBe(8 + 2 * (24 + 8));
    expect(r.height).toBe(8 + 2 * (tileHeight + 8));
    expect(r.rgb.length).toBe(r.width * r.height * 3);
    // Image 2 (second column, first row) at (8 + 32, 8): pixel (x, y) of it is a 6×6 block.
    for (const [x, y] of [[0, 0], [3, 1], [2, 3]]) {
      const source = [...image(2).subarray((y * side + x) * 3, (y * side + x) * 3 + 3)];
      for (const [dx, dy] of [[0, 0], [5, 5], [2, 4]]) expect(pixel(r, 40 + 6 * x + dx, 8 + 6 * y + dy)).toEqual(source);
    }
    // Image 3 starts the second row.
    expect(pixel(r, 8, 8 + tileHeight + 8)).toEqual([...image(3).subarray(0, 3)]);
  });

  it('marks a correct caption with a green ✓, a wrong one with a red ✗, and none when unknown', () => {
    const tiles = [
      { rgb: image(1), caption: 'x', correct: true },
      { rgb: image(2), caption: 'x', correct: false },
      { rgb: image(3), caption: 'x', correct: null },
    ];
    const r = renderGallery(tiles, { side, columns: 3, scale: 6 });
    const markColours = (tile: number) => {
      const found = new Set<string>();
      const x0 = 8 + tile * 32;
      for (let y = 8 + 24 + 4; y < 8 + 24 + 4 + GLYPH_HEIGHT; y++) for (let x = x0; x < x0 + GLYPH_WIDTH; x++) if (isInk(r, x, y)) found.add(pixel(r, x, y).join());
      return [...found];
    };
    expect(markColours(0)).toEqual(['0,140,0']);
    expect(markColours(1)).toEqual(['200,0,0']);
    expect(markColours(2)).toEqual([]);
    // The caption "x" follows the mark, two character cells in, in black.
    const x0 = 8 + 2 * CHAR_WIDTH;
    const y0 = 8 + 24 + 4;
    expect(pixel(r, x0, y0 + 2)).toEqual([0, 0, 0]);
    expect(pixel(r, x0 + 2, y0 + 4)).toEqual([0, 0, 0]);
  });

  it('refuses no tiles and an image of the wrong size, naming it', () => {
    expect(() => renderGallery([], { side, columns: 2, scale: 2 })).toThrow(/at least one image/);
    expect(() => renderGallery([{ rgb: new Uint8Array(5), caption: 'a', correct: true }], { side, columns: 2, scale: 2 })).toThrow(/gallery image 0 has 5 bytes; expected 4·4·3 = 48/);
  });

  it('encodes a PNG of the raster\'s size and pixels', async () => {
    const tiles = [{ rgb: image(1), caption: 'a red square', correct: true }];
    const r = renderGallery(tiles, { side, columns: 4, scale: 8 });
    const png = await galleryPng(tiles, { side, columns: 4, scale: 8 });
    expect([...png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join('')).toBe('PNG');
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([r.width, r.height, 3]);
    expect(Buffer.compare(data, Buffer.from(r.rgb))).toBe(0);
  });
});
