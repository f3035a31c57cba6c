// The LSTM's recurrence over a whole chunk in one kernel call, on the native backend
// (cells without layer norm). lstm.ts's step kernels cost two tfjs engine calls per
// time step each way (the product h·W_h, then the gates; dA·W_hᵀ, then the gates'
// backward), ~15 µs of engine bookkeeping per step: ~2 ms of a 32-row CFG-S task,
// paid once per task, so more by two threads of 32 rows than by one of 64 (issue 12).
// Here one call runs the T steps: the same C products (W_h packed once per call) and
// the same C cell kernels on the same values in the same order, so the same bits as
// the step kernels (tested: test/unit/lstm-sequence.test.ts). Each step's tensors
// are still outputs of their own, so the tape and everything after it is unchanged.

import * as tf from '@tensorflow/tfjs';
import { defineKernel, runKernel } from '../kernels.js';
import { nativeAddon } from '../native/addon.js';
import { timerStart, timerStop } from '../native/profile.js';
import { scratch } from '../rowmath.js';
import type { T1, T2 } from '../primitives.js';

const native = nativeAddon();

let enabled = true;
let runs = 0;

/** Sequence-kernel calls (forward or backward) so far in this thread (tests). */
export function lstmSequenceRuns(): number {
  return runs;
}

