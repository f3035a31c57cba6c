// The norm-stabilizer (Krueger & Memisevic 2016): β Σ_b Σ_{t=1..T} (‖h_t‖ − ‖h_{t−1}‖)²
// over one layer's hidden states, and its gradient, which depends on the forward
// pass only, so it is computed once per chunk for all steps.

import { defineKernel, runKernel } from './kernels.js';
import type { T2 } from './primitives.js';

defineKernel('GpNormStabilizer', {
  outputs: ([hAll], a) => (a.grad ? [[1], [...hAll!]] : [[1]]),
  run([hAll, h0, dAbove], outs, a) {
    const [T, B, H, beta] = [a.T as number, a.B as number, a.H as number, a.beta as number];
    const dH = a.grad ? outs[1] : null;
    const norms = new Float64Array((T + 1) * B); // row t·B + b holds ‖h_t‖ for stream b
    for (let b = 0; b < B; b++) norms[b] = rowNorm(h0!, b * H, H);
    for (let t = 1; t <= T; t++) for (let b = 0; b < B; b++) norms[t * B + b] = rowNorm(hAll!, ((t - 1) * B + b) * H, H);
    let penalty = 0;
    for (let t = 1; t <= T; t++) {
      for (let b = 0; b < B; b++) {
        const d = norms[t * B + b] - norms[(t - 1) * B + b];
        penalty += d * d;
      }
    }
    (a.sink as { penalty: number }).penalty = beta * penalty;
    outs[0][0] = beta * penalty;
    if (!dH) return;
    for (let t = 1; t <= T; t++) {
      for (let b = 0; b < B; b++) {
        const n = norms[t * B + b];
        // h_t appears in the terms for t (as the newer norm) and t+1 (as the older one).
        let coef = 2 * beta * (n - norms[(t - 1) * B + b]);
        if (t < T) coef -= 2 * beta * (norms[(t + 1) * B + b] - n);
        const scale = n > 0 ? coef / n : 0;
        const o = ((t - 1) * B + b) * H;
        for (let j = 0; j < H; j++) dH[o + j] = (dAbove ? dAbove[o + j] : 0) + scale * hAll![o + j];
      }
    }
  },
});

function rowNorm(x: Float32Array, o: number, H: number): number {
  let s = 0;
  for (let j = 0; j < H; j++) s += x[o + j] * x[o + j];
  return Math.sqrt(s);
}

/**
 * The penalty of one layer and, when grad is set, dAbove + its gradient with respect to
 * every h_t (hAll: (T·B, H), rows t·B + b for h_1..h_T; h0: the initial state).
 */
export function normStabilizer(
  hAll: T2,
  h0: T2,
  dAbove: T2 | null,
  shape: { T: number; B: number; H: number },
  beta: number,
  grad: boolean,
): { penalty: number; dH?: T2 } {
  const sink = { penalty: NaN };
  const outs = runKernel('GpNormStabilizer', [hAll, h0, dAbove], { ...shape, beta, grad, sink }) as T2[];
  outs[0].dispose();
  return { penalty: sink.penalty, dH: outs[1] };
}
