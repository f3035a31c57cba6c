// LSTM cells: the usual one (forget gate), the original 1997 form (no forget gate)
// and the peephole variant, with optional layer norm of c_t before its tanh.
// Gate blocks in the fused matrix: i, f, g, o (lstm-1997: i, g, o).
//
//   i = σ(s_i + p_i⊙c)   f = σ(s_f + p_f⊙c)   g = tanh(s_g)
//   c' = f⊙c + i⊙g       o = σ(s_o + p_o⊙c')  h' = o ⊙ tanh(LN_c(c'))

import * as tf from '@tensorflow/tfjs';
import { defineKernel, runKernel } from '../kernels.js';
import { nativeAddon } from '../native/addon.js';
import type { Cell, LayerForward, LayerGrads, LayerInput, LayerWeights } from '../layer.js';
import { disposeAll, recurrentBackward, recurrentForward, recurrentParamGrads, rowOf } from '../layer.js';
import { type LayerNormOut, type T1, type T2, colSum, matMul, transpose } from '../primitives.js';
import { stackRows } from '../segments.js';
import { lnRowBackward, lnRowForward, scratch, sigmoid } from '../rowmath.js';
import { lstmSequenceBackward, lstmSequenceForward, useSequence } from './sequence.js';

/** 0 = lstm, 1 = lstm-1997, 2 = lstm-peephole. */
type Kind = 0 | 1 | 2;

function blocks(kind: Kind, H: number) {
  return kind === 1 ? { G: 3, i: 0, f: -1, g: H, o: 2 * H } : { G: 4, i: 0, f: H, g: 2 * H, o: 3 * H };
}

const native = nativeAddon();

defineKernel('GpLstmForward', {
  // The C kernel covers every variant but the layer norm of c.
  native: (a, [, , , , , lnG]) =>
    native && !lnG
      ? ([px, ph, bias, c0, peep], outs) => {
          const [B, H] = [a.B as number, a.H as number];
          const GH = blocks(a.kind as Kind, H).G * H;
          const acts = a.save ? outs[2] : scratch('lstm.native.acts', B * GH);
          const tc = a.save ? outs[3] : scratch('lstm.native.tc', B * H);
          native.lstmForward(px, ph, bias, c0, peep, a.rowIds, outs[0], outs[1], acts, tc, a.kind, a.rowBase, B, H);
        }
      : null,
  outputs: ([, ph, , c0, , lnG], a) => {
    const [B, H] = c0!;
    const shapes = [[B, H], [B, H]];
    if (a.save) shapes.push([...ph!], [B, H]);
    if (a.save && lnG) shapes.push([B, H], [B, 1]);
    return shapes;
  },
  run([px, ph, bias, c0, peep, lnG, lnB], outs, a) {
    const kind = a.kind as Kind;
    const rowIds = a.rowIds as Int32Array | null;
    const rowBase = a.rowBase as number;
    const [B, H] = [a.B as number, a.H as number];
    const { G, i: I, f: F, g: Gg, o: O } = blocks(kind, H);
    const GH = G * H;
    const [hOut, cOut] = outs;
    const acts = a.save ? outs[2] : scratch('lstm.acts', GH);
    const tc = a.save ? outs[3] : scratch('lstm.tc', H);
    const chat = a.save && lnG ? outs[4] : lnG ? scratch('lstm.chat', H) : null;
    const rstd = a.save && lnG ? outs[5] : null;
    for (let b = 0; b < B; b++) {
      const xo = rowOf(rowIds, rowBase, b) * GH;
      const po = b * GH;
      const ao = a.save ? po : 0;
      const so = b * H;
      const to = a.save ? so : 0;
      for (let j = 0; j < H; j++) {
        const cPrev = c0![so + j];
        let si = px![xo + I + j] + ph![po + I + j] + bias![I + j];
        const sg = px![xo + Gg + j] + ph![po + Gg + j] + bias![Gg + j];
        if (peep) si += peep[j] * cPrev;
        const ig = sigmoid(si);
        const gg = Math.tanh(sg);
        let fg = 1;
        if (F >= 0) {
          let sf = px![xo + F + j] + ph![po + F + j] + bias![F + j];
          if (peep) sf += peep[H + j] * cPrev;
          fg = sigmoid(sf);
          acts[ao + F + j] = fg;
        }
        acts[ao + I + j] = ig;
        acts[ao + Gg + j] = gg;
        cOut[so + j] = fg * cPrev + ig * gg;
      }
      if (lnG) {
        // LN(c') lands in tc, then tanh in place; x̂ and rstd are saved for backward.
        const r = lnRowForward(cOut, so, lnG, lnB!, H, tc, chat!, to);
        if (rstd) rstd[b] = r;
        for (let j = 0; j < H; j++) tc[to + j] = Math.tanh(tc[to + j]);
      } else {
        for (let j = 0; j < H; j++) tc[to + j] = Math.tanh(cOut[so + j]);
      }
      for (let j = 0; j < H; j++) {
        let s = px![xo + O + j] + ph![po + O + j] + bias![O + j];
        if (peep) s += peep[2 * H + j] * cOut[so + j];
        const og = sigmoid(s);
        acts[ao + O + j] = og;
        hOut[so + j] = og * tc[to + j];
      }
    }
  },
});

