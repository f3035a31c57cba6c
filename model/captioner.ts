// Captioning with a trained captioner (Show and Tell's decoding): the image goes in as
// x₋₁, then <start>, then each generated word, until <end> or the length limit.
// Greedy and temperature sampling decode many images side by side; beam search
// (model/beam.ts) one image at a time, its hypotheses side by side.

import { beamSearch, type BeamStep } from './beam.js';
import { END, PAD, START } from './caption.js';
import { stateSize } from './chunk.js';
import { isLstm } from './config.js';
import type { Network } from './network.js';
import { Rng } from './rng.js';

export interface DecodeOptions {
  /** Most tokens generated, <end> included. */
  maxLength: number;
  /** Sample from softmax(logits / temperature); null: the most probable word (greedy). */
  temperature: number | null;
  /** Seed of the sampling stream (ignored when greedy). */
  seed?: number;
}

function zeroStates(net: Network, B: number): Float32Array {
  const { layers, hidden, cell } = net.layout.config;
  return new Float32Array(stateSize(layers, isLstm(cell), B, hidden));
}

/** One decoder step for B streams: `images` (the first step, with <start>) or the last words. */
function step(net: Network, fed: Int32Array, states: Float32Array, images?: Uint8Array): { logits: Float32Array; states: Float32Array } {
  const B = fed.length;
  const tokens = new Int32Array(2 * B).fill(PAD); // row 1: targets, unused
  tokens.set(fed);
  const r = net.run({ tokens, images, T: 1, B, states }, { training: false, logits: true });
  return { logits: r.logits!, states: r.finalStates };
}

/** Word ids (without <end>) of N images (N·S·S·3 bytes), decoded greedily or by sampling, side by side. */
export function decodeCaptions(net: Network, images: Uint8Array, N: number, opts: DecodeOptions): number[][] {
  if (net.layout.config.task !== 'caption') throw new Error(`decodeCaptions needs a captioner; the model's task is "${net.layout.config.task}"`);
  const V = net.layout.vocabSize;
  const rng = new Rng(opts.seed ?? 1, 0xdec0de);
  const out: number[][] = Array.from({ length: N }, () => []);
  const done = new Array<boolean>(N).fill(false);
  let r = step(net, new Int32Array(N).fill(START), zeroStates(net, N), images);
  for (let k = 0; k < opts.maxLength; k++) {
    const fed = new Int32Array(N).fill(PAD);
    for (let b = 0; b < N; b++) {
      if (done[b]) continue;
      const logits = r.logits.subarray(b * V, (b + 1) * V);
      const next = opts.temperature === null ? argmax(logits) : draw(logits, opts.temperature, rng);
      if (next === END) done[b] = true;
      else out[b].push((fed[b] = next));
    }
    if (k + 1 === opts.maxLength || done.every(Boolean)) break;
    r = step(net, fed, r.states);
  }
  return out;
}

/** Word ids (without <end>) of the most probable caption beam search finds for one image (beam 1 = greedy). */
export function beamCaption(net: Network, image: Uint8Array, beam: number, maxLength: number): number[] {
  const { layers, hidden: H, cell } = net.layout.config;
  const groups = layers * (isLstm(cell) ? 2 : 1);
  // A hypothesis's state: its L·S rows of H; null before the image is fed.
  const decoder: BeamStep<Float32Array | null> = (fed, states) => {
    if (states[0] === null) {
      const r = step(net, Int32Array.of(START), zeroStates(net, 1), image);
      return { logProbs: [logSoftmax(r.logits)], states: [r.states] };
    }
    const n = fed.length;
    const joined = new Float32Array(groups * n * H);
    states.forEach((s, i) => {
      for (let g = 0; g < groups; g++) joined.set(s!.subarray(g * H, (g + 1) * H), (g * n + i) * H);
    });
    const r = step(net, fed, joined);
    const V = net.layout.vocabSize;
    return {
      logProbs: Array.from({ length: n }, (_, i) => logSoftmax(r.logits.subarray(i * V, (i + 1) * V))),
      states: Array.from({ length: n }, (_, i) => {
        const s = new Float32Array(groups * H);
        for (let g = 0; g < groups; g++) s.set(r.states.subarray((g * n + i) * H, (g * n + i + 1) * H), g * H);
        return s;
      }),
    };
  };
  return beamSearch(decoder, null, { beam, startToken: START, endToken: END, maxLength }).tokens;
}

function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - lse);
}

/** The most probable id; the lowest on a tie (as beam search breaks ties). */
function argmax(x: Float32Array): number {
  let best = 0;
  for (let j = 1; j < x.length; j++) if (x[j] > x[best]) best = j;
  return best;
}

function draw(logits: Float32Array, temperature: number, rng: Rng): number {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v / temperature);
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let j = 0; j < logits.length; j++) sum += p[j] = Math.exp(logits[j] / temperature - max);
  let u = rng.uniform() * sum;
  for (let j = 0; j < p.length; j++) {
    u -= p[j];
    if (u < 0) return j;
  }
  return p.length - 1;
}
