// Self-tests of the float64 reference (ref64.ts): hand-computed tiny cases, chunk
// chaining, the penalty, the finite differences and the GRU z convention. The
// reference is the ground truth of the gradient checks, so it is checked on its own.

import { describe, it, expect } from 'vitest';
import { CELLS, type CellName, isLstm } from '../../model/config.js';
import { type ParamLayout, buildLayout } from '../../model/params.js';
import { handModel } from '../reference/check.js';
import {
  type RefChunkInput,
  finiteDifferenceGrad,
  randomCase,
  refChunkLoss,
  refObjective,
  sampleParamIndices,
  specOf,
} from '../reference/ref64.js';

const sigmoid = (a: number): number => 1 / (1 + Math.exp(-a));
/** −log softmax(y)[target]. */
const crossEntropy = (y: number[], target: number): number => Math.log(y.reduce((s, v) => s + Math.exp(v), 0)) - y[target];


/** One step, one stream, one layer, H = E = 1, V = 2: input token 0 (x = 0.5), target token 1. */
const tinyInput = (states: number[]): RefChunkInput => ({ tokens: [0, 1], T: 1, B: 1, states });
const tinyShared = { 'embedding.W': [0.5, -1.0], 'decoder.W': [1.5, -2.0], 'decoder.b': [0.1, -0.1] };
const tinyDims = { layers: 1, hidden: 1, embed: 1, layerNorm: false, normStabilizer: 0 };
/** The loss of the tiny decoder for the top hidden value h. */
const tinyLoss = (h: number): number => crossEntropy([1.5 * h + 0.1, -2.0 * h - 0.1], 1);

