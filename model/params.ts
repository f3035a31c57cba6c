// The flat parameter layout: every parameter of a model lives in one Float32Array
// at a named offset (as in llm.c), and gradients use the same layout.
//
// Per layer l (In = embed for l = 0, else hidden; G = gate count; H = hidden):
//   layers.l.W        (In+H, G·H)  fused matrix, rows 0..In-1 read x_t, rows In.. read h_{t-1}
//   layers.l.b        (G·H)        gate bias
//   layers.l.b_hn     (H)          gru-reset-after only: bias inside r ⊙ (W_nh h + b_nh)
//   layers.l.peep     (3, H)       lstm-peephole only: p_i, p_f, p_o
//   layers.l.ln_x.gamma / .beta (G·H)   layerNorm only: LN of the input product
//   layers.l.ln_h.gamma / .beta (G·H)   layerNorm only: LN of the recurrent product
//   layers.l.ln_c.gamma / .beta (H)     layerNorm and an LSTM cell: LN of c_t before tanh
// Gate column blocks: LSTM i, f, g, o (lstm-1997: i, g, o); GRU r, z, n (z as in MODELS.md: h = (1−z)h + z n);
// RNN one block. Then the embedding and decoder:
//   embedding.W (V, E)   decoder.W (H, V)   decoder.b (V)
// A captioner (task "caption") puts its CNN encoder first (model/cnn.ts, PyTorch's layouts):
//   encoder.conv{i}.W (out, in·9)   encoder.conv{i}.b (out)   encoder.proj.W (E, C·h·w)   encoder.proj.b (E)
//   encoder.norm.gamma, .beta (E): the layer norm of the image vector
// A captioner over precomputed features (featureSize D > 0) has no conv: encoder.proj.W is (E, D).

import { type ModelConfig, gateCount, isLstm } from './config.js';
import { Rng } from './rng.js';

export type Init = 'normal' | 'uniform-hidden' | 'zeros' | 'ones' | 'lstm-bias' | 'gru-bias' | 'he-uniform' | 'fan-in-uniform';

export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly size: number;
  readonly init: Init;
  /** he-uniform and fan-in-uniform: the inputs each output reads. */
  readonly fanIn?: number;
}

/** A captioner's CNN encoder: one conv per block (none over features), then the projection to the embedding. */
export interface EncoderParams {
  readonly convs: readonly { readonly W: ParamSpec; readonly b: ParamSpec }[];
  readonly projW: ParamSpec;
  readonly projB: ParamSpec;
  /** Layer norm of the projected image vector (γ, β). */
  readonly norm: { readonly gamma: ParamSpec; readonly beta: ParamSpec };
}

export interface LayerParams {
  readonly inputSize: number;
  readonly W: ParamSpec;
  readonly b: ParamSpec;
  readonly b_hn?: ParamSpec;
  readonly peep?: ParamSpec;
  readonly lnX?: { gamma: ParamSpec; beta: ParamSpec };
  readonly lnH?: { gamma: ParamSpec; beta: ParamSpec };
  readonly lnC?: { gamma: ParamSpec; beta: ParamSpec };
}

export interface ParamLayout {
  readonly config: ModelConfig;
  /** Output size: the vocabulary (lm), classes (classify) or values (regress). */
  readonly vocabSize: number;
  readonly specs: readonly ParamSpec[];
  readonly byName: ReadonlyMap<string, ParamSpec>;
  /** caption only: the image encoder, at the start of the buffer. */
  readonly encoder?: EncoderParams;
  /** Absent for vector inputs. */
  readonly embedding?: ParamSpec;
  readonly layers: readonly LayerParams[];
  readonly decoderW: ParamSpec;
  readonly decoderB: ParamSpec;
  /** Total number of float32 values. */
  readonly size: number;
}

/**
 * The layout of a model. `vocabSize` is the vocabulary of a language model; for the
 * classify and regress tasks the output size is config.outputs and vocabSize is ignored.
 */
