// Truncated BPTT over one chunk as a plain function: weights in, summed loss,
// flat gradient and final states out. Workers keep a Network instead, to reuse
// the weight tensors across chunks of the same weights version.

import type { ChunkInput, ChunkResult } from './chunk.js';
import { Network } from './network.js';
import type { ParamLayout } from './params.js';

export function trainChunk(
  layout: ParamLayout,
  params: Float32Array,
  input: ChunkInput,
  opts: { logits?: boolean } = {},
): ChunkResult {
  return withNetwork(layout, params, (net) => net.run(input, { training: true, logits: opts.logits }));
}

export function forwardChunk(
  layout: ParamLayout,
  params: Float32Array,
  input: ChunkInput,
  opts: { logits?: boolean } = {},
): ChunkResult {
  return withNetwork(layout, params, (net) => net.run(input, { training: false, logits: opts.logits }));
}

function withNetwork<R>(layout: ParamLayout, params: Float32Array, fn: (net: Network) => R): R {
  const net = new Network(layout);
  try {
    net.setParams(params);
    return fn(net);
  } finally {
    net.dispose();
  }
}
