// A recurrent layer's whole chunk in one kernel call each way, on the native backend
// (cells without layer norm on the recurrent product). The step kernels cost two tfjs
// engine calls per time step each way (the product h·W_h, then the gates; dA·W_hᵀ, then
// the gates' backward), ~15 µs of engine bookkeeping per step: ~2 ms of a 32-row CFG-S
// LSTM task, paid once per task, so more by two threads of 32 rows than by one of 64
// (issue 12). Here one call runs the T steps: the same C products (W_h packed once per
// call) and the same C cell kernels on the same values in the same order, so the same
// bits as the step kernels (tested: test/unit/sequence.test.ts). Each step's tensors are
// still outputs of their own, so the tapes and everything after them are unchanged.
// The LSTM, the reset-after GRU and the RNN have sequence kernels; the reset-before GRU
// (two products a step) keeps its step kernels.

import * as tf from '@tensorflow/tfjs';
import { type KernelDef, defineKernel, runKernel } from '../kernels.js';
import { nativeAddon } from '../native/addon.js';
import { timerStart, timerStop } from '../native/profile.js';
import { scratch } from '../rowmath.js';
import type { T1, T2 } from '../primitives.js';

const native = nativeAddon();

let enabled = true;
let runs = 0;

/** Sequence-kernel calls (forward or backward) so far in this thread (tests). */
export function sequenceRuns(): number {
  return runs;
}

/** Turns the sequence kernels on or off (tests and benches compare them with the step kernels); returns the previous setting. */
export function setSequenceKernels(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}

/**
 * Chunks shorter than this keep the step kernels. A sequence call packs W_h afresh (~45 µs at
 * H=256), where the step kernels' product keeps its packing with the weights' tensor: one
 * token at a time (sampling) would pay the packing per token, while the engine calls it
 * saves are ~15 µs a step.
 */
export const SEQUENCE_MIN_STEPS = 16;

/** Whether a layer with these weights runs its recurrence through the sequence kernels (no layer norm on h, nor on the LSTM's c). */
export function useSequence(w: { lnH?: unknown; lnC?: unknown }, T: number): boolean {
  return enabled && native !== null && !w.lnH && !w.lnC && T >= SEQUENCE_MIN_STEPS && tf.getBackend() === 'native';
}

/**
 * W_h (H, G·H) packed whole for the products of one call, as W_h or as W_hᵀ. W_hᵀ is
 * transposed first (the blocked transpose, then a contiguous pack: 170 µs at H=256, where
 * packing straight from the transposed reads took 255): the panels of the step kernels'
 * explicit transpose, so the same bits.
 */
function packed(Wh: Float32Array, H: number, transposed: boolean): Float32Array {
  runs++; // every sequence call packs W_h once: counted here
  const GH = Wh.length / H;
  const [N, K] = transposed ? [H, GH] : [GH, H];
  const P = scratch(transposed ? 'seq.WhT' : 'seq.Wh', native!.packedBSize(N, K));
  const started = timerStart();
  let B = Wh;
  if (transposed) {
    B = scratch('seq.WhT.rows', GH * H);
    native!.transpose(Wh, B, H, GH);
  }
  native!.packB(B, P, N, K, 0);
  timerStop('matmul', started);
  return P;
}

/** A sequence kernel: native only (elsewhere the cells use their step kernels), timing its own products and gate calls. */
function defineSequenceKernel(name: string, run: KernelDef['run'], outputs: KernelDef['outputs']): void {
  defineKernel(name, {
    selfTimed: true,
    native: () => (native ? run : null),
    outputs,
    run: () => {
      throw new Error(`${name} runs on the native backend only (the cells use their step kernels on the others)`);
    },
  });
}

/** T steps forward: ph = h·W_h (W_h packed once), then `cell` (the step's gate kernel), which returns the step's new h. */
function forwardLoop(Wh: Float32Array, h0: Float32Array, T: number, B: number, H: number, cell: (t: number, ph: Float32Array, h: Float32Array) => Float32Array): void {
  const GH = Wh.length / H;
  const P = packed(Wh, H, false);
  const ph = scratch('seq.ph', B * GH);
  let h = h0;
  for (let t = 0; t < T; t++) {
    let started = timerStart();
    native!.sgemmPacked(h, P, ph, B, GH, H, 0);
    timerStop('matmul', started);
    started = timerStart();
    h = cell(t, ph, h);
    timerStop('fused', started);
  }
}

