// Float64 reference of one truncated-BPTT chunk (forward pass, loss, norm-stabilizer
// penalty) that follows docs/MODEL.md literally: the ground truth the tests hold
// model/bptt.ts to. It shares nothing with model/ but the parameter layout, and is
// written for obviousness (loops over t, b, j; one helper per cell), not speed.
// Layer 0 reads an embedding row (lm) or an input row of config.inputSize values
// (classify, regress); the output heads are in heads64.ts.

import { type CellName, type ModelConfig, isLstm, resolveModelConfig } from '../../model/config.js';
import { type ParamLayout, type ParamSpec, buildLayout, initParams } from '../../model/params.js';
import type { ChunkInput } from '../../model/chunk.js';
import { Rng } from '../../model/rng.js';
import { checkHeadTargets, decode, headLoss, headReadsStep, headRow, headRows } from './heads64.js';

/** ε under the square root of every layer norm (docs/MODEL.md). */
const LN_EPS = 1e-5;

/** A chunk as ChunkInput, but states may be float64 so chunks chain without rounding. */
export interface RefChunkInput {
  /** lm: (T+1)·B token ids, time-major: tokens[t·B + b]. */
  readonly tokens?: ArrayLike<number>;
  /** classify, regress: T·B·inputSize values, row t·B + b is x_t of stream b. */
  readonly inputs?: ArrayLike<number>;
  /** classify: B class ids, the target after the last step. */
  readonly labels?: ArrayLike<number>;
  /** regress: B·outputs target values after the last step, row b. */
  readonly values?: ArrayLike<number>;
  readonly T: number;
  readonly B: number;
  readonly states: ArrayLike<number>;
}

export interface RefChunkResult {
  /** lm: Σ_{t,b} cross-entropy, nats; classify: Σ_b cross-entropy; regress: Σ_b ‖y_b − target_b‖². */
  readonly loss: number;
  /** β Σ_l Σ_b Σ_t (‖h_t‖ − ‖h_{t−1}‖)². */
  readonly penalty: number;
  /** Same layout as the input states: ((l·S + s)·B + b)·H + j. */
  readonly finalStates: Float64Array;
  /** lm: (T·B, V), row t·B + b; classify, regress: (B, outputs), row b, from h_T. */
  readonly logits: Float64Array;
  /** Number of targets: T·B for lm, B for classify and regress. */
  readonly tokens: number;
}

type Vec = number[];
interface LnWeights {
  readonly gamma: Float64Array;
  readonly beta: Float64Array;
}

/** One layer's parameters as float64 views, plus the sizes the cells need. */
export interface LayerWeights {
  readonly In: number;
  readonly H: number;
  readonly W: Float64Array; // (In+H, G·H) row-major
  readonly cols: number; // G·H
  readonly b: Float64Array; // (G·H)
  readonly b_hn?: Float64Array; // (H)
  readonly peep?: Float64Array; // (3, H): p_i, p_f, p_o
  readonly lnX?: LnWeights;
  readonly lnH?: LnWeights;
  readonly lnC?: LnWeights;
}

export interface CellState {
  readonly h: Vec;
  readonly c: Vec; // empty for cells without a cell state
}

const sigmoid = (a: number): number => 1 / (1 + Math.exp(-a));

/** x · M[r0 .. r0+len(x), c0 .. c0+n) of a row-major matrix with `cols` columns. */
function rowTimesBlock(x: Vec, M: Float64Array, cols: number, r0: number, c0: number, n: number): Vec {
  const out: Vec = new Array<number>(n).fill(0);
  for (let k = 0; k < n; k++) {
    for (let i = 0; i < x.length; i++) out[k] += x[i] * M[(r0 + i) * cols + c0 + k];
  }
  return out;
}

/** γ ⊙ (a − μ)/√(σ² + ε) + β over a's units, γ and β read from index `from` on; identity without LN. */
function layerNorm(a: Vec, ln: LnWeights | undefined, from: number): Vec {
  if (!ln) return a;
  const n = a.length;
  let mean = 0;
  for (const v of a) mean += v / n;
  let variance = 0; // biased, as docs/MODEL.md says
  for (const v of a) variance += (v - mean) * (v - mean) / n;
  return a.map((v, k) => ln.gamma[from + k] * (v - mean) / Math.sqrt(variance + LN_EPS) + ln.beta[from + k]);
}