describe('hand-computed tiny cases (H = E = 1, T = B = 1)', () => {
  it('lstm: gates i, f, g, o; c = f c0 + i g; h = o tanh(c)', () => {
    const { layout, params } = handModel({ ...tinyDims, cell: 'lstm' }, 2, {
      ...tinyShared,
      'layers.0.W': [0.1, 0.2, 0.3, 0.4, /* h row */ -0.5, 0.6, -0.7, 0.8],
      'layers.0.b': [0.05, 1.0, -0.05, 0.1],
    });
    // x = 0.5, h0 = 0.2, c0 = −0.3; pre-activations worked out by hand:
    const i = sigmoid(0); //       0.1·0.5 − 0.5·0.2 + 0.05
    const f = sigmoid(1.22); //    0.2·0.5 + 0.6·0.2 + 1
    const g = Math.tanh(-0.04); // 0.3·0.5 − 0.7·0.2 − 0.05
    const o = sigmoid(0.46); //    0.4·0.5 + 0.8·0.2 + 0.1
    const c = f * -0.3 + i * g;
    const h = o * Math.tanh(c);
    const out = refChunkLoss(layout, params, tinyInput([0.2, -0.3]));
    expect(out.finalStates[0]).toBeCloseTo(h, 14);
    expect(out.finalStates[1]).toBeCloseTo(c, 14);
    expect(out.logits[0]).toBeCloseTo(1.5 * h + 0.1, 14);
    expect(out.logits[1]).toBeCloseTo(-2.0 * h - 0.1, 14);
    expect(out.loss).toBeCloseTo(tinyLoss(h), 14);
    expect(out.penalty).toBe(0);
  });

  it('lstm-1997: blocks i, g, o and c = c0 + i g', () => {
    const { layout, params } = handModel({ ...tinyDims, cell: 'lstm-1997' }, 2, {
      ...tinyShared,
      'layers.0.W': [0.1, 0.3, 0.4, /* h row */ -0.5, -0.7, 0.8],
      'layers.0.b': [0.05, -0.05, 0.1],
    });
    const c = -0.3 + sigmoid(0) * Math.tanh(-0.04);
    const h = sigmoid(0.46) * Math.tanh(c);
    const out = refChunkLoss(layout, params, tinyInput([0.2, -0.3]));
    expect(out.finalStates[1]).toBeCloseTo(c, 14);
    expect(out.loss).toBeCloseTo(tinyLoss(h), 14);
  });

  it('lstm-peephole: i, f read the old c; o reads the new c', () => {
    const { layout, params } = handModel({ ...tinyDims, cell: 'lstm-peephole' }, 2, {
      ...tinyShared,
      'layers.0.W': [0.1, 0.2, 0.3, 0.4, /* h row */ -0.5, 0.6, -0.7, 0.8],
      'layers.0.b': [0.05, 1.0, -0.05, 0.1],
      'layers.0.peep': [0.7, -0.4, 0.9],
    });
    const c0 = -0.3;
    const i = sigmoid(0 + 0.7 * c0);
    const f = sigmoid(1.22 - 0.4 * c0);
    const c = f * c0 + i * Math.tanh(-0.04);
    const h = sigmoid(0.46 + 0.9 * c) * Math.tanh(c);
    const out = refChunkLoss(layout, params, tinyInput([0.2, c0]));
    expect(out.finalStates[1]).toBeCloseTo(c, 14);
    expect(out.loss).toBeCloseTo(tinyLoss(h), 14);
  });

  it('gru (reset before): n reads (r ⊙ h) · W_hn; h = (1 − z) h0 + z n', () => {
    const { layout, params } = handModel({ ...tinyDims, cell: 'gru' }, 2, {
      ...tinyShared,
      'layers.0.W': [0.3, -0.2, 0.4, /* h row */ 0.5, 0.1, -0.6],
      'layers.0.b': [0, 0.1, 0.2],
    });
    const r = sigmoid(0.25); // 0.3·0.5 + 0.5·0.2
    const z = sigmoid(0.02); // −0.2·0.5 + 0.1·0.2 + 0.1
    const n = Math.tanh(0.4 * 0.5 - 0.6 * (r * 0.2) + 0.2);
    const h = (1 - z) * 0.2 + z * n;
    const out = refChunkLoss(layout, params, tinyInput([0.2]));
    expect(out.finalStates[0]).toBeCloseTo(h, 14);
    expect(out.loss).toBeCloseTo(tinyLoss(h), 14);
  });

  it('gru-reset-after: n = tanh(W_nx x + b_n + r ⊙ (W_nh h + b_hn))', () => {
    const { layout, params } = handModel({ ...tinyDims, cell: 'gru-reset-after' }, 2, {
      ...tinyShared,
      'layers.0.W': [0.3, -0.2, 0.4, /* h row */ 0.5, 0.1, -0.6],
      'layers.0.b': [0, 0.1, 0.2],
      'layers.0.b_hn': [0.3],
    });
    const r = sigmoid(0.25);
    const z = sigmoid(0.02);
    const n = Math.tanh(0.4 * 0.5 + 0.2 + r * (-0.6 * 0.2 + 0.3));
    const h = (1 - z) * 0.2 + z * n;
    const out = refChunkLoss(layout, params, tinyInput([0.2]));
    expect(out.finalStates[0]).toBeCloseTo(h, 14);
    expect(out.loss).toBeCloseTo(tinyLoss(h), 14);
  });

  it('rnn with layer norm: each product normalized over its units with the biased variance and ε = 1e-5', () => {
    // H = 2: for two units, (a − μ)/√(σ² + ε) = ±d/√(d² + ε) with d half their difference.
    const { layout, params } = handModel({ ...tinyDims, hidden: 2, cell: 'rnn', layerNorm: true }, 2, {
      'embedding.W': [0.5, -1.0],
      'layers.0.W': [0.2, 0.6, /* h rows */ 0.3, -0.1, 0.5, 0.4],
      'layers.0.b': [0.01, -0.02],
      'layers.0.ln_x.gamma': [1.5, 0.5],
      'layers.0.ln_x.beta': [0.1, 0.2],
      'layers.0.ln_h.gamma': [0.8, 1.2],
      'layers.0.ln_h.beta': [-0.3, 0.05],
      'decoder.W': [1, -1, 0.5, 2],
      'decoder.b': [0, 0],
    });
    const h0 = [0.4, -0.2];
    const ax = [0.1, 0.3]; // 0.5 · [0.2, 0.6]
    const ah = [0.4 * 0.3 - 0.2 * 0.5, 0.4 * -0.1 - 0.2 * 0.4]; // [0.02, −0.12]
    const dx = (ax[0] - ax[1]) / 2;
    const dh = (ah[0] - ah[1]) / 2;
    const nx = [dx / Math.sqrt(dx * dx + 1e-5), -dx / Math.sqrt(dx * dx + 1e-5)];
    const nh = [dh / Math.sqrt(dh * dh + 1e-5), -dh / Math.sqrt(dh * dh + 1e-5)];
    const h = [
      Math.tanh(1.5 * nx[0] + 0.1 + 0.8 * nh[0] - 0.3 + 0.01),
      Math.tanh(0.5 * nx[1] + 0.2 + 1.2 * nh[1] + 0.05 - 0.02),
    ];
    const y = [h[0] * 1 + h[1] * 0.5, h[0] * -1 + h[1] * 2];
    const out = refChunkLoss(layout, params, tinyInput(h0));
    expect(out.finalStates[0]).toBeCloseTo(h[0], 14);
    expect(out.finalStates[1]).toBeCloseTo(h[1], 14);
    expect(out.loss).toBeCloseTo(crossEntropy(y, 1), 14);
  });
});

