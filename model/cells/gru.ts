// The GRU of Cho et al. (2014), reset gate applied before the recurrent product:
//   r = σ(s_r)  z = σ(s_z)  n = tanh(p_xn + LN(r⊙h · W_hn) + b_n)  h' = (1−z)⊙h + z⊙n
// so each step has two recurrent products: h·W_h[r|z] (2H), then (r⊙h)·W_h[n] (H).

import * as tf from '@tensorflow/tfjs';
import { defineKernel, runKernel } from '../kernels.js';
import { nativeAddon } from '../native/addon.js';
import type { Cell, LayerForward, LayerGrads, LayerInput, LayerWeights, LnParams } from '../layer.js';
import { disposeAll, recurrentBackward, recurrentForward, recurrentParamGrads, rowOf } from '../layer.js';
import { type LayerNormOut, type T1, type T2, matMul, transpose } from '../primitives.js';
import { sigmoid } from '../rowmath.js';

// On the native backend each kernel below runs its C twin (model/native/cells_gru.c).
const native = nativeAddon();

defineKernel('GpGruGates', {
  native: (a) =>
    native ? ([px, phrz, bias, h0], [rz, rh]) => native.gruGates(px, phrz, bias, h0, a.rowIds, rz, rh, a.rowBase, a.B, a.H) : null,
  outputs: ([, phrz, , h0]) => [[...phrz!], [...h0!]],
  run([px, phrz, bias, h0], [rz, rh], a) {
    const rowIds = a.rowIds as Int32Array | null;
    const [B, H] = [a.B as number, a.H as number];
    for (let b = 0; b < B; b++) {
      const xo = rowOf(rowIds, a.rowBase as number, b) * 3 * H;
      const po = b * 2 * H;
      for (let j = 0; j < H; j++) {
        const r = sigmoid(px![xo + j] + phrz![po + j] + bias![j]);
        rz[po + j] = r;
        rz[po + H + j] = sigmoid(px![xo + H + j] + phrz![po + H + j] + bias![H + j]);
        rh[b * H + j] = r * h0![b * H + j];
      }
    }
  },
});

defineKernel('GpGruCandidate', {
  native: (a) =>
    native ? ([px, phn, bias, rz, h0], [h, n]) => native.gruCandidate(px, phn, bias, rz, h0, a.rowIds, h, n, a.rowBase, a.B, a.H) : null,
  outputs: ([, phn]) => [[...phn!], [...phn!]],
  run([px, phn, bias, rz, h0], [h, nOut], a) {
    const rowIds = a.rowIds as Int32Array | null;
    const [B, H] = [a.B as number, a.H as number];
    for (let b = 0; b < B; b++) {
      const xo = rowOf(rowIds, a.rowBase as number, b) * 3 * H;
      for (let j = 0; j < H; j++) {
        const k = b * H + j;
        const n = Math.tanh(px![xo + 2 * H + j] + phn![k] + bias![2 * H + j]);
        const z = rz![b * 2 * H + H + j];
        nOut[k] = n;
        h[k] = (1 - z) * h0![k] + z * n;
      }
    }
  },
});

defineKernel('GpGruCandidateBackward', {
  native: (a) =>
    native
      ? ([dHext, dhRec, dhDirect, n, rz, h0], [dpn, dpz, dhOut]) =>
          native.gruCandidateBackward(dHext, dhRec, dhDirect, n, rz, h0, dpn, dpz, dhOut, a.rowBase, a.B, a.H)
      : null,
  outputs: ([, , , n]) => [[...n!], [...n!], [...n!]],
  run([dHext, dhRec, dhDirect, n, rz, h0], [dpn, dpz, dhOut], a) {
    const [B, H] = [a.B as number, a.H as number];
    const eo = (a.rowBase as number) * H;
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < H; j++) {
        const k = b * H + j;
        const dh = dHext![eo + k] + (dhRec ? dhRec[k] : 0) + (dhDirect ? dhDirect[k] : 0);
        const z = rz![b * 2 * H + H + j];
        const nv = n![k];
        dpn[k] = dh * z * (1 - nv * nv);
        dpz[k] = dh * (nv - h0![k]) * z * (1 - z);
        dhOut[k] = dh * (1 - z);
      }
    }
  },
});

