// Float64 reference of a captioner's chunk (docs/CAPTIONING.md), for finite-difference
// gradient checks of model/network.ts's caption path: the CNN (cnn64.ts) and a layer norm
// turn each image into x₋₁, then the words are embedded; the recurrent cells are ref64.ts's; the loss is
// the summed cross-entropy of every target that is not <pad>. Written for obviousness.

import { isLstm } from '../../model/config.js';
import { PAD } from '../../model/caption.js';
import type { ParamLayout } from '../../model/params.js';
import { type Cnn64, cnnForward64 } from './cnn64.js';
import { crossEntropy, decode } from './heads64.js';
import { CELL_STEPS, type CellState, layerWeights, tensor } from './ref64.js';

export interface RefCaptionInput {
  /** (T+1)·B ids, time-major: row 0 <start>, then words, <end> and <pad>s. */
  readonly tokens: ArrayLike<number>;
  /** B images of S·S·3 bytes. */
  readonly images: ArrayLike<number>;
  readonly T: number;
  readonly B: number;
  /** Initial states, ((l·S + s)·B + b)·H + j. */
  readonly states: ArrayLike<number>;
}

/** The encoder's weights as cnn64.ts reads them (our conv (out, in·9) is PyTorch's [out, in, 3, 3]). */
function cnnOf(layout: ParamLayout, params: Float64Array): Cnn64 {
  const enc = layout.encoder!;
  const { imageSize, cnn, embed } = layout.config;
  return {
    size: imageSize, channels: [...cnn], embed,
    convW: enc.convs.map((c) => tensor(params, c.W)), convB: enc.convs.map((c) => tensor(params, c.b)),
    projW: tensor(params, enc.projW), projB: tensor(params, enc.projB),
  };
}

/** Summed loss over real targets and their count. */
export function refCaptionLoss(layout: ParamLayout, params: Float64Array, input: RefCaptionInput): { loss: number; tokens: number } {
  const { T, B } = input;
  const { layers: L, hidden: H, embed: E, cell } = layout.config;
  const S = isLstm(cell) ? 2 : 1;
  const V = layout.vocabSize;
  const step = CELL_STEPS[cell];
  const weights = layerWeights(layout, params);
  const embedding = tensor(params, layout.embedding!);
  const decW = tensor(params, layout.decoderW);
  const decB = tensor(params, layout.decoderB);
  const image = cnnForward64(cnnOf(layout, params), Float64Array.from(input.images, (v) => v / 255 - 0.5), B); // (B, E)
  const gamma = tensor(params, layout.encoder!.norm.gamma);
  const beta = tensor(params, layout.encoder!.norm.beta);
  let loss = 0;
  let tokens = 0;
  for (let b = 0; b < B; b++) {
    const state: CellState[] = [];
    for (let l = 0; l < L; l++) {
      const at = (s: number, j: number) => input.states[((l * S + s) * B + b) * H + j];
      state.push({ h: Array.from({ length: H }, (_, j) => at(0, j)), c: S === 2 ? Array.from({ length: H }, (_, j) => at(1, j)) : [] });
    }
    const feed = (x0: number[]): number[] => {
      let x = x0;
      for (let l = 0; l < L; l++) {
        state[l] = step(weights[l], x, state[l]);
        x = state[l].h;
      }
      return x;
    };
    feed(layerNorm64(Array.from(image.subarray(b * E, (b + 1) * E)), gamma, beta)); // x₋₁: no prediction
    for (let t = 0; t < T; t++) {
      const token = input.tokens[t * B + b];
      const top = feed(Array.from(embedding.subarray(token * E, (token + 1) * E)));
      const target = input.tokens[(t + 1) * B + b];
      if (target === PAD) continue;
      loss += crossEntropy(decode(top, decW, decB, V), target);
      tokens++;
    }
  }
  return { loss, tokens };
}

/** γ ⊙ (v − mean)/√(var + 1e-5) + β, the biased variance (nn.LayerNorm). */
function layerNorm64(v: number[], gamma: Float64Array, beta: Float64Array): number[] {
  const mean = v.reduce((a, x) => a + x, 0) / v.length;
  const variance = v.reduce((a, x) => a + (x - mean) ** 2, 0) / v.length;
  return v.map((x, k) => (gamma[k] * (x - mean)) / Math.sqrt(variance + 1e-5) + beta[k]);
}

/** Central differences of the summed loss at the given flat indices. */
export function captionFiniteDifferences(layout: ParamLayout, params64: Float64Array, input: RefCaptionInput, indices: readonly number[], eps = 1e-5): Float64Array {
  const p = Float64Array.from(params64);
  return Float64Array.from(indices, (i) => {
    const saved = p[i];
    p[i] = saved + eps;
    const up = refCaptionLoss(layout, p, input).loss;
    p[i] = saved - eps;
    const down = refCaptionLoss(layout, p, input).loss;
    p[i] = saved;
    return (up - down) / (2 * eps);
  });
}
