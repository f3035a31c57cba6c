// Evaluation over a whole text fed as one stream from a zero state: the mean
// negative log-likelihood of every token after the first, given all tokens before it.

import { stateSize } from './chunk.js';
import { isLstm } from './config.js';
import { Network } from './network.js';
import type { ParamLayout } from './params.js';

/** Steps per forward chunk: long enough to amortize per-chunk work, bounded memory. */
const EVAL_CHUNK = 256;

export interface EvalResult {
  /** Mean nats per predicted token. */
  loss: number;
  bitsPerToken: number;
  perplexity: number;
  /** Number of predicted tokens (length − 1). */
  tokens: number;
}

export function evalStream(layout: ParamLayout, params: Float32Array, ids: Int32Array, net?: Network): EvalResult {
  if (ids.length < 2) throw new Error(`evaluation needs at least 2 tokens, got ${ids.length}`);
  return evalStreams(layout, params, ids, 1, net);
}

/**
 * A faster estimate for periodic validation: the ids cut into B contiguous streams,
 * each from a zero state, run side by side (B rows per matrix product instead of 1).
 */
export function evalStreams(layout: ParamLayout, params: Float32Array, ids: Int32Array, B: number, net?: Network): EvalResult {
  const L = Math.floor(ids.length / B);
  if (L < 2) throw new Error(`evaluation needs at least 2 tokens per stream: ${ids.length} tokens, ${B} streams`);
  const own = !net;
  const network = net ?? new Network(layout);
  if (own) network.setParams(params);
  try {
    const { layers, hidden, cell } = layout.config;
    let states: Float32Array = new Float32Array(stateSize(layers, isLstm(cell), B, hidden));
    let sum = 0;
    let count = 0;
    for (let start = 0; start + 1 < L; start += EVAL_CHUNK) {
      const T = Math.min(EVAL_CHUNK, L - 1 - start);
      const tokens = new Int32Array((T + 1) * B);
      for (let t = 0; t <= T; t++) for (let b = 0; b < B; b++) tokens[t * B + b] = ids[b * L + start + t];
      const r = network.run({ tokens, T, B, states }, { training: false });
      sum += r.loss;
      count += r.tokens;
      states = r.finalStates;
    }
    const loss = sum / count;
    return { loss, bitsPerToken: loss / Math.LN2, perplexity: Math.exp(loss), tokens: count };
  } finally {
    if (own) network.dispose();
  }
}
