// Fused LSTM gate kernels of the native backend (cells.c), one time step over B rows.
// Same math as model/cells/lstm.ts (without the layer norm of c, which stays in JS);
// the nonlinearities come from the path's table, the rest is portable C.
#ifndef GP_CELLS_H
#define GP_CELLS_H
#include <stdint.h>
#include "gp.h"

typedef struct {
  int kind;  // 0 lstm (i, f, g, o), 1 lstm-1997 (i, g, o), 2 lstm-peephole
  int B, H;
  const float *px;         // input products, rows of G·H; row of stream b: rowIds[rowBase+b] or rowBase+b
  const int32_t *rowIds;   // or NULL
  int rowBase;
  const float *ph, *bias, *c0, *peep;  // (B, G·H), (G·H), (B, H), (3H) or NULL
  float *h, *c, *acts, *tc;            // (B, H), (B, H), (B, G·H), (B, H)
  float *scratch;                      // G·H floats
} gp_lstm_fwd;

typedef struct {
  int kind, B, H, rowBase;
  const float *dHext;                  // (rows, H): row rowBase+b is this step's
  const float *dhRec, *dcNext;         // (B, H) or NULL
  const float *acts, *c0, *c1, *tc, *peep;
  float *dPre, *dcPrev, *dPeep;        // (B, G·H), (B, H), (3H) or NULL
} gp_lstm_bwd;

void gp_lstm_forward(const gp_isa *isa, const gp_lstm_fwd *p);
void gp_lstm_backward(const gp_lstm_bwd *p);
#endif
