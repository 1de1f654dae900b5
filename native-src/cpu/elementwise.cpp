// Elementwise kernels of the dense layers, f32 or bf16 storage with f32 math: bias over rows
// and its gradient (a column sum in row order, into f32), residual add, gradient accumulation,
// scaling, and dtype conversion. Each output element is computed by one thread, so the thread
// count cannot change a result. The loops (elementwise_spans.inc) run 8 lanes wide here and 16
// in elementwise_avx512.cpp, by the level in use (the same bits either way).
#include <algorithm>
#include <cmath>

#include "common.hpp"
#include "dense.hpp"
#include "elementwise.hpp"

namespace pmoe {
namespace avx2_elem {
#include "elementwise_spans.inc"
} // namespace avx2_elem

namespace {

// span(i0, n) over blocks of [0, total), in parallel; the blocks depend on total only.
template <typename F> void for_each_span(int64_t total, F span) {
    constexpr int64_t block = 4096;
#pragma omp parallel for num_threads(threads_for(total)) schedule(static)
    for (int64_t i0 = 0; i0 < total; i0 += block) span(i0, std::min(block, total - i0));
}

} // namespace
} // namespace pmoe

namespace pmoe_impl {

using pmoe::for_each_span;
using pmoe::at_level_in_use;
namespace avx2 = pmoe::avx2_elem;
namespace avx512 = pmoe::avx512_elem;

int bias_add(int32_t dtype, int32_t rows, int32_t cols, const void *bias, void *x, void *) {
    return guarded("pmoe_bias_add", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const auto span = at_level_in_use(&avx2::bias_add_span<T>, &avx512::bias_add_span<T>);
            const T *b = static_cast<const T *>(bias);
            T *y = static_cast<T *>(x);
            // Row by row: an index modulo cols per element kept the loop from vectorising and
            // cost about as much as the linear layer's GEMM.
#pragma omp parallel for num_threads(threads_for(int64_t(rows) * cols)) schedule(static)
            for (int32_t r = 0; r < rows; r++) span(cols, b, y + int64_t(r) * cols);
            return PMOE_OK;
        });
    });
}

int bias_backward(int32_t dtype, int32_t rows, int32_t cols, const void *dout, float *dbias,
                  void *) {
    return guarded("pmoe_bias_backward", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const auto block = at_level_in_use(&avx2::bias_gradient_block<T>, &avx512::bias_gradient_block<T>);
            const T *d = static_cast<const T *>(dout);
            pmoe::for_each_column_block(rows, cols, [&](int64_t c0, int64_t width) {
                block(rows, cols, c0, width, d, dbias);
            });
            return PMOE_OK;
        });
    });
}

int add(int32_t dtype, int64_t n, const void *a, const void *b, void *out, void *) {
    return guarded("pmoe_add", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const auto span = at_level_in_use(&avx2::add_span<T>, &avx512::add_span<T>);
            const T *x = static_cast<const T *>(a), *y = static_cast<const T *>(b);
            T *z = static_cast<T *>(out);
            for_each_span(n, [&](int64_t i, int64_t len) { span(len, x + i, y + i, z + i); });
            return PMOE_OK;
        });
    });
}

int accumulate(int32_t dtype, int64_t n, const void *x, void *y, void *) {
    return guarded("pmoe_accumulate", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const auto span = at_level_in_use(&avx2::accumulate_span<T>, &avx512::accumulate_span<T>);
            const T *src = static_cast<const T *>(x);
            T *dst = static_cast<T *>(y);
            for_each_span(n, [&](int64_t i, int64_t len) { span(len, src + i, dst + i); });
            return PMOE_OK;
        });
    });
}

int scale(int32_t dtype, int64_t n, float alpha, void *x, void *) {
    return guarded("pmoe_scale", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const auto span = at_level_in_use(&avx2::scale_span<T>, &avx512::scale_span<T>);
            T *v = static_cast<T *>(x);
            for_each_span(n, [&](int64_t i, int64_t len) { span(len, alpha, v + i); });
            return PMOE_OK;
        });
    });
}

// Converts between storage types; the same dtype is a plain copy.
int convert(int64_t n, int32_t src_dtype, const void *src, int32_t dst_dtype, void *dst, void *) {
    return guarded("pmoe_convert", [&] {
        return with_dtype(src_dtype, [&](auto s) {
            return with_dtype(dst_dtype, [&](auto d) {
                using S = decltype(s);
                using D = decltype(d);
                const auto span = at_level_in_use(&avx2::convert_span<S, D>, &avx512::convert_span<S, D>);
                const S *from = static_cast<const S *>(src);
                D *to = static_cast<D *>(dst);
                for_each_span(n, [&](int64_t i, int64_t len) { span(len, from + i, to + i); });
                return PMOE_OK;
            });
        });
    });
}

} // namespace pmoe_impl