/** p_x = LN_x(x · W[0:In]), the whole G·H product one group. */
function inputProduct(w: LayerWeights, x: Vec): Vec {
  return layerNorm(rowTimesBlock(x, w.W, w.cols, 0, 0, w.cols), w.lnX, 0);
}

/** p_h = LN_h(h · W[In:In+H]), the whole G·H product one group (not for gru). */
function recurrentProduct(w: LayerWeights, h: Vec): Vec {
  return layerNorm(rowTimesBlock(h, w.W, w.cols, w.In, 0, w.cols), w.lnH, 0);
}

/** s = p_x + p_h + b. */
function gateSums(w: LayerWeights, x: Vec, h: Vec): Vec {
  const px = inputProduct(w, x);
  const ph = recurrentProduct(w, h);
  return px.map((v, k) => v + ph[k] + w.b[k]);
}

function rnnCell(w: LayerWeights, x: Vec, prev: CellState): CellState {
  return { h: gateSums(w, x, prev.h).map(Math.tanh), c: [] };
}

/** Blocks i, f, g, o. */
function lstmCell(w: LayerWeights, x: Vec, prev: CellState): CellState {
  const { H } = w;
  const s = gateSums(w, x, prev.h);
  const c: Vec = [];
  const o: Vec = [];
  for (let j = 0; j < H; j++) {
    const inputGate = sigmoid(s[j]);
    const forgetGate = sigmoid(s[H + j]);
    const candidate = Math.tanh(s[2 * H + j]);
    o.push(sigmoid(s[3 * H + j]));
    c.push(forgetGate * prev.c[j] + inputGate * candidate);
  }
  const cNorm = layerNorm(c, w.lnC, 0);
  return { h: o.map((oj, j) => oj * Math.tanh(cNorm[j])), c };
}

/** Blocks i, g, o; no forget gate, so the old cell state is kept whole. */
function lstm1997Cell(w: LayerWeights, x: Vec, prev: CellState): CellState {
  const { H } = w;
  const s = gateSums(w, x, prev.h);
  const c: Vec = [];
  const o: Vec = [];
  for (let j = 0; j < H; j++) {
    const inputGate = sigmoid(s[j]);
    const candidate = Math.tanh(s[H + j]);
    o.push(sigmoid(s[2 * H + j]));
    c.push(prev.c[j] + inputGate * candidate);
  }
  const cNorm = layerNorm(c, w.lnC, 0);
  return { h: o.map((oj, j) => oj * Math.tanh(cNorm[j])), c };
}

/** Blocks i, f, g, o; i and f peek at the old c, o at the new (un-normalized) c. */
function lstmPeepholeCell(w: LayerWeights, x: Vec, prev: CellState): CellState {
  const { H } = w;
  const p = w.peep!;
  const s = gateSums(w, x, prev.h);
  const c: Vec = [];
  const o: Vec = [];
  for (let j = 0; j < H; j++) {
    const inputGate = sigmoid(s[j] + p[j] * prev.c[j]);
    const forgetGate = sigmoid(s[H + j] + p[H + j] * prev.c[j]);
    const candidate = Math.tanh(s[2 * H + j]);
    c.push(forgetGate * prev.c[j] + inputGate * candidate);
    o.push(sigmoid(s[3 * H + j] + p[2 * H + j] * c[j]));
  }
  const cNorm = layerNorm(c, w.lnC, 0);
  return { h: o.map((oj, j) => oj * Math.tanh(cNorm[j])), c };
}

/**
 * Reset before (Cho et al. 2014): the recurrent product is two products, r|z from h
 * (LN group γ_h[0:2H]) and n from r ⊙ h (LN group γ_h[2H:3H]).
 */
function gruCell(w: LayerWeights, x: Vec, prev: CellState): CellState {
  const { H, In } = w;
  const h = prev.h;
  const px = inputProduct(w, x);
  const phrz = layerNorm(rowTimesBlock(h, w.W, w.cols, In, 0, 2 * H), w.lnH, 0);
  const r: Vec = [];
  const z: Vec = [];
  for (let j = 0; j < H; j++) {
    r.push(sigmoid(px[j] + phrz[j] + w.b[j]));
    z.push(sigmoid(px[H + j] + phrz[H + j] + w.b[H + j]));
  }
  const resetH = h.map((hj, j) => r[j] * hj);
  const phn = layerNorm(rowTimesBlock(resetH, w.W, w.cols, In, 2 * H, H), w.lnH, 2 * H);
  const next: Vec = [];
  for (let j = 0; j < H; j++) {
    const n = Math.tanh(px[2 * H + j] + phn[j] + w.b[2 * H + j]);
    next.push((1 - z[j]) * h[j] + z[j] * n);
  }
  return { h: next, c: [] };
}

