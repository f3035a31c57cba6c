// The CNN encoder's data-movement kernels (see conv.h), in portable C compiled once for
// every path: they only move values, and sum im2col's adjoint in a fixed order, so every
// path and the JS kernels of model/cnn.ts give the same bits (tested).

#include <string.h>
#include "conv.h"

void gp_im2col3x3(const float *x, size_t N, size_t S, size_t C, float *cols) {
  const size_t C9 = C * 9;
  for (size_t n = 0; n < N; n++)
    for (size_t y = 0; y < S; y++)
      for (size_t px = 0; px < S; px++) {
        float *row = cols + ((n * S + y) * S + px) * C9;
        // Tap by tap (reads of C contiguous channels), each into its column ci·9 + tap.
        for (int ky = 0; ky < 3; ky++) {
          const long sy = (long)y + ky - 1;
          for (int kx = 0; kx < 3; kx++) {
            const long sx = (long)px + kx - 1;
            float *out = row + ky * 3 + kx;
            if (sy < 0 || sy >= (long)S || sx < 0 || sx >= (long)S) {
              for (size_t ci = 0; ci < C; ci++) out[ci * 9] = 0.0f;
            } else {
              const float *src = x + ((n * S + (size_t)sy) * S + (size_t)sx) * C;
              for (size_t ci = 0; ci < C; ci++) out[ci * 9] = src[ci];
            }
          }
        }
      }
}

void gp_col2im3x3(const float *cols, size_t N, size_t S, size_t C, float *dx) {
  const size_t C9 = C * 9;
  // Gathered per input pixel (sy, sx): the JS kernel scatters in the order of the output
  // pixels (y, x), so a pixel's taps arrive from the row above first (y = sy − 1, tap row
  // ky = 2), left to right (x = sx − 1, tap column kx = 2, first); the same float32 adds in
  // the same order, each channel's sum starting from +0.
  for (size_t n = 0; n < N; n++)
    for (size_t sy = 0; sy < S; sy++)
      for (size_t sx = 0; sx < S; sx++) {
        float *out = dx + ((n * S + sy) * S + sx) * C;
        for (size_t ci = 0; ci < C; ci++) out[ci] = 0.0f;
        for (int dy = -1; dy <= 1; dy++) {
          const long y = (long)sy + dy;
          if (y < 0 || y >= (long)S) continue;
          for (int dxp = -1; dxp <= 1; dxp++) {
            const long x = (long)sx + dxp;
            if (x < 0 || x >= (long)S) continue;
            const float *in = cols + ((n * S + (size_t)y) * S + (size_t)x) * C9 + (1 - dy) * 3 + (1 - dxp);
            for (size_t ci = 0; ci < C; ci++) out[ci] += in[ci * 9];
          }
        }
      }
}

void gp_relu_maxpool2(const float *z, const float *b, size_t N, size_t S, size_t C, float *y, float *arg) {
  const size_t h = S / 2;
  for (size_t n = 0; n < N; n++)
    for (size_t py = 0; py < h; py++)
      for (size_t px = 0; px < h; px++) {
        float *yo = y + ((n * h + py) * h + px) * C, *ao = arg + ((n * h + py) * h + px) * C;
        const float *w[4];
        for (int k = 0; k < 4; k++) w[k] = z + ((n * S + 2 * py + (size_t)(k >> 1)) * S + 2 * px + (size_t)(k & 1)) * C;
        for (size_t c = 0; c < C; c++) {
          // float64 sums and comparisons: JS's numbers (the first strict maximum wins; NaN never does).
          double best = -__builtin_inf();
          int at = 0;
          for (int k = 0; k < 4; k++) {
            const double v = (double)w[k][c] + (double)b[c];
            if (v > best) {
              best = v;
              at = k;
            }
          }
          yo[c] = best > 0 ? (float)best : 0.0f;
          ao[c] = (float)at;
        }
      }
}

void gp_relu_maxpool2_backward(const float *dy, const float *y, const float *arg, size_t N, size_t S, size_t C, float *dz) {
  const size_t h = S / 2;
  memset(dz, 0, N * S * S * C * sizeof(float));
  for (size_t n = 0; n < N; n++)
    for (size_t py = 0; py < h; py++)
      for (size_t px = 0; px < h; px++) {
        const size_t o = ((n * h + py) * h + px) * C;
        for (size_t c = 0; c < C; c++) {
          if (!(y[o + c] > 0)) continue;
          const int k = (int)arg[o + c];
          dz[((n * S + 2 * py + (size_t)(k >> 1)) * S + 2 * px + (size_t)(k & 1)) * C + c] = dy[o + c];
        }
      }
}

void gp_flatten_chw(const float *x, size_t N, size_t HW, size_t C, int inverse, float *out) {
  for (size_t n = 0; n < N; n++) {
    const size_t base = n * C * HW;
    for (size_t p = 0; p < HW; p++)
      for (size_t c = 0; c < C; c++) {
        if (inverse) out[base + p * C + c] = x[base + c * HW + p];
        else out[base + c * HW + p] = x[base + p * C + c];
      }
  }
}
