// Plumbing shared by the CUDA kernels of the dense transformer operators.
#pragma once

#include <algorithm>
#include <cmath>

#include "common.cuh"

namespace pmoe {
namespace cuda {

// out[c] += sum_r term(r, c) for c < cols, where term is dout[r, c], or dout[r, c] * xhat[r, c]
// with xhat = (x[r, c] - mean[r]) * rstd[r] when x is given (mean may be NULL: RMSNorm). The
// gradients of biases and norm weights, in f32 for T = float or __nv_bfloat16 storage of dout
// and x. No atomics: fixed chunks of rows are summed in double, each in row order, then the
// chunks in chunk order, so the result depends on the sizes only.
template <typename T>
int add_column_sums(int64_t rows, int64_t cols, const T *dout, const T *x, const float *mean,
                    const float *rstd, float *out, void *stream);

} // namespace cuda
} // namespace pmoe
