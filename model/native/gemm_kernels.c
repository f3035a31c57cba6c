// Register-tiled GEMM micro-kernels, one per instruction set, and the run-time choice
// among them. Each computes one MR×NR tile of C from a packed A panel (MR rows,
// k-major) and a packed B panel (NR columns, k-major) with one FMA chain per element
// in k order, so every path gives the same bits (see gemm.c). The x86 kernels and
// feature checks are compiled only when gp.h sets GP_X86; elsewhere generic is the only path.

#include <math.h>
#include <string.h>
#include "gp.h"
#if GP_X86
#include <immintrin.h>
#endif

// The scalar path defines the result: fmaf, k in order, from +0 or from C's partial sum.
enum { G_MR = 4, G_NR = 16 };
static void kernel_generic(int kc, const float *a, const float *b, float *c, int ldc, int first) {
  float acc[G_MR][G_NR];
  for (int i = 0; i < G_MR; i++)
    for (int j = 0; j < G_NR; j++) acc[i][j] = first ? 0.0f : c[i * ldc + j];
  for (int k = 0; k < kc; k++, a += G_MR, b += G_NR)
    for (int i = 0; i < G_MR; i++)
      for (int j = 0; j < G_NR; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
  for (int i = 0; i < G_MR; i++) memcpy(c + i * ldc, acc[i], sizeof acc[i]);
}

#if GP_X86
// AVX2 + FMA: 6×16 tile, 12 ymm accumulators. Named variables, not arrays: GCC keeps
// arrays of vectors in memory inside the loop.
enum { A2_MR = 6, A2_NR = 16 };
__attribute__((target("avx2,fma")))
static void kernel_avx2(int kc, const float *a, const float *b, float *c, int ldc, int first) {
  __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
  if (first) {
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
  } else {
    c00 = _mm256_loadu_ps(c + 0 * ldc); c01 = _mm256_loadu_ps(c + 0 * ldc + 8);
    c10 = _mm256_loadu_ps(c + 1 * ldc); c11 = _mm256_loadu_ps(c + 1 * ldc + 8);
    c20 = _mm256_loadu_ps(c + 2 * ldc); c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
    c30 = _mm256_loadu_ps(c + 3 * ldc); c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
    c40 = _mm256_loadu_ps(c + 4 * ldc); c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
    c50 = _mm256_loadu_ps(c + 5 * ldc); c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
  }
  for (int k = 0; k < kc; k++, a += 6, b += 16) {
    __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), ai;
    ai = _mm256_set1_ps(a[0]); c00 = _mm256_fmadd_ps(ai, b0, c00); c01 = _mm256_fmadd_ps(ai, b1, c01);
    ai = _mm256_set1_ps(a[1]); c10 = _mm256_fmadd_ps(ai, b0, c10); c11 = _mm256_fmadd_ps(ai, b1, c11);
    ai = _mm256_set1_ps(a[2]); c20 = _mm256_fmadd_ps(ai, b0, c20); c21 = _mm256_fmadd_ps(ai, b1, c21);
    ai = _mm256_set1_ps(a[3]); c30 = _mm256_fmadd_ps(ai, b0, c30); c31 = _mm256_fmadd_ps(ai, b1, c31);
    ai = _mm256_set1_ps(a[4]); c40 = _mm256_fmadd_ps(ai, b0, c40); c41 = _mm256_fmadd_ps(ai, b1, c41);
    ai = _mm256_set1_ps(a[5]); c50 = _mm256_fmadd_ps(ai, b0, c50); c51 = _mm256_fmadd_ps(ai, b1, c51);
  }
  _mm256_storeu_ps(c + 0 * ldc, c00); _mm256_storeu_ps(c + 0 * ldc + 8, c01);
  _mm256_storeu_ps(c + 1 * ldc, c10); _mm256_storeu_ps(c + 1 * ldc + 8, c11);
  _mm256_storeu_ps(c + 2 * ldc, c20); _mm256_storeu_ps(c + 2 * ldc + 8, c21);
  _mm256_storeu_ps(c + 3 * ldc, c30); _mm256_storeu_ps(c + 3 * ldc + 8, c31);
  _mm256_storeu_ps(c + 4 * ldc, c40); _mm256_storeu_ps(c + 4 * ldc + 8, c41);
  _mm256_storeu_ps(c + 5 * ldc, c50); _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}

