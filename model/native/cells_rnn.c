// Fused vanilla-RNN kernels (see cells_gru.h), the arithmetic of model/cells/rnn.ts in
// float32: h' = tanh(px + ph + b) with the path's vtanh; backward dPre = dh ⊙ (1 − h'²).

#include "cells_gru.h"

void gp_rnn_forward(const gp_isa *isa, int B, int H, const gp_rows *x, const float *ph, const float *bias, float *h) {
  for (int b = 0; b < B; b++) {
    const float *px = gp_row(x, b, H);
    for (int j = 0; j < H; j++) h[(size_t)b * H + j] = (px[j] + ph[(size_t)b * H + j]) + bias[j];
  }
  isa->vtanh(h, h, (size_t)B * H);
}

void gp_rnn_backward(int B, int H, int rowBase, const float *dHext, const float *dhRec, const float *h, float *dPre) {
  const float *dhe = dHext + (size_t)rowBase * H;
  for (size_t k = 0; k < (size_t)B * H; k++) {
    float dh = dhe[k];
    if (dhRec) dh += dhRec[k];
    dPre[k] = dh * (1.0f - h[k] * h[k]);
  }
}
