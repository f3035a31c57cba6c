// Row kernels of the native backend (rows.c): column sums, row gathers and copies, layer
// norm forward/backward and softmax cross-entropy — the native versions of the kernels in
// model/primitives.ts. Sizes and ids are checked by the binding (addon_rows.inc).
#ifndef GP_ROWS_H
#define GP_ROWS_H
#include <stddef.h>
#include <stdint.h>
#include "gp.h"

// out (C) = Σ_rows a (M×C): float32 sums in row order (the JS kernel's bits).
void gp_col_sum(const float *a, size_t M, size_t C, float *out);
// out (C) = Σ_rows a ⊙ b: each step rounds out + a·b (product in float64) to float32, as JS does.
void gp_col_sum_product(const float *a, const float *b, size_t M, size_t C, float *out);
// out (n×C) = rows ids[r] of table (ids checked by the caller).
void gp_gather_rows(const float *table, const int32_t *ids, size_t n, size_t C, float *out);

// Layer norm over M rows of C: y = γ ⊙ x̂ + β, x̂ = (x − μ)·rstd, rstd = 1/√(σ² + ε) per row.
void gp_layer_norm(const float *x, const float *gamma, const float *beta, size_t M, size_t C, float *y, float *xhat, float *rstd);
// dx = rstd · (γ⊙dy − mean(γ⊙dy) − x̂ · mean(γ⊙dy ⊙ x̂)) per row.
void gp_layer_norm_backward(const float *dy, const float *xhat, const float *rstd, const float *gamma, size_t M, size_t C, float *dx);

// Softmax cross-entropy of M rows of (z + bias) (V columns) against targets (checked to be
// in [0, V) by the caller). dz = softmax − one-hot and logits = z + bias when non-NULL.
// Returns the summed loss in nats (float64).
double gp_softmax_xent(const gp_isa *isa, size_t M, size_t V, const float *z, const float *bias, const int32_t *targets,
                       float *dz, float *logits);
#endif
