// The linear encoder of a captioner over precomputed image features (docs/CAPTIONING.md,
// "Precomputed features"): instead of S·S·3 pixel bytes, a pair's image is D float32 values
// carried as their 4·D little-endian bytes (as a features file stores them), so batches,
// shard tasks and the wire contract treat both kinds of captioner alike.
//
//   features (N, D) ─ W_pᵀ ─ + b_p ─▶ (N, E)   (then the same layer norm as after the CNN)

import { tf } from './backend.js';
import { type T1, type T2, colSum, matMul, transpose } from './primitives.js';

/** N rows of D float32 values from their little-endian bytes (any alignment), as an (N, D) tensor. */
export function featureRows(bytes: Uint8Array, N: number, D: number): T2 {
  if (bytes.length !== N * D * 4) throw new Error(`feature rows: ${bytes.length} bytes, expected ${N} rows of ${D} float32 values (${N * D * 4} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const x = new Float32Array(N * D);
  for (let i = 0; i < x.length; i++) x[i] = view.getFloat32(4 * i, true);
  return tf.tensor2d(x, [N, D]);
}

/** W_p·f + b_p for each row f: (N, D) → (N, E), with projW (E, D) as nn.Linear keeps it. */
export function linearEncoderForward(projW: T2, projB: T1, x: T2): T2 {
  const projT = transpose(projW);
  const lin = matMul(x, projT);
  projT.dispose();
  const out = tf.add(lin, projB) as T2;
  lin.dispose();
  return out;
}

/** The projection's gradients given dL/d(out) (N, E) and the rows x (N, D) it read. */
export function linearEncoderBackward(x: T2, dOut: T2): { projW: T2; projB: T1 } {
  const dOutT = transpose(dOut);
  const projW = matMul(dOutT, x); // (E, D)
  dOutT.dispose();
  return { projW, projB: colSum(dOut) };
}
