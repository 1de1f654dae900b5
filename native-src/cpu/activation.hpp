// The activations' span functions at each instruction-set level (activation_spans.inc): the
// baseline's in activation.cpp, the AVX-512 ones in activation_avx512.cpp.
#pragma once

#include <cstdint>

namespace pmoe {
namespace avx512_act {
void forward_span(int32_t act, int64_t n, const float *x, const float *up, float *out);
void backward_span(int32_t act, int64_t n, const float *x, const float *up, const float *g, float *gx,
                   float *gup);
} // namespace avx512_act
} // namespace pmoe
