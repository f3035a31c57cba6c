// The CNN encoder's data-movement kernels (conv.c): im2col and its adjoint for a 3×3
// convolution with padding 1, ReLU + 2×2 max-pool with its backward, and the CHW flatten —
// the native versions of the kernels in model/cnn.ts, with the same bits. Maps are pixel
// rows (NHWC): N images of S×S pixels of C channels. Sizes are checked by the binding.
#ifndef GP_CONV_H
#define GP_CONV_H
#include <stddef.h>

// cols (N·S·S × C·9): row (n, y, x), column ci·9 + ky·3 + kx = x[n, y+ky−1, x+kx−1, ci], or 0 outside.
void gp_im2col3x3(const float *x, size_t N, size_t S, size_t C, float *cols);
// dx (N·S·S × C) = the adjoint of im2col: each input pixel's taps summed in float32 in the
// JS kernel's order (the output pixels above it first, left to right).
void gp_col2im3x3(const float *cols, size_t N, size_t S, size_t C, float *dx);
// y (N·S/2·S/2 × C) = maxpool2(relu(z + b)), arg the window position (0…3) of each maximum;
// the sums and the comparisons in float64, as JS does (S even).
void gp_relu_maxpool2(const float *z, const float *b, size_t N, size_t S, size_t C, float *y, float *arg);
// dz (N·S·S × C): dy routed to each window's maximum where y > 0, zero elsewhere (arg checked
// to be 0…3 wherever y > 0 by the caller).
void gp_relu_maxpool2_backward(const float *dy, const float *y, const float *arg, size_t N, size_t S, size_t C, float *dz);
// out = x from (N·HW × C) pixel rows to (N × C·HW), PyTorch's flatten of NCHW; inverse: back.
void gp_flatten_chw(const float *x, size_t N, size_t HW, size_t C, int inverse, float *out);
#endif
