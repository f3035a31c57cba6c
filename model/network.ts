// One replica of the model: embedding → L recurrent layers → decoder → softmax
// cross-entropy, with the forward pass and the hand-written backward pass of one
// truncated-BPTT chunk.
//
//   tokens ─▶ embedding ─▶ x·W_x (all T steps: one product) ─▶ cell loop over t ─▶ … ─▶ h·W_d ─▶ xent
//   grads  ◀─ dW_x = Xᵀ·dPx (one product over T·B rows) ◀─ cell backward loop ◀─ … ◀─ softmax − onehot
//
// Layer 0's input product is folded through the embedding when the vocabulary is
// smaller than the chunk: (embedding.W · W_x)[token] equals embedding.W[token] · W_x,
// so the product runs over V rows instead of T·B, and its gradients likewise
// (dW_x = embedding.Wᵀ · Σ_token dPx). Same function, fewer FLOPs.
//
// Several blocks of streams can run through one pass (runTogether, model/rowbatch.ts), each
// block's result bit for bit the one its own run gives.
//
// A captioner (task "caption") feeds its CNN's image vector, layer-normalized, as the
// first input, before the caption's words, and scores only real targets (docs/CAPTIONING.md):
//   image ─▶ CNN ─▶ LN ─▶ x₋₁ ┐      (over precomputed features: features ─▶ linear ─▶ LN, model/features.ts)
//   <start> w₁ … wₙ ─▶ embedding ─▶ x₀ … xₙ ┴▶ layers ─▶ h·W_d ─▶ xent on w₁ … wₙ <end>

import * as tf from '@tensorflow/tfjs';
import type { ChunkInput, ChunkResult } from './chunk.js';
import { stateSize } from './chunk.js';
import { isLstm } from './config.js';
import { cellFor } from './cells/index.js';
import type { Cell, LayerForward, LayerInput, LnParams } from './layer.js';
import { type InputProduct, type LayerTensors, type Put, inputForward, layerBackward, putInto } from './layerio.js';
import { RowBlocks } from './segments.js';
import { type BlockResult, runTogether } from './rowbatch.js';
import { type ParamLayout, type ParamSpec } from './params.js';
import {
  type LayerNormOut,
  type T1,
  type T2,
  colSum,
  colSumProduct,
  concatRows,
  gatherRows,
  layerNorm,
  layerNormBackward,
  rows,
  scatterAddRows,
} from './primitives.js';
import { normStabilizer } from './stabilizer.js';
import { take } from './native/arena.js';
import { runCaptionHead, runHead } from './heads.js';
import { type EncoderForward, type EncoderWeights, encoderBackward, encoderForward, pixelRows } from './cnn.js';
import { PAD, captionSteps } from './caption.js';
import { featureRows, linearEncoderBackward, linearEncoderForward } from './features.js';
import type { ModelConfig } from './config.js';

/** The chunk carries what the task reads, with consistent sizes and ids in range. */
function checkChunk(config: ModelConfig, input: ChunkInput, V: number): void {
  const { T, B } = input;
  const need = (what: string, got: number | undefined, expected: number) => {
    if (got !== expected) throw new Error(`chunk ${what}: ${got === undefined ? 'missing' : `${got} values`}, expected ${expected} (T=${T}, B=${B})`);
  };
  if (config.task === 'lm') {
    need('tokens', input.tokens?.length, (T + 1) * B);
    return;
  }
  if (config.task === 'caption') {
    need('tokens', input.tokens?.length, (T + 1) * B);
    // Pixel bytes, or a features captioner's D float32 values per pair as bytes.
    if (input.images) need('images', input.images.length, B * (config.featureSize > 0 ? config.featureSize * 4 : config.imageSize * config.imageSize * 3));
    return;
  }
  need('inputs', input.inputs?.length, T * B * config.inputSize);
  if (config.task === 'classify') {
    need('labels', input.labels?.length, B);
    for (const c of input.labels!) if (!(c >= 0 && c < V)) throw new Error(`chunk label ${c} outside [0, ${V})`);
  } else {
    need('values', input.values?.length, B * V);
  }
}

export interface Tensors {
  encoder?: EncoderWeights;
  imageNorm?: LnParams;
  embedding?: T2;
  layers: LayerTensors[];
  decoderW: T2;
  decoderB: T1;
}

