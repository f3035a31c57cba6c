// Node-API binding of the native kernel set. Every entry point checks its arguments
// (types, sizes against the buffers' lengths, ids against their ranges) and throws a
// JavaScript error instead of reading or writing out of bounds. Kernels work in place
// on the Float32Arrays' memory: no copies.

#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gp.h"
#include "cells.h"

static const gp_isa *current;

#define THROW(env, ...)                              \
  do {                                               \
    char msg_[256];                                  \
    snprintf(msg_, sizeof msg_, __VA_ARGS__);        \
    napi_throw_error(env, "ERR_GP_NATIVE", msg_);    \
    return NULL;                                     \
  } while (0)

typedef struct {
  napi_env env;
  napi_value *argv;
  size_t argc;
  const char *fn;
  int failed;
} args_t;

static void fail(args_t *a, const char *msg, size_t i) {
  if (a->failed) return;
  a->failed = 1;
  char buf[256];
  snprintf(buf, sizeof buf, "%s: argument %zu %s", a->fn, i, msg);
  napi_throw_error(a->env, "ERR_GP_NATIVE", buf);
}

// A typed-array argument of type `want` (null allowed when optional): its data and length.
// An empty array may have no backing store: it is still present (NULL means absent).
static void *typed(args_t *a, size_t i, size_t *len, int optional, napi_typedarray_type want, const char *must, void *empty) {
  *len = 0;
  if (a->failed) return NULL;
  if (i >= a->argc) { fail(a, "missing", i); return NULL; }
  napi_valuetype t;
  napi_typeof(a->env, a->argv[i], &t);
  if (optional && (t == napi_null || t == napi_undefined)) return NULL;
  bool is;
  napi_is_typedarray(a->env, a->argv[i], &is);
  napi_typedarray_type type = napi_int8_array;
  void *data = NULL;
  if (is) napi_get_typedarray_info(a->env, a->argv[i], &type, len, &data, NULL, NULL);
  if (!is || type != want) { *len = 0; fail(a, must, i); return NULL; }
  return data ? data : empty;
}

static float *f32(args_t *a, size_t i, size_t *len, int optional) {
  static float empty;
  return typed(a, i, len, optional, napi_float32_array, "must be a Float32Array", &empty);
}

static int32_t *i32(args_t *a, size_t i, size_t *len, int optional) {
  static int32_t empty;
  return typed(a, i, len, optional, napi_int32_array, "must be an Int32Array", &empty);
}

// A non-negative integer argument no larger than 2^26, so products of three fit in int64.
static int64_t dim(args_t *a, size_t i) {
  if (a->failed) return 0;
  if (i >= a->argc) { fail(a, "missing", i); return 0; }
  double v;
  if (napi_get_value_double(a->env, a->argv[i], &v) != napi_ok) { fail(a, "must be a number", i); return 0; }
  if (!(v >= 0 && v <= (1 << 26) && v == (double)(int64_t)v)) { fail(a, "must be an integer in [0, 2^26]", i); return 0; }
  return (int64_t)v;
}

static int need(args_t *a, size_t i, size_t have, int64_t want) {
  if (a->failed) return 0;
  if ((int64_t)have < want) {
    char buf[128];
    snprintf(buf, sizeof buf, "has %zu values, needs %lld", have, (long long)want);
    fail(a, buf, i);
    return 0;
  }
  return 1;
}

#define ARGS(N, name)                                         \
  napi_value argv_[N];                                        \
  size_t argc_ = N;                                           \
  napi_get_cb_info(env, info, &argc_, argv_, NULL, NULL);     \
  args_t A_ = {env, argv_, argc_, name, 0};                   \
  args_t *a = &A_;

