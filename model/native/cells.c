// Fused LSTM gate kernels (see cells.h), the same arithmetic as model/cells/lstm.ts in
// float32: pre-activations, then the path's vsigmoid/vtanh over whole gate rows.
//
//   i = σ(s_i + p_i⊙c)   f = σ(s_f + p_f⊙c)   g = tanh(s_g)
//   c' = f⊙c + i⊙g       o = σ(s_o + p_o⊙c')  h' = o ⊙ tanh(c')

#include "cells.h"

void gp_lstm_forward(const gp_isa *isa, const gp_lstm_fwd *p) {
  const int H = p->H, G = p->kind == 1 ? 3 : 4;
  const int GH = G * H, I = 0, F = p->kind == 1 ? -1 : H, Gg = p->kind == 1 ? H : 2 * H, O = p->kind == 1 ? 2 * H : 3 * H;
  float *s = p->scratch;
  for (int b = 0; b < p->B; b++) {
    const float *x = p->px + (size_t)(p->rowIds ? p->rowIds[p->rowBase + b] : p->rowBase + b) * GH;
    const float *hh = p->ph + (size_t)b * GH;
    const float *cp = p->c0 + (size_t)b * H;
    float *a = p->acts + (size_t)b * GH, *c = p->c + (size_t)b * H, *t = p->tc + (size_t)b * H, *h = p->h + (size_t)b * H;
    for (int k = 0; k < O; k++) s[k] = (x[k] + hh[k]) + p->bias[k];
    if (p->peep) {
      for (int j = 0; j < H; j++) s[I + j] += p->peep[j] * cp[j];
      if (F >= 0)
        for (int j = 0; j < H; j++) s[F + j] += p->peep[H + j] * cp[j];
    }
    isa->vsigmoid(s + I, a + I, H);
    if (F >= 0) isa->vsigmoid(s + F, a + F, H);
    isa->vtanh(s + Gg, a + Gg, H);
    for (int j = 0; j < H; j++) {
      float fg = F >= 0 ? a[F + j] : 1.0f;
      c[j] = fg * cp[j] + a[I + j] * a[Gg + j];
    }
    isa->vtanh(c, t, H);
    for (int j = 0; j < H; j++) s[O + j] = (x[O + j] + hh[O + j]) + p->bias[O + j];
    if (p->peep)
      for (int j = 0; j < H; j++) s[O + j] += p->peep[2 * H + j] * c[j];
    isa->vsigmoid(s + O, a + O, H);
    for (int j = 0; j < H; j++) h[j] = a[O + j] * t[j];
  }
}

void gp_lstm_backward(const gp_lstm_bwd *p) {
  const int H = p->H, G = p->kind == 1 ? 3 : 4;
  const int GH = G * H, I = 0, F = p->kind == 1 ? -1 : H, Gg = p->kind == 1 ? H : 2 * H, O = p->kind == 1 ? 2 * H : 3 * H;
  if (p->dPeep)
    for (int j = 0; j < 3 * H; j++) p->dPeep[j] = 0.0f;
  for (int b = 0; b < p->B; b++) {
    const float *a = p->acts + (size_t)b * GH, *cp = p->c0 + (size_t)b * H, *c1 = p->c1 + (size_t)b * H, *t = p->tc + (size_t)b * H;
    const float *dhe = p->dHext + (size_t)(p->rowBase + b) * H;
    float *d = p->dPre + (size_t)b * GH, *dcp = p->dcPrev + (size_t)b * H;
    for (int j = 0; j < H; j++) {
      float dh = dhe[j] + (p->dhRec ? p->dhRec[(size_t)b * H + j] : 0.0f);
      float og = a[O + j], tj = t[j];
      float dpo = dh * tj * og * (1.0f - og);
      d[O + j] = dpo;
      float dc = dh * og * (1.0f - tj * tj) + (p->dcNext ? p->dcNext[(size_t)b * H + j] : 0.0f);
      if (p->peep) dc += dpo * p->peep[2 * H + j];
      float ig = a[I + j], gg = a[Gg + j];
      float dpi = dc * gg * ig * (1.0f - ig);
      d[I + j] = dpi;
      d[Gg + j] = dc * ig * (1.0f - gg * gg);
      float dcprev = dc, dpf = 0.0f;
      if (F >= 0) {
        float fg = a[F + j];
        dpf = dc * cp[j] * fg * (1.0f - fg);
        d[F + j] = dpf;
        dcprev = dc * fg;
      }
      if (p->peep) {
        dcprev += dpi * p->peep[j] + dpf * p->peep[H + j];
        p->dPeep[j] += dpi * cp[j];
        p->dPeep[H + j] += dpf * cp[j];
        p->dPeep[2 * H + j] += dpo * c1[j];
      }
      dcp[j] = dcprev;
    }
  }
}
