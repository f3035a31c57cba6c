// Caption text ↔ word ids: captions are lower-cased and cut into words (letters, digits
// and apostrophes; punctuation dropped), and the vocabulary is the captioner's four
// special tokens (model/caption.ts) followed by the training captions' most frequent words.

import { END, PAD, SPECIAL_TOKENS, START, UNK } from '../../model/caption.js';
import { ConfigError } from '../../model/config.js';
import { compareCodePoints, type Vocab } from '../../model/tokenizer.js';

const WORD = /[\p{L}\p{N}']+/gu;

/** The words of a caption, lower-cased: "A dog, running." → ["a", "dog", "running"]. */
export function captionWords(text: string): string[] {
  return text.toLowerCase().match(WORD) ?? [];
}

/**
 * The special tokens, then every word of `captions` by falling count (ties in code-point
 * order), up to `cap` tokens in all; the words left out read as <unk>.
 */
export function buildCaptionVocab(captions: Iterable<string>, cap: number): Vocab {
  if (cap < SPECIAL_TOKENS.length + 1) throw new ConfigError(`"vocabCap" is ${cap}; a captioner's vocabulary needs at least ${SPECIAL_TOKENS.length + 1} tokens (${SPECIAL_TOKENS.join(', ')} and a word)`);
  const counts = new Map<string, number>();
  for (const caption of captions) for (const w of captionWords(caption)) counts.set(w, (counts.get(w) ?? 0) + 1);
  for (const special of SPECIAL_TOKENS) counts.delete(special);
  const words = [...counts].sort((a, b) => b[1] - a[1] || compareCodePoints(a[0], b[0])).map(([w]) => w);
  return { kind: 'word', tokens: [...SPECIAL_TOKENS, ...words.slice(0, cap - SPECIAL_TOKENS.length)] };
}

/** A vocabulary's word → id lookup. */
export function wordIndex(vocab: Vocab): Map<string, number> {
  return new Map(vocab.tokens.map((t, i) => [t, i]));
}

/** Word ids of a caption (unknown words are <unk>), without <start> or <end>. */
export function encodeCaption(index: ReadonlyMap<string, number>, text: string): number[] {
  return captionWords(text).map((w) => index.get(w) ?? UNK);
}

/** The words of generated ids, up to the first <end>; <pad> and <start> are skipped. */
export function decodeCaption(vocab: Vocab, ids: readonly number[]): string {
  const words: string[] = [];
  for (const id of ids) {
    if (id === END) break;
    if (id === PAD || id === START) continue;
    words.push(vocab.tokens[id]);
  }
  return words.join(' ');
}
