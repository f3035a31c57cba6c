// Shared declarations of the native kernel set (the Node-API binding is addon.c).
#ifndef GP_H
#define GP_H
#include <stddef.h>
#include <stdint.h>

// The x86 paths (avx512, avx2: intrinsics, target attributes, CPU feature checks) are
// compiled only by an x86 compiler, and not with -DGP_PORTABLE_ONLY (which simulates a
// non-x86 build on an x86 machine). Without them only the portable generic path is built.
#if (defined(__x86_64__) || defined(__i386__)) && !defined(GP_PORTABLE_ONLY)
#define GP_X86 1
#define GP_PATH_NAMES "avx512, avx2, generic"
#else
#define GP_X86 0
#define GP_PATH_NAMES "generic"
#endif

// One instruction-set path: the GEMM micro-kernel with its tile and the elementwise table.
typedef void (*gp_gemm_kernel)(int kc, const float *a, const float *b, float *c, int ldc, int first);

typedef struct {
  const char *name;
  int mr, nr;
  gp_gemm_kernel kernel;
  // Elementwise, n values: out = f(x).
  void (*vexp)(const float *x, float *out, size_t n);
  void (*vsigmoid)(const float *x, float *out, size_t n);
  void (*vtanh)(const float *x, float *out, size_t n);
} gp_isa;

// Paths: "avx512", "avx2" (x86 builds only), "generic". Returns NULL for a name not built here.
const gp_isa *gp_isa_named(const char *name);
// Whether name is a path of some build (avx512, avx2, generic), built here or not.
int gp_isa_known(const char *name);
// Whether this CPU can run the path (generic: always; NULL: no).
int gp_isa_supported(const gp_isa *isa);
// Whether this CPU has the feature ("avx512f", "avx2", "fma"); 0 when the x86 paths are not built.
int gp_cpu_has(const char *feature);
// The best supported path.
const gp_isa *gp_isa_best(void);

int gp_sgemm(const gp_isa *isa, int M, int N, int K, const float *A, int transA, const float *B, int transB, float *C);
// op(B) packed whole for reuse (gemm.c): its size in floats, the packing, and the product with it.
size_t gp_packed_b_size(const gp_isa *isa, int N, int K);
void gp_pack_b_all(const gp_isa *isa, int N, int K, const float *B, int transB, float *dst);
int gp_sgemm_packed(const gp_isa *isa, int M, int N, int K, const float *A, int transA, const float *Bp, float *C);
void gp_transpose(const float *src, int R, int C, float *dst);
void gp_scatter_add_rows(const float *src, const int32_t *ids, int n, int C, float *out, int rows);
double gp_peak_gflops(const gp_isa *isa, double ms);

// Elementwise tables per path (vmath_*.c).
#if GP_X86
void gp_vexp_avx512(const float *, float *, size_t);
void gp_vsigmoid_avx512(const float *, float *, size_t);
void gp_vtanh_avx512(const float *, float *, size_t);
void gp_vexp_avx2(const float *, float *, size_t);
void gp_vsigmoid_avx2(const float *, float *, size_t);
void gp_vtanh_avx2(const float *, float *, size_t);
#endif
void gp_vexp_generic(const float *, float *, size_t);
void gp_vsigmoid_generic(const float *, float *, size_t);
void gp_vtanh_generic(const float *, float *, size_t);

#endif
