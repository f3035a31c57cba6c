// exp, sigmoid and tanh over float vectors of VW lanes, written once with GCC vector
// extensions and compiled per instruction set (vmath_avx512.c, vmath_avx2.c,
// vmath_generic.c). Only IEEE-exact operations (+, −, ×, ÷, compares, integer bit
// moves), no FMA and no contraction (-ffp-contract=off): each lane computes the same
// bits whatever the vector width. Polynomials: Cephes expf and tanhf.
//
// Expects VW (lanes) and SUFFIX (name suffix) defined by the including file.

#include <stddef.h>
#include <string.h>

#define GP_CAT2(a, b) a##_##b
#define GP_CAT(a, b) GP_CAT2(a, b)
#define GP_NAME(f) GP_CAT(f, SUFFIX)

typedef float vf __attribute__((vector_size(VW * 4)));
typedef int vi __attribute__((vector_size(VW * 4)));

static inline vf splat(float s) { return (vf){} + s; }
static inline vf sel(vi m, vf a, vf b) { return (vf)((m & (vi)a) | (~m & (vi)b)); }

static inline vf v_exp(vf x) {
  // Clamp so that 2^n stays a normal float: e^x for x < −87.3 returns ~1e−38, not 0.
  x = sel(x > splat(88.3f), splat(88.3f), x);
  x = sel(x < splat(-87.3f), splat(-87.3f), x);
  // n = round(x / ln 2) by the 1.5·2^23 trick (round to nearest even, exact).
  vf n = (x * splat(1.44269504088896341f) + splat(12582912.0f)) - splat(12582912.0f);
  // r = x − n·ln 2 in two parts (0.693359375 has few bits: n·C1 is exact).
  vf r = x - n * splat(0.693359375f);
  r = r + n * splat(2.12194440e-4f);
  vf p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  p = (p * (r * r) + r) + splat(1.0f);
  vi e = (__builtin_convertvector(n, vi) + 127) << 23;
  return p * (vf)e;
}

static inline vf v_sigmoid(vf x) { return splat(1.0f) / (splat(1.0f) + v_exp(-x)); }

static inline vf v_tanh(vf x) {
  vi neg = (vi)x < (vi){}; // the sign bit, so tanh(−0) = −0
  vf ax = sel(neg, -x, x);
  // Small |x|: odd polynomial (keeps relative accuracy near 0).
  vf z = ax * ax;
  vf p = splat(-5.70498872745e-3f);
  p = p * z + splat(2.06390887954e-2f);
  p = p * z - splat(5.37397155531e-2f);
  p = p * z + splat(1.33314422036e-1f);
  p = p * z - splat(3.33332819422e-1f);
  vf small = (p * z) * ax + ax;
  // Large |x|: 1 − 2/(e^{2|x|} + 1).
  vf large = splat(1.0f) - splat(2.0f) / (v_exp(ax + ax) + splat(1.0f));
  vf t = sel(ax < splat(0.625f), small, large);
  return sel(neg, -t, t);
}

#define GP_MAP(fname, vfun)                                        \
  void GP_NAME(fname)(const float *x, float *out, size_t n) {      \
    size_t i = 0;                                                  \
    for (; i + VW <= n; i += VW) {                                 \
      vf v;                                                        \
      memcpy(&v, x + i, sizeof v);                                 \
      v = vfun(v);                                                 \
      memcpy(out + i, &v, sizeof v);                               \
    }                                                              \
    if (i < n) {                                                   \
      vf v = {};                                                   \
      memcpy(&v, x + i, (n - i) * sizeof(float));                  \
      v = vfun(v);                                                 \
      memcpy(out + i, &v, (n - i) * sizeof(float));               \
    }                                                              \
  }

GP_MAP(gp_vexp, v_exp)
GP_MAP(gp_vsigmoid, v_sigmoid)
GP_MAP(gp_vtanh, v_tanh)
