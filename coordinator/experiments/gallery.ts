// The gallery picture of a captioning report: images in a grid, upscaled, each with its
// caption written under it in a 5×7 bitmap font (font.ts) and a ✓ or ✗ for correctness.
//
//   ┌─pad─┬──── side·scale ────┬─pad─┬── … ──┐
//   │     │  image (nearest)   │     │       │
//   │     │ ✓ a small red      │     │       │   lines of ≤ ⌊side·scale / 6⌋ characters
//   │     │ square above a ... │     │       │
//   └─────┴────────────────────┴─────┴── … ──┘

import { encodePng } from '../caption/files.js';
import { GLYPH_HEIGHT, GLYPH_WIDTH, glyph } from './font.js';

export interface Raster {
  width: number;
  height: number;
  /** (height, width, 3) RGB bytes. */
  rgb: Uint8Array;
}

export interface GalleryTile {
  /** (side, side, 3) RGB bytes. */
  rgb: Uint8Array;
  caption: string;
  correct: boolean | null;
}

export interface GalleryLayout {
  side: number;
  columns: number;
  /** Integer upscaling of each image (nearest neighbour). */
  scale: number;
}

type Colour = readonly [number, number, number];
const BACKGROUND: Colour = [255, 255, 255];
const INK: Colour = [0, 0, 0];
const RIGHT: Colour = [0, 140, 0];
const WRONG: Colour = [200, 0, 0];
const PAD = 8;
/** A character cell: the glyph and one pixel of spacing. */
export const CHAR_WIDTH = GLYPH_WIDTH + 1;
export const LINE_HEIGHT = GLYPH_HEIGHT + 2;
/** Lines of caption under an image, at most (longer captions end in "..."). */
const MAX_LINES = 5;

export function blankRaster(width: number, height: number, colour: Colour = BACKGROUND): Raster {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) rgb.set(colour, i * 3);
  return { width, height, rgb };
}

/** Draws `text` with its top-left corner at (x, y); pixels outside the raster are dropped. Returns the width drawn. */
export function drawText(r: Raster, text: string, x: number, y: number, colour: Colour = INK): number {
  const chars = [...text];
  chars.forEach((ch, k) => {
    const rows = glyph(ch);
    for (let gy = 0; gy < GLYPH_HEIGHT; gy++) {
      for (let gx = 0; gx < GLYPH_WIDTH; gx++) {
        const px = x + k * CHAR_WIDTH + gx;
        const py = y + gy;
        if (rows[gy][gx] === '#' && px >= 0 && py >= 0 && px < r.width && py < r.height) r.rgb.set(colour, (py * r.width + px) * 3);
      }
    }
  });
  return chars.length * CHAR_WIDTH;
}

/** Words into lines of at most `width` characters (a longer word is cut), at most `maxLines` lines. */
export function wrapWords(text: string, width: number, maxLines = Infinity): string[] {
  const lines: string[] = [];
  let line = '';
  for (let word of text.split(/\s+/).filter((w) => w !== '')) {
    while (word.length > width) {
      if (line) lines.push(line);
      lines.push(word.slice(0, width));
      word = word.slice(width);
      line = '';
    }
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  if (lines.length > maxLines) {
    const cut = lines.slice(0, maxLines);
    cut[maxLines - 1] = `${cut[maxLines - 1].slice(0, width - 3)}...`;
    return cut;
  }
  return lines;
}

/** Copies a (side, side) image into the raster at (x, y), each pixel as a scale×scale block. */
function blit(r: Raster, image: Uint8Array, side: number, scale: number, x: number, y: number): void {
  for (let py = 0; py < side * scale; py++) {
    for (let px = 0; px < side * scale; px++) {
      const from = (Math.floor(py / scale) * side + Math.floor(px / scale)) * 3;
      r.rgb.set(image.subarray(from, from + 3), ((y + py) * r.width + x + px) * 3);
    }
  }
}

/** The gallery as a raster: rows of `columns` tiles, each the image and its caption lines under it. */
export function renderGallery(tiles: readonly GalleryTile[], layout: GalleryLayout): Raster {
  const { side, columns, scale } = layout;
  if (tiles.length === 0) throw new Error('a gallery needs at least one image');
  const tileSide = side * scale;
  for (const [i, t] of tiles.entries()) {
    if (t.rgb.length !== side * side * 3) throw new Error(`gallery image ${i} has ${t.rgb.length} bytes; expected ${side}·${side}·3 = ${side * side * 3}`);
  }
  const perLine = Math.floor(tileSide / CHAR_WIDTH);
  // The mark and a space come first; the caption is indented to match on every line.
  const texts = tiles.map((t) => wrapWords(t.caption, perLine - 2, MAX_LINES));
  const lines = Math.max(1, ...texts.map((t) => t.length));
  const tileHeight = tileSide + 4 + lines * LINE_HEIGHT;
  const cols = Math.min(columns, tiles.length);
  const rows = Math.ceil(tiles.length / cols);
  const r = blankRaster(PAD + cols * (tileSide + PAD), PAD + rows * (tileHeight + PAD));
  tiles.forEach((t, i) => {
    const x = PAD + (i % cols) * (tileSide + PAD);
    const y = PAD + Math.floor(i / cols) * (tileHeight + PAD);
    blit(r, t.rgb, side, scale, x, y);
    const textY = y + tileSide + 4;
    if (t.correct !== null) drawText(r, t.correct ? '✓' : '✗', x, textY, t.correct ? RIGHT : WRONG);
    texts[i].forEach((line, k) => drawText(r, line, x + 2 * CHAR_WIDTH, textY + k * LINE_HEIGHT));
  });
  return r;
}

/** The gallery as PNG file contents. */
export async function galleryPng(tiles: readonly GalleryTile[], layout: GalleryLayout): Promise<Buffer> {
  const r = renderGallery(tiles, layout);
  return encodePng(r.rgb, r.width, r.height);
}
