// Row kernels of the native backend (see rows.h): the arithmetic of the JS kernels in
// model/primitives.ts and model/rowmath.ts, in portable C compiled once for every path.
// Only softmax cross-entropy takes something from the path: its exp (see below).
//
// Determinism: float64 row sums (layer norm, softmax) use a fixed tree — eight running
// sums over j mod 8, added pairwise — so a result depends on the row length only, and the
// eight chains run in parallel where JS's single running sum waits on each add. Column sums
// add row after row, as JS does (the same bits).
//
// exp and log of softmax cross-entropy: e^(s − max) is the path's vectorized float exp
// (vmath_body.h: IEEE-exact operations only, the same bits on every path and machine; a
// relative error below 4e-7), run over whole rows; the row sums of those values and the
// loss are float64. The log of each row's sum is fd_log below, a port of fdlibm's log:
// libm's log may differ in the last bit between C libraries and between a library's
// FMA and non-FMA variants, and a run's result must not depend on the machine.

#include <math.h>
#include <string.h>
#include "rows.h"

#define LN_EPS 1e-5 // model/rowmath.ts LN_EPS

static double tree8(const double acc[8]) {
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// acc[j mod 8] += x[j]: the running sums of the fixed tree. Over a row in pieces whose
// lengths are multiples of 8 (but the last), the same as over the whole row.
static void acc8(double acc[8], const float *x, size_t n) {
  size_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) acc[k] += x[j + k];
  for (int k = 0; j < n; j++, k++) acc[k] += x[j];
}

// Σ_j x[j] in float64 (the fixed tree above).
static double sum_f32(const float *x, size_t n) {
  double acc[8] = {0};
  acc8(acc, x, n);
  return tree8(acc);
}

// Σ_j (x[j] − mean)² in float64 (the fixed tree above).
static double sum_sq_dev(const float *x, double mean, size_t n) {
  double acc[8] = {0};
  size_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) {
      double d = x[j + k] - mean;
      acc[k] += d * d;
    }
  for (int k = 0; j < n; j++, k++) {
    double d = x[j] - mean;
    acc[k] += d * d;
  }
  return tree8(acc);
}

void gp_col_sum(const float *a, size_t M, size_t C, float *out) {
  memset(out, 0, sizeof(float) * C);
  for (size_t r = 0; r < M; r++)
    for (size_t j = 0; j < C; j++) out[j] += a[r * C + j];
}

void gp_col_sum_product(const float *a, const float *b, size_t M, size_t C, float *out) {
  memset(out, 0, sizeof(float) * C);
  for (size_t r = 0; r < M; r++)
    for (size_t j = 0; j < C; j++) out[j] = (float)((double)out[j] + (double)a[r * C + j] * b[r * C + j]);
}

void gp_gather_rows(const float *table, const int32_t *ids, size_t n, size_t C, float *out) {
  for (size_t r = 0; r < n; r++) memcpy(out + r * C, table + (size_t)ids[r] * C, sizeof(float) * C);
}

void gp_layer_norm(const float *x, const float *gamma, const float *beta, size_t M, size_t C, float *y, float *xhat, float *rstd) {
  if (C == 0) return; // no values to normalize (the JS kernel writes nothing either)
  for (size_t r = 0; r < M; r++) {
    const float *xr = x + r * C;
    float *yr = y + r * C, *hr = xhat + r * C;
    double mean = sum_f32(xr, C) / (double)C;
    double rs = 1.0 / sqrt(sum_sq_dev(xr, mean, C) / (double)C + LN_EPS);
    for (size_t j = 0; j < C; j++) {
      double xh = (xr[j] - mean) * rs;
      hr[j] = (float)xh;
      yr[j] = (float)((double)gamma[j] * xh + beta[j]);
    }
    rstd[r] = (float)rs;
  }
}

void gp_layer_norm_backward(const float *dy, const float *xhat, const float *rstd, const float *gamma, size_t M, size_t C, float *dx) {
  for (size_t r = 0; r < M; r++) {
    const float *d = dy + r * C, *h = xhat + r * C;
    float *o = dx + r * C;
    // Σ γ⊙dy and Σ γ⊙dy⊙x̂, each by the fixed tree.
    double sg[8] = {0}, sgx[8] = {0};
    size_t j = 0;
    for (; j + 8 <= C; j += 8)
      for (int k = 0; k < 8; k++) {
        double g = (double)gamma[j + k] * d[j + k];
        sg[k] += g;
        sgx[k] += g * h[j + k];
      }
    for (int k = 0; j < C; j++, k++) {
      double g = (double)gamma[j] * d[j];
      sg[k] += g;
      sgx[k] += g * h[j];
    }
    double meanG = tree8(sg) / (double)C, meanGX = tree8(sgx) / (double)C, rs = rstd[r];
    for (j = 0; j < C; j++) o[j] = (float)(rs * (((double)gamma[j] * d[j] - meanG) - h[j] * meanGX));
  }
}