/** Turns the sequence kernels on or off (tests and benches compare them with the step kernels); returns the previous setting. */
export function setLstmSequenceKernels(on: boolean): boolean {
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

/** Whether a layer with these weights runs its recurrence through the sequence kernels. */
export function useLstmSequence(w: { lnH?: unknown; lnC?: unknown }, T: number): boolean {
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
  const P = scratch(transposed ? 'lstm.seq.WhT' : 'lstm.seq.Wh', native!.packedBSize(N, K));
  const started = timerStart();
  let B = Wh;
  if (transposed) {
    B = scratch('lstm.seq.WhT.rows', GH * H);
    native!.transpose(Wh, B, H, GH);
  }
  native!.packB(B, P, N, K, 0);
  timerStop('matmul', started);
  return P;
}

function nativeOnly(name: string): never {
  throw new Error(`${name} runs on the native backend only (lstm.ts uses its step kernels on the others)`);
}

// Inputs: px, W_h (H, G·H), bias, h0, c0, peep?. Outputs: h_1…h_T, then with `save`
// c_1…c_T, acts_1…acts_T, tanh(c)_1…tanh(c)_T; without, only c_T after the h's.
defineKernel('GpLstmSeqForward', {
  selfTimed: true,
  native: () =>
    native
      ? ([px, Wh, bias, h0, c0, peep], outs, a) => {
          const [T, B, H, kind, save] = [a.T as number, a.B as number, a.H as number, a.kind as number, a.save as boolean];
          const GH = Wh!.length / H;
          const P = packed(Wh!, H, false);
          const ph = scratch('lstm.seq.ph', B * GH);
          const cTmp = save ? null : [scratch('lstm.seq.c0', B * H), scratch('lstm.seq.c1', B * H)];
          const actsTmp = save ? null : scratch('lstm.seq.acts', B * GH);
          const tcTmp = save ? null : scratch('lstm.seq.tc', B * H);
          let h = h0!;
          let c = c0!;
          for (let t = 0; t < T; t++) {
            let started = timerStart();
            native.sgemmPacked(h, P, ph, B, GH, H, 0);
            timerStop('matmul', started);
            const hOut = outs[t];
            const cOut = save ? outs[T + t] : t === T - 1 ? outs[T] : cTmp![t & 1];
            started = timerStart();
            native.lstmForward(px, ph, bias, c, peep, a.rowIds, hOut, cOut, save ? outs[2 * T + t] : actsTmp, save ? outs[3 * T + t] : tcTmp, kind, t * B, B, H);
            timerStop('fused', started);
            h = hOut;
            c = cOut;
          }
        }
      : null,
  outputs: ([, Wh, , h0], a) => {
    const [B, H] = h0!;
    const T = a.T as number;
    const shapes: number[][] = [];
    const add = (shape: number[], n: number) => {
      for (let t = 0; t < n; t++) shapes.push(shape);
    };
    add([B, H], T);
    if (!a.save) {
      add([B, H], 1);
      return shapes;
    }
    add([B, H], T);
    add([B, Wh![1]], T);
    add([B, H], T);
    return shapes;
  },
  run: () => nativeOnly('GpLstmSeqForward'),
});

// Inputs: dH (T·B, H), W_h, peep?, then acts_t, c_{t−1}, c_t, tanh(c)_t for t = 0…T−1 (four
// groups of T). Outputs: dPre_0…dPre_{T−1}, then with peep each step's per-block peephole
// sums in the order computed (t = T−1 first), as lstm.ts's step loop collects them.
defineKernel('GpLstmSeqBackward', {
  selfTimed: true,
  native: () =>
    native
      ? (ins, outs, a) => {
          const [T, B, H, kind, sizes] = [a.T as number, a.B as number, a.H as number, a.kind as number, a.blocks as number[]];
          // Stacked: one (T·B, G·H) output, step t's rows at t·B (the block's own stack: one block only).
          const stacked = a.stacked === true;
          if (stacked && sizes.length !== 1) throw new Error(`GpLstmSeqBackward: a stacked dPre needs one block, got ${sizes.length}`);
          const first = stacked ? 1 : T;
          const [dH, Wh, peep] = ins;
          const GH = Wh!.length / H;
          const P = packed(Wh!, H, true);
          const dhRec = scratch('lstm.seq.dh', B * H);
          const dc = [scratch('lstm.seq.dc0', B * H), scratch('lstm.seq.dc1', B * H)];
          let dhIn: Float32Array | null = null;
          let dcIn: Float32Array | null = null;
          for (let t = T - 1; t >= 0; t--) {
            const [acts, c0, c1, tc] = [ins[3 + t], ins[3 + T + t], ins[3 + 2 * T + t], ins[3 + 3 * T + t]];
            const dPre = stacked ? outs[0].subarray(t * B * GH, (t + 1) * B * GH) : outs[t];
            const dcOut = dc[t & 1];
            const dPeep = peep ? outs[first + (T - 1 - t)] : null;
            let started = timerStart();
            if (!peep || sizes.length === 1) {
              native.lstmBackward(dH, dhIn, dcIn, acts, c0, c1, tc, peep, dPre, dcOut, dPeep, kind, t * B, B, H);
            } else {
              // One call per block over its rows, each with its own peephole row (as GpLstmBackward).
              let s = 0;
              sizes.forEach((n, k) => {
                const rowsOf = (x: Float32Array | null, w: number) => x && x.subarray(s * w, (s + n) * w);
                native.lstmBackward(dH, rowsOf(dhIn, H), rowsOf(dcIn, H), rowsOf(acts, GH), rowsOf(c0, H), rowsOf(c1, H), rowsOf(tc, H), peep,
                  rowsOf(dPre, GH), rowsOf(dcOut, H), dPeep!.subarray(k * 3 * H, (k + 1) * 3 * H), kind, t * B + s, n, H);
                s += n;
              });
            }
            timerStop('fused', started);
            if (t > 0) {
              started = timerStart();
              native.sgemmPacked(dPre, P, dhRec, B, H, GH, 0);
              timerStop('matmul', started);
              dhIn = dhRec;
            }
            dcIn = dcOut;
          }
        }
      : null,
  outputs: (shapes, a) => {
    const [T, H] = [a.T as number, a.H as number];
    const acts = shapes[3]!;
    const out: number[][] = a.stacked ? [[T * acts[0], acts[1]]] : [];
    if (!a.stacked) for (let t = 0; t < T; t++) out.push([...acts]);
    if (shapes[2]) for (let t = 0; t < T; t++) out.push([(a.blocks as number[]).length, 3 * H]);
    return out;
  },
  run: () => nativeOnly('GpLstmSeqBackward'),
});

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
