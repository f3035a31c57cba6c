// SGEMM for the native backend: C = op(A)·op(B), row-major, BLIS-style. Packing and
// cache blocking are portable C; only the register-tiled micro-kernels differ per
// instruction set (gemm_kernels.c), chosen at run time.
//
// Determinism: every C[i][j] is one chain acc = fma(a[i][k], b[k][j], acc) over
// k = 0 … K−1 in order, starting from +0. K blocking stores the partial sum in C and
// reloads it (exact in float32), zero padding only touches rows/columns that are never
// written back, so the result is the same bits whatever MR, NR, KC or vector width.

#include <stdlib.h>
#include <string.h>
#include "gp.h"

// Blocking (overridable for tuning with -DGP_KC/-DGP_MC): a 256 × NR micro-panel of B
// (32 KB at NR = 32) stays in L1, a 192 × 256 block of A (192 KB) in L2, the 256 × 2048
// panel of B (2 MB) in L2/L3. Blocking never changes the result, only the speed.
#ifndef GP_KC
#define GP_KC 256
#endif
#ifndef GP_MC
#define GP_MC 192
#endif
enum { KC = GP_KC, MC_ROWS = GP_MC, NC = 2048 };

// A block: rows [i0, i0+mc) × k [k0, k0+kc) of op(A) into mr-row panels, k-major.
static void pack_a(const float *A, int lda, int transA, int i0, int mc, int k0, int kc, int mr, float *dst) {
  for (int p = 0; p < mc; p += mr) {
    int rows = mc - p < mr ? mc - p : mr;
    for (int k = 0; k < kc; k++) {
      for (int r = 0; r < rows; r++) {
        int i = i0 + p + r, kk = k0 + k;
        dst[r] = transA ? A[(size_t)kk * lda + i] : A[(size_t)i * lda + kk];
      }
      for (int r = rows; r < mr; r++) dst[r] = 0.0f;
      dst += mr;
    }
  }
}

// B panel: k [k0, k0+kc) × columns [j0, j0+nc) of op(B) into nr-column panels, k-major.
static void pack_b(const float *B, int ldb, int transB, int k0, int kc, int j0, int nc, int nr, float *dst) {
  for (int q = 0; q < nc; q += nr) {
    int cols = nc - q < nr ? nc - q : nr;
    for (int k = 0; k < kc; k++) {
      int kk = k0 + k;
      if (!transB && cols == nr) {
        memcpy(dst, B + (size_t)kk * ldb + j0 + q, sizeof(float) * nr);
      } else {
        for (int c = 0; c < cols; c++) {
          int j = j0 + q + c;
          dst[c] = transB ? B[(size_t)j * ldb + kk] : B[(size_t)kk * ldb + j];
        }
        for (int c = cols; c < nr; c++) dst[c] = 0.0f;
      }
      dst += nr;
    }
  }
}

// Scratch for packed panels; kernels run one at a time per thread (worker threads
// each have their own), so one buffer per thread suffices.
static _Thread_local float *scratch_buf;
static _Thread_local size_t scratch_len;

static float *scratch(size_t n) {
  if (n > scratch_len) {
    free(scratch_buf);
    scratch_buf = aligned_alloc(64, ((n * sizeof(float)) + 63) / 64 * 64);
    scratch_len = scratch_buf ? n : 0;
  }
  return scratch_buf;
}

// Floats of op(B) (K × N) packed whole: its panels in the order gp_sgemm visits them
// (column blocks of NC, then k blocks of KC), each nc rounded up to the tile width.
size_t gp_packed_b_size(const gp_isa *isa, int N, int K) {
  size_t total = 0;
  for (int j0 = 0; j0 < N; j0 += NC) {
    int nc = N - j0 < NC ? N - j0 : NC;
    total += (size_t)((nc + isa->nr - 1) / isa->nr * isa->nr) * (size_t)K;
  }
  return total;
}

// Pack all of op(B) once, for products that reuse it (the recurrent weights, T times a step).
void gp_pack_b_all(const gp_isa *isa, int N, int K, const float *B, int transB, float *dst) {
  const int ldb = transB ? K : N, nr = isa->nr;
  for (int j0 = 0; j0 < N; j0 += NC) {
    int nc = N - j0 < NC ? N - j0 : NC;
    int ncpad = (nc + nr - 1) / nr * nr;
    for (int k0 = 0; k0 < K; k0 += KC) {
      int kc = K - k0 < KC ? K - k0 : KC;
      pack_b(B, ldb, transB, k0, kc, j0, nc, nr, dst);
      dst += (size_t)ncpad * kc;
    }
  }
}

