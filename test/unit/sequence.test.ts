// The whole-chunk kernels on the native backend (model/cells/sequence.ts): one call for
// the T steps forward and one back, against the step kernels (two tfjs calls a step each
// way) on the same inputs. Every output of the layer — each step's h, the final states,
// and every gradient (input products, W_h, peepholes per block, the GRU's b_hn) — must
// carry the same bits, for each LSTM variant, the reset-after GRU and the RNN, one block or several, the input
// products read through row ids or in order, training and evaluation. With one block the
// backward writes dPre as the block's stack in place (no per-step tensors stacked again).

import { afterAll, beforeAll, expect, it } from 'vitest';
import { initBackend, tf } from '../../model/backend.js';
import { cellFor } from '../../model/cells/index.js';
import { SEQUENCE_MIN_STEPS, sequenceRuns, setSequenceKernels, useSequence } from '../../model/cells/sequence.js';
import { type LayerGrads, type LayerWeights, recurrentParamGrads } from '../../model/layer.js';
import { RowBlocks } from '../../model/segments.js';
import { describeNative } from '../helpers/native-guard.js';
import { firstBitDiff, randoms } from '../helpers/native-bits.js';

type Variant = 'lstm' | 'lstm-1997' | 'lstm-peephole' | 'gru-reset-after' | 'rnn';

interface Run {
  hs: Float32Array[];
  final: Float32Array[];
  grads: Record<string, Float32Array>[];
}

/** One layer forward (and backward when training) on fixed inputs; every result copied out. */
function runLayer(variant: Variant, sizes: number[], withIds: boolean, training: boolean, seed: number): Run {
  const H = 12;
  const T = SEQUENCE_MIN_STEPS + 1;
  const G = { lstm: 4, 'lstm-1997': 3, 'lstm-peephole': 4, 'gru-reset-after': 3, rnn: 1 }[variant];
  const blocks = new RowBlocks(sizes);
  const B = blocks.B;
  const rows = withIds ? T * B + 5 : T * B;
  let s = seed;
  const t2 = (r: number, c: number, scale = 1) => tf.tensor2d(randoms(r * c, ++s, scale), [r, c]);
  const w: LayerWeights = { Wh: t2(H, G * H, 0.4), b: tf.tensor1d(randoms(G * H, ++s, 0.5)) };
  if (variant === 'lstm-peephole') w.peep = tf.tensor1d(randoms(3 * H, ++s, 0.5));
  if (variant === 'gru-reset-after') w.b_hn = tf.tensor1d(randoms(H, ++s, 0.5));
  const rowIds = withIds ? Int32Array.from({ length: T * B }, (_, i) => (i * 7 + 3) % rows) : null;
  const input = { T, B, H, px: t2(rows, G * H, 2), rowIds, h0: t2(B, H), c0: t2(B, H), training, blocks };
  const cell = cellFor(variant);
  const copy = (x: tf.Tensor) => Float32Array.from(x.dataSync() as Float32Array);
  const fwd = cell.forward(w, input);
  const out: Run = { hs: fwd.hs.map(copy), final: fwd.final.map(copy), grads: [] };
  if (training) {
    const dH = t2(T * B, H);
    const grads = cell.backward(w, input, fwd, dH);
    out.grads = grads.map((g: LayerGrads) => {
      const r: Record<string, Float32Array> = { dPx: copy(g.dPx), dWh: copy(g.dWh) };
      if (g.dpeep) r.dpeep = copy(g.dpeep);
      if (g.db_hn) r.db_hn = copy(g.db_hn);
      return r;
    });
  }
  return out;
}

