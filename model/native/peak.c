// The measured peak of one core: a register-only loop of independent FMAs on one
// path's vector width (12 chains: enough to cover two pipes × 4-cycle latency).
// The GEMM benchmark prints its GFLOP/s against this and against the nominal peak.
// The vector loops are x86 only (GP_X86 in gp.h); the scalar one runs everywhere.

#include <math.h>
#include <string.h>
#include <time.h>
#include "gp.h"
#if GP_X86
#include <immintrin.h>
#endif

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

#define CHAINS(F) F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11)

#if GP_X86
__attribute__((target("avx512f,fma"))) static float run512(long iters) {
#define D(i) __m512 a##i = _mm512_set1_ps(1.0f + i);
  CHAINS(D)
  __m512 m = _mm512_set1_ps(0.9999f), d = _mm512_set1_ps(1e-4f);
  for (long it = 0; it < iters; it++) {
#define F(i) a##i = _mm512_fmadd_ps(a##i, m, d);
    CHAINS(F)
    __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3));
  }
  __m512 s = _mm512_setzero_ps();
#define S(i) s = _mm512_add_ps(s, a##i);
  CHAINS(S)
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float run256(long iters) {
#define D2(i) __m256 a##i = _mm256_set1_ps(1.0f + i);
  CHAINS(D2)
  __m256 m = _mm256_set1_ps(0.9999f), d = _mm256_set1_ps(1e-4f);
  for (long it = 0; it < iters; it++) {
#define F2(i) a##i = _mm256_fmadd_ps(a##i, m, d);
    CHAINS(F2)
    __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3));
  }
  __m256 s = _mm256_setzero_ps();
#define S2(i) s = _mm256_add_ps(s, a##i);
  CHAINS(S2)
  float o[8];
  _mm256_storeu_ps(o, s);
  return o[0];
}
#endif // GP_X86

static float run_scalar(long iters) {
  float a[12];
  for (int i = 0; i < 12; i++) a[i] = 1.0f + i;
  for (long it = 0; it < iters; it++) {
    for (int i = 0; i < 12; i++) a[i] = fmaf(a[i], 0.9999f, 1e-4f);
    __asm__ volatile("" : : "r"(a) : "memory");
  }
  return a[0];
}

// One timed run on `lanes` float lanes (16: avx512, 8: avx2, else scalar).
static float run(int lanes, long iters) {
#if GP_X86
  if (lanes == 16) return run512(iters);
  if (lanes == 8) return run256(iters);
#endif
  return run_scalar(iters);
}

volatile float gp_peak_sink;

double gp_peak_gflops(const gp_isa *isa, double ms) {
  int lanes = strcmp(isa->name, "avx512") == 0 ? 16 : strcmp(isa->name, "avx2") == 0 ? 8 : 1;
  long iters = 1 << 16;
  for (;;) {
    double t = seconds();
    gp_peak_sink = run(lanes, iters);
    double s = seconds() - t;
    if (s * 1000 >= ms || iters > (1L << 40)) return 12.0 * 2 * lanes * iters / s / 1e9;
    iters *= 2;
  }
}
