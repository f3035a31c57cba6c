// exp/sigmoid/tanh for the avx2 path: 8 lanes (see vmath_body.h).
#include "gp.h"
#if GP_X86 // x86 builds only (gp.h)
#pragma GCC target("avx2")
#define VW 8
#define SUFFIX avx2
#include "vmath_body.h"
#endif