// The peephole and LN_c parameter gradients are sums over the step's rows: one row of
// partial sums per block (attribute `blocks`: the block sizes), each over its block's rows
// in order, as the block's own run sums them.
defineKernel('GpLstmBackward', {
  native: (a, inputs) =>
    native && !inputs[8]
      ? ([dHext, dhRec, dcNext, acts, c0, c1, tc, peep], outs) => {
          const [H, sizes] = [a.H as number, a.blocks as number[]];
          if (!peep || sizes.length === 1) {
            native.lstmBackward(dHext, dhRec, dcNext, acts, c0, c1, tc, peep, outs[0], outs[1], peep ? outs[2] : null, a.kind, a.rowBase, a.B, H);
            return;
          }
          // One call per block over its rows (subarray views, no copies), each with its own peephole row.
          const GH = blocks(a.kind as Kind, H).G * H;
          let s = 0;
          sizes.forEach((n, k) => {
            const rowsOf = (x: Float32Array | null, w: number) => x && x.subarray(s * w, (s + n) * w);
            native.lstmBackward(dHext, rowsOf(dhRec, H), rowsOf(dcNext, H), rowsOf(acts, GH), rowsOf(c0, H), rowsOf(c1, H), rowsOf(tc, H), peep,
              rowsOf(outs[0], GH), rowsOf(outs[1], H), outs[2].subarray(k * 3 * H, (k + 1) * 3 * H), a.kind, (a.rowBase as number) + s, n, H);
            s += n;
          });
        }
      : null,
  outputs: ([, , , acts, c0, , , peep, lnG], a) => {
    const [B, H] = c0!;
    const nBlocks = (a.blocks as number[]).length;
    const shapes = [[...acts!], [B, H]];
    if (peep) shapes.push([nBlocks, 3 * H]);
    if (lnG) shapes.push([nBlocks, 2 * H]);
    return shapes;
  },
  run([dHext, dhRec, dcNext, acts, c0, c1, tc, peep, lnG, chat, rstd], outs, a) {
    const kind = a.kind as Kind;
    const rowBase = a.rowBase as number;
    const [H, sizes] = [a.H as number, a.blocks as number[]];
    const { G, i: I, f: F, g: Gg, o: O } = blocks(kind, H);
    const GH = G * H;
    const [dPre, dcPrev] = outs;
    const dPeepAll = peep ? outs[2] : null;
    const dLnAll = lnG ? outs[peep ? 3 : 2] : null;
    dPeepAll?.fill(0);
    dLnAll?.fill(0);
    const dy = scratch('lstm.dy', H);
    const dcH = scratch('lstm.dcH', H);
    for (let k = 0, b = 0; k < sizes.length; k++) {
      const dPeep = dPeepAll && dPeepAll.subarray(k * 3 * H, (k + 1) * 3 * H);
      const dLn = dLnAll && dLnAll.subarray(k * 2 * H, (k + 1) * 2 * H);
      for (const end = b + sizes[k]; b < end; b++) {
        const po = b * GH;
        const so = b * H;
        const eo = (rowBase + b) * H;
        for (let j = 0; j < H; j++) {
          const dh = dHext![eo + j] + (dhRec ? dhRec[so + j] : 0);
          const og = acts![po + O + j];
          const t = tc![so + j];
          dPre[po + O + j] = dh * t * og * (1 - og);
          dy[j] = dh * og * (1 - t * t);
        }
        if (lnG) {
          for (let j = 0; j < H; j++) {
            dLn![j] += dy[j] * chat![so + j];
            dLn![H + j] += dy[j];
          }
          lnRowBackward(dy, 0, chat!, so, rstd![b], lnG, H, dcH, 0);
        } else {
          dcH.set(dy);
        }
        for (let j = 0; j < H; j++) {
          const cPrev = c0![so + j];
          const dpo = dPre[po + O + j];
          let dc = dcH[j] + (dcNext ? dcNext[so + j] : 0);
          if (peep) dc += dpo * peep[2 * H + j];
          const ig = acts![po + I + j];
          const gg = acts![po + Gg + j];
          const dpi = dc * gg * ig * (1 - ig);
          dPre[po + I + j] = dpi;
          dPre[po + Gg + j] = dc * ig * (1 - gg * gg);
          let dcp = dc;
          let dpf = 0;
          if (F >= 0) {
            const fg = acts![po + F + j];
            dpf = dc * cPrev * fg * (1 - fg);
            dPre[po + F + j] = dpf;
            dcp = dc * fg;
          }
          if (peep) {
            dcp += dpi * peep[j] + dpf * peep[H + j];
            dPeep![j] += dpi * cPrev;
            dPeep![H + j] += dpf * cPrev;
            dPeep![2 * H + j] += dpo * c1![so + j];
          }
          dcPrev[so + j] = dcp;
        }
      }
    }
  },
});