/** T steps back, t = T−1 first: `cell` (the step's backward) gets dh from the step above (null at T−1) and returns da_t; then dh = da_t·W_hᵀ. */
function backwardLoop(Wh: Float32Array, T: number, B: number, H: number, cell: (t: number, dhRec: Float32Array | null) => Float32Array): void {
  const GH = Wh.length / H;
  const P = packed(Wh, H, true);
  const dhRec = scratch('seq.dh', B * H);
  let dhIn: Float32Array | null = null;
  for (let t = T - 1; t >= 0; t--) {
    let started = timerStart();
    const da = cell(t, dhIn);
    timerStop('fused', started);
    if (t > 0) {
      started = timerStart();
      native!.sgemmPacked(da, P, dhRec, B, H, GH, 0);
      timerStop('matmul', started);
      dhIn = dhRec;
    }
  }
}

/** Two scratch arrays that alternate by step parity (a carried value read at t, written for t−1 or t+1). */
function pair(name: string, n: number): [Float32Array, Float32Array] {
  return [scratch(`${name}.0`, n), scratch(`${name}.1`, n)];
}

/** T shapes in a row. */
function times(shape: readonly number[], T: number): number[][] {
  return Array.from({ length: T }, () => [...shape]);
}

// ── LSTM ──
// Forward inputs: px, W_h (H, G·H), bias, h0, c0, peep?. Outputs: h_1…h_T, then with `save`
// c_1…c_T, acts_1…acts_T, tanh(c)_1…tanh(c)_T; without, only c_T after the h's.
defineSequenceKernel(
  'GpLstmSeqForward',
  ([px, Wh, bias, h0, c0, peep], outs, a) => {
    const [T, B, H, kind, save] = [a.T as number, a.B as number, a.H as number, a.kind as number, a.save as boolean];
    const GH = Wh!.length / H;
    const cTmp = save ? null : pair('lstm.seq.c', B * H);
    const actsTmp = save ? null : scratch('lstm.seq.acts', B * GH);
    const tcTmp = save ? null : scratch('lstm.seq.tc', B * H);
    let c = c0!;
    forwardLoop(Wh!, h0!, T, B, H, (t, ph) => {
      const cOut = save ? outs[T + t] : t === T - 1 ? outs[T] : cTmp![t & 1];
      native!.lstmForward(px, ph, bias, c, peep, a.rowIds, outs[t], cOut, save ? outs[2 * T + t] : actsTmp, save ? outs[3 * T + t] : tcTmp, kind, t * B, B, H);
      c = cOut;
      return outs[t];
    });
  },
  ([, Wh, , h0], a) => {
    const [B, H] = h0!;
    const T = a.T as number;
    if (!a.save) return times([B, H], T + 1);
    return [...times([B, H], 2 * T), ...times([B, Wh![1]], T), ...times([B, H], T)];
  },
);

// Backward inputs: dH (T·B, H), W_h, peep?, then acts_t, c_{t−1}, c_t, tanh(c)_t for t = 0…T−1
// (four groups of T). Outputs: dPre_0…dPre_{T−1} — or, with `stacked` (one block), their
// stack (T·B, G·H), step t's rows at t·B — then with peep each step's per-block peephole
// sums in the order computed (t = T−1 first), as lstm.ts's step loop collects them.
defineSequenceKernel(
  'GpLstmSeqBackward',
  (ins, outs, a) => {
    const [T, B, H, kind, sizes] = [a.T as number, a.B as number, a.H as number, a.kind as number, a.blocks as number[]];
    const stacked = a.stacked === true;
    if (stacked && sizes.length !== 1) throw new Error(`GpLstmSeqBackward: a stacked dPre needs one block, got ${sizes.length}`);
    const first = stacked ? 1 : T;
    const [dH, Wh, peep] = ins;
    const GH = Wh!.length / H;
    const dc = pair('lstm.seq.dc', B * H);
    let dcIn: Float32Array | null = null;
    backwardLoop(Wh!, T, B, H, (t, dhIn) => {
      const [acts, c0, c1, tc] = [ins[3 + t], ins[3 + T + t], ins[3 + 2 * T + t], ins[3 + 3 * T + t]];
      const dPre = stacked ? outs[0].subarray(t * B * GH, (t + 1) * B * GH) : outs[t];
      const dcOut = dc[t & 1];
      const dPeep = peep ? outs[first + (T - 1 - t)] : null;
      if (!peep || sizes.length === 1) {
        native!.lstmBackward(dH, dhIn, dcIn, acts, c0, c1, tc, peep, dPre, dcOut, dPeep, kind, t * B, B, H);
      } else {
        // One call per block over its rows, each with its own peephole row (as GpLstmBackward).
        let s = 0;
        sizes.forEach((n, k) => {
          const rowsOf = (x: Float32Array | null, w: number) => x && x.subarray(s * w, (s + n) * w);
          native!.lstmBackward(dH, rowsOf(dhIn, H), rowsOf(dcIn, H), rowsOf(acts, GH), rowsOf(c0, H), rowsOf(c1, H), rowsOf(tc, H), peep,
            rowsOf(dPre, GH), rowsOf(dcOut, H), dPeep!.subarray(k * 3 * H, (k + 1) * 3 * H), kind, t * B + s, n, H);
          s += n;
        });
      }
      dcIn = dcOut;
      return dPre;
    });
  },
  (shapes, a) => {
    const [T, H] = [a.T as number, a.H as number];
    const acts = shapes[3]!;
    const dPre = a.stacked ? [[T * acts[0], acts[1]]] : times(acts, T);
    return shapes[2] ? [...dPre, ...times([(a.blocks as number[]).length, 3 * H], T)] : dPre;
  },
);

