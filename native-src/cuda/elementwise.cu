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

namespace pmoe_impl {

int bias_add(int32_t dtype, int32_t rows, int32_t cols, const void *bias, void *x, void *stream) {
    return guarded("pmoe_bias_add", [&] {
        const int64_t n = int64_t(rows) * cols;
        return with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            return launch("bias_add", bias_add_kernel<T>, grid_for(n, kThreads), kThreads, 0,
                          stream, n, int64_t(cols), static_cast<const T *>(bias),
                          static_cast<T *>(x));
        });
    });
}

int bias_backward(int32_t dtype, int32_t rows, int32_t cols, const void *dout, float *dbias,
                  void *stream) {
    return guarded("pmoe_bias_backward", [&] {
        return with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            return add_column_sums<T>(rows, cols, static_cast<const T *>(dout), nullptr, nullptr,
                                      nullptr, dbias, stream);
        });
    });
}

int add(int32_t dtype, int64_t n, const void *a, const void *b, void *out, void *stream) {
    return guarded("pmoe_add", [&] {
        return with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            return launch("add", add_kernel<T>, grid_for(n, kThreads), kThreads, 0, stream, n,
                          static_cast<const T *>(a), static_cast<const T *>(b),
                          static_cast<T *>(out));
        });
    });
}

int accumulate(int32_t dtype, int64_t n, const void *x, void *y, void *stream) {
    return guarded("pmoe_accumulate", [&] {
        return with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            return launch("accumulate", accumulate_kernel<T>, grid_for(n, kThreads), kThreads, 0,
                          stream, n, static_cast<const T *>(x), static_cast<T *>(y));
        });
    });
}

int scale(int32_t dtype, int64_t n, float alpha, void *x, void *stream) {
    return guarded("pmoe_scale", [&] {
        return with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            return launch("scale", scale_kernel<T>, grid_for(n, kThreads), kThreads, 0, stream, n,
                          alpha, static_cast<T *>(x));
        });
    });
}

int convert(int64_t n, int32_t src_dtype, const void *src, int32_t dst_dtype, void *dst,
            void *stream) {
    return guarded("pmoe_convert", [&] {
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

} // namespace pmoe_impl