interface Step {
  hPrev: T2;
  cPrev: T2;
  c: T2;
  acts: T2;
  tc: T2;
  chat?: T2;
  rstd?: T2;
  lnH?: LayerNormOut;
}

export function lstmCell(variant: 'lstm' | 'lstm-1997' | 'lstm-peephole'): Cell {
  const kind: Kind = variant === 'lstm' ? 0 : variant === 'lstm-1997' ? 1 : 2;
  return {
    forward(w: LayerWeights, input: LayerInput): LayerForward {
      const { T, B, px, rowIds, training } = input;
      if (useSequence(w, T)) {
        // Native, no layer norm: the T steps in one call (sequence.ts), the same bits.
        const seq = lstmSequenceForward(px, w.Wh, w.b, input.h0, input.c0!, w.peep, { T, B, H: input.H, kind, rowIds, save: training });
        const hs = seq.hs;
        if (!training) return { hs, final: [hs[T - 1], seq.cs[0]], tape: [] };
        const tape: Step[] = hs.map((_, t) => ({
          hPrev: t ? hs[t - 1] : input.h0,
          cPrev: t ? seq.cs[t - 1] : input.c0!,
          c: seq.cs[t],
          acts: seq.acts[t],
          tc: seq.tcs[t],
        }));
        return { hs, final: [hs[T - 1], seq.cs[T - 1]], tape };
      }
      let h = input.h0;
      let c = input.c0!;
      const hs: T2[] = [];
      const steps: Step[] = [];
      for (let t = 0; t < T; t++) {
        const { p, saved } = recurrentForward(h, w.Wh, w.lnH);
        const outs = runKernel('GpLstmForward', [px, p, w.b, c, w.peep, w.lnC?.gamma, w.lnC?.beta], {
          rowIds,
          rowBase: t * B,
          kind,
          save: training,
          B,
          H: input.H,
        }) as T2[];
        p.dispose();
        const [hNew, cNew, acts, tc, chat, rstd] = outs;
        if (training) {
          steps.push({ hPrev: h, cPrev: c, c: cNew, acts, tc, chat, rstd, lnH: saved });
        } else {
          disposeAll([saved?.xhat, saved?.rstd]);
          if (c !== input.c0) c.dispose();
        }
        hs.push(hNew);
        h = hNew;
        c = cNew;
      }
      return { hs, final: [h, c], tape: steps };
    },

    backward(w: LayerWeights, input: LayerInput, fwd: LayerForward, dH: T2): LayerGrads[] {
      const { T } = input;
      const steps = fwd.tape as Step[];
      // Native without layer norm: the T steps back in one call (sequence.ts), da_t = dPre_t.
      const { dPre, dA, dPeep, dLnC } = useSequence(w, T) ? sequenceBackward(w, input, steps, dH, kind) : stepsBackward(w, input, steps, dH, kind);
      // Without layer norm on h, da_t is dPre_t: the stack made for dW is also dPx.
      const perBlock = recurrentParamGrads(
        steps.map((s) => s.hPrev),
        dA,
        dPre,
        steps.map((s) => s.lnH),
        w.lnH,
        input.blocks,
        !w.lnH,
      );
      if (w.lnH && Array.isArray(dA)) disposeAll(dA);
      const grads = perBlock.map(({ dW, dln, rows }, i): LayerGrads => {
        const g: LayerGrads = { dPx: rows ?? input.blocks.stack(dPre, i), dWh: dW, dlnH: dln };
        // Row i of each step's partial sums is block i's; summed over the steps in the order computed.
        if (w.peep) g.dpeep = sumRows(dPeep, i);
        if (w.lnC) {
          const both = sumRows(dLnC, i);
          const [gamma, beta] = tf.split(both, 2) as T1[];
          both.dispose();
          g.dlnC = { gamma, beta };
        }
        return g;
      });
      disposeAll([...dPre, ...dPeep, ...dLnC]);
      return grads;
    },
  };
}