// ── GRU, reset after ──
// Forward inputs: px, W_h (H, 3H), bias, b_hn, h0. Outputs: h_1…h_T, then with `save` acts_1…acts_T
// (B, 3H: r, z, n) and q_1…q_T (B, H: p_hn + b_hn).
defineSequenceKernel(
  'GpGruAfterSeqForward',
  ([px, Wh, bias, bhn, h0], outs, a) => {
    const [T, B, H, save] = [a.T as number, a.B as number, a.H as number, a.save as boolean];
    const actsTmp = save ? null : scratch('gruAfter.seq.acts', B * 3 * H);
    const qTmp = save ? null : scratch('gruAfter.seq.q', B * H);
    forwardLoop(Wh!, h0!, T, B, H, (t, ph, h) => {
      native!.gruAfterForward(px, ph, bias, bhn, h, a.rowIds, outs[t], save ? outs[T + t] : actsTmp, save ? outs[2 * T + t] : qTmp, t * B, B, H);
      return outs[t];
    });
  },
  ([, Wh, , , h0], a) => {
    const [B, H] = h0!;
    const T = a.T as number;
    return a.save ? [...times([B, H], T), ...times([B, Wh![1]], T), ...times([B, H], T)] : times([B, H], T);
  },
);

// Backward inputs: dH (T·B, H), W_h, then acts_t, q_t, h_{t−1} for t = 0…T−1 (three groups of T).
// Outputs: dPx_0…dPx_{T−1}, then dPh_0…dPh_{T−1}.
defineSequenceKernel(
  'GpGruAfterSeqBackward',
  (ins, outs, a) => {
    const [T, B, H] = [a.T as number, a.B as number, a.H as number];
    const [dH, Wh] = ins;
    const direct = pair('gruAfter.seq.direct', B * H);
    let directIn: Float32Array | null = null;
    backwardLoop(Wh!, T, B, H, (t, dhIn) => {
      const directOut = direct[t & 1];
      native!.gruAfterBackward(dH, dhIn, directIn, ins[2 + t], ins[2 + T + t], ins[2 + 2 * T + t], outs[t], outs[T + t], directOut, t * B, B, H);
      directIn = directOut;
      return outs[T + t];
    });
  },
  (shapes, a) => times(shapes[2]!, 2 * (a.T as number)),
);

// ── RNN ──
// Forward inputs: px, W_h (H, H), bias, h0. Outputs: h_1…h_T.
defineSequenceKernel(
  'GpRnnSeqForward',
  ([px, Wh, bias, h0], outs, a) => {
    const [T, B, H] = [a.T as number, a.B as number, a.H as number];
    forwardLoop(Wh!, h0!, T, B, H, (t, ph) => {
      native!.rnnForward(px, ph, bias, a.rowIds, outs[t], t * B, B, H);
      return outs[t];
    });
  },
  ([, , , h0], a) => times(h0!, a.T as number),
);

// Backward inputs: dH (T·B, H), W_h, then h_1…h_T. Outputs: dPre_0…dPre_{T−1}, or with `stacked`
// (one block) their stack (T·B, H).
defineSequenceKernel(
  'GpRnnSeqBackward',
  (ins, outs, a) => {
    const [T, B, H] = [a.T as number, a.B as number, a.H as number];
    const [dH, Wh] = ins;
    backwardLoop(Wh!, T, B, H, (t, dhIn) => {
      const dPre = a.stacked ? outs[0].subarray(t * B * H, (t + 1) * B * H) : outs[t];
      native!.rnnBackward(dH, dhIn, ins[2 + t], dPre, t * B, B, H);
      return dPre;
    });
  },
  (shapes, a) => {
    const [T, h] = [a.T as number, shapes[2]!];
    return a.stacked ? [[T * h[0], h[1]]] : times(h, T);
  },
);

