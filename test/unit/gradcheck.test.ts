// Gradient checks of the hand-written BPTT (model/bptt.ts) against the float64
// reference (test/reference/ref64.ts): loss, penalty, final states and logits against
// its forward pass, and the gradient of every parameter tensor against central
// finite differences of its objective, for every cell × layerNorm × normStabilizer.

import { describe, it, expect, beforeAll } from 'vitest';
import { CELLS, type CellName, type ModelConfig } from '../../model/config.js';
import type { ChunkResult } from '../../model/chunk.js';
import { type BackendName, initBackend, tf } from '../../model/backend.js';
import { trainChunk } from '../../model/bptt.js';
import { type RandomCase, finiteDifferenceGrad, randomCase, refChunkLoss, sampleParamIndices, specOf } from '../reference/ref64.js';
import { closeRel, describeIndex, expectGradMatches, gradMismatches } from '../reference/check.js';
import { describeBackends } from '../helpers/native-guard.js';

const DIMS = { hidden: 4, embed: 3 };
const SIZES = { V: 7, T: 5, B: 3 };
/** Sampled gradient entries per parameter tensor (all of the smaller ones). */
const PER_TENSOR = 16;

interface Checked {
  readonly c: RandomCase;
  readonly result: ChunkResult;
  readonly indices: number[];
  readonly numeric: Float64Array;
}

/** Run trainChunk and the reference on one random case; check the forward values and return the gradient material. */
function runCase(label: string, model: Partial<ModelConfig>, sizes = SIZES, seed = 7): Checked {
  const c = randomCase(model, sizes, seed);
  const paramsBefore = Float32Array.from(c.params32);
  const statesBefore = Float32Array.from(c.input.states);
  const result = trainChunk(c.layout, c.params32, c.input);
  const ref = refChunkLoss(c.layout, c.params64, c.input);

  expect(c.params32, `${label}: trainChunk must not write to params`).toEqual(paramsBefore);
  expect(c.input.states, `${label}: trainChunk must not write to the input states`).toEqual(statesBefore);
  expect(result.tokens, label).toBe(sizes.T * sizes.B);
  expect(closeRel(result.loss, ref.loss), `${label}: loss ${result.loss} vs reference ${ref.loss}`).toBe(true);
  expect(closeRel(result.penalty, ref.penalty), `${label}: penalty ${result.penalty} vs reference ${ref.penalty}`).toBe(true);
  if (c.layout.config.normStabilizer === 0) expect(result.penalty, label).toBe(0);
  expect(result.finalStates.length, label).toBe(ref.finalStates.length);
  const badStates = [...ref.finalStates.keys()].filter((i) => !closeRel(result.finalStates[i], ref.finalStates[i], 1e-5, 1e-5));
  expect(badStates, `${label}: final states differ at ${badStates.map((i) => `${i}: ${result.finalStates[i]} vs ${ref.finalStates[i]}`).join('; ')}`).toEqual([]);

  expect(result.grad, `${label}: trainChunk returned no gradient`).toBeDefined();
  const grad = result.grad!;
  expect(grad.length, label).toBe(c.layout.size);
  const nonFinite = [...grad.keys()].filter((i) => !Number.isFinite(grad[i]));
  expect(nonFinite.map((i) => describeIndex(c.layout, i)), `${label}: non-finite gradient`).toEqual([]);

  const indices = sampleParamIndices(c.layout, PER_TENSOR, seed);
  const numeric = finiteDifferenceGrad(c.layout, c.params64, c.input, indices);
  return { c, result, indices, numeric };
}


const describeModel = (m: { cell: CellName; layers: number; layerNorm: boolean; normStabilizer: number }, B: number): string =>
  `${m.cell} L=${m.layers} B=${B}${m.layerNorm ? ' +LN' : ''} β=${m.normStabilizer}`;

/** Every case for the cpu backend: the full matrix at L=2, B=3, then L=1 and B=1 per cell. */
function cpuCases(): { model: { cell: CellName; layers: number; layerNorm: boolean; normStabilizer: number }; B: number }[] {
  const cases = [];
  for (const cell of CELLS) {
    for (const layerNorm of [false, true]) {
      for (const normStabilizer of [0, 0.5]) cases.push({ model: { cell, layers: 2, layerNorm, normStabilizer }, B: 3 });
    }
    cases.push({ model: { cell, layers: 1, layerNorm: true, normStabilizer: 0.5 }, B: 3 });
    cases.push({ model: { cell, layers: 2, layerNorm: true, normStabilizer: 0.5 }, B: 1 });
  }
  return cases;
}

