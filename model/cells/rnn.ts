// The vanilla (Elman) RNN cell: h' = tanh(x W_x + h W_h + b).

import { defineKernel, runKernel } from '../kernels.js';
import { nativeAddon } from '../native/addon.js';
import type { Cell, LayerForward, LayerGrads, LayerInput, LayerWeights } from '../layer.js';
import { disposeAll, recurrentBackward, recurrentForward, recurrentParamGrads, rowOf } from '../layer.js';
import { type LayerNormOut, type T2, matMul, transpose } from '../primitives.js';
import { rnnSequenceBackward, rnnSequenceForward, useSequence } from './sequence.js';

const native = nativeAddon();

defineKernel('GpRnnForward', {
  native: (a) => (native ? ([px, ph, bias], [h]) => native.rnnForward(px, ph, bias, a.rowIds, h, a.rowBase, a.B, a.H) : null),
  outputs: ([, ph]) => [[...ph!]],
  run([px, ph, bias], [h], a) {
    const rowIds = a.rowIds as Int32Array | null;
    const [B, H] = [a.B as number, a.H as number];
    for (let b = 0; b < B; b++) {
      const xo = rowOf(rowIds, a.rowBase as number, b) * H;
      for (let j = 0; j < H; j++) h[b * H + j] = Math.tanh(px![xo + j] + ph![b * H + j] + bias![j]);
    }
  },
});

defineKernel('GpRnnBackward', {
  native: (a) => (native ? ([dHext, dhRec, h], [dPre]) => native.rnnBackward(dHext, dhRec, h, dPre, a.rowBase, a.B, a.H) : null),
  outputs: ([, , h]) => [[...h!]],
  run([dHext, dhRec, h], [dPre], a) {
    const eo = (a.rowBase as number) * (a.H as number);
    for (let k = 0; k < dPre.length; k++) {
      const dh = dHext![eo + k] + (dhRec ? dhRec[k] : 0);
      dPre[k] = dh * (1 - h![k] * h![k]);
    }
  },
});

export function rnnCell(): Cell {
  return {
    forward(w: LayerWeights, input: LayerInput): LayerForward {
      const { T, B, H, px, rowIds, training } = input;
      if (useSequence(w, T)) {
        // Native, no layer norm: the T steps in one call (sequence.ts), the same bits.
        const hs = rnnSequenceForward(px, w.Wh, w.b, input.h0, { T, B, H, rowIds });
        return { hs, final: [hs[T - 1]], tape: training ? hs.map(() => undefined) : [] };
      }
      let h = input.h0;
      const hs: T2[] = [];
      const lnSaved: (LayerNormOut | undefined)[] = [];
      for (let t = 0; t < T; t++) {
        const { p, saved } = recurrentForward(h, w.Wh, w.lnH);
        const [hNew] = runKernel('GpRnnForward', [px, p, w.b], { rowIds, rowBase: t * B, B, H }) as T2[];
        p.dispose();
        if (training) lnSaved.push(saved);
        else disposeAll([saved?.xhat, saved?.rstd]);
        hs.push(hNew);
        h = hNew;
      }
      return { hs, final: [h], tape: lnSaved };
    },

    backward(w: LayerWeights, input: LayerInput, fwd: LayerForward, dH: T2): LayerGrads[] {
      const { T, B, H } = input;
      const lnSaved = fwd.tape as (LayerNormOut | undefined)[];
      const hPrev = [input.h0, ...fwd.hs.slice(0, T - 1)];
      if (useSequence(w, T)) {
        // Native, no layer norm: the T steps back in one call (sequence.ts); da_t is dPre_t, with one block already stacked.
        const dPre = rnnSequenceBackward(dH, w.Wh, fwd.hs, { B, H, blocks: input.blocks.sizes });
        const perBlock = recurrentParamGrads(hPrev, dPre, [], lnSaved, undefined, input.blocks, true);
        const grads = perBlock.map(({ dW, rows }) => ({ dPx: rows!, dWh: dW }));
        if (Array.isArray(dPre)) disposeAll(dPre);
        return grads;
      }
      const WhT = transpose(w.Wh);
      const dPre: T2[] = new Array(T);
      const dA: T2[] = new Array(T);
      let dhRec: T2 | null = null;
      for (let t = T - 1; t >= 0; t--) {
        [dPre[t]] = runKernel('GpRnnBackward', [dH, dhRec, fwd.hs[t]], { rowBase: t * B, B, H }) as T2[];
        dhRec?.dispose();
        dA[t] = recurrentBackward(dPre[t], lnSaved[t], w.lnH);
        dhRec = t > 0 ? matMul(dA[t], WhT) : null;
      }
      WhT.dispose();
      // Without layer norm on h, da_t is dPre_t: the stack made for dW is also dPx.
      const perBlock = recurrentParamGrads(hPrev, dA, dPre, lnSaved, w.lnH, input.blocks, !w.lnH);
      if (w.lnH) disposeAll(dA);
      const grads = perBlock.map(({ dW, dln, rows }, i) => ({ dPx: rows ?? input.blocks.stack(dPre, i), dWh: dW, dlnH: dln }));
      disposeAll(dPre);
      return grads;
    },
  };
}
