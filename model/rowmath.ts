// Scalar helpers shared by the fused kernels: one row of a layer norm forward and
// backward, and the logistic function. Plain loops over Float32Arrays.

export const LN_EPS = 1e-5;

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/**
 * One row x[o..o+C) → y = γ ⊙ x̂ + β with x̂ = (x − μ)·rstd; writes y and x̂ at offset yo
 * and returns rstd = 1/√(σ² + ε). x and y may be the same array.
 */
export function lnRowForward(
  x: Float32Array,
  o: number,
  gamma: Float32Array,
  beta: Float32Array,
  C: number,
  y: Float32Array,
  xhat: Float32Array,
  yo: number,
): number {
  let mean = 0;
  for (let j = 0; j < C; j++) mean += x[o + j];
  mean /= C;
  let variance = 0;
  for (let j = 0; j < C; j++) {
    const d = x[o + j] - mean;
    variance += d * d;
  }
  variance /= C;
  const rstd = 1 / Math.sqrt(variance + LN_EPS);
  for (let j = 0; j < C; j++) {
    const xh = (x[o + j] - mean) * rstd;
    xhat[yo + j] = xh;
    y[yo + j] = gamma[j] * xh + beta[j];
  }
  return rstd;
}

/**
 * dx for one row, given dy, the saved x̂ and rstd:
 * dx = rstd · (γ⊙dy − mean(γ⊙dy) − x̂ · mean(γ⊙dy ⊙ x̂)). dy at dyo, x̂ at xo, dx at dxo;
 * dx may alias dy at the same offset.
 */
export function lnRowBackward(
  dy: Float32Array,
  dyo: number,
  xhat: Float32Array,
  xo: number,
  rstd: number,
  gamma: Float32Array,
  C: number,
  dx: Float32Array,
  dxo: number,
): void {
  let sumG = 0;
  let sumGX = 0;
  for (let j = 0; j < C; j++) {
    const g = gamma[j] * dy[dyo + j];
    sumG += g;
    sumGX += g * xhat[xo + j];
  }
  const meanG = sumG / C;
  const meanGX = sumGX / C;
  for (let j = 0; j < C; j++) dx[dxo + j] = rstd * (gamma[j] * dy[dyo + j] - meanG - xhat[xo + j] * meanGX);
}

const scratchBuffers = new Map<string, Float32Array>();

/**
 * A reusable scratch row for a kernel (kernels run one at a time on a thread), so the
 * per-step kernels allocate nothing. `name` keeps two live scratch rows apart.
 */
export function scratch(name: string, size: number): Float32Array {
  let buf = scratchBuffers.get(name);
  if (!buf || buf.length < size) {
    buf = new Float32Array(size);
    scratchBuffers.set(name, buf);
  }
  return buf.subarray(0, size);
}
