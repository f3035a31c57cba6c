// A captioner measured on a split: the mean cross-entropy of the captions it is trained
// on (all references; on shapes the one per image whose order the image decides), in nats
// per word and <end>; corpus BLEU-1…4 of its generated captions against all references;
// and on shapes the accuracy (the share of images whose caption is correct: it parses and
// is true of the scene; grammar.ts).

import { END, PAD, START } from '../../model/caption.js';
import { beamCaption, decodeCaptions } from '../../model/captioner.js';
import { stateSize } from '../../model/chunk.js';
import { isLstm } from '../../model/config.js';
import type { Network } from '../../model/network.js';
import type { Vocab } from '../../model/tokenizer.js';
import { corpusBleu } from './bleu.js';
import type { CaptionSplit } from './dataset.js';
import { isCorrect } from './grammar.js';
import { captionWords, decodeCaption, encodeCaption, wordIndex } from './words.js';

export interface CaptionEvalOptions {
  /** Evaluate the first `limit` images only (null: all). */
  limit: number | null;
  /** 1: greedy; more: beam search with this many hypotheses. */
  beam: number;
  /** Most tokens generated per caption, <end> included. */
  maxLength: number;
}

export interface CaptionEval {
  loss: number;
  bleu1: number;
  bleu2: number;
  bleu3: number;
  bleu4: number;
  /** shapes only. */
  accuracy: number | null;
  images: number;
  /** Per image: its name, generated caption, references, and (shapes) whether it is correct. */
  captions: { image: string; caption: string; references: readonly string[]; correct: boolean | null }[];
}

/** Images decoded (and pairs scored) per forward pass. */
const BATCH = 64;

/** Summed cross-entropy and target count of (image, caption) pairs, in batches padded to their longest caption. */
function referenceLoss(net: Network, vocab: Vocab, split: CaptionSplit, images: number): { loss: number; tokens: number } {
  const index = wordIndex(vocab);
  const pairs: { image: number; ids: number[] }[] = [];
  for (let i = 0; i < images; i++) {
    for (const text of split.trainingReferences?.(i) ?? split.references(i)) pairs.push({ image: i, ids: encodeCaption(index, text) });
  }
  const { layers, hidden, cell } = net.layout.config;
  let loss = 0;
  let tokens = 0;
  for (let from = 0; from < pairs.length; from += BATCH) {
    const batch = pairs.slice(from, from + BATCH);
    const B = batch.length;
    const T = Math.max(...batch.map((p) => p.ids.length)) + 1;
    const ids = new Int32Array((T + 1) * B).fill(PAD);
    const side = split.image(batch[0].image).length;
    const rgb = new Uint8Array(B * side);
    batch.forEach((p, b) => {
      [START, ...p.ids, END].forEach((id, t) => (ids[t * B + b] = id));
      rgb.set(split.image(p.image), b * side);
    });
    const r = net.run({ tokens: ids, images: rgb, T, B, states: new Float32Array(stateSize(layers, isLstm(cell), B, hidden)) }, { training: false });
    loss += r.loss;
    tokens += r.tokens;
  }
  return { loss, tokens };
}

/** Generated captions (words) of images 0..n−1. */
function generate(net: Network, vocab: Vocab, split: CaptionSplit, n: number, opts: CaptionEvalOptions): string[] {
  const out: string[] = [];
  for (let from = 0; from < n; from += BATCH) {
    const count = Math.min(BATCH, n - from);
    if (opts.beam > 1) {
      for (let i = from; i < from + count; i++) out.push(decodeCaption(vocab, beamCaption(net, split.image(i), opts.beam, opts.maxLength)));
      continue;
    }
    const side = split.image(from).length;
    const rgb = new Uint8Array(count * side);
    for (let k = 0; k < count; k++) rgb.set(split.image(from + k), k * side);
    for (const ids of decodeCaptions(net, rgb, count, { maxLength: opts.maxLength, temperature: null })) out.push(decodeCaption(vocab, ids));
  }
  return out;
}

export function evaluateCaptioner(net: Network, vocab: Vocab, split: CaptionSplit, opts: CaptionEvalOptions): CaptionEval {
  const n = opts.limit === null ? split.count : Math.min(opts.limit, split.count);
  if (n < 1) throw new Error(`the ${split.name} split has no image to evaluate`);
  const { loss, tokens } = referenceLoss(net, vocab, split, n);
  const generated = generate(net, vocab, split, n, opts);
  const captions = generated.map((caption, i) => ({
    image: split.imageName(i),
    caption,
    references: split.references(i),
    correct: split.scene ? isCorrect(caption, split.scene(i)) : null,
  }));
  const bleu = corpusBleu(captions.map((c) => c.references.map(captionWords)), captions.map((c) => captionWords(c.caption)));
  return {
    loss: loss / tokens,
    ...bleu,
    accuracy: split.scene ? captions.filter((c) => c.correct).length / n : null,
    images: n,
    captions,
  };
}