export interface RunOptions {
  /** Compute gradients (and keep what the backward pass needs). */
  training: boolean;
  /** Also return the logits. */
  logits?: boolean;
  /**
   * Write the gradient here (when it has the model's size) instead of a new array: for a
   * caller that is done with the previous result before the next run (a worker thread).
   */
  gradInto?: Float32Array;
}

export class Network {
  readonly layout: ParamLayout;
  private readonly cell: Cell;
  private tensors: Tensors | null = null;

  constructor(layout: ParamLayout) {
    this.layout = layout;
    this.cell = cellFor(layout.config.cell);
  }

  /** Load weights (copied: later changes to `flat` do not reach the tensors). */
  setParams(flat: Float32Array): void {
    if (flat.length !== this.layout.size) {
      throw new Error(`parameter buffer has ${flat.length} values, the model needs ${this.layout.size}`);
    }
    this.dispose();
    // On native the copies come from the arena (model/native/arena.ts) and go back to it at the next load.
    const native = tf.getBackend() === 'native';
    const copy = (from: number, n: number) => {
      const out = native ? take(n) : new Float32Array(n);
      out.set(flat.subarray(from, from + n));
      return out;
    };
    const t2 = (spec: ParamSpec, rows = spec.shape[0], at = 0) => tf.tensor2d(copy(spec.offset + at, rows * spec.shape[1]), [rows, spec.shape[1]]);
    const t1 = (spec: ParamSpec) => tf.tensor1d(copy(spec.offset, spec.size));
    const ln = (p?: { gamma: ParamSpec; beta: ParamSpec }) => p && { gamma: t1(p.gamma), beta: t1(p.beta) };
    const L = this.layout;
    const GH = L.layers[0].W.shape[1];
    this.tensors = {
      encoder: L.encoder && {
        convs: L.encoder.convs.map((c) => ({ w: t2(c.W), b: t1(c.b) })),
        projW: t2(L.encoder.projW),
        projB: t1(L.encoder.projB),
      },
      imageNorm: ln(L.encoder?.norm),
      embedding: L.embedding && t2(L.embedding),
      layers: L.layers.map((p) => ({
        Wx: t2(p.W, p.inputSize),
        Wh: t2(p.W, L.config.hidden, p.inputSize * GH),
        b: t1(p.b),
        b_hn: p.b_hn && t1(p.b_hn),
        peep: p.peep && t1(p.peep),
        lnX: ln(p.lnX),
        lnH: ln(p.lnH),
        lnC: ln(p.lnC),
      })),
      decoderW: t2(L.decoderW),
      decoderB: t1(L.decoderB),
    };
  }

  dispose(): void {
    if (!this.tensors) return;
    tf.dispose(this.tensors as unknown as tf.TensorContainer);
    this.tensors = null;
  }

  /** Forward (and, when training, backward) over one chunk. Synchronous. */
  run(input: ChunkInput, opts: RunOptions): ChunkResult {
    if (!this.tensors) throw new Error('Network.run before setParams');
    const { config, vocabSize: V } = this.layout;
    const { T, B } = input;
    const H = config.hidden;
    const lstm = isLstm(config.cell);
    if (!(Number.isInteger(T) && T >= 1 && Number.isInteger(B) && B >= 1)) throw new Error(`bad chunk shape T=${T}, B=${B}`);
    checkChunk(config, input, V);
    const nState = stateSize(config.layers, lstm, B, H);
    if (input.states.length !== nState) throw new Error(`chunk states have ${input.states.length} values, expected ${nState}`);
    const w = this.tensors;
    // The result holds large typed arrays: tidy would walk every element looking for
    // tensors, so it goes out through a variable, not as tidy's return value.
    let result: ChunkResult | undefined;
    tf.tidy(() => {
      result = this.runInScope(w, input, opts);
    });
    return result!;
  }