/** The test's own layer norm over all of a, biased variance, ε = 1e-5. */
function ln(a: number[], gamma: number[], beta: number[]): number[] {
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  const variance = a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length;
  return a.map((v, k) => (gamma[k] * (v - mean)) / Math.sqrt(variance + 1e-5) + beta[k]);
}

describe('hand-computed tiny cases with layer norm (H = E = 1, so a 1-unit group normalizes to its β)', () => {
  it('lstm + LN: LN_x, LN_h over the 4 gate units, and LN_c (1 unit: β_c) under the tanh only', () => {
    const Wx = [0.1, 0.2, 0.3, 0.4];
    const Wh = [-0.5, 0.6, -0.7, 0.8];
    const b = [0.05, 1.0, -0.05, 0.1];
    const lnx = { g: [1.1, 0.9, 1.3, 0.7], b: [0.1, -0.2, 0.05, 0.3] };
    const lnh = { g: [0.8, 1.2, 1.0, 0.6], b: [-0.1, 0.15, 0.2, -0.05] };
    const { layout, params } = handModel({ ...tinyDims, cell: 'lstm', layerNorm: true }, 2, {
      ...tinyShared,
      'layers.0.W': [...Wx, ...Wh],
      'layers.0.b': b,
      'layers.0.ln_x.gamma': lnx.g,
      'layers.0.ln_x.beta': lnx.b,
      'layers.0.ln_h.gamma': lnh.g,
      'layers.0.ln_h.beta': lnh.b,
      'layers.0.ln_c.gamma': [1.7],
      'layers.0.ln_c.beta': [0.4],
    });
    const px = ln(Wx.map((w) => 0.5 * w), lnx.g, lnx.b);
    const ph = ln(Wh.map((w) => 0.2 * w), lnh.g, lnh.b);
    const s = px.map((v, k) => v + ph[k] + b[k]);
    const c = sigmoid(s[1]) * -0.3 + sigmoid(s[0]) * Math.tanh(s[2]);
    const h = sigmoid(s[3]) * Math.tanh(0.4); // LN_c of one unit is β_c
    const out = refChunkLoss(layout, params, tinyInput([0.2, -0.3]));
    expect(out.finalStates[1]).toBeCloseTo(c, 14); // the carried c is not normalized
    expect(out.finalStates[0]).toBeCloseTo(h, 12);
  });

  it('gru + LN: the recurrent product is two LN groups, r|z (γ_h[0:2H]) and n (γ_h[2H:3H])', () => {
    const Wx = [0.3, -0.2, 0.4];
    const Wh = [0.5, 0.1, -0.6];
    const b = [0, 0.1, 0.2];
    const lnx = { g: [1.1, 0.9, 1.3], b: [0.1, -0.2, 0.05] };
    const lnh = { g: [0.8, 1.2, 1.0], b: [-0.1, 0.15, 0.25] };
    const { layout, params } = handModel({ ...tinyDims, cell: 'gru', layerNorm: true }, 2, {
      ...tinyShared,
      'layers.0.W': [...Wx, ...Wh],
      'layers.0.b': b,
      'layers.0.ln_x.gamma': lnx.g,
      'layers.0.ln_x.beta': lnx.b,
      'layers.0.ln_h.gamma': lnh.g,
      'layers.0.ln_h.beta': lnh.b,
    });
    const px = ln(Wx.map((w) => 0.5 * w), lnx.g, lnx.b); // one group of 3 units
    const phrz = ln([0.2 * Wh[0], 0.2 * Wh[1]], lnh.g.slice(0, 2), lnh.b.slice(0, 2));
    const z = sigmoid(px[1] + phrz[1] + b[1]);
    // (r ⊙ h) W_hn is a 1-unit group, so LN turns it into β_h[2] whatever r is.
    const n = Math.tanh(px[2] + 0.25 + b[2]);
    const h = (1 - z) * 0.2 + z * n;
    const out = refChunkLoss(layout, params, tinyInput([0.2]));
    expect(out.finalStates[0]).toBeCloseTo(h, 12);
  });

  it('gru-reset-after + LN: one LN group of 3 units for the recurrent product, b_hn inside r ⊙ (·)', () => {
    const Wx = [0.3, -0.2, 0.4];
    const Wh = [0.5, 0.1, -0.6];
    const b = [0, 0.1, 0.2];
    const lnx = { g: [1.1, 0.9, 1.3], b: [0.1, -0.2, 0.05] };
    const lnh = { g: [0.8, 1.2, 1.0], b: [-0.1, 0.15, 0.25] };
    const { layout, params } = handModel({ ...tinyDims, cell: 'gru-reset-after', layerNorm: true }, 2, {
      ...tinyShared,
      'layers.0.W': [...Wx, ...Wh],
      'layers.0.b': b,
      'layers.0.b_hn': [0.3],
      'layers.0.ln_x.gamma': lnx.g,
      'layers.0.ln_x.beta': lnx.b,
      'layers.0.ln_h.gamma': lnh.g,
      'layers.0.ln_h.beta': lnh.b,
    });
    const px = ln(Wx.map((w) => 0.5 * w), lnx.g, lnx.b);
    const ph = ln(Wh.map((w) => 0.2 * w), lnh.g, lnh.b);
    const r = sigmoid(px[0] + ph[0] + b[0]);
    const z = sigmoid(px[1] + ph[1] + b[1]);
    const n = Math.tanh(px[2] + b[2] + r * (ph[2] + 0.3));
    const h = (1 - z) * 0.2 + z * n;
    const out = refChunkLoss(layout, params, tinyInput([0.2]));
    expect(out.finalStates[0]).toBeCloseTo(h, 12);
  });
});