defineKernel('GpGruGatesBackward', {
  native: (a) =>
    native
      ? ([drh, rz, h0, dpz, dpn, dhDirect], [dPx, dPrz, dhOut]) =>
          native.gruGatesBackward(drh, rz, h0, dpz, dpn, dhDirect, dPx, dPrz, dhOut, a.B, a.H)
      : null,
  outputs: ([drh, rz]) => [[drh![0], 3 * (drh![1])], [...rz!], [...drh!]],
  run([drh, rz, h0, dpz, dpn, dhDirect], [dPx, dPrz, dhOut], a) {
    const [B, H] = [a.B as number, a.H as number];
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < H; j++) {
        const k = b * H + j;
        const r = rz![b * 2 * H + j];
        const dpr = drh![k] * h0![k] * r * (1 - r);
        dPx[b * 3 * H + j] = dpr;
        dPx[b * 3 * H + H + j] = dpz![k];
        dPx[b * 3 * H + 2 * H + j] = dpn![k];
        dPrz[b * 2 * H + j] = dpr;
        dPrz[b * 2 * H + H + j] = dpz![k];
        dhOut[k] = dhDirect![k] + drh![k] * r;
      }
    }
  },
});

// W_h (H, 3H) into its r|z and n column blocks, and their two weight gradients back into
// one: whole row pieces copied at once. (tfjs's Slice and Concat of column blocks go
// element by element on the cpu and native backends: over half of a GRU step there.)
defineKernel('GpGruSplitWh', {
  outputs: ([w], a) => [[w![0], 2 * (a.H as number)], [w![0], a.H as number]],
  run([w], [wrz, wn], a) {
    const H = a.H as number;
    for (let i = 0; i < wn.length / H; i++) {
      wrz.set(w!.subarray(3 * H * i, 3 * H * i + 2 * H), 2 * H * i);
      wn.set(w!.subarray(3 * H * i + 2 * H, 3 * H * (i + 1)), H * i);
    }
  },
});

defineKernel('GpGruJoinDWh', {
  outputs: ([drz], a) => [[drz![0], 3 * (a.H as number)]],
  run([drz, dn], [dw], a) {
    const H = a.H as number;
    for (let i = 0; i < dn!.length / H; i++) {
      dw.set(drz!.subarray(2 * H * i, 2 * H * (i + 1)), 3 * H * i);
      dw.set(dn!.subarray(H * i, H * (i + 1)), 3 * H * i + 2 * H);
    }
  },
});

interface Tape {
  rz: T2[];
  rh: T2[];
  n: T2[];
  lnRz: (LayerNormOut | undefined)[];
  lnN: (LayerNormOut | undefined)[];
}

/** The r|z and n column blocks of W_h and of LN_h's parameters, sliced once per chunk. */
function split(w: LayerWeights, H: number) {
  const [Wrz, Wn] = runKernel('GpGruSplitWh', [w.Wh], { H }) as T2[];
  const part = (v: T1, at: number, len: number) => tf.slice(v, [at], [len]) as T1;
  const lnRz: LnParams | undefined = w.lnH && { gamma: part(w.lnH.gamma, 0, 2 * H), beta: part(w.lnH.beta, 0, 2 * H) };
  const lnN: LnParams | undefined = w.lnH && { gamma: part(w.lnH.gamma, 2 * H, H), beta: part(w.lnH.beta, 2 * H, H) };
  return { Wrz, Wn, lnRz, lnN };
}