function expectSameBits(a: Run, b: Run, label: string): void {
  const pairs: [string, Float32Array, Float32Array][] = [
    ...a.hs.map((h, t): [string, Float32Array, Float32Array] => [`h_${t + 1}`, h, b.hs[t]]),
    ...a.final.map((f, i): [string, Float32Array, Float32Array] => [`final ${i}`, f, b.final[i]]),
  ];
  expect(b.grads.length, label).toBe(a.grads.length);
  a.grads.forEach((g, i) => {
    expect(Object.keys(b.grads[i]).sort(), label).toEqual(Object.keys(g).sort());
    for (const k of Object.keys(g)) pairs.push([`block ${i} ${k}`, g[k], b.grads[i][k]]);
  });
  for (const [name, x, y] of pairs) {
    expect(y.length, `${label}: ${name}`).toBe(x.length);
    expect(firstBitDiff(x, y), `${label}: ${name}, first element with other bits`).toBe(-1);
  }
}

describeNative('the sequence kernels (native)', () => {
  let was: boolean;
  beforeAll(async () => {
    await initBackend('native');
    was = setSequenceKernels(true);
  });
  afterAll(() => {
    setSequenceKernels(was);
  });

  const variants: Variant[] = ['lstm', 'lstm-1997', 'lstm-peephole', 'gru-reset-after', 'rnn'];
  for (const variant of variants) {
    it(`${variant}: the whole chunk in one call gives the step kernels' bits (blocks, row ids, training and evaluation)`, () => {
      let seed = 100;
      for (const sizes of [[3], [2, 3, 1]]) {
        for (const withIds of [false, true]) {
          for (const training of [true, false]) {
            const label = `${variant}, blocks ${sizes}, ${withIds ? 'row ids' : 'rows in order'}, ${training ? 'training' : 'evaluation'}`;
            seed += 50;
            setSequenceKernels(false);
            const before = sequenceRuns();
            const steps = runLayer(variant, sizes, withIds, training, seed);
            expect(sequenceRuns(), `${label}: step kernels used`).toBe(before);
            setSequenceKernels(true);
            const seq = runLayer(variant, sizes, withIds, training, seed);
            // Forward once, and backward once when training: the sequence kernels really ran.
            expect(sequenceRuns() - before, `${label}: sequence kernels used`).toBe(training ? 2 : 1);
            expectSameBits(steps, seq, label);
          }
        }
      }
    });
  }

  it('is used only where it covers the layer: native backend, no layer norm, chunks of SEQUENCE_MIN_STEPS steps or more', () => {
    const ln = { gamma: tf.zeros([4]) as tf.Tensor1D, beta: tf.zeros([4]) as tf.Tensor1D };
    const T = SEQUENCE_MIN_STEPS;
    expect(useSequence({}, T)).toBe(true);
    expect(useSequence({}, T - 1)).toBe(false);
    expect(useSequence({}, 1)).toBe(false);
    expect(useSequence({ lnH: ln }, T)).toBe(false);
    expect(useSequence({ lnC: ln }, T)).toBe(false);
    setSequenceKernels(false);
    expect(useSequence({}, T)).toBe(false);
    setSequenceKernels(true);
  });

  it('a stacked dPre is refused where a block would need other rows (several blocks, or layer norm)', () => {
    const h = [tf.zeros([4, 3]) as tf.Tensor2D];
    const stacked = { stacked: tf.zeros([4, 8]) as tf.Tensor2D };
    const ln = { gamma: tf.ones([8]) as tf.Tensor1D, beta: tf.zeros([8]) as tf.Tensor1D };
    expect(() => recurrentParamGrads(h, stacked, [], [undefined], undefined, new RowBlocks([2, 2]), true)).toThrow(/one block's without layer norm/);
    expect(() => recurrentParamGrads(h, stacked, [], [undefined], ln, new RowBlocks([4]), true)).toThrow(/one block's without layer norm/);
    const [one] = recurrentParamGrads(h, stacked, [], [undefined], undefined, new RowBlocks([4]), true);
    expect(one.rows).toBe(stacked.stacked);
    expect(one.dW.shape).toEqual([3, 8]);
  });

  it('a step that differs is seen: a changed W_h between the two runs changes the bits', () => {
    // The comparison above can fail: perturb one input and the same check reports it.
    const a = runLayer('lstm', [3], false, true, 7);
    const b = runLayer('lstm', [3], false, true, 8);
    expect(firstBitDiff(a.grads[0].dWh, b.grads[0].dWh)).not.toBe(-1);
  });
});