/** Tokens t0..t1 (inclusive) of a time-major stream of B columns. */
const tokenSlice = (tokens: ArrayLike<number>, B: number, t0: number, t1: number): number[] =>
  Array.from(tokens).slice(t0 * B, (t1 + 1) * B);

describe('chunking does not change the forward pass', () => {
  for (const cell of CELLS) {
    it(`${cell}: chunk 1 then chunk 2 from its final states = one chunk of 2T`, () => {
      const { layout, params64, input } = randomCase(
        { cell, layers: 2, hidden: 4, embed: 3, layerNorm: true, normStabilizer: 0.5 },
        { V: 7, T: 6, B: 3 },
      );
      const { B } = input;
      const whole = refChunkLoss(layout, params64, input);
      const first = refChunkLoss(layout, params64, { tokens: tokenSlice(input.tokens!, B, 0, 3), T: 3, B, states: input.states });
      const second = refChunkLoss(layout, params64, { tokens: tokenSlice(input.tokens!, B, 3, 6), T: 3, B, states: first.finalStates });
      expect(first.loss + second.loss).toBeCloseTo(whole.loss, 12);
      expect(first.penalty + second.penalty).toBeCloseTo(whole.penalty, 12);
      expect(whole.penalty).toBeGreaterThan(0);
      for (let i = 0; i < whole.finalStates.length; i++) expect(second.finalStates[i]).toBeCloseTo(whole.finalStates[i], 13);
      const joined = [...first.logits, ...second.logits];
      for (let i = 0; i < whole.logits.length; i++) expect(joined[i]).toBeCloseTo(whole.logits[i], 13);
    });
  }
});

describe('norm-stabilizer penalty', () => {
  for (const cell of CELLS) {
    it(`${cell}: 0 for β = 0, positive and linear in β otherwise, and β Σ (‖h_1‖ − ‖h_0‖)² for T = 1`, () => {
      const model = { cell, layers: 2, hidden: 4, embed: 3, layerNorm: false };
      const at = (beta: number, T: number) => {
        const c = randomCase({ ...model, normStabilizer: beta }, { V: 7, T, B: 3 });
        return { ...c, out: refChunkLoss(c.layout, c.params64, c.input) };
      };
      const off = at(0, 5);
      const half = at(0.5, 5);
      const two = at(2, 5);
      expect(off.out.penalty).toBe(0);
      expect(half.out.penalty).toBeGreaterThan(0);
      expect(two.out.penalty).toBeCloseTo(4 * half.out.penalty, 12);
      expect(half.out.loss).toBe(off.out.loss); // the penalty is reported apart from the loss

      // One step: the penalty is computable from the initial and final states alone.
      const one = at(0.5, 1);
      const { B } = one.input;
      const H = 4;
      const S = isLstm(cell) ? 2 : 1;
      let expected = 0;
      for (let l = 0; l < 2; l++) {
        for (let b = 0; b < B; b++) {
          const from = (l * S * B + b) * H; // s = 0: h
          const norm = (v: ArrayLike<number>) => Math.hypot(...Array.from(v).slice(from, from + H));
          expected += (norm(one.out.finalStates) - norm(one.input.states)) ** 2;
        }
      }
      expect(one.out.penalty).toBeCloseTo(0.5 * expected, 12);
    });
  }
});

