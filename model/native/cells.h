// Fused cell kernels of the native backend (cells.c).
#ifndef GP_CELLS_H
#define GP_CELLS_H
#include "gp.h"
#endif
