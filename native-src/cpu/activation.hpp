// The activations' row functions at each instruction-set level (activation_spans.inc): the
// baseline's in activation.cpp, the AVX-512 ones in activation_avx512.cpp.
#pragma once

#include <cstdint>

namespace pmoe {
namespace avx512_act {
template <typename T> void forward_row(int32_t act, int32_t cols, const T *in, T *out);
template <typename T>
void backward_row(int32_t act, int32_t cols, const T *in, const T *grad_out, T *grad_in);
} // namespace avx512_act
} // namespace pmoe