export interface SeqForward {
  hs: T2[];
  /** With save: c_1…c_T, the gate activations and tanh(c) of each step; without, only c_T. */
  cs: T2[];
  acts: T2[];
  tcs: T2[];
}

/** The chunk's T steps forward in one call (inputs as GpLstmForward's, W_h whole instead of each step's product). */
export function lstmSequenceForward(
  px: T2,
  Wh: T2,
  b: T1,
  h0: T2,
  c0: T2,
  peep: T1 | undefined,
  attrs: { T: number; B: number; H: number; kind: number; rowIds: Int32Array | null; save: boolean },
): SeqForward {
  const outs = runKernel('GpLstmSeqForward', [px, Wh, b, h0, c0, peep], attrs) as T2[];
  const T = attrs.T;
  if (!attrs.save) return { hs: outs.slice(0, T), cs: [outs[T]], acts: [], tcs: [] };
  return { hs: outs.slice(0, T), cs: outs.slice(T, 2 * T), acts: outs.slice(2 * T, 3 * T), tcs: outs.slice(3 * T) };
}

/**
 * The chunk's T steps backward in one call: each step's dPre — or, with one block, their
 * stack (T·B, G·H) written in place, the stack the block's parameter gradients read, so
 * no copy is made — and with peep the per-step partial sums (t = T−1 first).
 */
export function lstmSequenceBackward(
  dH: T2,
  Wh: T2,
  peep: T1 | undefined,
  steps: { cPrev: T2; c: T2; acts: T2; tc: T2 }[],
  attrs: { B: number; H: number; kind: number; blocks: number[] },
): { dPre: T2[] | { stacked: T2 }; dPeep: T2[] } {
  const T = steps.length;
  const stacked = attrs.blocks.length === 1;
  const ins = [dH, Wh, peep, ...steps.map((s) => s.acts), ...steps.map((s) => s.cPrev), ...steps.map((s) => s.c), ...steps.map((s) => s.tc)];
  const outs = runKernel('GpLstmSeqBackward', ins, { ...attrs, T, stacked }) as T2[];
  return stacked ? { dPre: { stacked: outs[0] }, dPeep: outs.slice(1) } : { dPre: outs.slice(0, T), dPeep: outs.slice(T) };
}

/** The reset-after GRU's T steps forward in one call: each step's h, and with save its gate activations and q. */
export function gruAfterSequenceForward(
  px: T2,
  Wh: T2,
  b: T1,
  bhn: T1,
  h0: T2,
  attrs: { T: number; B: number; H: number; rowIds: Int32Array | null; save: boolean },
): { hs: T2[]; acts: T2[]; q: T2[] } {
  const outs = runKernel('GpGruAfterSeqForward', [px, Wh, b, bhn, h0], attrs) as T2[];
  const T = attrs.T;
  return { hs: outs.slice(0, T), acts: outs.slice(T, 2 * T), q: outs.slice(2 * T) };
}

/** The reset-after GRU's T steps back in one call: each step's dPx and dPh. */
export function gruAfterSequenceBackward(dH: T2, Wh: T2, tape: { acts: T2[]; q: T2[] }, hPrev: T2[], attrs: { B: number; H: number }): { dPx: T2[]; dPh: T2[] } {
  const T = hPrev.length;
  const outs = runKernel('GpGruAfterSeqBackward', [dH, Wh, ...tape.acts, ...tape.q, ...hPrev], { ...attrs, T }) as T2[];
  return { dPx: outs.slice(0, T), dPh: outs.slice(T) };
}

/** The RNN's T steps forward in one call: each step's h. */
export function rnnSequenceForward(px: T2, Wh: T2, b: T1, h0: T2, attrs: { T: number; B: number; H: number; rowIds: Int32Array | null }): T2[] {
  return runKernel('GpRnnSeqForward', [px, Wh, b, h0], attrs) as T2[];
}

/** The RNN's T steps back in one call: each step's dPre, or with one block their stack (as lstmSequenceBackward). */
export function rnnSequenceBackward(dH: T2, Wh: T2, hs: T2[], attrs: { B: number; H: number; blocks: readonly number[] }): T2[] | { stacked: T2 } {
  const stacked = attrs.blocks.length === 1;
  const outs = runKernel('GpRnnSeqBackward', [dH, Wh, ...hs], { B: attrs.B, H: attrs.H, T: hs.length, stacked }) as T2[];
  return stacked ? { stacked: outs[0] } : outs;
}
