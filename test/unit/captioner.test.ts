// Decoding with a captioner (model/captioner.ts) on a small random model: step by step
// it computes the same logits as one teacher-forced pass over the caption; greedy equals
// beam search with one hypothesis; a wider beam finds a caption at least as probable;
// sampling follows its seed. And the evaluation (coordinator/caption/evaluate.ts): its
// loss is the pairs' summed loss over their targets, its BLEU and accuracy those of the
// captions it reports.

import { beforeAll, describe, expect, it } from 'vitest';
import { evaluateCaptioner } from '../../coordinator/caption/evaluate.js';
import { corpusBleu } from '../../coordinator/caption/bleu.js';
import { shapesDataset } from '../../coordinator/caption/dataset.js';
import { isCorrect } from '../../coordinator/caption/grammar.js';
import { buildCaptionVocab, captionWords, encodeCaption, wordIndex } from '../../coordinator/caption/words.js';
import { initBackend } from '../../model/backend.js';
import { END, PAD, START } from '../../model/caption.js';
import { beamCaption, decodeCaptions } from '../../model/captioner.js';
import { isLstm, resolveModelConfig } from '../../model/config.js';
import { stateSize } from '../../model/chunk.js';
import { Network } from '../../model/network.js';
import { buildLayout, initParams } from '../../model/params.js';
import { Rng } from '../../model/rng.js';

const SIDE = 64;
let net: Network;
const V = 12;

/** A random captioner with weights large enough that its captions differ between images. */
function captioner(cell: 'lstm' | 'gru', vocab = V, endBias = 0): Network {
  const layout = buildLayout(resolveModelConfig({ task: 'caption', imageSize: SIDE, cnn: [4, 4, 4], embed: 6, hidden: 8, cell }), vocab);
  const params = initParams(layout, 5);
  const rng = new Rng(9);
  for (let i = 0; i < params.length; i++) params[i] += rng.range(-0.5, 0.5);
  params[layout.decoderB.offset + END] += endBias; // > 0: captions that end within a few words
  const n = new Network(layout);
  n.setParams(params);
  return n;
}

const image = (k: number) => Uint8Array.from({ length: SIDE * SIDE * 3 }, (_, i) => (i * (k + 3) * 7) & 255);

/** The log-probability the model gives a caption (its words, then <end>). */
function logProb(n: Network, rgb: Uint8Array, words: number[]): number {
  const ids = [START, ...words, END];
  const T = ids.length - 1;
  const tokens = Int32Array.from(ids);
  const { layers, hidden, cell } = n.layout.config;
  const r = n.run({ tokens, images: rgb, T, B: 1, states: new Float32Array(stateSize(layers, isLstm(cell), 1, hidden)) }, { training: false });
  return -r.loss;
}

beforeAll(async () => {
  await initBackend('cpu');
  net = captioner('lstm');
});

