// Text generation: feed the prompt, then repeatedly sample the next token from
// softmax(logits / temperature) (or take the argmax) and feed it back.

import { stateSize } from './chunk.js';
import { isLstm } from './config.js';
import { Network } from './network.js';
import type { ParamLayout } from './params.js';
import { Rng } from './rng.js';

export interface SampleOptions {
  /** Token ids to condition on; at least one. */
  prompt: Int32Array;
  /** Tokens to generate. */
  length: number;
  /** Softmax temperature; ignored when greedy. */
  temperature: number;
  greedy: boolean;
  seed: number;
}

/** Generated token ids (the prompt not included). */
export function sampleIds(layout: ParamLayout, params: Float32Array, opts: SampleOptions, net?: Network): Int32Array {
  if (opts.prompt.length < 1) throw new Error('sampling needs a prompt of at least one token');
  if (!(opts.temperature > 0) && !opts.greedy) throw new Error(`temperature must be > 0, got ${opts.temperature}`);
  const own = !net;
  const network = net ?? new Network(layout);
  if (own) network.setParams(params);
  try {
    const { layers, hidden, cell } = layout.config;
    const V = layout.vocabSize;
    const rng = new Rng(opts.seed, 0x5a3d);
    let states: Float32Array = new Float32Array(stateSize(layers, isLstm(cell), 1, hidden));
    const out = new Int32Array(opts.length);
    // The chunk format wants T+1 tokens (inputs and targets); the last target is a
    // placeholder whose loss is ignored: only the logits are used.
    let inputs = opts.prompt;
    for (let k = 0; k < opts.length; k++) {
      const T = inputs.length;
      const tokens = new Int32Array(T + 1);
      tokens.set(inputs);
      const r = network.run({ tokens, T, B: 1, states }, { training: false, logits: true });
      states = r.finalStates;
      const logits = r.logits!.subarray((T - 1) * V, T * V);
      const next = opts.greedy ? argmax(logits) : draw(logits, opts.temperature, rng);
      out[k] = next;
      inputs = Int32Array.of(next);
    }
    return out;
  } finally {
    if (own) network.dispose();
  }
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let j = 1; j < x.length; j++) if (x[j] > x[best]) best = j;
  return best;
}

function draw(logits: Float32Array, temperature: number, rng: Rng): number {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v / temperature);
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let j = 0; j < logits.length; j++) sum += p[j] = Math.exp(logits[j] / temperature - max);
  let u = rng.uniform() * sum;
  for (let j = 0; j < p.length; j++) {
    u -= p[j];
    if (u < 0) return j;
  }
  return p.length - 1;
}