describe('finite differences', () => {
  for (const cell of CELLS) {
    it(`${cell}: a step along the finite-difference gradient changes the objective by δ‖g‖²`, () => {
      const { layout, params64, input } = randomCase(
        { cell, layers: 2, hidden: 4, embed: 3, layerNorm: true, normStabilizer: 0.5 },
        { V: 7, T: 5, B: 3 },
      );
      const indices = sampleParamIndices(layout, 6);
      const g = finiteDifferenceGrad(layout, params64, input, indices);
      const gg = g.reduce((s, v) => s + v * v, 0);
      expect(gg).toBeGreaterThan(1e-3);
      const delta = 1e-6;
      const moved = Float64Array.from(params64);
      indices.forEach((i, k) => (moved[i] += delta * g[k]));
      const change = refObjective(layout, moved, input) - refObjective(layout, params64, input);
      expect(Math.abs(change - delta * gg)).toBeLessThan(1e-3 * delta * gg);
    });
  }

  it('decoder.b matches its closed form Σ_{t,b} (softmax(y) − onehot(target))', () => {
    const { layout, params64, input } = randomCase(
      { cell: 'lstm', layers: 2, hidden: 4, embed: 3, layerNorm: true, normStabilizer: 0.5 },
      { V: 7, T: 5, B: 3 },
    );
    const V = 7;
    const { logits } = refChunkLoss(layout, params64, input);
    const analytic = new Array<number>(V).fill(0);
    for (let row = 0; row < input.T * input.B; row++) {
      const y = Array.from(logits.subarray(row * V, (row + 1) * V));
      const z = y.reduce((s, v) => s + Math.exp(v), 0);
      y.forEach((v, k) => (analytic[k] += Math.exp(v) / z));
      analytic[input.tokens![row + input.B]] -= 1; // target of row t·B + b is token (t+1)·B + b
    }
    const indices = Array.from({ length: V }, (_, k) => layout.decoderB.offset + k);
    const fd = finiteDifferenceGrad(layout, params64, input, indices);
    fd.forEach((v, k) => expect(v).toBeCloseTo(analytic[k], 8));
  });

  it('sampleParamIndices is deterministic, distinct, in range and covers every tensor', () => {
    const { layout } = randomCase({ cell: 'lstm-peephole', layers: 2, hidden: 4, embed: 3, layerNorm: true }, { V: 7, T: 1, B: 1 });
    const a = sampleParamIndices(layout, 6, 3);
    expect(sampleParamIndices(layout, 6, 3)).toEqual(a);
    expect(new Set(a).size).toBe(a.length);
    for (const spec of layout.specs) {
      const mine = a.filter((i) => specOf(layout, i) === spec);
      expect(mine.length, spec.name).toBe(Math.min(6, spec.size));
    }
    // The fused W of layer 0 (In + H = 7 rows, 4 gate blocks of 4 columns): with 16 picks
    // the stratification reaches both the x rows and the h rows and every gate block.
    const W = layout.byName.get('layers.0.W')!;
    const wPicks = sampleParamIndices(layout, 16, 3).filter((i) => specOf(layout, i) === W).map((i) => i - W.offset);
    const rows = new Set(wPicks.map((i) => Math.floor(i / 16)));
    const blocks = new Set(wPicks.map((i) => Math.floor((i % 16) / 4)));
    expect([...rows].some((r) => r < 3) && [...rows].some((r) => r >= 3)).toBe(true);
    expect(blocks.size).toBe(4);
  });
});