// sgemm(A, B, C, M, N, K, transA, transB): C (M×N) = op(A) (M×K) · op(B) (K×N).
static napi_value js_sgemm(napi_env env, napi_callback_info info) {
  ARGS(8, "sgemm");
  size_t la, lb, lc;
  const float *A = f32(a, 0, &la, 0), *B = f32(a, 1, &lb, 0);
  float *C = f32(a, 2, &lc, 0);
  int64_t M = dim(a, 3), N = dim(a, 4), K = dim(a, 5), tA = dim(a, 6), tB = dim(a, 7);
  if (!need(a, 0, la, M * K) || !need(a, 1, lb, K * N) || !need(a, 2, lc, M * N)) return NULL;
  if (M * N > ((int64_t)1 << 31) || M * K > ((int64_t)1 << 31) || K * N > ((int64_t)1 << 31)) THROW(env, "sgemm: %lldx%lldx%lld too large", (long long)M, (long long)N, (long long)K);
  if ((C < A + la && A < C + lc) || (C < B + lb && B < C + lc)) THROW(env, "sgemm: C must not overlap A or B");
  if (gp_sgemm(current, (int)M, (int)N, (int)K, A, tA != 0, B, tB != 0, C) != 0) THROW(env, "sgemm: out of memory");
  return NULL;
}

// A packed op(B) (packB) starts with 4 header words — a tag, the path's tile width, N, K —
// checked before use, so a buffer packed for another path or shape is refused, not misread.
enum { PACK_HEADER = 4 };
static const uint32_t PACK_TAG = 0x42504b47u;  // "GKPB"

// packedBSize(N, K): floats a packB buffer needs on the current path.
static napi_value js_packed_b_size(napi_env env, napi_callback_info info) {
  ARGS(2, "packedBSize");
  int64_t N = dim(a, 0), K = dim(a, 1);
  if (a->failed) return NULL;
  if (K * N > ((int64_t)1 << 31)) THROW(env, "packedBSize: %lldx%lld too large", (long long)K, (long long)N);
  napi_value v;
  napi_create_double(env, (double)(PACK_HEADER + gp_packed_b_size(current, (int)N, (int)K)), &v);
  return v;
}

// packB(B, P, N, K, transB): P = header + op(B) (K×N) packed for the current path.
static napi_value js_pack_b(napi_env env, napi_callback_info info) {
  ARGS(5, "packB");
  size_t lb, lp;
  const float *B = f32(a, 0, &lb, 0);
  float *P = f32(a, 1, &lp, 0);
  int64_t N = dim(a, 2), K = dim(a, 3), tB = dim(a, 4);
  if (a->failed) return NULL;
  if (K * N > ((int64_t)1 << 31)) THROW(env, "packB: %lldx%lld too large", (long long)K, (long long)N);
  if (!need(a, 0, lb, K * N) || !need(a, 1, lp, PACK_HEADER + (int64_t)gp_packed_b_size(current, (int)N, (int)K))) return NULL;
  if (P < B + lb && B < P + lp) THROW(env, "packB: P must not overlap B");
  uint32_t head[PACK_HEADER] = {PACK_TAG, (uint32_t)current->nr, (uint32_t)N, (uint32_t)K};
  memcpy(P, head, sizeof head);
  gp_pack_b_all(current, (int)N, (int)K, B, tB != 0, P + PACK_HEADER);
  return NULL;
}

// sgemmPacked(A, P, C, M, N, K, transA): C (M×N) = op(A)·op(B), op(B) packed by packB on this path.
static napi_value js_sgemm_packed(napi_env env, napi_callback_info info) {
  ARGS(7, "sgemmPacked");
  size_t la, lp, lc;
  const float *A = f32(a, 0, &la, 0), *P = f32(a, 1, &lp, 0);
  float *C = f32(a, 2, &lc, 0);
  int64_t M = dim(a, 3), N = dim(a, 4), K = dim(a, 5), tA = dim(a, 6);
  if (!need(a, 0, la, M * K) || !need(a, 2, lc, M * N)) return NULL;
  if (M * N > ((int64_t)1 << 31) || M * K > ((int64_t)1 << 31) || K * N > ((int64_t)1 << 31)) THROW(env, "sgemmPacked: %lldx%lldx%lld too large", (long long)M, (long long)N, (long long)K);
  if (!need(a, 1, lp, PACK_HEADER + (int64_t)gp_packed_b_size(current, (int)N, (int)K))) return NULL;
  uint32_t head[PACK_HEADER];
  memcpy(head, P, sizeof head);
  if (head[0] != PACK_TAG || head[2] != (uint32_t)N || head[3] != (uint32_t)K)
    THROW(env, "sgemmPacked: argument 1 is not op(B) packed by packB for N=%lld, K=%lld", (long long)N, (long long)K);
  if (head[1] != (uint32_t)current->nr) THROW(env, "sgemmPacked: argument 1 was packed for another kernel path (tile width %u, this path %d): pack it again", head[1], current->nr);
  if ((C < A + la && A < C + lc) || (C < P + lp && P < C + lc)) THROW(env, "sgemmPacked: C must not overlap A or P");
  if (gp_sgemm_packed(current, (int)M, (int)N, (int)K, A, tA != 0, P + PACK_HEADER, C) != 0) THROW(env, "sgemmPacked: out of memory");
  return NULL;
}