/** Reset after (cuDNN): r scales the whole recurrent n term, b_hn included; z is still MODELS.md's. */
function gruResetAfterCell(w: LayerWeights, x: Vec, prev: CellState): CellState {
  const { H } = w;
  const h = prev.h;
  const px = inputProduct(w, x);
  const ph = recurrentProduct(w, h);
  const bhn = w.b_hn!;
  const next: Vec = [];
  for (let j = 0; j < H; j++) {
    const r = sigmoid(px[j] + ph[j] + w.b[j]);
    const z = sigmoid(px[H + j] + ph[H + j] + w.b[H + j]);
    const n = Math.tanh(px[2 * H + j] + w.b[2 * H + j] + r * (ph[2 * H + j] + bhn[j]));
    next.push((1 - z) * h[j] + z * n);
  }
  return { h: next, c: [] };
}

export const CELL_STEPS: Record<CellName, (w: LayerWeights, x: Vec, prev: CellState) => CellState> = {
  rnn: rnnCell,
  lstm: lstmCell,
  'lstm-1997': lstm1997Cell,
  'lstm-peephole': lstmPeepholeCell,
  gru: gruCell,
  'gru-reset-after': gruResetAfterCell,
};

export function tensor(params: Float64Array, spec: ParamSpec): Float64Array {
  return params.subarray(spec.offset, spec.offset + spec.size);
}

export function layerWeights(layout: ParamLayout, params: Float64Array): LayerWeights[] {
  const H = layout.config.hidden;
  const ln = (pair?: { gamma: ParamSpec; beta: ParamSpec }): LnWeights | undefined =>
    pair && { gamma: tensor(params, pair.gamma), beta: tensor(params, pair.beta) };
  return layout.layers.map((lp) => ({
    In: lp.inputSize,
    H,
    W: tensor(params, lp.W),
    cols: lp.W.shape[1],
    b: tensor(params, lp.b),
    b_hn: lp.b_hn && tensor(params, lp.b_hn),
    peep: lp.peep && tensor(params, lp.peep),
    lnX: ln(lp.lnX),
    lnH: ln(lp.lnH),
    lnC: ln(lp.lnC),
  }));
}

const norm2 = (v: Vec): number => Math.sqrt(v.reduce((acc, x) => acc + x * x, 0));

function checkInput(layout: ParamLayout, params: Float64Array, input: RefChunkInput): void {
  const { T, B } = input;
  const { layers: L, hidden: H, cell, task, inputSize } = layout.config;
  const S = isLstm(cell) ? 2 : 1;
  if (params.length !== layout.size) throw new Error(`params has ${params.length} values, layout wants ${layout.size}`);
  if (inputSize > 0) {
    if (!input.inputs) throw new Error(`inputs missing: task "${task}" reads T·B·inputSize = ${T * B * inputSize} input values`);
    if (input.inputs.length !== T * B * inputSize) throw new Error(`inputs has ${input.inputs.length} values, want T·B·inputSize = ${T * B * inputSize}`);
  } else {
    if (!input.tokens) throw new Error(`tokens missing: task "${task}" reads (T+1)·B = ${(T + 1) * B} token ids`);
    if (input.tokens.length !== (T + 1) * B) throw new Error(`tokens has ${input.tokens.length} values, want (T+1)·B = ${(T + 1) * B}`);
  }
  if (input.states.length !== L * S * B * H) throw new Error(`states has ${input.states.length} values, want L·S·B·H = ${L * S * B * H}`);
  const tokens = inputSize === 0 ? input.tokens! : [];
  for (let i = 0; i < tokens.length; i++) {
    const v = tokens[i];
    if (!Number.isInteger(v) || v < 0 || v >= layout.vocabSize) throw new Error(`token ${v} at ${i} is outside 0..${layout.vocabSize - 1}`);
  }
  checkHeadTargets(task, input, layout.vocabSize);
}

