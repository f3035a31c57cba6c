// Fused GRU gate kernels (see cells_gru.h), the same arithmetic as model/cells/gru.ts and
// gru_reset_after.ts in float32: pre-activations, then the path's vsigmoid/vtanh over whole
// gate blocks, then the blend. Backward kernels need no transcendental: portable C only.
//
//   r = σ(s_r)  z = σ(s_z)  h' = (1−z)⊙h + z⊙n, with
//   reset before:  n = tanh(p_xn + (r⊙h)·W_hn + b_n)
//   reset after:   n = tanh(p_xn + b_n + r ⊙ (p_hn + b_hn))

#include "cells_gru.h"

void gp_gru_gates(const gp_isa *isa, int B, int H, const gp_rows *x, const float *phrz, const float *bias, const float *h0,
                  float *rz, float *rh) {
  const size_t H2 = 2 * (size_t)H;
  for (int b = 0; b < B; b++) {
    const float *px = gp_row(x, b, 3 * (size_t)H), *p = phrz + b * H2;
    float *s = rz + b * H2;
    for (size_t k = 0; k < H2; k++) s[k] = (px[k] + p[k]) + bias[k];
  }
  isa->vsigmoid(rz, rz, B * H2);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < H; j++) rh[(size_t)b * H + j] = rz[b * H2 + j] * h0[(size_t)b * H + j];
}

void gp_gru_candidate(const gp_isa *isa, int B, int H, const gp_rows *x, const float *phn, const float *bias, const float *rz,
                      const float *h0, float *h, float *n) {
  for (int b = 0; b < B; b++) {
    const float *px = gp_row(x, b, 3 * (size_t)H) + 2 * H;
    for (int j = 0; j < H; j++) n[(size_t)b * H + j] = (px[j] + phn[(size_t)b * H + j]) + bias[2 * H + j];
  }
  isa->vtanh(n, n, (size_t)B * H);
  for (int b = 0; b < B; b++) {
    const float *z = rz + (size_t)b * 2 * H + H;
    for (int j = 0; j < H; j++) {
      size_t k = (size_t)b * H + j;
      h[k] = (1.0f - z[j]) * h0[k] + z[j] * n[k];
    }
  }
}

// dh = external + recurrent + direct gradient of h' at k.
static inline float dh_at(const float *dhe, const float *dhRec, const float *dhDirect, size_t k) {
  float dh = dhe[k];
  if (dhRec) dh += dhRec[k];
  if (dhDirect) dh += dhDirect[k];
  return dh;
}

void gp_gru_candidate_backward(int B, int H, int rowBase, const float *dHext, const float *dhRec, const float *dhDirect,
                               const float *n, const float *rz, const float *h0, float *dpn, float *dpz, float *dhOut) {
  const float *dhe = dHext + (size_t)rowBase * H;
  for (int b = 0; b < B; b++) {
    const float *z = rz + (size_t)b * 2 * H + H;
    for (int j = 0; j < H; j++) {
      size_t k = (size_t)b * H + j;
      float dh = dh_at(dhe, dhRec, dhDirect, k), nv = n[k];
      dpn[k] = dh * z[j] * (1.0f - nv * nv);
      dpz[k] = dh * (nv - h0[k]) * z[j] * (1.0f - z[j]);
      dhOut[k] = dh * (1.0f - z[j]);
    }
  }
}

void gp_gru_gates_backward(int B, int H, const float *drh, const float *rz, const float *h0, const float *dpz, const float *dpn,
                           const float *dhDirect, float *dPx, float *dPrz, float *dhOut) {
  for (int b = 0; b < B; b++) {
    const float *r = rz + (size_t)b * 2 * H;
    float *dx = dPx + (size_t)b * 3 * H, *drz = dPrz + (size_t)b * 2 * H;
    for (int j = 0; j < H; j++) {
      size_t k = (size_t)b * H + j;
      float dpr = drh[k] * h0[k] * r[j] * (1.0f - r[j]);
      dx[j] = dpr;
      dx[H + j] = dpz[k];
      dx[2 * H + j] = dpn[k];
      drz[j] = dpr;
      drz[H + j] = dpz[k];
      dhOut[k] = dhDirect[k] + drh[k] * r[j];
    }
  }
}

void gp_gru_after_forward(const gp_isa *isa, int B, int H, const gp_rows *x, const float *ph, const float *bias,
                          const float *bhn, const float *h0, float *h, float *acts, float *q) {
  const size_t GH = 3 * (size_t)H;
  for (int b = 0; b < B; b++) {
    const float *px = gp_row(x, b, GH), *p = ph + b * GH;
    float *a = acts + b * GH, *qb = q + (size_t)b * H;
    for (int k = 0; k < 2 * H; k++) a[k] = (px[k] + p[k]) + bias[k];
    isa->vsigmoid(a, a, 2 * (size_t)H);
    for (int j = 0; j < H; j++) {
      qb[j] = p[2 * H + j] + bhn[j];
      a[2 * H + j] = (px[2 * H + j] + bias[2 * H + j]) + a[j] * qb[j];
    }
    isa->vtanh(a + 2 * H, a + 2 * H, H);
    for (int j = 0; j < H; j++) {
      size_t k = (size_t)b * H + j;
      float z = a[H + j];
      h[k] = (1.0f - z) * h0[k] + z * a[2 * H + j];
    }
  }
}

void gp_gru_after_backward(int B, int H, int rowBase, const float *dHext, const float *dhRec, const float *dhDirect,
                           const float *acts, const float *q, const float *h0, float *dPx, float *dPh, float *dhOut) {
  const float *dhe = dHext + (size_t)rowBase * H;
  for (int b = 0; b < B; b++) {
    const size_t po = (size_t)b * 3 * H;
    const float *a = acts + po;
    for (int j = 0; j < H; j++) {
      size_t k = (size_t)b * H + j;
      float dh = dh_at(dhe, dhRec, dhDirect, k), r = a[j], z = a[H + j], n = a[2 * H + j];
      float dpz = dh * (n - h0[k]) * z * (1.0f - z);
      float dpn = dh * z * (1.0f - n * n);
      float dpr = dpn * q[k] * r * (1.0f - r);
      dPx[po + j] = dpr;
      dPx[po + H + j] = dpz;
      dPx[po + 2 * H + j] = dpn;
      dPh[po + j] = dpr;
      dPh[po + H + j] = dpz;
      dPh[po + 2 * H + j] = dpn * r;
      dhOut[k] = dh * (1.0f - z);
    }
  }
}
