// Gradient checks of the last-step heads (model/heads.ts: classify, regress) and of
// vector inputs (layer 0 reads config.inputSize values per step, no embedding) against
// the float64 reference (test/reference/ref64.ts, heads64.ts): loss, penalty, token
// count, final states and outputs against its forward pass, and the gradient of every
// parameter tensor against central finite differences of its objective, for every
// cell × task × layerNorm × normStabilizer. Same tolerance scheme as gradcheck.test.ts.

import { describe, it, expect, beforeAll } from 'vitest';
import { CELLS, type CellName, type ModelConfig, gateCount } from '../../model/config.js';
import type { ChunkInput, ChunkResult } from '../../model/chunk.js';
import { type BackendName, initBackend, tf } from '../../model/backend.js';
import { forwardChunk, trainChunk } from '../../model/bptt.js';
import {
  type RandomCase,
  type RefChunkInput,
  finiteDifferenceGrad,
  randomCase,
  refChunkLoss,
  sampleParamIndices,
  specOf,
} from '../reference/ref64.js';
import { closeRel, describeIndex, expectGradMatches, gradMismatches, handModel } from '../reference/check.js';

type HeadTask = 'classify' | 'regress';
const TASKS: readonly HeadTask[] = ['classify', 'regress'];
const OUTPUTS: Record<HeadTask, number> = { classify: 3, regress: 2 };
const DIMS = { hidden: 4, inputSize: 2 };
const SIZES = { T: 5, B: 3 };
/** Sampled gradient entries per parameter tensor (all of the smaller ones). */
const PER_TENSOR = 16;

/** Entries of `actual` not close to `expected`, as "i: actual vs expected". */
const differing = (actual: ArrayLike<number>, expected: ArrayLike<number>, rel = 1e-5, abs = 1e-5): string[] =>
  Array.from(expected, (e, i) => (closeRel(actual[i], e, rel, abs) ? '' : `${i}: ${actual[i]} vs ${e}`)).filter(Boolean);

interface HeadModel {
  cell: CellName;
  task: HeadTask;
  layers: number;
  layerNorm: boolean;
  normStabilizer: number;
}

const modelConfig = (m: HeadModel): Partial<ModelConfig> => ({ ...m, ...DIMS, outputs: OUTPUTS[m.task] });
const describeModel = (m: HeadModel, T = SIZES.T): string =>
  `${m.cell} ${m.task} L=${m.layers} T=${T}${m.layerNorm ? ' +LN' : ''} β=${m.normStabilizer}`;

interface Checked {
  readonly c: RandomCase;
  readonly result: ChunkResult;
  readonly indices: number[];
  readonly numeric: Float64Array;
}

/**
 * Run trainChunk (and forwardChunk) and the reference on one random case; check the
 * forward values (loss, penalty, tokens, final states, outputs) and return the gradient material.
 */
function runCase(label: string, m: HeadModel, sizes: { T: number; B: number } = SIZES, seed = 7): Checked {
  const c = randomCase(modelConfig(m), sizes, seed);
  const { B } = sizes;
  const O = OUTPUTS[m.task];
  const before = structuredClone({ params: c.params32, input: c.input });
  const result = trainChunk(c.layout, c.params32, c.input, { logits: true });
  const ref = refChunkLoss(c.layout, c.params64, c.input);

  expect({ params: c.params32, input: c.input }, `${label}: trainChunk must not write to params or the chunk`).toEqual(before);
  expect(c.layout.embedding, label).toBeUndefined();
  expect(ref.tokens, `${label}: reference token count`).toBe(B);
  expect(result.tokens, `${label}: token count (one target per sequence)`).toBe(B);
  expect(closeRel(result.loss, ref.loss), `${label}: loss ${result.loss} vs reference ${ref.loss}`).toBe(true);
  expect(closeRel(result.penalty, ref.penalty), `${label}: penalty ${result.penalty} vs reference ${ref.penalty}`).toBe(true);
  if (m.normStabilizer === 0) expect(result.penalty, label).toBe(0);
  else expect(ref.penalty, `${label}: the penalty is on`).toBeGreaterThan(0);
  expect(result.finalStates.length, label).toBe(ref.finalStates.length);
  expect(differing(result.finalStates, ref.finalStates), `${label}: final states`).toEqual([]);
  expect(ref.logits.length, `${label}: reference outputs are (B, O)`).toBe(B * O);
  expect(result.logits, `${label}: no outputs returned though asked`).toBeDefined();
  expect(result.logits!.length, `${label}: outputs are (B, O)`).toBe(B * O);
  expect(differing(result.logits!, ref.logits), `${label}: outputs`).toEqual([]);

  // The forward-only path reports the same values.
  const fwd = forwardChunk(c.layout, c.params32, c.input, { logits: true });
  expect(fwd.grad, label).toBeUndefined();
  expect(fwd.tokens, label).toBe(B);
  expect(closeRel(fwd.loss, ref.loss) && closeRel(fwd.penalty, ref.penalty), `${label}: forwardChunk loss ${fwd.loss} / penalty ${fwd.penalty}`).toBe(true);
  expect(differing(fwd.logits!, ref.logits), `${label}: forwardChunk outputs`).toEqual([]);

  expect(result.grad, `${label}: trainChunk returned no gradient`).toBeDefined();
  const grad = result.grad!;
  expect(grad.length, label).toBe(c.layout.size);
  const nonFinite = [...grad.keys()].filter((i) => !Number.isFinite(grad[i]));
  expect(nonFinite.map((i) => describeIndex(c.layout, i)), `${label}: non-finite gradient`).toEqual([]);

  const indices = sampleParamIndices(c.layout, PER_TENSOR, seed);
  const uncovered = c.layout.specs.filter((s) => !indices.some((i) => specOf(c.layout, i) === s)).map((s) => s.name);
  expect(uncovered, `${label}: tensors without a sampled entry`).toEqual([]);
  const numeric = finiteDifferenceGrad(c.layout, c.params64, c.input, indices);
  return { c, result, indices, numeric };
}


