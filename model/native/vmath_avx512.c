// exp/sigmoid/tanh for the avx512 path: 16 lanes (see vmath_body.h).
#include "gp.h"
#if GP_X86 // x86 builds only (gp.h)
#pragma GCC target("avx512f")
#define VW 16
#define SUFFIX avx512
#include "vmath_body.h"
#endif
