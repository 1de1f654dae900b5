// Elementwise kernels of the dense layers with f32 or bf16 storage and f32 math, as
// cpu/elementwise.cpp: bias over rows and its gradient (a column sum into f32,
// add_column_sums), residual add, gradient accumulation, scaling and dtype conversion. One
// thread per output element in grid-stride loops.
#include "dense.cuh"

namespace pmoe {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void bias_add_kernel(int64_t n, int64_t cols, const T *bias, T *x) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        x[i] = from_float<T>(to_float(x[i]) + to_float(bias[i % cols]));
}

template <typename T> __global__ void add_kernel(int64_t n, const T *a, const T *b, T *out) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
}

template <typename T> __global__ void accumulate_kernel(int64_t n, const T *x, T *y) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = from_float<T>(to_float(y[i]) + to_float(x[i]));
}

template <typename T> __global__ void scale_kernel(int64_t n, float alpha, T *x) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        x[i] = from_float<T>(to_float(x[i]) * alpha);
}

template <typename S, typename D> __global__ void convert_kernel(int64_t n, const S *src, D *dst) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = from_float<D>(to_float(src[i]));
}

} // namespace
} // namespace cuda
} // namespace pmoe

using namespace pmoe;
using namespace pmoe::cuda;

extern "C" {

PMOE_API int pmoe_bias_add(int32_t dtype, int32_t rows, int32_t cols, const void *bias, void *x,
                           void *stream) {
    return guarded("pmoe_bias_add", [&] {
        PMOE_CHECK(check_bias_add(dtype, rows, cols, bias, x));
        if (rows == 0) return PMOE_OK;
        const int64_t n = int64_t(rows) * cols;
        return with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            return launch("bias_add", bias_add_kernel<T>, grid_for(n, kThreads), kThreads, 0,
                          stream, n, int64_t(cols), static_cast<const T *>(bias),
                          static_cast<T *>(x));
        });
    });
}

PMOE_API int pmoe_bias_backward(int32_t dtype, int32_t rows, int32_t cols, const void *dout,
                                float *dbias, void *stream) {
    return guarded("pmoe_bias_backward", [&] {
        PMOE_CHECK(check_bias_backward(dtype, rows, cols, dout, dbias));
        if (rows == 0) return PMOE_OK;
        return with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            return add_column_sums<T>(rows, cols, static_cast<const T *>(dout), nullptr, nullptr,
                                      nullptr, dbias, stream);
        });
    });
}

PMOE_API int pmoe_add(int32_t dtype, int64_t n, const void *a, const void *b, void *out,
                      void *stream) {
    return guarded("pmoe_add", [&] {
        PMOE_CHECK(check_add(dtype, n, a, b, out));
        if (n == 0) return PMOE_OK;
        return with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            return launch("add", add_kernel<T>, grid_for(n, kThreads), kThreads, 0, stream, n,
                          static_cast<const T *>(a), static_cast<const T *>(b),
                          static_cast<T *>(out));
        });
    });
}

PMOE_API int pmoe_accumulate(int32_t dtype, int64_t n, const void *x, void *y, void *stream) {
    return guarded("pmoe_accumulate", [&] {
        PMOE_CHECK(check_accumulate(dtype, n, x, y));
        if (n == 0) return PMOE_OK;
        return with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            return launch("accumulate", accumulate_kernel<T>, grid_for(n, kThreads), kThreads, 0,
                          stream, n, static_cast<const T *>(x), static_cast<T *>(y));
        });
    });
}

PMOE_API int pmoe_scale(int32_t dtype, int64_t n, float alpha, void *x, void *stream) {
    return guarded("pmoe_scale", [&] {
        PMOE_CHECK(check_scale(dtype, n, alpha, x));
        if (n == 0) return PMOE_OK;
        return with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            return launch("scale", scale_kernel<T>, grid_for(n, kThreads), kThreads, 0, stream, n,
                          alpha, static_cast<T *>(x));
        });
    });
}

PMOE_API int pmoe_convert(int64_t n, int32_t src_dtype, const void *src, int32_t dst_dtype,
                          void *dst, void *stream) {
    return guarded("pmoe_convert", [&] {
        PMOE_CHECK(check_convert(n, src_dtype, src, dst_dtype, dst));
        if (n == 0) return PMOE_OK;
        return with_device_dtype(src_dtype, [&](auto s) {
            return with_device_dtype(dst_dtype, [&](auto d) {
                using S = decltype(s);
                using D = decltype(d);
                return launch("convert", convert_kernel<S, D>, grid_for(n, kThreads), kThreads, 0,
                              stream, n, static_cast<const S *>(src), static_cast<D *>(dst));
            });
        });
    });
}

} // extern "C"
