// Fused gate kernels of the native backend for the GRU (both forms, cells_gru.c) and the
// vanilla RNN (cells_rnn.c), one time step over B rows. Same math as model/cells/gru.ts,
// gru_reset_after.ts and rnn.ts; a layer norm of the recurrent product is applied before
// these kernels run, so they cover every variant. Nonlinearities come from the path's table.
#ifndef GP_CELLS_GRU_H
#define GP_CELLS_GRU_H
#include <stdint.h>
#include "gp.h"

// The input products of one step: rows of `width` floats; stream b reads row
// rowIds[rowBase+b], or rowBase+b when rowIds is NULL.
typedef struct {
  const float *px;
  const int32_t *rowIds;
  int rowBase;
} gp_rows;

// GRU, reset before the recurrent product (gru.ts). Shapes: px rows of 3H; phrz, rz (B, 2H);
// bias (3H); h0, rh, phn, h, n (B, H).
void gp_gru_gates(const gp_isa *isa, int B, int H, const gp_rows *x, const float *phrz, const float *bias, const float *h0,
                  float *rz, float *rh);
void gp_gru_candidate(const gp_isa *isa, int B, int H, const gp_rows *x, const float *phn, const float *bias, const float *rz,
                      const float *h0, float *h, float *n);
// dHext (rows, H): row rowBase+b is this step's; dhRec, dhDirect (B, H) or NULL.
void gp_gru_candidate_backward(int B, int H, int rowBase, const float *dHext, const float *dhRec, const float *dhDirect,
                               const float *n, const float *rz, const float *h0, float *dpn, float *dpz, float *dhOut);
// dPx (B, 3H), dPrz (B, 2H), dhOut (B, H).
void gp_gru_gates_backward(int B, int H, const float *drh, const float *rz, const float *h0, const float *dpz, const float *dpn,
                           const float *dhDirect, float *dPx, float *dPrz, float *dhOut);

// GRU, reset after the recurrent product (gru_reset_after.ts). ph, acts (B, 3H): acts holds
// r, z, n; bias (3H), bhn (H); h0, h, q (B, H) with q = p_hn + b_hn.
void gp_gru_after_forward(const gp_isa *isa, int B, int H, const gp_rows *x, const float *ph, const float *bias,
                          const float *bhn, const float *h0, float *h, float *acts, float *q);
// dPx, dPh (B, 3H), dhOut (B, H).
void gp_gru_after_backward(int B, int H, int rowBase, const float *dHext, const float *dhRec, const float *dhDirect,
                           const float *acts, const float *q, const float *h0, float *dPx, float *dPh, float *dhOut);

// Vanilla RNN (rnn.ts): h = tanh(px + ph + b), px rows of H; dPre = dh ⊙ (1 − h²).
void gp_rnn_forward(const gp_isa *isa, int B, int H, const gp_rows *x, const float *ph, const float *bias, float *h);
void gp_rnn_backward(int B, int H, int rowBase, const float *dHext, const float *dhRec, const float *h, float *dPre);

static inline const float *gp_row(const gp_rows *x, int b, size_t width) {
  return x->px + (size_t)(x->rowIds ? x->rowIds[x->rowBase + b] : x->rowBase + b) * width;
}
#endif
