// Elementwise kernels of the dense layers, f32 or bf16 storage with f32 math: bias over rows
// and its gradient (a column sum in row order, into f32), residual add, gradient accumulation,
// scaling, and dtype conversion. Each output element is computed by one thread, so the thread
// count cannot change a result.
#include "common.hpp"
#include "dense.hpp"

namespace pmoe {
namespace {

// out[i] = f(i) for i < n, in parallel.
template <typename T, typename F> void for_each_element(int64_t n, T *out, F f) {
#pragma omp parallel for num_threads(threads_for(n)) schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = store<T>(f(i));
}

} // namespace
} // namespace pmoe

namespace pmoe_impl {

int bias_add(int32_t dtype, int32_t rows, int32_t cols, const void *bias, void *x, void *) {
    return guarded("pmoe_bias_add", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const T *b = static_cast<const T *>(bias);
            T *y = static_cast<T *>(x);
            // Row by row: an index modulo cols per element kept the loop from vectorising and
            // cost about as much as the linear layer's GEMM.
#pragma omp parallel for num_threads(threads_for(int64_t(rows) * cols)) schedule(static)
            for (int32_t r = 0; r < rows; r++) {
                T *row = y + int64_t(r) * cols;
                for (int32_t j = 0; j < cols; j++) row[j] = store<T>(load(row[j]) + load(b[j]));
            }
            return PMOE_OK;
        });
    });
}

int bias_backward(int32_t dtype, int32_t rows, int32_t cols, const void *dout, float *dbias,
                  void *) {
    return guarded("pmoe_bias_backward", [&] {
        return with_dtype(dtype, [&](auto t) {
            add_bias_gradient(rows, cols, static_cast<const decltype(t) *>(dout), dbias);
            return PMOE_OK;
        });
    });
}

int add(int32_t dtype, int64_t n, const void *a, const void *b, void *out, void *) {
    return guarded("pmoe_add", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const T *x = static_cast<const T *>(a), *y = static_cast<const T *>(b);
            for_each_element(n, static_cast<T *>(out),
                             [&](int64_t i) { return load(x[i]) + load(y[i]); });
            return PMOE_OK;
        });
    });
}

int accumulate(int32_t dtype, int64_t n, const void *x, void *y, void *) {
    return guarded("pmoe_accumulate", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const T *src = static_cast<const T *>(x);
            T *dst = static_cast<T *>(y);
            for_each_element(n, dst, [&](int64_t i) { return load(dst[i]) + load(src[i]); });
            return PMOE_OK;
        });
    });
}

int scale(int32_t dtype, int64_t n, float alpha, void *x, void *) {
    return guarded("pmoe_scale", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            T *v = static_cast<T *>(x);
            for_each_element(n, v, [&](int64_t i) { return load(v[i]) * alpha; });
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
                const S *from = static_cast<const S *>(src);
                for_each_element(n, static_cast<D *>(dst), [&](int64_t i) { return load(from[i]); });
                return PMOE_OK;
            });
        });
    });
}

} // namespace pmoe_impl