// The full matrix on the pure-JS cpu backend and on the native kernel set (its own GEMM,
// transcendental polynomials and gate kernels).
describeBackends(['cpu', 'native'], 'bptt vs float64 reference', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  for (const { model, B } of cpuCases()) {
    const label = describeModel(model, B);
    it(label, () => {
      expect(tf.getBackend()).toBe(backend);
      expectGradMatches(`${label} (${backend})`, runCase(`${label} (${backend})`, { ...model, ...DIMS }, { ...SIZES, B }));
    });
  }

  for (const cell of CELLS) {
    it(`${cell}: logits on request match the reference, and repeated calls leak no tensors`, () => {
      const c = randomCase({ cell, layers: 2, layerNorm: true, normStabilizer: 0.5, ...DIMS }, SIZES);
      trainChunk(c.layout, c.params32, c.input, { logits: true }); // warm any caches
      const before = tf.memory().numTensors;
      const result = trainChunk(c.layout, c.params32, c.input, { logits: true });
      expect(tf.memory().numTensors, `${cell}: tensors leaked by one trainChunk`).toBe(before);
      const ref = refChunkLoss(c.layout, c.params64, c.input);
      expect(result.logits, `${cell}: no logits returned though asked`).toBeDefined();
      expect(result.logits!.length).toBe(ref.logits.length);
      const bad = [...ref.logits.keys()].filter((i) => !closeRel(result.logits![i], ref.logits[i], 1e-5, 1e-5));
      expect(bad.map((i) => `${i}: ${result.logits![i]} vs ${ref.logits[i]}`), `${cell}: logits`).toEqual([]);
    });
  }

  // The check itself must be able to fail: these feed it gradients that are wrong on purpose
  // (once: the check does not depend on the backend).
  if (backend === 'cpu') describe('the check catches wrong gradients', () => {
    it('a flipped sign on the largest sampled entry of any tensor', () => {
      const checked = runCase('sensitivity', { cell: 'lstm-peephole', layers: 2, layerNorm: true, normStabilizer: 0.5, ...DIMS });
      const { c, result, indices, numeric } = checked;
      for (const spec of c.layout.specs) {
        const mine = indices.map((i, k) => ({ i, k })).filter(({ i }) => specOf(c.layout, i) === spec);
        const { i, k } = mine.reduce((a, b) => (Math.abs(numeric[b.k]) > Math.abs(numeric[a.k]) ? b : a));
        if (Math.abs(numeric[k]) < 1e-4) continue; // an (almost) zero entry has no sign to get wrong
        const wrong = Float32Array.from(result.grad!);
        wrong[i] = -wrong[i];
        const bad = gradMismatches(c.layout, wrong, indices, numeric);
        expect(bad.map((m) => m.where), spec.name).toEqual([describeIndex(c.layout, i)]);
      }
    });

    it('a 1% scale error on every entry above 1e-2', () => {
      const { c, result, indices, numeric } = runCase('sensitivity', { cell: 'gru', layers: 2, layerNorm: true, normStabilizer: 0.5, ...DIMS });
      const scaled = result.grad!.map((g) => g * 1.01);
      const flagged = new Set(gradMismatches(c.layout, scaled, indices, numeric).map((m) => m.where));
      const large = indices.filter((_, k) => Math.abs(numeric[k]) > 1e-2).map((i) => describeIndex(c.layout, i));
      expect(large.length).toBeGreaterThan(20);
      expect(large.filter((w) => !flagged.has(w))).toEqual([]);
    });

    for (const cell of CELLS) {
      it(`${cell}: a gradient missing the norm-stabilizer term`, () => {
        const withPenalty = randomCase({ cell, layers: 2, layerNorm: true, normStabilizer: 0.5, ...DIMS }, SIZES);
        const without = randomCase({ cell, layers: 2, layerNorm: true, normStabilizer: 0, ...DIMS }, SIZES);
        const indices = sampleParamIndices(withPenalty.layout, PER_TENSOR, 7);
        const numeric = finiteDifferenceGrad(withPenalty.layout, withPenalty.params64, withPenalty.input, indices);
        const lossOnly = trainChunk(without.layout, without.params32, without.input).grad!; // same params, β = 0
        expect(gradMismatches(withPenalty.layout, lossOnly, indices, numeric).length).toBeGreaterThan(0);
      });
    }
  });
});

describe('bptt vs float64 reference, wasm backend', () => {
  const backend: BackendName = 'wasm';
  beforeAll(async () => {
    await initBackend(backend);
  });

  for (const cell of CELLS) {
    const model = { cell, layers: 2, layerNorm: true, normStabilizer: 0.5 };
    const label = `${describeModel(model, SIZES.B)} (${backend})`;
    it(label, () => {
      expect(tf.getBackend()).toBe(backend);
      expectGradMatches(label, runCase(label, { ...model, ...DIMS }));
    });
  }
});
