// exp/sigmoid/tanh for the avx2 path: 8 lanes (see vmath_body.h).
#pragma GCC target("avx2")
#define VW 8
#define SUFFIX avx2
#include "vmath_body.h"