// AVX-512: 8×32 tile, 16 zmm accumulators (two FMA pipes × latency 4 need ≥ 8 chains).
enum { A5_MR = 8, A5_NR = 32 };
__attribute__((target("avx512f,fma")))
static void kernel_avx512(int kc, const float *a, const float *b, float *c, int ldc, int first) {
  __m512 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
  if (first) {
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = c60 = c61 = c70 = c71 = _mm512_setzero_ps();
  } else {
    c00 = _mm512_loadu_ps(c + 0 * ldc); c01 = _mm512_loadu_ps(c + 0 * ldc + 16);
    c10 = _mm512_loadu_ps(c + 1 * ldc); c11 = _mm512_loadu_ps(c + 1 * ldc + 16);
    c20 = _mm512_loadu_ps(c + 2 * ldc); c21 = _mm512_loadu_ps(c + 2 * ldc + 16);
    c30 = _mm512_loadu_ps(c + 3 * ldc); c31 = _mm512_loadu_ps(c + 3 * ldc + 16);
    c40 = _mm512_loadu_ps(c + 4 * ldc); c41 = _mm512_loadu_ps(c + 4 * ldc + 16);
    c50 = _mm512_loadu_ps(c + 5 * ldc); c51 = _mm512_loadu_ps(c + 5 * ldc + 16);
    c60 = _mm512_loadu_ps(c + 6 * ldc); c61 = _mm512_loadu_ps(c + 6 * ldc + 16);
    c70 = _mm512_loadu_ps(c + 7 * ldc); c71 = _mm512_loadu_ps(c + 7 * ldc + 16);
  }
  for (int k = 0; k < kc; k++, a += 8, b += 32) {
    __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), ai;
    ai = _mm512_set1_ps(a[0]); c00 = _mm512_fmadd_ps(ai, b0, c00); c01 = _mm512_fmadd_ps(ai, b1, c01);
    ai = _mm512_set1_ps(a[1]); c10 = _mm512_fmadd_ps(ai, b0, c10); c11 = _mm512_fmadd_ps(ai, b1, c11);
    ai = _mm512_set1_ps(a[2]); c20 = _mm512_fmadd_ps(ai, b0, c20); c21 = _mm512_fmadd_ps(ai, b1, c21);
    ai = _mm512_set1_ps(a[3]); c30 = _mm512_fmadd_ps(ai, b0, c30); c31 = _mm512_fmadd_ps(ai, b1, c31);
    ai = _mm512_set1_ps(a[4]); c40 = _mm512_fmadd_ps(ai, b0, c40); c41 = _mm512_fmadd_ps(ai, b1, c41);
    ai = _mm512_set1_ps(a[5]); c50 = _mm512_fmadd_ps(ai, b0, c50); c51 = _mm512_fmadd_ps(ai, b1, c51);
    ai = _mm512_set1_ps(a[6]); c60 = _mm512_fmadd_ps(ai, b0, c60); c61 = _mm512_fmadd_ps(ai, b1, c61);
    ai = _mm512_set1_ps(a[7]); c70 = _mm512_fmadd_ps(ai, b0, c70); c71 = _mm512_fmadd_ps(ai, b1, c71);
  }
  _mm512_storeu_ps(c + 0 * ldc, c00); _mm512_storeu_ps(c + 0 * ldc + 16, c01);
  _mm512_storeu_ps(c + 1 * ldc, c10); _mm512_storeu_ps(c + 1 * ldc + 16, c11);
  _mm512_storeu_ps(c + 2 * ldc, c20); _mm512_storeu_ps(c + 2 * ldc + 16, c21);
  _mm512_storeu_ps(c + 3 * ldc, c30); _mm512_storeu_ps(c + 3 * ldc + 16, c31);
  _mm512_storeu_ps(c + 4 * ldc, c40); _mm512_storeu_ps(c + 4 * ldc + 16, c41);
  _mm512_storeu_ps(c + 5 * ldc, c50); _mm512_storeu_ps(c + 5 * ldc + 16, c51);
  _mm512_storeu_ps(c + 6 * ldc, c60); _mm512_storeu_ps(c + 6 * ldc + 16, c61);
  _mm512_storeu_ps(c + 7 * ldc, c70); _mm512_storeu_ps(c + 7 * ldc + 16, c71);
}

#endif // GP_X86

// Best first; generic, last, runs everywhere.
static const gp_isa paths[] = {
#if GP_X86
  {"avx512", A5_MR, A5_NR, kernel_avx512, gp_vexp_avx512, gp_vsigmoid_avx512, gp_vtanh_avx512},
  {"avx2", A2_MR, A2_NR, kernel_avx2, gp_vexp_avx2, gp_vsigmoid_avx2, gp_vtanh_avx2},
#endif
  {"generic", G_MR, G_NR, kernel_generic, gp_vexp_generic, gp_vsigmoid_generic, gp_vtanh_generic},
};
enum { N_PATHS = sizeof paths / sizeof paths[0] };

const gp_isa *gp_isa_named(const char *name) {
  for (size_t i = 0; i < N_PATHS; i++)
    if (strcmp(paths[i].name, name) == 0) return &paths[i];
  return NULL;
}

int gp_isa_known(const char *name) {
  return strcmp(name, "avx512") == 0 || strcmp(name, "avx2") == 0 || strcmp(name, "generic") == 0;
}

int gp_cpu_has(const char *feature) {
#if GP_X86
  __builtin_cpu_init();
  if (strcmp(feature, "avx512f") == 0) return __builtin_cpu_supports("avx512f") != 0;
  if (strcmp(feature, "avx2") == 0) return __builtin_cpu_supports("avx2") != 0;
  if (strcmp(feature, "fma") == 0) return __builtin_cpu_supports("fma") != 0;
#else
  (void)feature;
#endif
  return 0;
}

int gp_isa_supported(const gp_isa *isa) {
  if (!isa) return 0;
  if (strcmp(isa->name, "avx512") == 0) return gp_cpu_has("avx512f") && gp_cpu_has("fma");
  if (strcmp(isa->name, "avx2") == 0) return gp_cpu_has("avx2") && gp_cpu_has("fma");
  return 1;
}

const gp_isa *gp_isa_best(void) {
  for (size_t i = 0; i < N_PATHS; i++)
    if (gp_isa_supported(&paths[i])) return &paths[i];
  return &paths[N_PATHS - 1];
}
