// The attention's row functions at each instruction-set level (attention_rows.inc): the
// baseline's in attention.cpp, the AVX-512 ones in attention_avx512.cpp.
#pragma once

#include <cstdint>

namespace pmoe {
namespace avx512_attn {
void softmax_row(float *a, int64_t t, int64_t width, uint16_t *a16, int64_t scored);
void softmax_grad_row(const float *a, float *d, int64_t t, int64_t width, float scale, uint16_t *d16,
                      uint16_t *a16);
} // namespace avx512_attn
} // namespace pmoe