/** The full matrix at L = 2, then one L = 1 case per cell and task. */
function cpuCases(): HeadModel[] {
  const cases: HeadModel[] = [];
  for (const cell of CELLS) {
    for (const task of TASKS) {
      for (const layerNorm of [false, true]) {
        for (const normStabilizer of [0, 0.5]) cases.push({ cell, task, layers: 2, layerNorm, normStabilizer });
      }
      cases.push({ cell, task, layers: 1, layerNorm: true, normStabilizer: 0.5 });
    }
  }
  return cases;
}

// ---------------------------------------------------------------------------------
// The reference's heads, by hand (heads.ts's documented math), before it judges model/.

const sigmoid = (a: number): number => 1 / (1 + Math.exp(-a));
const crossEntropy = (y: number[], target: number): number => Math.log(y.reduce((s, v) => s + Math.exp(v), 0)) - y[target];

/** A model with the named tensors set (all else 0). */

describe('float64 reference of the heads, hand-computed (rnn, H = 1, inputSize = 1, T = 2, B = 2)', () => {
  // h_t = tanh(0.7 x_t − 0.4 h_{t−1} + 0.1); inputs row t·B + b: stream 0 reads 0.5, −1; stream 1 reads 2, 0.25.
  const rnn = { cell: 'rnn', layers: 1, hidden: 1, inputSize: 1, layerNorm: false } as const;
  const inputs = [0.5, 2, -1, 0.25];
  const h0 = [0.3, -0.6];
  const step = (x: number, h: number): number => Math.tanh(0.7 * x - 0.4 * h + 0.1);
  const h1 = [step(0.5, h0[0]), step(2, h0[1])];
  const h2 = [step(-1, h1[0]), step(0.25, h1[1])];
  const shared = { 'layers.0.W': [0.7, -0.4], 'layers.0.b': [0.1] };

  it('classify: y = h_T W + b (last step only), loss Σ_b CE(softmax(y_b), label_b), tokens = B; the penalty covers every step', () => {
    const beta = 0.5;
    const { layout, params } = handModel({ ...rnn, task: 'classify', outputs: 3, normStabilizer: beta }, 0, {
      ...shared,
      'decoder.W': [1.2, -0.5, 0.3],
      'decoder.b': [0.05, 0.2, -0.1],
    });
    expect(layout.embedding).toBeUndefined();
    const y = h2.map((h) => [1.2 * h + 0.05, -0.5 * h + 0.2, 0.3 * h - 0.1]);
    const out = refChunkLoss(layout, params, { inputs, labels: [2, 0], T: 2, B: 2, states: h0 });
    expect(out.tokens).toBe(2);
    expect(out.logits.length).toBe(6);
    y.flat().forEach((v, k) => expect(out.logits[k]).toBeCloseTo(v, 14));
    expect(out.loss).toBeCloseTo(crossEntropy(y[0], 2) + crossEntropy(y[1], 0), 14);
    const penalty = [0, 1].reduce((s, b) => s + (Math.abs(h1[b]) - Math.abs(h0[b])) ** 2 + (Math.abs(h2[b]) - Math.abs(h1[b])) ** 2, 0);
    expect(out.penalty).toBeCloseTo(beta * penalty, 14);
    expect(Array.from(out.finalStates)).toEqual(h2.map((h) => expect.closeTo(h, 14)));
  });

  it('regress: y = h_T W + b, loss Σ_b ‖y_b − target_b‖² (row b of the targets)', () => {
    const { layout, params } = handModel({ ...rnn, task: 'regress', outputs: 2, normStabilizer: 0 }, 0, {
      ...shared,
      'decoder.W': [1.2, -0.5],
      'decoder.b': [0.05, 0.2],
    });
    const values = [0.4, -0.3, -1.1, 0.9];
    const y = h2.map((h) => [1.2 * h + 0.05, -0.5 * h + 0.2]);
    const out = refChunkLoss(layout, params, { inputs, values, T: 2, B: 2, states: h0 });
    expect(out.tokens).toBe(2);
    y.flat().forEach((v, k) => expect(out.logits[k]).toBeCloseTo(v, 14));
    const expected = (y[0][0] - 0.4) ** 2 + (y[0][1] + 0.3) ** 2 + (y[1][0] + 1.1) ** 2 + (y[1][1] - 0.9) ** 2;
    expect(out.loss).toBeCloseTo(expected, 14);
    expect(out.penalty).toBe(0);
  });

  it('lstm, inputSize = 2: layer 0 multiplies the input row by W[0:inputSize]', () => {
    // H = 1, one step: s = x·W[0:2] + h0·W[2] + b per gate block i, f, g, o.
    const { layout, params } = handModel({ cell: 'lstm', layers: 1, hidden: 1, inputSize: 2, task: 'regress', outputs: 1 }, 0, {
      'layers.0.W': [0.1, 0.2, 0.3, 0.4, /* x1 */ -0.2, 0.5, 0.1, -0.3, /* h */ -0.5, 0.6, -0.7, 0.8],
      'layers.0.b': [0.05, 1.0, -0.05, 0.1],
      'decoder.W': [2],
      'decoder.b': [-0.1],
    });
    const x = [0.5, -1.5];
    // W is (In+H, G·H) = (3, 4) row-major: row 0 multiplies x0 = 0.5, row 1 x1 = −1.5, row 2 h0 = 0.2.
    const i = sigmoid(0.1 * 0.5 - 0.2 * -1.5 - 0.5 * 0.2 + 0.05);
    const f = sigmoid(0.2 * 0.5 + 0.5 * -1.5 + 0.6 * 0.2 + 1.0);
    const g = Math.tanh(0.3 * 0.5 + 0.1 * -1.5 - 0.7 * 0.2 - 0.05);
    const o = sigmoid(0.4 * 0.5 - 0.3 * -1.5 + 0.8 * 0.2 + 0.1);
    const c = f * -0.3 + i * g;
    const h = o * Math.tanh(c);
    const out = refChunkLoss(layout, params, { inputs: x, values: [0.7], T: 1, B: 1, states: [0.2, -0.3] });
    expect(out.finalStates[0]).toBeCloseTo(h, 14);
    expect(out.finalStates[1]).toBeCloseTo(c, 14);
    expect(out.loss).toBeCloseTo((2 * h - 0.1 - 0.7) ** 2, 14);
  });

  for (const task of TASKS) {
    it(`${task}: decoder.b's finite differences match the closed form (${task === 'classify' ? 'Σ_b softmax(y_b) − onehot(label_b)' : 'Σ_b 2 (y_b − target_b)'})`, () => {
      const c = randomCase(modelConfig({ cell: 'lstm', task, layers: 2, layerNorm: true, normStabilizer: 0.5 }), SIZES);
      const O = OUTPUTS[task];
      const { logits } = refChunkLoss(c.layout, c.params64, c.input);
      const analytic = new Array<number>(O).fill(0);
      for (let b = 0; b < SIZES.B; b++) {
        const y = Array.from(logits.subarray(b * O, (b + 1) * O));
        if (task === 'classify') {
          const z = y.reduce((s, v) => s + Math.exp(v), 0);
          y.forEach((v, k) => (analytic[k] += Math.exp(v) / z));
          analytic[c.input.labels![b]] -= 1;
        } else {
          y.forEach((v, k) => (analytic[k] += 2 * (v - c.input.values![b * O + k])));
        }
      }
      const indices = Array.from({ length: O }, (_, k) => c.layout.decoderB.offset + k);
      const fd = finiteDifferenceGrad(c.layout, c.params64, c.input, indices);
      fd.forEach((v, k) => expect(v).toBeCloseTo(analytic[k], 8));
    });
  }
});

