#pragma once
// The back ends. Backend<cpu> is always present; Backend<cuda> exists when BLIP2_CUDA is defined
// and the including translation unit is compiled by nvcc. This is the only place that knows.
#include "cpu/backend.hpp"

#if defined(BLIP2_CUDA)
#if !defined(__CUDACC__)
#error "BLIP2_CUDA is defined: compile translation units that include blip2 with nvcc (.cu files)"
#endif
#include "cuda/backend.hpp"
#endif