// transpose(src, dst, R, C): dst (C×R) = srcᵀ.
static napi_value js_transpose(napi_env env, napi_callback_info info) {
  ARGS(4, "transpose");
  size_t ls, ld;
  const float *S = f32(a, 0, &ls, 0);
  float *D = f32(a, 1, &ld, 0);
  int64_t R = dim(a, 2), C = dim(a, 3);
  if (!need(a, 0, ls, R * C) || !need(a, 1, ld, R * C)) return NULL;
  if (D < S + ls && S < D + ld) THROW(env, "transpose: dst must not overlap src");
  gp_transpose(S, (int)R, (int)C, D);
  return NULL;
}

// scatterAddRows(src, ids, out, C, rows): out (rows×C) = Σ_r one-hot(ids[r]) ⊗ src[r].
static napi_value js_scatter_add_rows(napi_env env, napi_callback_info info) {
  ARGS(5, "scatterAddRows");
  size_t ls, li, lo;
  const float *S = f32(a, 0, &ls, 0);
  const int32_t *ids = i32(a, 1, &li, 0);
  float *O = f32(a, 2, &lo, 0);
  int64_t C = dim(a, 3), rows = dim(a, 4);
  if (!need(a, 0, ls, (int64_t)li * C) || !need(a, 2, lo, rows * C)) return NULL;
  for (size_t r = 0; r < li; r++)
    if (ids[r] < 0 || ids[r] >= rows) THROW(env, "scatterAddRows: row id %d at %zu outside [0, %lld)", ids[r], r, (long long)rows);
  if (O < S + ls && S < O + lo) THROW(env, "scatterAddRows: out must not overlap src");
  gp_scatter_add_rows(S, ids, (int)li, (int)C, O, (int)rows);
  return NULL;
}

// vexp / vsigmoid / vtanh (x, out): out[i] = f(x[i]) over x.length values.
static napi_value map_fn(napi_env env, napi_callback_info info, int which) {
  static const char *names[] = {"vexp", "vsigmoid", "vtanh"};
  ARGS(2, names[which]);
  size_t lx, lo;
  const float *x = f32(a, 0, &lx, 0);
  float *o = f32(a, 1, &lo, 0);
  if (!need(a, 1, lo, (int64_t)lx)) return NULL;
  (which == 0 ? current->vexp : which == 1 ? current->vsigmoid : current->vtanh)(x, o, lx);
  return NULL;
}
static napi_value js_vexp(napi_env env, napi_callback_info info) { return map_fn(env, info, 0); }
static napi_value js_vsigmoid(napi_env env, napi_callback_info info) { return map_fn(env, info, 1); }
static napi_value js_vtanh(napi_env env, napi_callback_info info) { return map_fn(env, info, 2); }

// peakGflops(ms): the measured single-core peak of the current path (peak.c).
static napi_value js_peak(napi_env env, napi_callback_info info) {
  ARGS(1, "peakGflops");
  double ms;
  if (napi_get_value_double(env, argv_[0], &ms) != napi_ok || !(ms > 0 && ms <= 10000)) THROW(env, "peakGflops: ms must be in (0, 10000]");
  (void)a;
  napi_value v;
  napi_create_double(env, gp_peak_gflops(current, ms), &v);
  return v;
}

