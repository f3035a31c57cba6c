// A task's blocks run together: one forward and backward pass over all the task's B
// streams, so every step's recurrent products (h·W_h, dA·W_hᵀ) have B rows, not a block's
// b. The result is each block's own run (Network.run over its streams), bit for bit, which
// model/blocks.ts then sums by the tree as before:
//
//   per step, all B rows at once          per block, over its own stacked rows (T·b)
//   ─────────────────────────────         ──────────────────────────────────────────
//   h·W_h, LN_h, the gate kernels,        the input product X·W_x and LN_x, the head (logits,
//   their backward, dA·W_hᵀ               softmax, loss, dW, db), the norm-stabilizer,
//                                          every parameter gradient (Xᵀ·dA, Σ_t hᵀ·da, column
//                                          sums, peephole and LN sums, the embedding scatter-add)
//
// The left column is exact only if a row's result does not depend on the other rows
// computed with it: the row kernels go row by row on every backend, and the matrix product
// is row-independent where ROW_INDEPENDENT says so (test/unit/row-independence.test.ts).
// The right column makes the same calls on the same values as the block's own run: a block's
// stack is gathered from the steps' rows in its own order (model/segments.ts), and a block's
// parameter gradients go through the same code (model/layerio.ts).

import * as tf from '@tensorflow/tfjs';
import { type BackendName, isBackendName } from './backend.js';
import type { ChunkInput } from './chunk.js';
import { type ModelConfig, isLstm } from './config.js';
import { runHead } from './heads.js';
import type { Cell, LayerForward, LayerInput } from './layer.js';
import { type InputProduct, inputForward, layerBackward, putInto } from './layerio.js';
import type { Tensors } from './network.js';
import type { ParamLayout } from './params.js';
import { type T2, concatRows, gatherRows, scatterAddRows } from './primitives.js';
import { RowBlocks } from './segments.js';
import { normStabilizer } from './stabilizer.js';

/**
 * Whether each row of a matrix product has the same bits whatever rows are computed with
 * it, per backend: the native GEMM (one FMA chain over k per element, zero-padded edge
 * tiles), XNNPACK on wasm and tfjs's cpu loops are. Checked by test/unit/row-independence.test.ts
 * on every kernel path; a backend set false here keeps running a task's blocks one by one.
 */
export const ROW_INDEPENDENT: Record<BackendName, boolean> = { native: true, wasm: true, cpu: true };

/**
 * The one place that decides whether a task of several blocks runs them together: on a
 * row-independent backend, for every task but captioning (its CNN encoder runs per image;
 * a captioner's task keeps running its blocks one by one).
 */
export function rowBatchable(config: ModelConfig): boolean {
  const backend = tf.getBackend();
  return config.task !== 'caption' && isBackendName(backend) && ROW_INDEPENDENT[backend];
}

/** One block's share of a task run together: what its own run would return but the states. */
export interface BlockResult {
  loss: number;
  penalty: number;
  tokens: number;
  grad?: Float32Array;
}

interface Layer {
  input: LayerInput;
  fwd: LayerForward;
  /** Per block: its input product (blocks whose layer-0 product is folded share one). */
  ips: InputProduct[];
  /** Per block: its h_1 … h_T stacked, (T·b, H). */
  hAll: T2[];
}

/**
 * Forward (and, when training, backward into grads[i]) over a task's blocks at once; parts[i]
 * is block i's own chunk (model/blocks.ts, blockOf). Inside a tf scope; the chunk is checked
 * by the caller (Network.runTogether).
 */