export function buildLayout(config: ModelConfig, vocabSize: number): ParamLayout {
  if (config.task === 'classify' || config.task === 'regress') vocabSize = config.outputs;
  if (!Number.isInteger(vocabSize) || vocabSize < 1) throw new Error(`vocabulary size must be a positive integer, got ${vocabSize}`);
  const specs: ParamSpec[] = [];
  let offset = 0;
  const add = (name: string, shape: number[], init: Init, fanIn?: number): ParamSpec => {
    const size = shape.reduce((a, b) => a * b, 1);
    const spec = Object.freeze({ name, shape: Object.freeze(shape), offset, size, init, ...(fanIn ? { fanIn } : {}) });
    specs.push(spec);
    offset += size;
    return spec;
  };
  const { hidden: H, embed: E, cell } = config;
  const G = gateCount(cell);
  const encoder = config.task === 'caption' ? addEncoder(config, add) : undefined;
  // Vector inputs (classify, regress) feed layer 0 directly: no embedding.
  const embedding = config.inputSize === 0 ? add('embedding.W', [vocabSize, E], 'normal') : undefined;
  const layers: LayerParams[] = [];
  for (let l = 0; l < config.layers; l++) {
    const In = l > 0 ? H : config.inputSize || E;
    const p = `layers.${l}.`;
    const W = add(p + 'W', [In + H, G * H], 'uniform-hidden');
    const b = add(p + 'b', [G * H], cell === 'lstm' || cell === 'lstm-peephole' ? 'lstm-bias' : cell.startsWith('gru') ? 'gru-bias' : 'uniform-hidden');
    const b_hn = cell === 'gru-reset-after' ? add(p + 'b_hn', [H], 'uniform-hidden') : undefined;
    const peep = cell === 'lstm-peephole' ? add(p + 'peep', [3, H], 'zeros') : undefined;
    const ln = (name: string, n: number) =>
      config.layerNorm ? { gamma: add(p + name + '.gamma', [n], 'ones'), beta: add(p + name + '.beta', [n], 'zeros') } : undefined;
    const lnX = ln('ln_x', G * H);
    const lnH = ln('ln_h', G * H);
    const lnC = isLstm(cell) ? ln('ln_c', H) : undefined;
    layers.push({ inputSize: In, W, b, b_hn, peep, lnX, lnH, lnC });
  }
  const decoderW = add('decoder.W', [H, vocabSize], 'uniform-hidden');
  const decoderB = add('decoder.b', [vocabSize], 'uniform-hidden');
  return {
    config,
    vocabSize,
    specs,
    byName: new Map(specs.map((s) => [s.name, s])),
    encoder,
    embedding,
    layers,
    decoderW,
    decoderB,
    size: offset,
  };
}

/**
 * The encoder's parameters: conv weights He-uniform (ReLU follows), conv biases 0, the
 * projection U(−1/√F, 1/√F) as PyTorch's nn.Linear (F = its inputs: the flattened CNN map,
 * or the D precomputed features of a captioner without a CNN), the layer norm's gain 1 and shift 0.
 */
function addEncoder(config: ModelConfig, add: (name: string, shape: number[], init: Init, fanIn?: number) => ParamSpec): EncoderParams {
  let cin = 3;
  const convs = config.cnn.map((cout, i) => {
    const conv = { W: add(`encoder.conv${i}.W`, [cout, cin * 9], 'he-uniform', cin * 9), b: add(`encoder.conv${i}.b`, [cout], 'zeros') };
    cin = cout;
    return conv;
  });
  const side = config.imageSize >> config.cnn.length;
  const F = config.featureSize > 0 ? config.featureSize : cin * side * side;
  const projW = add('encoder.proj.W', [config.embed, F], 'fan-in-uniform', F);
  const projB = add('encoder.proj.b', [config.embed], 'fan-in-uniform', F);
  const norm = { gamma: add('encoder.norm.gamma', [config.embed], 'ones'), beta: add('encoder.norm.beta', [config.embed], 'zeros') };
  return { convs, projW, projB, norm };
}

