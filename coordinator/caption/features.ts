// Precomputed image features for a captioner with a linear encoder (docs/CAPTIONING.md,
// "Precomputed features"): a safetensors file with one float32 tensor `features` [N, D],
// row i the image named by entry i of its metadata `images`, a JSON list of N names (the
// names of the dataset's captions file). Files come from outside: everything is checked,
// and every problem names the file (and the row or image).

import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { ConfigError } from '../../model/config.js';
import { MAX_HEADER_BYTES, parseSafetensors } from '../../model/safetensors.js';
import { DataError } from '../../model/tokenizer.js';
import type { TrainConfig } from '../config.js';

const TENSOR = 'features';
const NAMES = 'images';

export interface FeatureFile {
  readonly path: string;
  /** D, the values per image. */
  readonly size: number;
  /** The image of each row. */
  readonly names: readonly string[];
  /** An image's row as its 4·D little-endian float32 bytes (the pair's "image" in a batch), or undefined. */
  row(name: string): Uint8Array | undefined;
}

/** What the header must say: rows N, values per row D, the N names. */
interface Layout {
  rows: number;
  size: number;
  names: string[];
}

const fail = (path: string, problem: string): never => {
  throw new DataError(`features file ${path}: ${problem}`);
};

/** The file's JSON header, read from its first bytes only. */
function readHeader(path: string): Record<string, unknown> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    return fail(path, `cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) < 8) fail(path, 'shorter than the 8 bytes of a safetensors header length (not a safetensors file?)');
    const n = head.readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER_BYTES)) fail(path, `header length ${n} is not plausible (not a safetensors file?)`);
    const text = Buffer.alloc(Number(n));
    if (readSync(fd, text, 0, text.length, 8) < text.length) fail(path, `header length ${n} goes beyond the file (truncated?)`);
    const header = JSON.parse(text.toString('utf8')) as unknown;
    if (header === null || typeof header !== 'object' || Array.isArray(header)) fail(path, 'the header is not a JSON object (not a safetensors file?)');
    return header as Record<string, unknown>;
  } catch (e) {
    if (e instanceof DataError) throw e;
    return fail(path, `the header is not valid JSON (${(e as Error).message}; not a safetensors file?)`);
  } finally {
    closeSync(fd);
  }
}

/** The tensor and the names the header declares, checked against each other. */
function layoutOf(path: string, header: Record<string, unknown>): Layout {
  const entry = header[TENSOR] as { dtype?: unknown; shape?: unknown } | undefined;
  if (!entry || typeof entry !== 'object') {
    const others = Object.keys(header).filter((k) => k !== '__metadata__');
    fail(path, `no tensor "${TENSOR}" (it has ${others.length ? others.map((k) => `"${k}"`).join(', ') : 'none'}); a features file holds a float32 tensor "${TENSOR}" [N, D], one row per image`);
  }
  if (entry!.dtype !== 'F32') fail(path, `tensor "${TENSOR}" has dtype ${JSON.stringify(entry!.dtype)}; it must be F32 (float32: tensor.float() in PyTorch, array.astype("float32") in NumPy)`);
  const shape = entry!.shape;
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d >= 1)) {
    fail(path, `tensor "${TENSOR}" has shape ${JSON.stringify(shape)}; it must be [N, D]: N ≥ 1 rows (one per image) of D ≥ 1 values`);
  }
  const [rows, size] = shape as [number, number];
  const meta = header.__metadata__ as Record<string, unknown> | undefined;
  const raw = meta && typeof meta === 'object' ? meta[NAMES] : undefined;
  if (typeof raw !== 'string') fail(path, `no metadata "${NAMES}": a JSON list naming the image of each row, as the captions file names it`);
  let names: unknown;
  try {
    names = JSON.parse(raw as string);
  } catch (e) {
    fail(path, `metadata "${NAMES}" is not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string' && n !== '')) fail(path, `metadata "${NAMES}" must be a JSON list of image names (non-empty strings)`);
  const list = names as string[];
  if (list.length !== rows) fail(path, `metadata "${NAMES}" names ${list.length} images but tensor "${TENSOR}" has ${rows} rows (one row per image)`);
  const seen = new Map<string, number>();
  list.forEach((name, i) => {
    const first = seen.get(name);
    if (first !== undefined) fail(path, `metadata "${NAMES}" names image ${name} twice (rows ${first} and ${i})`);
    seen.set(name, i);
  });
  return { rows, size, names: list };
}

/**
 * A captioner's run config with --features reads a directory and has no CNN and no image
 * side; without it, `--cnn none` is an error. Returns whether the run is over features.
 */
export function checkFeatureKeys(cfg: Pick<TrainConfig, 'features' | 'dataset' | 'cnn' | 'imageSize'>): boolean {
  if (cfg.features === null) {
    if (cfg.cnn === 'none') throw new ConfigError('"cnn" is "none": a captioner without a CNN reads precomputed image features (--features FILE)');
    return false;
  }
  if (cfg.dataset === 'shapes') throw new ConfigError('"features" names the images of a directory\'s captions file; give --dataset DIR (gradpool shapes --out DIR writes shapes as one)');
  if (cfg.cnn !== 'none') throw new ConfigError(`"cnn" is ${JSON.stringify(cfg.cnn)}; a captioner over --features has a linear encoder and no CNN (leave --cnn out, or give none)`);
  if (cfg.imageSize !== null) throw new ConfigError(`"imageSize" is ${cfg.imageSize}; a captioner over --features reads no images`);
  return true;
}

/** D of a features file, from its header alone (a run's model config needs it before the rows are read). */
export function featureSizeOf(path: string): number {
  return layoutOf(path, readHeader(path)).size;
}

/** A whole features file, every row checked finite. */
export function readFeatureFile(path: string): FeatureFile {
  const { size, names } = layoutOf(path, readHeader(path));
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    return fail(path, `cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const data = parseSafetensors(bytes, `features file ${path}`).tensors.get(TENSOR)!.data; // offsets and lengths checked there
  const bad = data.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) {
    const row = Math.floor(bad / size);
    fail(path, `row ${row} (image ${names[row]}) holds a non-finite value (${data[bad]}) in column ${bad % size}`);
  }
  const index = new Map(names.map((n, i) => [n, i]));
  // Rows as little-endian bytes: on a little-endian host the data's own.
  let le = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) {
    le = new Uint8Array(data.byteLength);
    const dv = new DataView(le.buffer);
    data.forEach((x, i) => dv.setFloat32(4 * i, x, true));
  }
  return {
    path,
    size,
    names,
    row(name) {
      const i = index.get(name);
      return i === undefined ? undefined : le.subarray(i * size * 4, (i + 1) * size * 4);
    },
  };
}
