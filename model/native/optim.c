// The coordinator's per-step vector work (coordinator/shards.ts reduceShards,
// coordinator/optim.ts globalNorm, clipGlobalNorm and applyUpdate) bit for bit: the
// same float64 operations in the same order, rounded to float32 exactly where the JS
// stores into a Float32Array (and values read back from such a store are the rounded
// ones). The elementwise loops (optim_body.h) are compiled per instruction set and
// vectorized; the sum of squares is a left-to-right float64 chain like the JS loop's,
// which no reordering may split. The avx2 and avx512 loops are compiled only when gp.h
// sets GP_X86.

#include <math.h>
#include <string.h>
#include "optim.h"
#if GP_X86
#include <immintrin.h>
#endif

#define SUFFIX generic
#define VW 2
#if GP_X86
#define VSQRT(x) ((vd)_mm_sqrt_pd((__m128d)(x)))
#else
// Lane by lane: √ is correctly rounded (IEEE), so the same bits as the vector instruction.
#define VSQRT(x) ({ vd x_ = (x); (vd){sqrt(x_[0]), sqrt(x_[1])}; })
#endif
#include "optim_body.h"
#undef SUFFIX
#undef VW
#undef VSQRT

#if GP_X86
#pragma GCC push_options
#pragma GCC target("avx2")
#define SUFFIX avx2
#define VW 4
#define VSQRT(x) ((vd)_mm256_sqrt_pd((__m256d)(x)))
#include "optim_body.h"
#undef SUFFIX
#undef VW
#undef VSQRT
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f")
#define SUFFIX avx512
#define VW 8
#define VSQRT(x) ((vd)_mm512_sqrt_pd((__m512d)(x)))
#include "optim_body.h"
#undef SUFFIX
#undef VW
#undef VSQRT
#pragma GCC pop_options
#endif // GP_X86

const gp_optim_path *gp_optim_for(const gp_isa *isa) {
#if GP_X86
  if (strcmp(isa->name, "avx512") == 0) return &optim_path_avx512;
  if (strcmp(isa->name, "avx2") == 0) return &optim_path_avx2;
#endif
  return &optim_path_generic;
}

double gp_sum_squares(const float *x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) {
    double g = x[i];
    s += g * g;
  }
  return s;
}