/** Initial gate biases (docs/MODEL.md): the defaults are gradpool's long-standing ones. */
export interface GateInit {
  /** LSTM forget-gate bias (the i, f, g, o block f). */
  forgetBias: number;
  /** GRU update-gate bias (block z; h' = (1 − z)⊙h + z⊙n, so negative keeps memory); null keeps U(−1/√H, 1/√H). */
  updateBias: number | null;
  /**
   * Chrono initialization (Tallec & Ollivier 2018) for dependencies up to `chronoTmax` steps,
   * 0 = off: LSTM b_f = log U(1, Tmax − 1) and b_i = −b_f; GRU b_z = −log U(1, Tmax − 1).
   * It overrides forgetBias and updateBias.
   */
  chronoTmax: number;
}

export const DEFAULT_GATE_INIT: GateInit = Object.freeze({ forgetBias: 1, updateBias: null, chronoTmax: 0 });

/**
 * Fresh weights, as PyTorch initializes the same modules: embedding N(0, 1); every
 * recurrent and decoder weight and bias U(−1/√H, 1/√H); then the gate biases of `gates`
 * (by default the LSTM forget-gate bias set to 1, MODELS.md), layer-norm gains 1 and
 * shifts 0, peepholes 0.
 */
export function initParams(layout: ParamLayout, seed: number, gates: GateInit = DEFAULT_GATE_INIT): Float32Array {
  const params = new Float32Array(layout.size);
  const rng = new Rng(seed, 0x1417);
  const H = layout.config.hidden;
  const bound = 1 / Math.sqrt(H);
  // log U(1, Tmax − 1): the chrono draw of one unit's characteristic forgetting time, from a
  // stream of its own so that every other weight is drawn as without it.
  const chronoRng = new Rng(seed, 0xc4e0);
  const chrono = () => Math.log(chronoRng.range(1, gates.chronoTmax - 1));
  for (const spec of layout.specs) {
    const view = params.subarray(spec.offset, spec.offset + spec.size);
    switch (spec.init) {
      case 'normal':
        for (let i = 0; i < view.length; i++) view[i] = rng.normal();
        break;
      case 'uniform-hidden':
        for (let i = 0; i < view.length; i++) view[i] = rng.range(-bound, bound);
        break;
      case 'lstm-bias':
        for (let i = 0; i < view.length; i++) view[i] = rng.range(-bound, bound);
        if (gates.chronoTmax > 0) {
          for (let j = 0; j < H; j++) {
            view[H + j] = chrono(); // forget gate block (i, f, g, o)
            view[j] = -view[H + j];
          }
        } else view.fill(gates.forgetBias, H, 2 * H);
        break;
      case 'gru-bias':
        for (let i = 0; i < view.length; i++) view[i] = rng.range(-bound, bound);
        if (gates.chronoTmax > 0) for (let j = 0; j < H; j++) view[H + j] = -chrono(); // update gate block (r, z, n)
        else if (gates.updateBias !== null) view.fill(gates.updateBias, H, 2 * H);
        break;
      case 'ones':
        view.fill(1);
        break;
      case 'he-uniform':
      case 'fan-in-uniform': {
        const b = spec.init === 'he-uniform' ? Math.sqrt(6 / spec.fanIn!) : 1 / Math.sqrt(spec.fanIn!);
        for (let i = 0; i < view.length; i++) view[i] = rng.range(-b, b);
        break;
      }
      case 'zeros':
        break;
    }
  }
  return params;
}

/** A view of one parameter (or its gradient) inside a flat buffer. */
export function view(flat: Float32Array, spec: ParamSpec): Float32Array {
  return flat.subarray(spec.offset, spec.offset + spec.size);
}

