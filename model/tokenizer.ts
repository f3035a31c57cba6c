// Text ↔ token ids for the language models: a char vocabulary (every distinct code
// point) or a word vocabulary (frequent words plus <unk>), and their encode/decode.

/**
 * The tokenizations, defined here once. The coordinator's --tokens option, model files and
 * the evaluator read this list; proto/ may not import model/, so a checkpoint carries the
 * kind as a plain string and the coordinator checks it against this list when loading.
 */
export const TOKEN_KINDS = ['char', 'word'] as const;
export type TokenKind = (typeof TOKEN_KINDS)[number];

export function isTokenKind(value: unknown): value is TokenKind {
  return (TOKEN_KINDS as readonly unknown[]).includes(value);
}

export interface Vocab {
  readonly kind: TokenKind;
  /** index = id. A word vocabulary always starts with UNK; a char one only when capped. */
  readonly tokens: string[];
}

export interface VocabOptions {
  /** Most tokens kept, <unk> included. Default 10000 for words, no cap for chars. */
  vocabCap?: number;
}

/** Bad input data (unreadable file, unknown token, too little text): the user's to fix. */
export class DataError extends Error {
  override name = 'DataError';
  /** Read by coordinator/exit.ts: 'input' exits with code 2. */
  readonly kind = 'input';
}

export const UNK = '<unk>';
export const DEFAULT_WORD_VOCAB_CAP = 10_000;

// A word is a run of letters, digits and apostrophes (so "don't" stays whole); a
// newline is kept as a token so decoded text keeps its lines; any other
// non-space code point stands alone. The `u` flag makes `.` units code points.
const WORD_TOKEN = /[\p{L}\p{N}']+|\n|[^\s]/gu;

/** Compares strings by code point; the default `<` compares UTF-16 units, which misorders astral characters. */
export function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done ? (y.done ? 0 : -1) : 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/** Tokens of `text` with their UTF-16 offsets (offsets only matter for error messages). */
function tokenize(text: string, kind: TokenKind): { tokens: string[]; offsets: number[] } {
  const tokens: string[] = [];
  const offsets: number[] = [];
  if (kind === 'char') {
    let offset = 0;
    for (const ch of text) {
      tokens.push(ch);
      offsets.push(offset);
      offset += ch.length;
    }
  } else {
    for (const m of text.matchAll(WORD_TOKEN)) {
      tokens.push(m[0]);
      offsets.push(m.index!);
    }
  }
  return { tokens, offsets };
}

function checkKind(kind: unknown): asserts kind is TokenKind {
  if (!isTokenKind(kind)) {
    throw new RangeError(`token kind must be ${TOKEN_KINDS.map((k) => `'${k}'`).join(' or ')}, got ${JSON.stringify(kind)}`);
  }
}

export function buildVocab(text: string, kind: TokenKind, options: VocabOptions = {}): Vocab {
  checkKind(kind);
  const cap = options.vocabCap ?? (kind === 'word' ? DEFAULT_WORD_VOCAB_CAP : Infinity);
  if (cap !== Infinity && (!Number.isInteger(cap) || cap < 2)) {
    throw new RangeError(`vocabCap must be an integer ≥ 2 (<unk> plus one token), got ${options.vocabCap}`);
  }
  const counts = new Map<string, number>();
  for (const token of tokenize(text, kind).tokens) counts.set(token, (counts.get(token) ?? 0) + 1);
  if (counts.size === 0) throw new DataError(`cannot build a ${kind} vocabulary: the text has no tokens`);

  const byCodePoint = [...counts.keys()].sort(compareCodePoints);
  // An uncapped char vocabulary needs no <unk>: every character of the text has an id.
  if (kind === 'char' && byCodePoint.length <= cap) return { kind, tokens: byCodePoint };

  // Stable sort: equal counts keep code-point order.
  const byFrequency = byCodePoint.sort((a, b) => counts.get(b)! - counts.get(a)!);
  const kept = byFrequency.slice(0, Math.min(cap - 1, byFrequency.length));
  // Chars read best in code-point order; words in frequency order (id ≈ rank).
  if (kind === 'char') kept.sort(compareCodePoints);
  return { kind, tokens: [UNK, ...kept] };
}

const idMaps = new WeakMap<Vocab, Map<string, number>>();

function idMap(vocab: Vocab): Map<string, number> {
  let map = idMaps.get(vocab);
  if (!map) {
    map = new Map(vocab.tokens.map((token, id) => [token, id]));
    idMaps.set(vocab, map);
  }
  return map;
}

/** 1-based line and column (in code points) of a UTF-16 offset. */
function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const lineStart = before.lastIndexOf('\n') + 1;
  const line = before.split('\n').length;
  return { line, column: [...before.slice(lineStart)].length + 1 };
}

function describe(token: string, kind: TokenKind): string {
  if (kind === 'word') return `word ${JSON.stringify(token)}`;
  const hex = token.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
  return `character ${JSON.stringify(token)} (U+${hex})`;
}

export function encode(vocab: Vocab, text: string): Int32Array {
  checkKind(vocab.kind);
  const ids = idMap(vocab);
  const unk = ids.get(UNK);
  const { tokens, offsets } = tokenize(text, vocab.kind);
  const out = new Int32Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const id = ids.get(tokens[i]) ?? unk;
    if (id === undefined) {
      const { line, column } = lineColumn(text, offsets[i]);
      throw new DataError(
        `${describe(tokens[i], vocab.kind)} at line ${line}, column ${column} is not in the ` +
          `${vocab.tokens.length}-token vocabulary, and the vocabulary has no ${UNK} to map it to`,
      );
    }
    out[i] = id;
  }
  return out;
}

// Word decoding puts back the spaces tokenization dropped, except where English
// typography has none: before closing punctuation and after an opening bracket.
const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '!', '?', ')', ']', '}', '\n']);
const NO_SPACE_AFTER = new Set(['(', '[', '{', '\n']);

export function decode(vocab: Vocab, ids: ArrayLike<number>): string {
  const tokens: string[] = new Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const token = vocab.tokens[ids[i]];
    if (token === undefined) {
      throw new RangeError(`token id ${ids[i]} at index ${i} is outside the vocabulary (ids 0..${vocab.tokens.length - 1})`);
    }
    tokens[i] = token;
  }
  if (vocab.kind === 'char') return tokens.join('');
  let out = '';
  for (let i = 0; i < tokens.length; i++) {
    if (i > 0 && !NO_SPACE_AFTER.has(tokens[i - 1]) && !NO_SPACE_BEFORE.has(tokens[i])) out += ' ';
    out += tokens[i];
  }
  return out;
}
