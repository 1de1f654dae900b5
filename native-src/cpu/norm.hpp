// The row normalisations' per-row functions at each instruction-set level (norm_rows.inc): the
// baseline's in norm.cpp, the AVX-512 ones in norm_avx512.cpp.
#pragma once

#include <cstdint>

namespace pmoe {
namespace avx512_norm {
template <typename T>
void norm_forward_row(bool centred, int64_t cols, float eps, const float *x, const float *weight,
                      const float *bias, T *out, float *mean, float *rstd);
template <typename T>
void norm_backward_row(bool centred, int64_t cols, const float *x, const float *weight, float mean,
                       float rstd, const float *dout, T *dx);
template <typename T>
void norm_gradient_block(bool centred, int64_t rows, int64_t cols, int64_t c0, int64_t width, const T *x,
                         const float *mean, const float *rstd, const T *dout, float *dweight, float *dbias);
} // namespace avx512_norm
} // namespace pmoe
