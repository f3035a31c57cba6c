// A layer's input side: the input product px = LN_x(X · W_x) over a block's rows, and,
// from the cell's gradients of one block, that layer's parameter gradients (bias, W's input
// and recurrent rows, the cell's own parameters, LN_x) written into the block's flat
// gradient, plus dL/dX. Shared by a block's own run (network.ts) and a task's blocks run
// together (rowbatch.ts): a block's parameter gradients are the same calls on the same
// values either way.

import type * as tf from '@tensorflow/tfjs';
import { gateCount } from './config.js';
import type { LayerGrads, LayerWeights, LnParams } from './layer.js';
import type { ParamLayout, ParamSpec } from './params.js';
import {
  type LayerNormOut,
  type T2,
  colSum,
  colSumProduct,
  layerNorm,
  layerNormBackward,
  matMul,
  scatterAddRows,
  transpose,
} from './primitives.js';

export interface LayerTensors extends LayerWeights {
  /** Input rows of the fused matrix, (In, G·H). */
  Wx: T2;
  lnX?: LnParams;
}

export interface InputProduct {
  /** The layer's input rows (R, In): a block's stacked rows, or the embedding table (folded). */
  Xin: T2;
  lnX?: LayerNormOut;
  /** (R, G·H), layer-normalized when LN_x is on, without the bias. */
  px: T2;
}

export function inputForward(Xin: T2, lw: LayerTensors): InputProduct {
  const a = matMul(Xin, lw.Wx); // (R, G·H)
  const lnX = lw.lnX && layerNorm(a, lw.lnX.gamma, lw.lnX.beta);
  return { Xin, lnX, px: lnX ? lnX.y : a };
}

/** Writes a tensor's values into a flat gradient at a parameter's offset (+ at). */
export type Put = (spec: ParamSpec, t: tf.Tensor, at?: number) => void;

export function putInto(grad: Float32Array): Put {
  return (spec, t, at = 0) => grad.set(t.dataSync() as Float32Array, spec.offset + at);
}

/**
 * Layer l's parameter gradients for one block, from the cell's gradients g (dPx: the
 * block's (T·b, G·H) rows). foldIds: the block's token ids when layer 0's input product is
 * folded through the embedding (then px's rows are the V table rows). Returns dL/dXin
 * (R, In), or null when `inputGrad` is false (given inputs need none).
 */
export function layerBackward(
  layout: ParamLayout,
  l: number,
  lw: LayerTensors,
  ip: InputProduct,
  g: LayerGrads,
  foldIds: Int32Array | null,
  put: Put,
  inputGrad: boolean,
): T2 | null {
  const { config, vocabSize: V } = layout;
  const spec = layout.layers[l];
  const dTable = foldIds ? scatterAddRows(g.dPx, foldIds, V) : g.dPx;
  const db = colSum(dTable);
  put(spec.b, db);
  const dA = ip.lnX ? layerNormBackward(dTable, ip.lnX, lw.lnX!.gamma) : dTable;
  if (spec.lnX) {
    put(spec.lnX.gamma, colSumProduct(dTable, ip.lnX!.xhat));
    put(spec.lnX.beta, db);
  }
  put(spec.W, matMul(transpose(ip.Xin), dA));
  put(spec.W, g.dWh, spec.inputSize * gateCount(config.cell) * config.hidden);
  if (g.db_hn) put(spec.b_hn!, g.db_hn);
  if (g.dpeep) put(spec.peep!, g.dpeep);
  if (g.dlnH) {
    put(spec.lnH!.gamma, g.dlnH.gamma);
    put(spec.lnH!.beta, g.dlnH.beta);
  }
  if (g.dlnC) {
    put(spec.lnC!.gamma, g.dlnC.gamma);
    put(spec.lnC!.beta, g.dlnC.beta);
  }
  return inputGrad ? matMul(dA, transpose(lw.Wx)) : null;
}