export function runTogether(
  layout: ParamLayout,
  cell: Cell,
  w: Tensors,
  input: ChunkInput,
  parts: ChunkInput[],
  training: boolean,
  grads: Float32Array[],
): { results: BlockResult[]; finalStates: Float32Array } {
  const blocks = new RowBlocks(parts.map((p) => p.B));
  const { config, vocabSize: V } = layout;
  const { T, B } = input;
  const H = config.hidden;
  const S = isLstm(config.cell) ? 2 : 1;
  const L = config.layers;
  const vector = config.inputSize > 0;
  const ids = parts.map((p) => (vector ? new Int32Array(0) : p.tokens!.subarray(0, T * p.B)));
  // A block folds layer 0's product through the embedding when its own run would (V ≤ T·b).
  const fold = parts.map((p) => !vector && V <= T * p.B);
  const state = (l: number, s: number) => tf.tensor2d(input.states.slice((l * S + s) * B * H, (l * S + s + 1) * B * H), [B, H]);

  const layers: Layer[] = [];
  for (let l = 0; l < L; l++) {
    const lw = w.layers[l];
    let folded: InputProduct | undefined;
    const ips = parts.map((p, i) => {
      if (l === 0 && fold[i]) return (folded ??= inputForward(w.embedding!, lw));
      const Xin =
        l > 0 ? layers[l - 1].hAll[i]
        : vector ? tf.tensor2d(p.inputs!, [T * p.B, config.inputSize])
        : gatherRows(w.embedding!, ids[i]);
      return inputForward(Xin, lw);
    });
    const table = cellTable(ips, l === 0 ? fold : [], ids, blocks, T);
    const layerInput: LayerInput = {
      T, B, H,
      px: table.px,
      rowIds: table.rowIds,
      h0: state(l, 0),
      c0: S === 2 ? state(l, 1) : undefined,
      training,
      blocks,
    };
    const fwd = cell.forward(lw, layerInput);
    layers.push({ input: layerInput, fwd, ips, hAll: blocks.sizes.map((_, i) => blocks.stack(fwd.hs, i)) });
  }
  const finalStates = new Float32Array(input.states.length);
  layers.forEach((layer, l) => layer.fwd.final.forEach((t, s) => finalStates.set(t.dataSync() as Float32Array, (l * S + s) * B * H)));

  const task = config.task as 'lm' | 'classify' | 'regress';
  const heads = parts.map((p, i) => runHead(task, layers[L - 1].hAll[i], w.decoderW, w.decoderB, p, { grad: training }));
  const beta = config.normStabilizer;
  const penalty = heads.map(() => 0);
  const shape = (i: number) => ({ T, B: blocks.sizes[i], H });
  if (!training) {
    if (beta > 0) {
      for (const layer of layers) {
        layer.hAll.forEach((hAll, i) => (penalty[i] += normStabilizer(hAll, blocks.rowsOf(layer.input.h0, i), null, shape(i), beta, false).penalty));
      }
    }
    return { results: heads.map((h, i) => ({ loss: h.loss, penalty: penalty[i], tokens: h.tokens })), finalStates };
  }

  // Backward, top down: dAbove per block, spread over the steps' rows for the cell.
  const puts = grads.map((g) => putInto(g.fill(0)));
  heads.forEach((h, i) => {
    puts[i](layout.decoderW, h.dW!);
    puts[i](layout.decoderB, h.db!);
  });
  let dAbove = heads.map((h) => h.dTop!); // (T·b, H) each
  for (let l = L - 1; l >= 0; l--) {
    const { input: li, fwd, ips, hAll } = layers[l];
    const lw = w.layers[l];
    if (beta > 0) {
      dAbove = dAbove.map((d, i) => {
        const s = normStabilizer(hAll[i], blocks.rowsOf(li.h0, i), d, shape(i), beta, true);
        penalty[i] += s.penalty;
        return s.dH!;
      });
    }
    const perBlock = cell.backward(lw, li, fwd, blocks.spread(dAbove, T));
    const below: T2[] = [];
    perBlock.forEach((g, i) => {
      const foldIds = l === 0 && fold[i] ? ids[i] : null;
      const dXin = layerBackward(layout, l, lw, ips[i], g, foldIds, puts[i], !(l === 0 && vector));
      if (!dXin) return; // no gradient is needed for given inputs
      if (l > 0) below[i] = dXin;
      else if (layout.embedding) puts[i](layout.embedding, foldIds ? dXin : scatterAddRows(dXin, ids[i], V));
    });
    dAbove = below;
  }
  const results = heads.map((h, i) => ({ loss: h.loss, penalty: penalty[i], tokens: h.tokens, grad: grads[i] }));
  return { results, finalStates };
}

/**
 * The cell's input table and the row each (t, stream) reads: the blocks' input products
 * stacked (one copy of a table folded blocks share), row t·B + start_i + s reading block i's
 * row t·b_i + s, or for a folded block the table row of its token.
 */
function cellTable(ips: InputProduct[], fold: boolean[], ids: Int32Array[], blocks: RowBlocks, T: number): { px: T2; rowIds: Int32Array } {
  const tables: T2[] = [];
  const first = new Map<T2, number>();
  let rows = 0;
  for (const ip of ips) {
    if (first.has(ip.px)) continue;
    first.set(ip.px, rows);
    tables.push(ip.px);
    rows += ip.px.shape[0];
  }
  const B = blocks.B;
  const rowIds = new Int32Array(T * B);
  blocks.sizes.forEach((b, i) => {
    const at = first.get(ips[i].px)!;
    const s0 = blocks.starts[i];
    for (let t = 0; t < T; t++) {
      for (let s = 0; s < b; s++) rowIds[t * B + s0 + s] = at + (fold[i] ? ids[i][t * b + s] : t * b + s);
    }
  });
  return { px: tables.length === 1 ? tables[0] : concatRows(tables), rowIds };
}