// fdlibm's __ieee754_log (e_log.c, FreeBSD msun), the same operations in the same order.
// ====================================================
// Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
//
// Developed at SunSoft, a Sun Microsystems, Inc. business.
// Permission to use, copy, modify, and distribute this
// software is freely granted, provided that this notice
// is preserved.
// ====================================================
// log(x) = k·ln2 + log(1+f) with x = 2^k·(1+f), √2/2 < 1+f < √2; log(1+f) = f − s·(f − R)
// with s = f/(2+f) and R a minimax polynomial in s² (error < 2^−58.45).
static double fd_log(double x) {
  static const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10, two54 = 1.80143985094819840000e+16,
                      Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01, Lg3 = 2.857142874366239149e-01,
                      Lg4 = 2.222219843214978396e-01, Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                      Lg7 = 1.479819860511658591e-01;
  uint64_t bits;
  memcpy(&bits, &x, sizeof bits);
  int32_t hx = (int32_t)(bits >> 32);
  uint32_t lx = (uint32_t)bits;
  int32_t k = 0;
  if (hx < 0x00100000) { // x < 2^−1022
    if (((hx & 0x7fffffff) | lx) == 0) return -INFINITY;
    if (hx < 0) return NAN;
    k -= 54;
    x *= two54; // subnormal: scale up
    memcpy(&bits, &x, sizeof bits);
    hx = (int32_t)(bits >> 32);
  }
  if (hx >= 0x7ff00000) return x + x;
  k += (hx >> 20) - 1023;
  hx &= 0x000fffff;
  int32_t i = (hx + 0x95f64) & 0x100000;
  bits = ((uint64_t)(uint32_t)(hx | (i ^ 0x3ff00000)) << 32) | (bits & 0xffffffffu); // x or x/2 into [√2/2, √2)
  memcpy(&x, &bits, sizeof x);
  k += i >> 20;
  double f = x - 1.0, dk = (double)k;
  if ((0x000fffff & (2 + hx)) < 3) { // |f| < 2^−20
    if (f == 0.0) return k == 0 ? 0.0 : dk * ln2_hi + dk * ln2_lo;
    double R = f * f * (0.5 - 0.33333333333333333 * f);
    return k == 0 ? f - R : dk * ln2_hi - ((R - dk * ln2_lo) - f);
  }
  double s = f / (2.0 + f), z = s * s, w = z * z;
  int32_t j = 0x6b851 - hx;
  i = hx - 0x6147a;
  double t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
  double t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
  double R = t2 + t1;
  if ((i | j) > 0) {
    double hfsq = 0.5 * f * f;
    return k == 0 ? f - (hfsq - s * (hfsq + R)) : dk * ln2_hi - ((hfsq - (s * (hfsq + R) + dk * ln2_lo)) - f);
  }
  return k == 0 ? f - s * (f - R) : dk * ln2_hi - ((s * (f - R) - dk * ln2_lo) - f);
}

// Per row: s = z + bias (float32, what logits receives), m = max s, e = exp(s − m) (path
// exp, float32; in dz's row, else a stack buffer, a piece at a time), Σe in float64 (≥ 1:
// the max gives e = 1), loss += log Σe − (s_t − m); dz = e / Σe − one-hot(t).
double gp_softmax_xent(const gp_isa *isa, size_t M, size_t V, const float *z, const float *bias, const int32_t *targets,
                       float *dz, float *logits) {
  enum { PIECE = 256 }; // a multiple of 8, so Σe has the same bits with or without dz
  float buf[PIECE];
  double loss = 0.0;
  for (size_t r = 0; r < M; r++) {
    const float *zr = z + r * V;
    float m = -INFINITY; // a NaN s is passed over here, but its e is NaN, and so are Σe and the loss
    for (size_t j = 0; j < V; j++) {
      float s = zr[j] + bias[j];
      m = s > m ? s : m;
    }
    if (logits)
      for (size_t j = 0; j < V; j++) logits[r * V + j] = zr[j] + bias[j];
    double acc[8] = {0};
    for (size_t j0 = 0; j0 < V; j0 += PIECE) {
      size_t n = V - j0 < PIECE ? V - j0 : PIECE;
      float *e = dz ? dz + r * V + j0 : buf;
      for (size_t j = 0; j < n; j++) e[j] = (zr[j0 + j] + bias[j0 + j]) - m;
      isa->vexp(e, e, n);
      acc8(acc, e, n);
    }
    double sum = tree8(acc);
    size_t t = (size_t)targets[r];
    float st = zr[t] + bias[t];
    loss += fd_log(sum) - ((double)st - (double)m);
    if (dz) {
      float *d = dz + r * V;
      double inv = 1.0 / sum;
      for (size_t j = 0; j < V; j++) d[j] = (float)(d[j] * inv);
      d[t] -= 1.0f;
    }
  }
  return loss;
}