export function gruCell(): Cell {
  return {
    forward(w: LayerWeights, input: LayerInput): LayerForward {
      const { T, B, H, px, rowIds, training } = input;
      const { Wrz, Wn, lnRz, lnN } = split(w, H);
      let h = input.h0;
      const hs: T2[] = [];
      const tape: Tape = { rz: [], rh: [], n: [], lnRz: [], lnN: [] };
      for (let t = 0; t < T; t++) {
        const attrs = { rowIds, rowBase: t * B, B, H };
        const a1 = recurrentForward(h, Wrz, lnRz);
        const [rz, rh] = runKernel('GpGruGates', [px, a1.p, w.b, h], attrs) as T2[];
        const a2 = recurrentForward(rh, Wn, lnN);
        const [hNew, n] = runKernel('GpGruCandidate', [px, a2.p, w.b, rz, h], attrs) as T2[];
        disposeAll([a1.p, a2.p]);
        if (training) {
          tape.rz.push(rz);
          tape.rh.push(rh);
          tape.n.push(n);
          tape.lnRz.push(a1.saved);
          tape.lnN.push(a2.saved);
        } else {
          disposeAll([rz, rh, n, a1.saved?.xhat, a1.saved?.rstd, a2.saved?.xhat, a2.saved?.rstd]);
        }
        hs.push(hNew);
        h = hNew;
      }
      disposeAll([Wrz, Wn, lnRz?.gamma, lnRz?.beta, lnN?.gamma, lnN?.beta]);
      return { hs, final: [h], tape };
    },

    backward(w: LayerWeights, input: LayerInput, fwd: LayerForward, dH: T2): LayerGrads[] {
      const { T, B, H } = input;
      const tape = fwd.tape as Tape;
      const { Wrz, Wn, lnRz, lnN } = split(w, H);
      const WrzT = transpose(Wrz);
      const WnT = transpose(Wn);
      const hPrev = [input.h0, ...fwd.hs.slice(0, T - 1)];
      const dPx: T2[] = new Array(T);
      const dPrz: T2[] = new Array(T);
      const dPn: T2[] = new Array(T);
      const dArz: T2[] = new Array(T);
      const dAn: T2[] = new Array(T);
      let dhRec: T2 | null = null;
      let dhDirect: T2 | null = null;
      for (let t = T - 1; t >= 0; t--) {
        const attrs = { rowBase: t * B, B, H };
        const [dpn, dpz, dh1] = runKernel(
          'GpGruCandidateBackward',
          [dH, dhRec, dhDirect, tape.n[t], tape.rz[t], hPrev[t]],
          attrs,
        ) as T2[];
        disposeAll([dhRec, dhDirect]);
        dPn[t] = dpn;
        dAn[t] = recurrentBackward(dpn, tape.lnN[t], lnN);
        const drh = matMul(dAn[t], WnT);
        const outs = runKernel('GpGruGatesBackward', [drh, tape.rz[t], hPrev[t], dpz, dpn, dh1], attrs) as T2[];
        disposeAll([drh, dpz, dh1]);
        [dPx[t], dPrz[t], dhDirect] = outs;
        dArz[t] = recurrentBackward(dPrz[t], tape.lnRz[t], lnRz);
        dhRec = t > 0 ? matMul(dArz[t], WrzT) : null;
      }
      disposeAll([dhDirect, WrzT, WnT]);
      const gRz = recurrentParamGrads(hPrev, dArz, dPrz, tape.lnRz, lnRz, input.blocks);
      const gN = recurrentParamGrads(tape.rh, dAn, dPn, tape.lnN, lnN, input.blocks);
      if (w.lnH) disposeAll([...dArz, ...dAn]);
      disposeAll([...dPrz, ...dPn, Wrz, Wn, lnRz?.gamma, lnRz?.beta, lnN?.gamma, lnN?.beta]);
      const grads = gRz.map((rz, i) => {
        const n = gN[i];
        const [dWh] = runKernel('GpGruJoinDWh', [rz.dW, n.dW], { H }) as T2[];
        disposeAll([rz.dW, n.dW]);
        let dlnH: LnParams | undefined;
        if (rz.dln && n.dln) {
          dlnH = {
            gamma: tf.concat([rz.dln.gamma, n.dln.gamma]) as T1,
            beta: tf.concat([rz.dln.beta, n.dln.beta]) as T1,
          };
          disposeAll([rz.dln.gamma, n.dln.gamma, rz.dln.beta, n.dln.beta]);
        }
        return { dPx: input.blocks.stack(dPx, i), dWh, dlnH };
      });
      disposeAll(dPx);
      return grads;
    },
  };
}