/**
 * The steps back in one native call (sequence.ts); without layer norm da_t is dPre_t.
 * One block: dPre comes as the block's stack itself (no per-step tensors to stack again).
 */
function sequenceBackward(w: LayerWeights, input: LayerInput, steps: Step[], dH: T2, kind: Kind) {
  const { dPre, dPeep } = lstmSequenceBackward(dH, w.Wh, w.peep, steps, { B: input.B, H: input.H, kind, blocks: [...input.blocks.sizes] });
  return { dPre: Array.isArray(dPre) ? dPre : [], dA: dPre, dPeep, dLnC: [] as T2[] };
}

/** The steps back one at a time, two tfjs kernel calls a step (every backend, every variant). */
function stepsBackward(w: LayerWeights, input: LayerInput, steps: Step[], dH: T2, kind: Kind) {
  const { T, B, H } = input;
  const dPre: T2[] = new Array(T);
  const dA: T2[] = new Array(T);
  const dPeep: T2[] = [];
  const dLnC: T2[] = [];
  const WhT = transpose(w.Wh);
  let dhRec: T2 | null = null;
  let dcNext: T2 | null = null;
  for (let t = T - 1; t >= 0; t--) {
    const s = steps[t];
    const outs = runKernel(
      'GpLstmBackward',
      [dH, dhRec, dcNext, s.acts, s.cPrev, s.c, s.tc, w.peep, w.lnC?.gamma, s.chat, s.rstd],
      { rowBase: t * B, kind, B, H, blocks: input.blocks.sizes },
    ) as T2[];
    disposeAll([dhRec, dcNext]);
    dPre[t] = outs[0];
    dcNext = outs[1];
    if (w.peep) dPeep.push(outs[2]);
    if (w.lnC) dLnC.push(outs[w.peep ? 3 : 2]);
    dA[t] = recurrentBackward(dPre[t], s.lnH, w.lnH);
    dhRec = t > 0 ? matMul(dA[t], WhT) : null;
  }
  disposeAll([dcNext, WhT]);
  return { dPre, dA, dPeep, dLnC };
}

/** Σ of row `row` over a list of per-step partial sums (one row per block). */
function sumRows(parts: T2[], row: number): T1 {
  const all = stackRows(parts, row, 1);
  const s = colSum(all);
  all.dispose();
  return s;
}
