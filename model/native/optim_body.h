// The elementwise loops of optim.c, written once and compiled per instruction set
// (optim.c includes this file under each path's target pragma): the compiler vectorizes
// the plain loops, Adam's is written with VW-lane vectors. Each element is independent
// and computed with IEEE operations only (+, −, ×, ÷, √, float↔double conversions; no
// FMA under -ffp-contract=off), so every vector width gives the bits of the scalar loop.
//
// Expects SUFFIX (name suffix), VW (float64 lanes) and VSQRT (√ of a vector of VW
// doubles) defined by the including file.

#define GP_OCAT2(a, b) a##_##b
#define GP_OCAT(a, b) GP_OCAT2(a, b)
#define GP_ONAME(f) GP_OCAT(f, SUFFIX)

static void GP_ONAME(add_into)(float *dst, const float *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = dst[i] + src[i];
}

static void GP_ONAME(scale)(float *x, size_t n, double s) {
  for (size_t i = 0; i < n; i++) x[i] = (float)((double)x[i] * s);
}

// params[i] −= lr · grad[i]
static void GP_ONAME(sgd)(float *params, const float *grad, size_t n, double lr) {
  for (size_t i = 0; i < n; i++) params[i] = (float)((double)params[i] - lr * (double)grad[i]);
}

// m[i] = first ? grad[i] : μ·m[i] + grad[i];  params[i] −= lr · m[i]
static void GP_ONAME(momentum)(float *params, const float *grad, float *m, size_t n, double lr, double mu, int first) {
  for (size_t i = 0; i < n; i++) {
    float mi = first ? grad[i] : (float)(mu * (double)m[i] + (double)grad[i]);
    m[i] = mi;
    params[i] = (float)((double)params[i] - lr * (double)mi);
  }
}

// m[i] = β1·m[i] + (1−β1)·g;  v[i] = β2·v[i] + ((1−β2)·g)·g;
// params[i] −= (lr · (m[i]/c1)) / (√v[i]/c2 + ε), with m[i] and v[i] as stored (float32).
static inline void GP_ONAME(adam_one)(float *params, const float *grad, float *m, float *v, size_t i, double lr, double b1,
                                      double b2, double ob1, double ob2, double eps, double c1, double c2) {
  double g = grad[i];
  float mi = (float)(b1 * (double)m[i] + ob1 * g);
  float vi = (float)(b2 * (double)v[i] + (ob2 * g) * g);
  m[i] = mi;
  v[i] = vi;
  params[i] = (float)((double)params[i] - (lr * ((double)mi / c1)) / (sqrt((double)vi) / c2 + eps));
}

// The same, VW elements at a time in float64 lanes (the compiler will not vectorize a
// libm sqrt call, which may set errno), then the tail one by one.
static void GP_ONAME(adam)(float *params, const float *grad, float *m, float *v, size_t n, double lr, double b1, double b2,
                           double eps, double c1, double c2) {
  typedef float vf __attribute__((vector_size(VW * 4)));
  typedef double vd __attribute__((vector_size(VW * 8)));
  const double ob1 = 1 - b1, ob2 = 1 - b2;
  const vd B1 = (vd){} + b1, B2 = (vd){} + b2, OB1 = (vd){} + ob1, OB2 = (vd){} + ob2;
  const vd LR = (vd){} + lr, EPS = (vd){} + eps, C1 = (vd){} + c1, C2 = (vd){} + c2;
  size_t i = 0;
  for (; i + VW <= n; i += VW) {
    vf gf, mf, vf_, pf;
    memcpy(&gf, grad + i, sizeof gf);
    memcpy(&mf, m + i, sizeof mf);
    memcpy(&vf_, v + i, sizeof vf_);
    memcpy(&pf, params + i, sizeof pf);
    vd g = __builtin_convertvector(gf, vd);
    vf mi = __builtin_convertvector(B1 * __builtin_convertvector(mf, vd) + OB1 * g, vf);
    vf vi = __builtin_convertvector(B2 * __builtin_convertvector(vf_, vd) + (OB2 * g) * g, vf);
    memcpy(m + i, &mi, sizeof mi);
    memcpy(v + i, &vi, sizeof vi);
    vd step = (LR * (__builtin_convertvector(mi, vd) / C1)) / (VSQRT(__builtin_convertvector(vi, vd)) / C2 + EPS);
    vf p = __builtin_convertvector(__builtin_convertvector(pf, vd) - step, vf);
    memcpy(params + i, &p, sizeof p);
  }
  for (; i < n; i++) GP_ONAME(adam_one)(params, grad, m, v, i, lr, b1, b2, ob1, ob2, eps, c1, c2);
}

static const gp_optim_path GP_ONAME(optim_path) = {
  GP_ONAME(add_into), GP_ONAME(scale), GP_ONAME(sgd), GP_ONAME(momentum), GP_ONAME(adam),
};

#undef GP_ONAME
#undef GP_OCAT
#undef GP_OCAT2
