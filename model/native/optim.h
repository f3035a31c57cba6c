// The coordinator's per-step vector work in C (optim.c): the shard reduction, the
// gradient norm and the optimizer updates of coordinator/shards.ts and optim.ts.
#ifndef GP_OPTIM_H
#define GP_OPTIM_H
#include <stddef.h>
#include "gp.h"

// The elementwise loops of one instruction-set path; every path gives the same bits.
typedef struct {
  // dst[i] = dst[i] + src[i] (float32).
  void (*add_into)(float *dst, const float *src, size_t n);
  // x[i] = float(double(x[i]) · s).
  void (*scale)(float *x, size_t n, double s);
  void (*sgd)(float *params, const float *grad, size_t n, double lr);
  // first: the optimizer's first update (velocity ← gradient).
  void (*momentum)(float *params, const float *grad, float *m, size_t n, double lr, double mu, int first);
  // c1 = 1 − β1^t, c2 = √(1 − β2^t), computed by the caller.
  void (*adam)(float *params, const float *grad, float *m, float *v, size_t n, double lr, double b1, double b2, double eps,
               double c1, double c2);
} gp_optim_path;

// The loops compiled for isa (the generic ones for an unknown path).
const gp_optim_path *gp_optim_for(const gp_isa *isa);
// Σ double(x[i])², left to right from +0: one float64 chain, the same on every path.
double gp_sum_squares(const float *x, size_t n);
#endif
