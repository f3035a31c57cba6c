// An independent float64 reference of the captioner's CNN encoder, written from
// PyTorch's definitions (NCHW, conv2d with padding 1 and weight [out, in, 3, 3], ReLU,
// max_pool2d(2), flatten, linear), for finite-difference gradient checks.

export interface Cnn64 {
  size: number;
  channels: number[];
  embed: number;
  /** Per block: weight [out, in, 3, 3] flat, bias [out]. */
  convW: Float64Array[];
  convB: Float64Array[];
  projW: Float64Array;
  projB: Float64Array;
}

/** Encoder output (N, E) of images given as NHWC floats. */
export function cnnForward64(m: Cnn64, images: Float64Array, N: number): Float64Array {
  let S = m.size;
  let C = 3;
  // To NCHW.
  let x = new Float64Array(N * C * S * S);
  for (let n = 0; n < N; n++) for (let y = 0; y < S; y++) for (let xx = 0; xx < S; xx++) for (let c = 0; c < C; c++) {
    x[((n * C + c) * S + y) * S + xx] = images[((n * S + y) * S + xx) * C + c];
  }
  m.channels.forEach((cout, i) => {
    const w = m.convW[i];
    const b = m.convB[i];
    const conv = new Float64Array(N * cout * S * S);
    for (let n = 0; n < N; n++) for (let o = 0; o < cout; o++) for (let y = 0; y < S; y++) for (let xx = 0; xx < S; xx++) {
      let s = b[o];
      for (let c = 0; c < C; c++) for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) {
        const sy = y + ky - 1;
        const sx = xx + kx - 1;
        if (sy < 0 || sy >= S || sx < 0 || sx >= S) continue;
        s += w[((o * C + c) * 3 + ky) * 3 + kx] * x[((n * C + c) * S + sy) * S + sx];
      }
      conv[((n * cout + o) * S + y) * S + xx] = Math.max(0, s);
    }
    const h = S / 2;
    const pooled = new Float64Array(N * cout * h * h);
    for (let n = 0; n < N; n++) for (let o = 0; o < cout; o++) for (let y = 0; y < h; y++) for (let xx = 0; xx < h; xx++) {
      let best = -Infinity;
      for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) best = Math.max(best, conv[((n * cout + o) * S + 2 * y + dy) * S + 2 * xx + dx]);
      pooled[((n * cout + o) * h + y) * h + xx] = best;
    }
    x = pooled;
    C = cout;
    S = h;
  });
  const F = C * S * S;
  const out = new Float64Array(N * m.embed);
  for (let n = 0; n < N; n++) for (let e = 0; e < m.embed; e++) {
    let s = m.projB[e];
    for (let f = 0; f < F; f++) s += m.projW[e * F + f] * x[n * F + f];
    out[n * m.embed + e] = s;
  }
  return out;
}
