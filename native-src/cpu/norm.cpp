// Row normalisation: LayerNorm (centred, with bias) and RMSNorm (not centred, no bias). One
// implementation serves both: RMSNorm is LayerNorm with the mean fixed at 0 and no bias.
// Row statistics are lane sums in double; weight/bias gradients are column sums in row order,
// into f32 whatever the storage of x, weight and out (f32 or bf16). The per-row math
// (norm_rows.inc) runs 8 lanes wide here and 16 in norm_avx512.cpp, by the level in use (the
// same bits either way).
#include <algorithm>
#include <cmath>

#include "common.hpp"
#include "dense.hpp"
#include "norm.hpp"

namespace pmoe {
namespace avx2_norm {
#include "norm_rows.inc"
} // namespace avx2_norm

namespace {

// The row functions of the level in use, for storage T.
template <typename T> struct NormRows {
    decltype(&avx2_norm::norm_forward_row<T>) forward;
    decltype(&avx2_norm::norm_backward_row<T>) backward;
    decltype(&avx2_norm::norm_gradient_block<T>) gradients;
};

template <typename T> const NormRows<T> &norm_rows_in_use() {
    static const NormRows<T> avx2{&avx2_norm::norm_forward_row<T>, &avx2_norm::norm_backward_row<T>,
                                  &avx2_norm::norm_gradient_block<T>};
    static const NormRows<T> avx512{&avx512_norm::norm_forward_row<T>, &avx512_norm::norm_backward_row<T>,
                                    &avx512_norm::norm_gradient_block<T>};
    return *at_level_in_use(&avx2, &avx512);
}

// mean (centred only) and rstd of each row, then out = xhat * weight (+ bias).
template <typename T>
void norm_forward(bool centred, int64_t rows, int64_t cols, float eps, const T *x,
                  const T *weight, const T *bias, T *out, float *mean, float *rstd) {
    const auto forward_row = norm_rows_in_use<T>().forward;
#pragma omp parallel for num_threads(threads_for(rows * cols)) schedule(static)
    for (int64_t r = 0; r < rows; r++)
        forward_row(centred, cols, eps, x + r * cols, weight, bias, out + r * cols,
                    centred ? mean + r : nullptr, rstd + r);
}

// dx (norm_backward_row), dweight += sum_r dout * xhat and, with dbias (LayerNorm), dbias +=
// sum_r dout (f32; norm_gradient_block), the mean's gradient only when centred.
template <typename T>
void norm_backward(bool centred, int64_t rows, int64_t cols, const T *x, const T *weight,
                   const float *mean, const float *rstd, const T *dout, T *dx, float *dweight,
                   float *dbias) {
    const NormRows<T> &f = norm_rows_in_use<T>();
#pragma omp parallel for num_threads(threads_for(rows * cols)) schedule(static)
    for (int64_t r = 0; r < rows; r++)
        f.backward(centred, cols, x + r * cols, weight, centred ? mean[r] : 0.0f, rstd[r],
                   dout + r * cols, dx + r * cols);
    for_each_column_block(rows, cols, [&](int64_t c0, int64_t width) {
        f.gradients(centred, rows, cols, c0, width, x, mean, rstd, dout, dweight, dbias);
    });
}

} // namespace
} // namespace pmoe

namespace pmoe_impl {

int layernorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps, const void *x,
                      const void *weight, const void *bias, void *out, float *mean, float *rstd,
                      void *) {
    return guarded("pmoe_layernorm_forward", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            norm_forward(true, rows, cols, eps, static_cast<const T *>(x),
                         static_cast<const T *>(weight), static_cast<const T *>(bias),
                         static_cast<T *>(out), mean, rstd);
            return PMOE_OK;
        });
    });
}

int layernorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x, const void *weight,
                       const float *mean, const float *rstd, const void *dout, void *dx,
                       float *dweight, float *dbias, void *) {
    return guarded("pmoe_layernorm_backward", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            norm_backward(true, rows, cols, static_cast<const T *>(x),
                          static_cast<const T *>(weight), mean, rstd, static_cast<const T *>(dout),
                          static_cast<T *>(dx), dweight, dbias);
            return PMOE_OK;
        });
    });
}

int rmsnorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps, const void *x,
                    const void *weight, void *out, float *rstd, void *) {
    return guarded("pmoe_rmsnorm_forward", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            norm_forward<T>(false, rows, cols, eps, static_cast<const T *>(x),
                            static_cast<const T *>(weight), nullptr, static_cast<T *>(out),
                            nullptr, rstd);
            return PMOE_OK;
        });
    });
}

int rmsnorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x, const void *weight,
                     const float *rstd, const void *dout, void *dx, float *dweight, void *) {
    return guarded("pmoe_rmsnorm_backward", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            norm_backward(false, rows, cols, static_cast<const T *>(x),
                          static_cast<const T *>(weight), nullptr, rstd,
                          static_cast<const T *>(dout), static_cast<T *>(dx), dweight, nullptr);
            return PMOE_OK;
        });
    });
}

} // namespace pmoe_impl