  /**
   * Forward (and backward) over a task's blocks at once, parts[i] being block i's own chunk
   * (model/rowbatch.ts): each block's result as its own run would give it, its gradient in
   * grads[i]; the final states of all B streams.
   */
  runTogether(input: ChunkInput, parts: ChunkInput[], training: boolean, grads: Float32Array[]): { results: BlockResult[]; finalStates: Float32Array } {
    if (!this.tensors) throw new Error('Network.runTogether before setParams');
    const { config, vocabSize: V } = this.layout;
    if (config.task === 'caption') throw new Error('Network.runTogether: a captioner runs its blocks one by one');
    checkChunk(config, input, V);
    const nState = stateSize(config.layers, isLstm(config.cell), input.B, config.hidden);
    if (input.states.length !== nState) throw new Error(`chunk states have ${input.states.length} values, expected ${nState}`);
    const w = this.tensors;
    let out: ReturnType<typeof runTogether> | undefined;
    tf.tidy(() => {
      out = runTogether(this.layout, this.cell, w, input, parts, training, grads);
    });
    return out!;
  }

  private runInScope(w: Tensors, input: ChunkInput, opts: RunOptions): ChunkResult {
    const { config, vocabSize: V } = this.layout;
    const { B } = input;
    const caption = config.task === 'caption' ? this.captionInput(w, input, opts) : null;
    // The recurrent steps: a captioner's image step and word steps, else the chunk's T.
    const T = caption ? caption.steps : input.T;
    const H = config.hidden;
    const lstm = isLstm(config.cell);
    const S = lstm ? 2 : 1;
    const nState = stateSize(config.layers, lstm, B, H);
    {
      const N = T * B;
      const vector = config.inputSize > 0;
      const ids = vector || caption ? new Int32Array(0) : input.tokens!.subarray(0, N);
      const fold = !vector && !caption && V <= N;
      const state = (l: number, s: number) =>
        tf.tensor2d(input.states.slice((l * S + s) * B * H, (l * S + s + 1) * B * H), [B, H]);
      const layers: { input: LayerInput; fwd: LayerForward; ip: InputProduct; hAll: T2 }[] = [];
      for (let l = 0; l < config.layers; l++) {
        const lw = w.layers[l];
        const Xin =
          l > 0 ? layers[l - 1].hAll
          : caption ? caption.x
          : vector ? tf.tensor2d(input.inputs!, [N, config.inputSize])
          : fold ? w.embedding! : gatherRows(w.embedding!, ids);
        const ip = inputForward(Xin, lw);
        const layerInput: LayerInput = {
          T,
          B,
          H,
          px: ip.px,
          rowIds: l === 0 && fold ? ids : null,
          h0: state(l, 0),
          c0: lstm ? state(l, 1) : undefined,
          training: opts.training,
          blocks: RowBlocks.one(B),
        };
        const fwd = this.cell.forward(lw, layerInput);
        layers.push({ input: layerInput, fwd, ip, hAll: concatRows(fwd.hs) });
      }
      const finalStates = new Float32Array(nState);
      layers.forEach((layer, l) =>
        layer.fwd.final.forEach((t, s) => finalStates.set(t.dataSync() as Float32Array, (l * S + s) * B * H)),
      );
      const top = layers[layers.length - 1].hAll;
      const head = caption
        ? runCaptionHead(top, w.decoderW, w.decoderB, caption.targets, { grad: opts.training, logits: opts.logits, from: caption.from })
        : runHead(config.task as 'lm' | 'classify' | 'regress', top, w.decoderW, w.decoderB, input, { grad: opts.training, logits: opts.logits });
      const logits = head.logits ? (head.logits.dataSync() as Float32Array).slice() : undefined;
      const beta = config.normStabilizer;
      let penalty = 0;
      if (!opts.training) {
        if (beta > 0) {
          for (const layer of layers) {
            penalty += normStabilizer(layer.hAll, layer.input.h0, null, { T, B, H }, beta, false).penalty;
          }
        }
        return { loss: head.loss, penalty, tokens: head.tokens, finalStates, logits };
      }

      // Backward, top down.
      const grad = opts.gradInto?.length === this.layout.size ? opts.gradInto.fill(0) : new Float32Array(this.layout.size);
      const put = putInto(grad);
      put(this.layout.decoderW, head.dW!);
      put(this.layout.decoderB, head.db!);
      let dAbove = head.dTop!; // (T·B, H)
      for (let l = config.layers - 1; l >= 0; l--) {
        const { input: li, fwd, ip } = layers[l];
        const lw = w.layers[l];
        if (beta > 0) {
          const s = normStabilizer(layers[l].hAll, li.h0, dAbove, { T, B, H }, beta, true);
          penalty += s.penalty;
          dAbove = s.dH!;
        }
        const [g] = this.cell.backward(lw, li, fwd, dAbove);
        const dXin = layerBackward(this.layout, l, lw, ip, g, li.rowIds, put, !(l === 0 && vector));
        if (!dXin) continue; // no gradient is needed for given inputs
        if (l > 0) dAbove = dXin;
        else if (caption) this.captionBackward(w, caption, dXin, B, put);
        else if (this.layout.embedding) put(this.layout.embedding, li.rowIds ? dXin : scatterAddRows(dXin, ids, V));
      }
      return { loss: head.loss, penalty, tokens: head.tokens, grad, finalStates, logits };
    }
  }

