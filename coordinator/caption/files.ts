// Image files of the captioning task: PNG writing and PNG/JPEG decoding (sharp, i.e.
// libvips), resized to the model's input side; and the captions file in Flickr8k's
// format, `IMAGE#N<TAB>caption`, one caption a line.

import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { DataError } from '../../model/tokenizer.js';

const rawRgb = (rgb: Uint8Array, side: number) => sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width: side, height: side, channels: 3 } });

/** Writes (side, side, 3) RGB bytes as a PNG file. */
export async function writePng(path: string, rgb: Uint8Array, side: number): Promise<void> {
  await rawRgb(rgb, side).png().toFile(path);
}

/** (height, width, 3) RGB bytes (square when no height is given) as the bytes of a PNG file. */
export async function encodePng(rgb: Uint8Array, width: number, height = width): Promise<Buffer> {
  return sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** Decodes a PNG or JPEG file into (side, side, 3) RGB bytes, resized (area-averaged) to `side` and flattened onto black. */
export async function readImage(path: string, side: number): Promise<Uint8Array> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new DataError(`image ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const { data, info } = await sharp(bytes, { failOn: 'error' })
      .flatten({ background: '#000000' })
      .resize(side, side, { fit: 'fill', kernel: 'cubic' })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== side * side * 3) throw new Error(`decoded to ${info.width}×${info.height}×${info.channels}`);
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } catch (e) {
    throw new DataError(`image ${path}: not a decodable PNG or JPEG image (${(e as Error).message.split('\n')[0]})`);
  }
}

export interface CaptionLine {
  image: string;
  /** The caption's number N of `IMAGE#N`. */
  index: number;
  caption: string;
  /** 1-based line of the captions file, for messages. */
  line: number;
}

/** Reads a Flickr8k-style captions file; every problem names the file and line. */
export function parseCaptions(text: string, path: string): CaptionLine[] {
  const out: CaptionLine[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    if (raw.trim() === '') return;
    const line = i + 1;
    const tab = raw.indexOf('\t');
    const where = `${path}:${line}`;
    if (tab < 0) throw new DataError(`${where}: expected IMAGE#N<TAB>caption, found no tab`);
    const key = raw.slice(0, tab);
    const caption = raw.slice(tab + 1).trim();
    const m = /^(.+)#(\d+)$/.exec(key);
    if (!m) throw new DataError(`${where}: "${key}" is not IMAGE#N`);
    if (caption === '') throw new DataError(`${where}: empty caption for ${key}`);
    out.push({ image: m[1], index: Number(m[2]), caption, line });
  });
  if (out.length === 0) throw new DataError(`${path}: no captions`);
  return out;
}

export function formatCaptions(lines: readonly { image: string; index: number; caption: string }[]): string {
  return lines.map((l) => `${l.image}#${l.index}\t${l.caption}\n`).join('');
}