#include "addon_cells.inc"
#include "addon_optim.inc"
#include "addon_rows.inc"
#include "addon_gru.inc"
#include "addon_conv.inc"

static napi_value str(napi_env env, const char *s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}

// setIsa(name): force a path; throws if unknown or unsupported here. Returns the name.
static napi_value js_set_isa(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  char name[32] = "";
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  size_t len;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) THROW(env, "setIsa: expects a path name");
  const gp_isa *isa = gp_isa_named(name);
  if (!isa && gp_isa_known(name)) THROW(env, "kernel path \"%s\" is not built for this machine (this build has: " GP_PATH_NAMES ")", name);
  if (!isa) THROW(env, "unknown kernel path \"%s\"; allowed: " GP_PATH_NAMES, name);
  if (!gp_isa_supported(isa)) THROW(env, "kernel path \"%s\" is not supported by this CPU", name);
  current = isa;
  return str(env, isa->name);
}

// info(): { isa, paths: names built here that this CPU supports, features: { avx512f, avx2, fma }
// (all false in a build without the x86 paths) }.
static napi_value js_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value o, paths, feats, b;
  napi_create_object(env, &o);
  napi_set_named_property(env, o, "isa", str(env, current->name));
  napi_create_array(env, &paths);
  uint32_t n = 0;
  const char *all[] = {"avx512", "avx2", "generic"};
  for (int i = 0; i < 3; i++)
    if (gp_isa_supported(gp_isa_named(all[i]))) napi_set_element(env, paths, n++, str(env, all[i]));
  napi_set_named_property(env, o, "paths", paths);
  napi_create_object(env, &feats);
  const char *fs[] = {"avx512f", "avx2", "fma"};
  for (int i = 0; i < 3; i++) {
    napi_get_boolean(env, gp_cpu_has(fs[i]), &b);
    napi_set_named_property(env, feats, fs[i], b);
  }
  napi_set_named_property(env, o, "features", feats);
  return o;
}

NAPI_MODULE_INIT() {
  // GRADPOOL_ISA forces a path; an unknown or unsupported one makes loading fail.
  const char *want = getenv("GRADPOOL_ISA");
  if (want && *want) {
    const gp_isa *isa = gp_isa_named(want);
    if (!isa && gp_isa_known(want)) THROW(env, "GRADPOOL_ISA=%s: that path is not built for this machine (this build has: " GP_PATH_NAMES ")", want);
    if (!isa) THROW(env, "GRADPOOL_ISA=%s: unknown kernel path; allowed: " GP_PATH_NAMES, want);
    if (!gp_isa_supported(isa)) THROW(env, "GRADPOOL_ISA=%s: this CPU lacks what that path needs", want);
    current = isa;
  } else if (!current) {
    current = gp_isa_best();
  }
  napi_property_descriptor props[] = {
    {"sgemm", 0, js_sgemm, 0, 0, 0, napi_default, 0},
    {"packedBSize", 0, js_packed_b_size, 0, 0, 0, napi_default, 0},
    {"packB", 0, js_pack_b, 0, 0, 0, napi_default, 0},
    {"sgemmPacked", 0, js_sgemm_packed, 0, 0, 0, napi_default, 0},
    {"transpose", 0, js_transpose, 0, 0, 0, napi_default, 0},
    {"scatterAddRows", 0, js_scatter_add_rows, 0, 0, 0, napi_default, 0},
    {"vexp", 0, js_vexp, 0, 0, 0, napi_default, 0},
    {"vsigmoid", 0, js_vsigmoid, 0, 0, 0, napi_default, 0},
    {"vtanh", 0, js_vtanh, 0, 0, 0, napi_default, 0},
    {"setIsa", 0, js_set_isa, 0, 0, 0, napi_default, 0},
    {"info", 0, js_info, 0, 0, 0, napi_default, 0},
    {"peakGflops", 0, js_peak, 0, 0, 0, napi_default, 0},
    CELL_PROPS
    OPTIM_PROPS
    ROWS_PROPS
    GRU_PROPS
    CONV_PROPS
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
