// What a recurrent layer exchanges with the network: its weights as tensors, its
// input (a table of input products plus the row each (t, b) reads), its saved
// forward pass, and its gradients. Also the recurrent product h·W_h (with optional
// layer norm) and its backward, shared by every cell.
//
// A layer may run several blocks of streams at once (model/rowbatch.ts): its steps then
// have the rows of all blocks, and every gradient that sums over rows is returned per
// block, summed over that block's rows in its own run's order (model/segments.ts).

import * as tf from '@tensorflow/tfjs';
import type { RowBlocks } from './segments.js';
import {
  type LayerNormOut,
  type T1,
  type T2,
  colSum,
  colSumProduct,
  layerNorm,
  layerNormBackward,
  matMul,
  matMulT,
} from './primitives.js';

export interface LnParams {
  gamma: T1;
  beta: T1;
}

export interface LayerWeights {
  /** Recurrent rows of the fused matrix, (H, G·H). */
  Wh: T2;
  b: T1;
  b_hn?: T1;
  peep?: T1;
  lnH?: LnParams;
  lnC?: LnParams;
}

export interface LayerInput {
  T: number;
  B: number;
  H: number;
  /** Input products, layer-normalized when LN is on, without the bias: (R, G·H). */
  px: T2;
  /** Row of px that step t, stream b reads: rowIds[t·B + b]; null means row t·B + b. */
  rowIds: Int32Array | null;
  h0: T2;
  c0?: T2;
  /** Save what the backward pass needs (false for evaluation and sampling). */
  training: boolean;
  /** The blocks of streams among the B rows (one block of B for a single block's run). */
  blocks: RowBlocks;
}

export interface LayerForward {
  /** h_1 … h_T, each (B, H). */
  hs: T2[];
  /** Final states: [h_T] or [h_T, c_T]. */
  final: T2[];
  /** Cell-specific saved tensors. */
  tape: unknown;
}

/** One block's gradients (b its streams). */
export interface LayerGrads {
  /** Gradient with respect to px + b at each (t, b) of the block: (T·b, G·H), row t·b + s. */
  dPx: T2;
  dWh: T2;
  db_hn?: T1;
  dpeep?: T1;
  dlnH?: LnParams;
  dlnC?: LnParams;
}

export interface Cell {
  forward(w: LayerWeights, input: LayerInput): LayerForward;
  /**
   * dH: gradient reaching each h_t from outside the recurrence (layer above, loss, penalty),
   * (T·B, H). Returns one LayerGrads per block of input.blocks.
   */
  backward(w: LayerWeights, input: LayerInput, fwd: LayerForward, dH: T2): LayerGrads[];
}

/** p = LN_h(h · W) (or h · W), saving what the backward pass needs. */
export function recurrentForward(h: T2, W: T2, ln: LnParams | undefined): { p: T2; saved?: LayerNormOut } {
  const a = matMul(h, W);
  if (!ln) return { p: a };
  const saved = layerNorm(a, ln.gamma, ln.beta);
  a.dispose();
  return { p: saved.y, saved };
}

/** Gradient of the product's output a = h · W, given the gradient of p = LN(a). */
export function recurrentBackward(dp: T2, saved: LayerNormOut | undefined, ln: LnParams | undefined): T2 {
  return ln ? layerNormBackward(dp, saved!, ln.gamma) : dp;
}

/**
 * Gradients of a recurrent product over the chunk, per block: dW = Σ_t h_{t−1}ᵀ · da_t over
 * the block's rows (one product over its stacked rows), plus LN's γ and β. With `keepRows`,
 * each block's stacked da_t are returned too (a cell whose input-product gradient is the
 * same stack, as the LSTM's and RNN's are without layer norm, uses it instead of a copy).
 * `da` may come already stacked (one block, no layer norm: the caller's tensor, returned
 * as `rows` with keepRows and never disposed here).
 */
export function recurrentParamGrads(
  inputs: T2[],
  da: T2[] | { stacked: T2 },
  dp: T2[],
  saved: (LayerNormOut | undefined)[],
  ln: LnParams | undefined,
  blocks: RowBlocks,
  keepRows = false,
): { dW: T2; dln?: LnParams; rows?: T2 }[] {
  const given = Array.isArray(da) ? null : da.stacked;
  if (given && (blocks.count !== 1 || ln)) throw new Error(`recurrentParamGrads: a stacked da is one block's without layer norm (${blocks.count} blocks)`);
  return blocks.sizes.map((_, i) => {
    const X = blocks.stack(inputs, i);
    const dA = given ?? blocks.stack(da as T2[], i);
    const dW = matMulT(X, dA, true, false); // Xᵀ·dA (on native no transposed copy: the same bits)
    X.dispose();
    const rows = keepRows ? dA : undefined;
    if (!keepRows && !given) dA.dispose();
    if (!ln) return { dW, rows };
    const dP = blocks.stack(dp, i);
    const xhat = blocks.stack(
      saved.map((s) => s!.xhat),
      i,
    );
    const dln = { gamma: colSumProduct(dP, xhat), beta: colSum(dP) };
    dP.dispose();
    xhat.dispose();
    return { dW, dln, rows };
  });
}

/** The row index helper every fused cell kernel uses. */
export function rowOf(rowIds: Int32Array | null, rowBase: number, b: number): number {
  return rowIds ? rowIds[rowBase + b] : rowBase + b;
}

export function disposeAll(list: (tf.Tensor | undefined | null)[]): void {
  for (const t of list) t?.dispose();
}