  /**
   * A captioner's layer-0 input: the image vectors (when the chunk has images) then the
   * embedded words, and each decoder row's target (PAD where none). Training and loss
   * runs stop at the chunk's last real target; a run asked for logits runs all T steps.
   */
  private captionInput(w: Tensors, input: ChunkInput, opts: RunOptions): CaptionInput {
    const { imageSize, featureSize: D } = this.layout.config;
    const { B } = input;
    const tokens = input.tokens!;
    const words = opts.logits ? input.T : Math.max(1, captionSteps(tokens, input.T, B));
    const image = input.images ? 1 : 0;
    const ids = tokens.subarray(0, words * B);
    const features = input.images && D > 0 ? featureRows(input.images, B, D) : null; // (B, D)
    const enc = input.images && !features ? encoderForward(w.encoder!, pixelRows(input.images, B, imageSize), B, imageSize) : null;
    const projected = features ? linearEncoderForward(w.encoder!.projW, w.encoder!.projB, features) : enc?.out; // (B, E)
    // The image vector at the embeddings' scale whatever the CNN's: x₋₁ = LN(W_p·CNN(I) + b_p).
    const norm = projected ? layerNorm(projected, w.imageNorm!.gamma, w.imageNorm!.beta) : null;
    const embedded = gatherRows(w.embedding!, ids); // (words·B, E)
    const targets = new Int32Array((words + image) * B).fill(PAD);
    targets.set(tokens.subarray(B, (words + 1) * B), image * B);
    return { steps: words + image, x: norm ? concatRows([norm.y, embedded]) : embedded, ids, enc, features, norm, targets, from: image * B };
  }

  /** Layer 0's input gradient into the embedding rows of the words and, through the CNN, the encoder. */
  private captionBackward(w: Tensors, caption: CaptionInput, dXin: T2, B: number, put: Put): void {
    const L = this.layout;
    const dWords = caption.norm ? rows(dXin, B, dXin.shape[0] - B) : dXin;
    put(L.embedding!, scatterAddRows(dWords, caption.ids, L.vocabSize));
    if (!caption.norm) return;
    const dNorm = rows(dXin, 0, B); // (B, E)
    put(L.encoder!.norm.gamma, colSumProduct(dNorm, caption.norm.xhat));
    put(L.encoder!.norm.beta, colSum(dNorm));
    const dProjected = layerNormBackward(dNorm, caption.norm, w.imageNorm!.gamma);
    if (caption.features) {
      const g = linearEncoderBackward(caption.features, dProjected);
      put(L.encoder!.projW, g.projW);
      put(L.encoder!.projB, g.projB);
      return;
    }
    const g = encoderBackward(w.encoder!, caption.enc!, dProjected);
    L.encoder!.convs.forEach((spec, i) => {
      put(spec.W, g.convs[i].w);
      put(spec.b, g.convs[i].b);
    });
    put(L.encoder!.projW, g.projW);
    put(L.encoder!.projB, g.projB);
  }
}

interface CaptionInput {
  /** Recurrent steps: the image step (if any) and the word steps. */
  steps: number;
  /** Layer 0's input rows, (steps·B, E). */
  x: T2;
  /** The words fed, time-major. */
  ids: Int32Array;
  enc: EncoderForward | null;
  /** A features captioner's rows (B, D), instead of `enc`. */
  features: T2 | null;
  /** The image vectors' layer norm (its output is x₋₁). */
  norm: LayerNormOut | null;
  /** Per decoder row, its target id or PAD. */
  targets: Int32Array;
  /** First decoder row that reads a word (B with an image step, else 0). */
  from: number;
}
