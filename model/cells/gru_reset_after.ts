// The GRU with the reset gate applied after the recurrent product (cuDNN, PyTorch):
//   r = σ(s_r)  z = σ(s_z)  n = tanh(p_xn + b_n + r ⊙ (p_hn + b_hn))  h' = (1−z)⊙h + z⊙n
// Gate blocks r, z, n; z is MODELS.md's update gate (PyTorch's is 1 − z).

import { defineKernel, runKernel } from '../kernels.js';
import { nativeAddon } from '../native/addon.js';
import type { Cell, LayerForward, LayerGrads, LayerInput, LayerWeights } from '../layer.js';
import { disposeAll, recurrentBackward, recurrentForward, recurrentParamGrads, rowOf } from '../layer.js';
import { type LayerNormOut, type T1, type T2, colSum, matMul, transpose } from '../primitives.js';
import { scratch, sigmoid } from '../rowmath.js';
import * as tf from '@tensorflow/tfjs';
import { gruAfterSequenceBackward, gruAfterSequenceForward, useSequence } from './sequence.js';

const native = nativeAddon();

defineKernel('GpGruAfterForward', {
  // The C kernel (model/native/cells_gru.c) writes r, z, n and q always: to scratch when not saved.
  native: (a) =>
    native
      ? ([px, ph, bias, bhn, h0], outs) => {
          const [B, H] = [a.B as number, a.H as number];
          const acts = a.save ? outs[1] : scratch('gruAfter.native.acts', B * 3 * H);
          const q = a.save ? outs[2] : scratch('gruAfter.native.q', B * H);
          native.gruAfterForward(px, ph, bias, bhn, h0, a.rowIds, outs[0], acts, q, a.rowBase, B, H);
        }
      : null,
  outputs: ([, ph, , , h0], a) => (a.save ? [[...h0!], [...ph!], [...h0!]] : [[...h0!]]),
  run([px, ph, bias, bhn, h0], outs, a) {
    const rowIds = a.rowIds as Int32Array | null;
    const [B, H] = [a.B as number, a.H as number];
    const GH = 3 * H;
    const [h] = outs;
    const acts = a.save ? outs[1] : null;
    const q = a.save ? outs[2] : null;
    for (let b = 0; b < B; b++) {
      const xo = rowOf(rowIds, a.rowBase as number, b) * GH;
      const po = b * GH;
      for (let j = 0; j < H; j++) {
        const r = sigmoid(px![xo + j] + ph![po + j] + bias![j]);
        const z = sigmoid(px![xo + H + j] + ph![po + H + j] + bias![H + j]);
        const qv = ph![po + 2 * H + j] + bhn![j];
        const n = Math.tanh(px![xo + 2 * H + j] + bias![2 * H + j] + r * qv);
        const hp = h0![b * H + j];
        h[b * H + j] = (1 - z) * hp + z * n;
        if (acts) {
          acts[po + j] = r;
          acts[po + H + j] = z;
          acts[po + 2 * H + j] = n;
          q![b * H + j] = qv;
        }
      }
    }
  },
});

defineKernel('GpGruAfterBackward', {
  native: (a) =>
    native
      ? ([dHext, dhRec, dhDirect, acts, q, h0], [dPx, dPh, dhOut]) =>
          native.gruAfterBackward(dHext, dhRec, dhDirect, acts, q, h0, dPx, dPh, dhOut, a.rowBase, a.B, a.H)
      : null,
  outputs: ([, , , acts, , h0]) => [[...acts!], [...acts!], [...h0!]],
  run([dHext, dhRec, dhDirect, acts, q, h0], [dPx, dPh, dhOut], a) {
    const [B, H] = [a.B as number, a.H as number];
    const eo = (a.rowBase as number) * H;
    for (let b = 0; b < B; b++) {
      const po = b * 3 * H;
      for (let j = 0; j < H; j++) {
        const k = b * H + j;
        const dh = dHext![eo + k] + (dhRec ? dhRec[k] : 0) + (dhDirect ? dhDirect[k] : 0);
        const r = acts![po + j];
        const z = acts![po + H + j];
        const n = acts![po + 2 * H + j];
        const dpz = dh * (n - h0![k]) * z * (1 - z);
        const dpn = dh * z * (1 - n * n);
        const dpr = dpn * q![k] * r * (1 - r);
        dPx[po + j] = dpr;
        dPx[po + H + j] = dpz;
        dPx[po + 2 * H + j] = dpn;
        dPh[po + j] = dpr;
        dPh[po + H + j] = dpz;
        dPh[po + 2 * H + j] = dpn * r;
        dhOut[k] = dh * (1 - z);
      }
    }
  },
});