describe('GRU z convention: h = (1 − z) ⊙ h_prev + z ⊙ n (z is MODELS.md\'s, not PyTorch\'s z\')', () => {
  /** Set the z block (columns H..2H) of the gate bias to a large value. */
  const withZBias = (params: Float64Array, layout: ParamLayout, value: number): Float64Array => {
    const p = Float64Array.from(params);
    const b = layout.layers[0].b;
    const H = layout.config.hidden;
    for (let j = 0; j < H; j++) p[b.offset + H + j] = value;
    return p;
  };
  const grus: CellName[] = ['gru-reset-after', 'gru'];

  for (const cell of grus) {
    it(`${cell}: z ≈ 1 gives h ≈ n (hand-computed, H = 1)`, () => {
      const values = {
        ...tinyShared,
        'layers.0.W': [0.3, -0.2, 0.4, /* h row */ 0.5, 0.1, -0.6],
        'layers.0.b': [0, 40, 0.2], // z = σ(≈ 40) ≈ 1
        ...(cell === 'gru-reset-after' ? { 'layers.0.b_hn': [0.3] } : {}),
      };
      const { layout, params } = handModel({ ...tinyDims, cell }, 2, values);
      const r = sigmoid(0.25);
      const n = cell === 'gru-reset-after' ? Math.tanh(0.4 * 0.5 + 0.2 + r * (-0.6 * 0.2 + 0.3)) : Math.tanh(0.4 * 0.5 - 0.6 * r * 0.2 + 0.2);
      const out = refChunkLoss(layout, params, tinyInput([0.2]));
      expect(out.finalStates[0]).toBeCloseTo(n, 12);
    });

    for (const layerNorm of [false, true]) {
      it(`${cell}${layerNorm ? ' + LN' : ''}: z ≈ 0 keeps the state; z ≈ 1 forgets it`, () => {
        const c = randomCase({ cell, layers: 1, hidden: 4, embed: 3, layerNorm }, { V: 7, T: 5, B: 3 });
        const kept = refChunkLoss(c.layout, withZBias(c.params64, c.layout, -60), c.input);
        for (let i = 0; i < kept.finalStates.length; i++) expect(kept.finalStates[i]).toBeCloseTo(c.input.states[i], 10);
        // z ≈ 1: h_T = n_T still reads h_{T−1} (through r and W_h), but the state's own carry is gone,
        // so the final state differs from the initial one.
        const forgot = refChunkLoss(c.layout, withZBias(c.params64, c.layout, 60), c.input);
        const moved = forgot.finalStates.some((v, i) => Math.abs(v - c.input.states[i]) > 1e-3);
        expect(moved).toBe(true);
      });
    }
  }

  it('gru and gru-reset-after agree when r ≈ 1 and b_hn = 0 (no LN): the reset is the only difference', () => {
    const before = randomCase({ cell: 'gru', layers: 2, hidden: 4, embed: 3, layerNorm: false }, { V: 7, T: 5, B: 3 });
    const afterLayout = buildLayout({ ...before.layout.config, cell: 'gru-reset-after' }, 7);
    const H = 4;
    const p = Float64Array.from(before.params64);
    for (const lp of before.layout.layers) for (let j = 0; j < H; j++) p[lp.b.offset + j] = 60; // r ≈ 1
    const q = new Float64Array(afterLayout.size); // same tensors by name, b_hn = 0
    for (const spec of before.layout.specs) q.set(p.subarray(spec.offset, spec.offset + spec.size), afterLayout.byName.get(spec.name)!.offset);
    const a = refChunkLoss(before.layout, p, before.input);
    const b = refChunkLoss(afterLayout, q, before.input);
    expect(b.loss).toBeCloseTo(a.loss, 12);
    for (let i = 0; i < a.finalStates.length; i++) expect(b.finalStates[i]).toBeCloseTo(a.finalStates[i], 12);
  });
});

describe('input validation', () => {
  it('rejects wrong sizes and out-of-range tokens with the offending value', () => {
    const { layout, params64, input } = randomCase({ cell: 'rnn', layers: 1, hidden: 4, embed: 3 }, { V: 7, T: 2, B: 2 });
    expect(() => refChunkLoss(layout, params64.subarray(1), input)).toThrow(/params has/);
    expect(() => refChunkLoss(layout, params64, { ...input, T: 3 })).toThrow(/tokens has 6 values, want \(T\+1\)·B = 8/);
    expect(() => refChunkLoss(layout, params64, { ...input, states: [0] })).toThrow(/states has 1 values/);
    expect(() => refChunkLoss(layout, params64, { ...input, tokens: [0, 1, 2, 3, 4, 7] })).toThrow(/token 7 at 5/);
  });
});