// ---------------------------------------------------------------------------------

describe('heads: bptt vs float64 reference, cpu backend', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  for (const m of cpuCases()) {
    const label = describeModel(m);
    it(label, () => {
      expect(tf.getBackend()).toBe('cpu');
      expectGradMatches(`${label} (cpu)`, runCase(`${label} (cpu)`, m));
    });
  }

  describe('a last-step head with T = 1', () => {
    for (const task of TASKS) {
      for (const cell of ['lstm-peephole', 'gru', 'rnn'] as const) {
        const m: HeadModel = { cell, task, layers: 2, layerNorm: true, normStabilizer: 0.5 };
        const label = describeModel(m, 1);
        it(label, () => {
          expectGradMatches(`${label} (cpu)`, runCase(`${label} (cpu)`, m, { T: 1, B: 3 }));
        });
      }
    }
  });

  describe('layout: vector inputs have no embedding', () => {
    for (const cell of CELLS) {
      for (const task of TASKS) {
        it(`${cell} ${task}: no embedding tensor; layer 0 reads inputSize rows; decoder (H, outputs)`, () => {
          const { layout } = randomCase(modelConfig({ cell, task, layers: 2, layerNorm: true, normStabilizer: 0 }), SIZES);
          const { hidden: H, inputSize } = DIMS;
          const GH = gateCount(cell) * H;
          expect(layout.embedding).toBeUndefined();
          expect(layout.specs.filter((s) => s.name.startsWith('embedding')).map((s) => s.name)).toEqual([]);
          expect(layout.specs[0].name).toBe('layers.0.W');
          expect(layout.specs[0].offset).toBe(0);
          expect(layout.layers[0].inputSize).toBe(inputSize);
          expect(layout.layers[0].W.shape).toEqual([inputSize + H, GH]);
          expect(layout.layers[1].W.shape).toEqual([2 * H, GH]);
          expect(layout.vocabSize).toBe(OUTPUTS[task]);
          expect(layout.decoderW.shape).toEqual([H, OUTPUTS[task]]);
          expect(layout.decoderB.shape).toEqual([OUTPUTS[task]]);
          expect(layout.size).toBe(layout.specs.reduce((s, spec) => s + spec.size, 0));
        });
      }
    }
  });

  describe('chunks missing what the task reads are rejected with a clear error', () => {
    const make = (task: HeadTask) => randomCase(modelConfig({ cell: 'lstm', task, layers: 2, layerNorm: false, normStabilizer: 0 }), SIZES);
    /** The chunk with `key` replaced (undefined: removed). */
    const without = (input: ChunkInput, key: keyof ChunkInput, value?: unknown): ChunkInput => {
      const copy: Record<string, unknown> = { ...input };
      if (value === undefined) delete copy[key];
      else copy[key] = value;
      return copy as unknown as ChunkInput;
    };
    const both = (c: RandomCase, input: ChunkInput, model: RegExp, reference: RegExp) => {
      expect(() => trainChunk(c.layout, c.params32, input)).toThrow(model);
      expect(() => forwardChunk(c.layout, c.params32, input)).toThrow(model);
      expect(() => refChunkLoss(c.layout, c.params64, input as RefChunkInput)).toThrow(reference);
    };

    for (const task of TASKS) {
      it(`${task}: missing or short inputs`, () => {
        const c = make(task);
        both(c, without(c.input, 'inputs'), /chunk inputs: missing, expected 30 \(T=5, B=3\)/, /inputs missing/);
        both(c, without(c.input, 'inputs', c.input.inputs!.subarray(1)), /chunk inputs: 29 values, expected 30/, /inputs has 29 values, want T·B·inputSize = 30/);
        // tokens are no substitute for inputs
        both(c, without(without(c.input, 'inputs'), 'tokens', new Int32Array(18)), /chunk inputs: missing/, /inputs missing/);
      });
    }

    it('classify: missing labels, wrong count, a label out of range (above and below)', () => {
      const c = make('classify');
      both(c, without(c.input, 'labels'), /chunk labels: missing, expected 3/, /labels missing/);
      both(c, without(c.input, 'labels', Int32Array.of(0, 1)), /chunk labels: 2 values, expected 3/, /labels has 2 values, want B = 3/);
      both(c, without(c.input, 'labels', Int32Array.of(0, 3, 1)), /chunk label 3 outside \[0, 3\)/, /label 3 at 1 is outside 0\.\.2/);
      both(c, without(c.input, 'labels', Int32Array.of(-1, 0, 1)), /chunk label -1 outside \[0, 3\)/, /label -1 at 0 is outside 0\.\.2/);
      // regress targets do not stand in for labels
      both(c, without(without(c.input, 'labels'), 'values', new Float32Array(9)), /chunk labels: missing/, /labels missing/);
    });

    it('regress: missing values, wrong count', () => {
      const c = make('regress');
      both(c, without(c.input, 'values'), /chunk values: missing, expected 6/, /values missing/);
      both(c, without(c.input, 'values', new Float32Array(5)), /chunk values: 5 values, expected 6/, /values has 5 values, want B·outputs = 6/);
      both(c, without(without(c.input, 'values'), 'labels', Int32Array.of(0, 1, 0)), /chunk values: missing/, /values missing/);
    });
  });

  for (const task of TASKS) {
    it(`${task}: repeated calls leak no tensors`, () => {
      const c = randomCase(modelConfig({ cell: 'gru-reset-after', task, layers: 2, layerNorm: true, normStabilizer: 0.5 }), SIZES);
      trainChunk(c.layout, c.params32, c.input, { logits: true }); // warm any caches
      const before = tf.memory().numTensors;
      trainChunk(c.layout, c.params32, c.input, { logits: true });
      forwardChunk(c.layout, c.params32, c.input, { logits: true });
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  // The check itself must be able to fail: these feed it gradients that are wrong on purpose.
  describe('the check catches wrong gradients', () => {
    const sensitivity: Record<HeadTask, CellName> = { classify: 'lstm-peephole', regress: 'gru' };
    for (const task of TASKS) {
      const cell = sensitivity[task];
      it(`${task} (${cell}): a flipped sign on the largest sampled entry of any tensor`, () => {
        const m: HeadModel = { cell, task, layers: 2, layerNorm: true, normStabilizer: 0.5 };
        const { c, result, indices, numeric } = runCase(`sensitivity ${task}`, m);
        let flipped = 0;
        for (const spec of c.layout.specs) {
          const mine = indices.map((i, k) => ({ i, k })).filter(({ i }) => specOf(c.layout, i) === spec);
          const { i, k } = mine.reduce((a, b) => (Math.abs(numeric[b.k]) > Math.abs(numeric[a.k]) ? b : a));
          if (Math.abs(numeric[k]) < 1e-4) continue; // an (almost) zero entry has no sign to get wrong
          const wrong = Float32Array.from(result.grad!);
          wrong[i] = -wrong[i];
          const bad = gradMismatches(c.layout, wrong, indices, numeric);
          expect(bad.map((w) => w.where), spec.name).toEqual([describeIndex(c.layout, i)]);
          flipped++;
        }
        expect(flipped, 'tensors whose sign flip was tried').toBe(c.layout.specs.length);
      });

      it(`${task} (${cell}): a gradient missing the norm-stabilizer term`, () => {
        const m: HeadModel = { cell, task, layers: 2, layerNorm: true, normStabilizer: 0.5 };
        const withPenalty = randomCase(modelConfig(m), SIZES);
        const without = randomCase(modelConfig({ ...m, normStabilizer: 0 }), SIZES); // same params and chunk
        const indices = sampleParamIndices(withPenalty.layout, PER_TENSOR, 7);
        const numeric = finiteDifferenceGrad(withPenalty.layout, withPenalty.params64, withPenalty.input, indices);
        const lossOnly = trainChunk(without.layout, without.params32, without.input).grad!;
        expect(gradMismatches(withPenalty.layout, lossOnly, indices, numeric).length).toBeGreaterThan(0);
      });
    }
  });
});

describe('heads: bptt vs float64 reference, wasm backend', () => {
  const backend: BackendName = 'wasm';
  beforeAll(async () => {
    await initBackend(backend);
  });

  const cases: HeadModel[] = [
    { cell: 'lstm', task: 'classify', layers: 2, layerNorm: true, normStabilizer: 0.5 },
    { cell: 'gru-reset-after', task: 'regress', layers: 2, layerNorm: true, normStabilizer: 0.5 },
  ];
  for (const m of cases) {
    const label = `${describeModel(m)} (${backend})`;
    it(label, () => {
      expect(tf.getBackend()).toBe(backend);
      expectGradMatches(label, runCase(label, m));
    });
  }
});