// C = op(A)·op(B), op(B) given as B (packed here, block by block) or as Bp (packed whole by
// gp_pack_b_all on the same path): the same panels reach the same kernel, so the same bits.
static int sgemm(const gp_isa *isa, int M, int N, int K, const float *A, int transA, const float *B, int transB, const float *Bp, float *C) {
  if (M <= 0 || N <= 0) return 0;
  if (K <= 0) {
    memset(C, 0, sizeof(float) * (size_t)M * N);
    return 0;
  }
  const int mr = isa->mr, nr = isa->nr;
  const int lda = transA ? M : K, ldb = transB ? K : N, ldc = N;
  const int mcmax = (MC_ROWS + mr - 1) / mr * mr;
  const int ncmax = (NC + nr - 1) / nr * nr;
  size_t na = (size_t)mcmax * KC, nb = Bp ? 0 : (size_t)ncmax * KC;
  float *buf = scratch(na + nb + (size_t)mr * nr);
  if (!buf) return -1;
  float *pa = buf, *tile = buf + na + nb;
  const float *pb = buf + na;
  size_t at = 0;  // offset of this block's panels in Bp
  for (int j0 = 0; j0 < N; j0 += NC) {
    int nc = N - j0 < NC ? N - j0 : NC;
    for (int k0 = 0; k0 < K; k0 += KC) {
      int kc = K - k0 < KC ? K - k0 : KC;
      int first = k0 == 0;
      if (Bp) {
        pb = Bp + at;
        at += (size_t)((nc + nr - 1) / nr * nr) * kc;
      } else {
        pack_b(B, ldb, transB, k0, kc, j0, nc, nr, buf + na);
      }
      for (int i0 = 0; i0 < M; i0 += mcmax) {
        int mc = M - i0 < mcmax ? M - i0 : mcmax;
        pack_a(A, lda, transA, i0, mc, k0, kc, mr, pa);
        for (int q = 0; q < nc; q += nr) {
          int cols = nc - q < nr ? nc - q : nr;
          const float *bp = pb + (size_t)q * kc;
          for (int p = 0; p < mc; p += mr) {
            int rows = mc - p < mr ? mc - p : mr;
            const float *ap = pa + (size_t)p * kc;
            float *c = C + (size_t)(i0 + p) * ldc + j0 + q;
            if (rows == mr && cols == nr) {
              isa->kernel(kc, ap, bp, c, ldc, first);
            } else {
              // Edge tile: through a full-size tile so the kernel never reads or writes past C.
              if (!first)
                for (int r = 0; r < rows; r++) memcpy(tile + r * nr, c + (size_t)r * ldc, sizeof(float) * cols);
              isa->kernel(kc, ap, bp, tile, nr, first);
              for (int r = 0; r < rows; r++) memcpy(c + (size_t)r * ldc, tile + r * nr, sizeof(float) * cols);
            }
          }
        }
      }
    }
  }
  return 0;
}

int gp_sgemm(const gp_isa *isa, int M, int N, int K, const float *A, int transA, const float *B, int transB, float *C) {
  return sgemm(isa, M, N, K, A, transA, B, transB, NULL, C);
}

int gp_sgemm_packed(const gp_isa *isa, int M, int N, int K, const float *A, int transA, const float *Bp, float *C) {
  return sgemm(isa, M, N, K, A, transA, NULL, 0, Bp, C);
}

// Blocked transpose: (R, C) → (C, R). 16×16 blocks, writes contiguous in the inner
// loop: row-order blocks of 32 wrote at a power-of-two stride and thrashed L1 (10× slower).
void gp_transpose(const float *src, int R, int Cc, float *dst) {
  enum { TB = 16 };
  for (int c0 = 0; c0 < Cc; c0 += TB)
    for (int r0 = 0; r0 < R; r0 += TB) {
      int r1 = r0 + TB < R ? r0 + TB : R, c1 = c0 + TB < Cc ? c0 + TB : Cc;
      for (int c = c0; c < c1; c++)
        for (int r = r0; r < r1; r++) dst[(size_t)c * R + r] = src[(size_t)r * Cc + c];
    }
}

// out (rows, C) = 0, then out[ids[r]] += src[r] for r in order (ids checked by the caller).
void gp_scatter_add_rows(const float *src, const int32_t *ids, int n, int C, float *out, int rows) {
  memset(out, 0, sizeof(float) * (size_t)rows * C);
  for (int r = 0; r < n; r++) {
    float *o = out + (size_t)ids[r] * C;
    const float *s = src + (size_t)r * C;
    for (int j = 0; j < C; j++) o[j] += s[j];
  }
}
