// exp/sigmoid/tanh for the generic path: 4 lanes (see vmath_body.h).
#define VW 4
#define SUFFIX generic
#include "vmath_body.h"