interface Tape {
  acts: T2[];
  q: T2[];
  ln: (LayerNormOut | undefined)[];
}

export function gruResetAfterCell(): Cell {
  return {
    forward(w: LayerWeights, input: LayerInput): LayerForward {
      const { T, B, H, px, rowIds, training } = input;
      if (useSequence(w, T)) {
        // Native, no layer norm: the T steps in one call (sequence.ts), the same bits.
        const seq = gruAfterSequenceForward(px, w.Wh, w.b, w.b_hn!, input.h0, { T, B, H, rowIds, save: training });
        const tape: Tape = { acts: seq.acts, q: seq.q, ln: training ? seq.hs.map(() => undefined) : [] };
        return { hs: seq.hs, final: [seq.hs[T - 1]], tape };
      }
      let h = input.h0;
      const hs: T2[] = [];
      const tape: Tape = { acts: [], q: [], ln: [] };
      for (let t = 0; t < T; t++) {
        const { p, saved } = recurrentForward(h, w.Wh, w.lnH);
        const outs = runKernel('GpGruAfterForward', [px, p, w.b, w.b_hn, h], {
          rowIds,
          rowBase: t * B,
          B,
          H,
          save: training,
        }) as T2[];
        p.dispose();
        if (training) {
          tape.acts.push(outs[1]);
          tape.q.push(outs[2]);
          tape.ln.push(saved);
        } else {
          disposeAll([saved?.xhat, saved?.rstd]);
        }
        hs.push(outs[0]);
        h = outs[0];
      }
      return { hs, final: [h], tape };
    },

    backward(w: LayerWeights, input: LayerInput, fwd: LayerForward, dH: T2): LayerGrads[] {
      const { T, B, H } = input;
      const tape = fwd.tape as Tape;
      const hPrev = [input.h0, ...fwd.hs.slice(0, T - 1)];
      // Native without layer norm: the T steps back in one call (sequence.ts), da_t = dPh_t.
      const { dPx, dPh, dA } = useSequence(w, T) ? { ...gruAfterSequenceBackward(dH, w.Wh, tape, hPrev, { B, H }), dA: null } : stepsBackward(w, input, tape, hPrev, dH);
      const perBlock = recurrentParamGrads(hPrev, dA ?? dPh, dPh, tape.ln, w.lnH, input.blocks);
      if (w.lnH && dA) disposeAll(dA);
      const grads = perBlock.map(({ dW, dln }, i) => {
        const dPhAll = input.blocks.stack(dPh, i);
        const dPhSum = colSum(dPhAll);
        dPhAll.dispose();
        const db_hn = tf.slice(dPhSum, [2 * H], [H]) as T1;
        dPhSum.dispose();
        return { dPx: input.blocks.stack(dPx, i), dWh: dW, dlnH: dln, db_hn };
      });
      disposeAll([...dPh, ...dPx]);
      return grads;
    },
  };
}

/** The steps back one at a time, two tfjs kernel calls a step (every backend, layer norm or not). */
function stepsBackward(w: LayerWeights, input: LayerInput, tape: Tape, hPrev: T2[], dH: T2) {
  const { T, B, H } = input;
  const WhT = transpose(w.Wh);
  const dPx: T2[] = new Array(T);
  const dPh: T2[] = new Array(T);
  const dA: T2[] = new Array(T);
  let dhRec: T2 | null = null;
  let dhDirect: T2 | null = null;
  for (let t = T - 1; t >= 0; t--) {
    const outs = runKernel('GpGruAfterBackward', [dH, dhRec, dhDirect, tape.acts[t], tape.q[t], hPrev[t]], {
      rowBase: t * B,
      B,
      H,
    }) as T2[];
    disposeAll([dhRec, dhDirect]);
    [dPx[t], dPh[t], dhDirect] = outs;
    dA[t] = recurrentBackward(dPh[t], tape.ln[t], w.lnH);
    dhRec = t > 0 ? matMul(dA[t], WhT) : null;
  }
  disposeAll([dhDirect, WhT]);
  return { dPx, dPh, dA };
}
