// Activations: GeLU (tanh approximation), SiLU and SwiGLU, forward and backward, with f32 or
// bf16 storage and f32 math.
// The math on a row (activation_spans.inc) goes through sigmoid_approx (common.hpp), which
// vectorises: 8 lanes wide here, 16 in activation_avx512.cpp, by the level in use at each call
// (the same bits either way). Parallel over rows; every element is computed the same way
// whatever thread runs it.
#include <algorithm>
#include <type_traits>

#include "activation.hpp"
#include "common.hpp"

namespace pmoe {
namespace avx2_act {
#include "activation_spans.inc"
} // namespace avx2_act

namespace {

// The row functions of the level in use, for storage T.
template <typename T> struct Rows {
    decltype(&avx2_act::forward_row<T>) forward;
    decltype(&avx2_act::backward_row<T>) backward;
};

template <typename T> const Rows<T> &rows_in_use() {
    static const Rows<T> avx2{&avx2_act::forward_row<T>, &avx2_act::backward_row<T>};
    static const Rows<T> avx512{&avx512_act::forward_row<T>, &avx512_act::backward_row<T>};
    return *at_level_in_use(&avx2, &avx512);
}

} // namespace
} // namespace pmoe

namespace pmoe_impl {

int activation_forward(int32_t dtype, int32_t act, int32_t rows, int32_t cols, const void *in,
                       void *out, void *) {
    return guarded("pmoe_activation_forward", [&] {
        const int64_t in_cols = act == PMOE_ACT_SWIGLU ? 2 * int64_t(cols) : cols;
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const auto forward_row = rows_in_use<T>().forward;
            const T *src = static_cast<const T *>(in);
            T *dst = static_cast<T *>(out);
#pragma omp parallel for num_threads(threads_for(rows * in_cols)) schedule(static)
            for (int32_t r = 0; r < rows; r++)
                forward_row(act, cols, src + r * in_cols, dst + int64_t(r) * cols);
            return PMOE_OK;
        });
    });
}

int activation_backward(int32_t dtype, int32_t act, int32_t rows, int32_t cols, const void *in,
                        const void *grad_out, void *grad_in, void *) {
    return guarded("pmoe_activation_backward", [&] {
        const int64_t in_cols = act == PMOE_ACT_SWIGLU ? 2 * int64_t(cols) : cols;
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const auto backward_row = rows_in_use<T>().backward;
            const T *x = static_cast<const T *>(in), *g = static_cast<const T *>(grad_out);
            T *gx = static_cast<T *>(grad_in);
#pragma omp parallel for num_threads(threads_for(rows * in_cols)) schedule(static)
            for (int32_t r = 0; r < rows; r++)
                backward_row(act, cols, x + r * in_cols, g + int64_t(r) * cols, gx + r * in_cols);
            return PMOE_OK;
        });
    });
}

} // namespace pmoe_impl