/** Forward pass of the whole network over one chunk, in float64. */
export function refChunkLoss(layout: ParamLayout, params: Float64Array, input: RefChunkInput): RefChunkResult {
  checkInput(layout, params, input);
  const { T, B } = input;
  const { layers: L, hidden: H, embed: E, cell, normStabilizer: beta, task, inputSize } = layout.config;
  const V = layout.vocabSize; // the output size: vocabulary (lm), classes or values
  const S = isLstm(cell) ? 2 : 1;
  const step = CELL_STEPS[cell];
  const weights = layerWeights(layout, params);
  const embedding = layout.embedding && tensor(params, layout.embedding); // (V, E), lm only
  const decW = tensor(params, layout.decoderW); // (H, V)
  const decB = tensor(params, layout.decoderB); // (V)
  const at = (l: number, s: number, b: number, j: number): number => ((l * S + s) * B + b) * H + j;
  /** Layer 0's x_t for stream b: the input row t·B + b, or the embedding row of token t·B + b. */
  const layer0Input = (t: number, b: number): Vec => {
    if (inputSize > 0) {
      const x: Vec = [];
      for (let k = 0; k < inputSize; k++) x.push(input.inputs![(t * B + b) * inputSize + k]);
      return x;
    }
    const token = input.tokens![t * B + b];
    return Array.from(embedding!.subarray(token * E, (token + 1) * E));
  };

  // state[l][b]: the carried h (and c) of layer l, stream b.
  const state: CellState[][] = [];
  for (let l = 0; l < L; l++) {
    state.push([]);
    for (let b = 0; b < B; b++) {
      const h: Vec = [];
      const c: Vec = [];
      for (let j = 0; j < H; j++) {
        h.push(input.states[at(l, 0, b, j)]);
        if (S === 2) c.push(input.states[at(l, 1, b, j)]);
      }
      state[l].push({ h, c });
    }
  }

  let loss = 0;
  let squaredNormSteps = 0;
  const logits = new Float64Array(headRows(task, T, B) * V);
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < B; b++) {
      let x: Vec = layer0Input(t, b);
      for (let l = 0; l < L; l++) {
        const prev = state[l][b];
        const next = step(weights[l], x, prev);
        squaredNormSteps += (norm2(next.h) - norm2(prev.h)) ** 2;
        state[l][b] = next;
        x = next.h;
      }
      // y = h W + b on the top h: every step for lm, only the last for classify and regress.
      if (!headReadsStep(task, t, T)) continue;
      const y = decode(x, decW, decB, V);
      logits.set(y, headRow(task, t, b, B) * V);
      loss += headLoss(task, y, input, t, b);
    }
  }

  const finalStates = new Float64Array(L * S * B * H);
  for (let l = 0; l < L; l++) {
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < H; j++) {
        finalStates[at(l, 0, b, j)] = state[l][b].h[j];
        if (S === 2) finalStates[at(l, 1, b, j)] = state[l][b].c[j];
      }
    }
  }
  return { loss, penalty: beta * squaredNormSteps, finalStates, logits, tokens: headRows(task, T, B) };
}

/** The chunk objective whose gradient trainChunk returns: loss + penalty. */
export function refObjective(layout: ParamLayout, params: Float64Array, input: RefChunkInput): number {
  const { loss, penalty } = refChunkLoss(layout, params, input);
  return loss + penalty;
}

/** Central differences of the objective, (f(p + ε e_i) − f(p − ε e_i)) / 2ε, for each index i. */
export function finiteDifferenceGrad(
  layout: ParamLayout,
  params64: Float64Array,
  input: RefChunkInput,
  indices: readonly number[],
  eps = 1e-5,
): Float64Array {
  const p = Float64Array.from(params64);
  const grad = new Float64Array(indices.length);
  indices.forEach((i, k) => {
    const saved = p[i];
    p[i] = saved + eps;
    const up = refObjective(layout, p, input);
    p[i] = saved - eps;
    const down = refObjective(layout, p, input);
    p[i] = saved;
    grad[k] = (up - down) / (2 * eps);
  });
  return grad;
}

/**
 * A deterministic sample of flat indices, up to `perTensor` from every ParamSpec
 * (all of a smaller tensor). Stratified so a sample spreads over the tensor: for a
 * matrix, rows and columns are each stratified (a Latin-hypercube pick), so the x
 * and h rows and every gate's column block of a fused W are hit.
 */
