// Elementwise kernels of the dense layers (f32), as cpu/elementwise.cpp: bias over rows and its
// gradient (a column sum, add_column_sums), residual add, gradient accumulation and scaling.
// One thread per output element in grid-stride loops.
#include "dense.cuh"

namespace pmoe {
namespace cuda {
namespace {

constexpr int kThreads = 256;

__global__ void bias_add_kernel(int64_t n, int64_t cols, const float *bias, float *x) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        x[i] += bias[i % cols];
}

__global__ void add_kernel(int64_t n, const float *a, const float *b, float *out) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = a[i] + b[i];
}

__global__ void accumulate_kernel(int64_t n, const float *x, float *y) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] += x[i];
}

__global__ void scale_kernel(int64_t n, float alpha, float *x) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        x[i] *= alpha;
}

} // namespace
} // namespace cuda
} // namespace pmoe

using namespace pmoe;
using namespace pmoe::cuda;

extern "C" {

PMOE_API int pmoe_bias_add(int32_t rows, int32_t cols, const float *bias, float *x,
                           void *stream) {
    return guarded("pmoe_bias_add", [&] {
        PMOE_CHECK(check_bias_add(rows, cols, bias, x));
        if (rows == 0) return PMOE_OK;
        const int64_t n = int64_t(rows) * cols;
        return launch("bias_add", bias_add_kernel, grid_for(n, kThreads), kThreads, 0, stream, n,
                      int64_t(cols), bias, x);
    });
}

PMOE_API int pmoe_bias_backward(int32_t rows, int32_t cols, const float *dout, float *dbias,
                                void *stream) {
    return guarded("pmoe_bias_backward", [&] {
        PMOE_CHECK(check_bias_backward(rows, cols, dout, dbias));
        if (rows == 0) return PMOE_OK;
        return add_column_sums(rows, cols, dout, nullptr, nullptr, nullptr, dbias, stream);
    });
}

PMOE_API int pmoe_add(int64_t n, const float *a, const float *b, float *out, void *stream) {
    return guarded("pmoe_add", [&] {
        PMOE_CHECK(check_add(n, a, b, out));
        if (n == 0) return PMOE_OK;
        return launch("add", add_kernel, grid_for(n, kThreads), kThreads, 0, stream, n, a, b, out);
    });
}

PMOE_API int pmoe_accumulate(int64_t n, const float *x, float *y, void *stream) {
    return guarded("pmoe_accumulate", [&] {
        PMOE_CHECK(check_accumulate(n, x, y));
        if (n == 0) return PMOE_OK;
        return launch("accumulate", accumulate_kernel, grid_for(n, kThreads), kThreads, 0, stream,
                      n, x, y);
    });
}

PMOE_API int pmoe_scale(int64_t n, float alpha, float *x, void *stream) {
    return guarded("pmoe_scale", [&] {
        PMOE_CHECK(check_scale(n, alpha, x));
        if (n == 0) return PMOE_OK;
        return launch("scale", scale_kernel, grid_for(n, kThreads), kThreads, 0, stream, n, alpha,
                      x);
    });
}

} // extern "C"