describe('decoding', () => {
  it('step by step gives the logits of one teacher-forced pass', () => {
    const rgb = image(1);
    const words = decodeCaptions(net, rgb, 1, { maxLength: 6, temperature: null })[0];
    const fed = [START, ...words];
    const T = fed.length;
    const tokens = new Int32Array(T + 1).fill(PAD);
    tokens.set(fed);
    const whole = net.run({ tokens, images: rgb, T, B: 1, states: new Float32Array(16) }, { training: false, logits: true }).logits!;
    // Greedy picked each word as the argmax of the whole pass's logits at its step.
    words.forEach((w, t) => {
      const row = Array.from(whole.subarray(t * V, (t + 1) * V));
      expect(row.indexOf(Math.max(...row)), `step ${t}`).toBe(w);
    });
  });

  it('greedy equals beam search with one hypothesis, and images side by side equal images alone', () => {
    const rgbs = [0, 1, 2, 3].map(image);
    const all = new Uint8Array(4 * rgbs[0].length);
    rgbs.forEach((r, k) => all.set(r, k * r.length));
    const together = decodeCaptions(net, all, 4, { maxLength: 8, temperature: null });
    rgbs.forEach((rgb, k) => {
      expect(beamCaption(net, rgb, 1, 8), `image ${k}`).toEqual(together[k]);
      expect(decodeCaptions(net, rgb, 1, { maxLength: 8, temperature: null })[0]).toEqual(together[k]);
    });
    // The image matters: the first word's logits differ between images.
    const first = (rgb: Uint8Array) => Array.from(net.run({ tokens: Int32Array.of(START, PAD), images: rgb, T: 1, B: 1, states: new Float32Array(16) }, { training: false, logits: true }).logits!);
    expect(first(rgbs[0])).not.toEqual(first(rgbs[1]));
  });

  it('a wider beam finds a caption at least as probable as greedy (GRU and LSTM)', () => {
    let compared = 0;
    for (const n of [captioner('lstm', V, 1), captioner('gru', V, 1)]) {
      for (let k = 0; k < 3; k++) {
        const rgb = image(k);
        const greedy = beamCaption(n, rgb, 1, 5);
        const wide = beamCaption(n, rgb, 4, 5);
        // Only finished captions (ended by <end> within the limit) have a log-probability to compare.
        if (greedy.length < 5 && wide.length < 5) {
          expect(logProb(n, rgb, wide)).toBeGreaterThanOrEqual(logProb(n, rgb, greedy) - 1e-9);
          compared++;
        }
        for (const c of [greedy, wide]) expect(c.every((id) => id !== END && id !== START)).toBe(true);
      }
    }
    expect(compared).toBeGreaterThan(2);
  });

  it('sampling follows its seed and stops at the length limit', () => {
    const rgb = image(2);
    const a = decodeCaptions(net, rgb, 1, { maxLength: 4, temperature: 1.5, seed: 3 });
    expect(decodeCaptions(net, rgb, 1, { maxLength: 4, temperature: 1.5, seed: 3 })).toEqual(a);
    const many = Array.from({ length: 8 }, (_, s) => decodeCaptions(net, rgb, 1, { maxLength: 4, temperature: 3, seed: s })[0].join());
    expect(new Set(many).size).toBeGreaterThan(1);
    expect(a[0].length).toBeLessThanOrEqual(4);
  });
});

describe('evaluation on shapes', () => {
  it('reports the mean loss of the captions it trains on, BLEU of its captions against all references and the share of correct ones', async () => {
    const split = await shapesDataset(40, 2).split('test');
    const refs = Array.from({ length: split.count }, (_, i) => split.references(i)).flat();
    const vocab = buildCaptionVocab(refs, 100);
    const n = captioner('lstm', vocab.tokens.length);
    const r = evaluateCaptioner(n, vocab, split, { limit: null, beam: 1, maxLength: 12 });
    expect(r.images).toBe(4);
    const index = wordIndex(vocab);
    let loss = 0;
    let tokens = 0;
    for (let i = 0; i < split.count; i++) {
      for (const ref of split.trainingReferences!(i)) {
        loss -= logProb(n, split.image(i), encodeCaption(index, ref));
        tokens += captionWords(ref).length + 1;
      }
    }
    expect(r.loss).toBeCloseTo(loss / tokens, 5);
    const bleu = corpusBleu(r.captions.map((c) => c.references.map(captionWords)), r.captions.map((c) => captionWords(c.caption)));
    expect([r.bleu1, r.bleu4]).toEqual([bleu.bleu1, bleu.bleu4]);
    r.captions.forEach((c, i) => expect(c.correct).toBe(isCorrect(c.caption, split.scene!(i))));
    expect(r.accuracy).toBe(r.captions.filter((c) => c.correct).length / 4);
    expect((evaluateCaptioner(n, vocab, split, { limit: 2, beam: 2, maxLength: 12 })).images).toBe(2);
  });
});