export function sampleParamIndices(layout: ParamLayout, perTensor = 8, seed = 1): number[] {
  const picked: number[] = [];
  layout.specs.forEach((spec, specIndex) => {
    if (spec.size <= perTensor) {
      for (let i = 0; i < spec.size; i++) picked.push(spec.offset + i);
      return;
    }
    const rng = new Rng(seed, specIndex);
    const k = perTensor;
    const rows = spec.shape.length === 2 ? spec.shape[0] : 1;
    const cols = spec.size / rows;
    const order = Array.from({ length: k }, (_, s) => s);
    for (let s = k - 1; s > 0; s--) {
      const r = rng.int(s + 1);
      [order[s], order[r]] = [order[r], order[s]];
    }
    const mine = new Set<number>();
    for (let s = 0; s < k; s++) {
      // In 1-D (rows = 1) only the column stratum matters.
      const row = rows === 1 ? 0 : Math.floor(((s + rng.uniform()) * rows) / k);
      const col = Math.floor(((order[s] + rng.uniform()) * cols) / k);
      // Strata share their boundary values; step to the next free index on a collision.
      let index = row * cols + col;
      while (mine.has(spec.offset + index)) index = (index + 1) % spec.size;
      mine.add(spec.offset + index);
    }
    picked.push(...[...mine].sort((a, b) => a - b));
  });
  return picked;
}

/** The ParamSpec a flat index falls in, for messages. */
export function specOf(layout: ParamLayout, index: number): ParamSpec {
  const spec = layout.specs.find((s) => index >= s.offset && index < s.offset + s.size);
  if (!spec) throw new Error(`index ${index} is outside the layout (size ${layout.size})`);
  return spec;
}

export interface RandomCase {
  readonly layout: ParamLayout;
  readonly params32: Float32Array;
  /** params32 widened exactly, so float32 code and the reference see the same point. */
  readonly params64: Float64Array;
  readonly input: ChunkInput;
}

/**
 * A small random chunk for tests: initParams plus a U(−0.2, 0.2) perturbation of every
 * value (so LN gains, shifts, peepholes and biases are not their trivial 1 / 0),
 * random tokens (lm) or random U(−1, 1) input rows with random labels (classify) or
 * U(−1, 1) targets (regress), and random non-zero initial states. V is the vocabulary
 * of a language model; classify and regress take their output size from config.outputs.
 */
export function randomCase(
  model: Partial<ModelConfig>,
  sizes: { V?: number; T: number; B: number },
  seed = 7,
): RandomCase {
  const config = resolveModelConfig(model as Record<string, unknown>);
  const { T, B } = sizes;
  if (config.task === 'lm' && sizes.V === undefined) throw new Error('randomCase: a language model needs sizes.V');
  const layout = buildLayout(config, sizes.V ?? config.outputs);
  const V = layout.vocabSize;
  const rng = new Rng(seed, 0xca5e);
  const params32 = initParams(layout, seed);
  for (let i = 0; i < params32.length; i++) params32[i] += rng.range(-0.2, 0.2);
  const data: { tokens?: Int32Array; inputs?: Float32Array; labels?: Int32Array; values?: Float32Array } = {};
  if (config.task === 'lm') {
    const tokens = new Int32Array((T + 1) * B);
    for (let i = 0; i < tokens.length; i++) tokens[i] = rng.int(V);
    data.tokens = tokens;
  } else {
    const inputs = new Float32Array(T * B * config.inputSize);
    for (let i = 0; i < inputs.length; i++) inputs[i] = rng.range(-1, 1);
    data.inputs = inputs;
    if (config.task === 'classify') {
      const labels = new Int32Array(B);
      for (let i = 0; i < B; i++) labels[i] = rng.int(V);
      data.labels = labels;
    } else {
      const values = new Float32Array(B * V);
      for (let i = 0; i < values.length; i++) values[i] = rng.range(-1, 1);
      data.values = values;
    }
  }
  const S = isLstm(config.cell) ? 2 : 1;
  const H = config.hidden;
  const states = new Float32Array(config.layers * S * B * H);
  for (let i = 0; i < states.length; i++) {
    const isCell = Math.floor(i / (B * H)) % S === 1;
    states[i] = isCell ? rng.range(-1.5, 1.5) : rng.range(-0.8, 0.8);
  }
  return { layout, params32, params64: Float64Array.from(params32), input: { ...data, T, B, states } };
}
