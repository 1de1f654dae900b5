// LayerNorm and RMSNorm (f32 or bf16 storage, f32 math and statistics, f32 weight gradients),
// forward and backward, as cpu/norm.cpp: RMSNorm is LayerNorm with
// the mean fixed at 0 and no bias, so one kernel pair serves both (mean == nullptr: RMSNorm).
// A block per row computes the row statistics with block reductions; the weight and bias
// gradients are column sums over the rows (add_column_sums), not atomics.
#include "dense.cuh"

namespace pmoe {
namespace cuda {
namespace {

constexpr int kThreads = 128;

unsigned row_blocks(int64_t rows) { return unsigned(rows > 65535 * 16 ? 65535 * 16 : rows); }

// mean (centred only) and rstd of each row, then out = (x - mean) * rstd * weight (+ bias).
template <typename T>
__global__ void __launch_bounds__(kThreads)
norm_forward_kernel(int64_t rows, int64_t cols, float eps, const T *x, const T *weight,
                    const T *bias, T *out, float *mean, float *rstd) {
    __shared__ float scratch[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * cols;
        float mu = 0.0f;
        if (mean) {
            float sum = 0.0f;
            for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += to_float(xr[c]);
            mu = block_reduce(sum, Sum(), scratch) / float(cols);
        }
        float squares = 0.0f;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            const float d = to_float(xr[c]) - mu;
            squares += d * d;
        }
        const float var = block_reduce(squares, Sum(), scratch) / float(cols);
        const float s = float(1.0 / sqrt(double(var) + eps));
        T *o = out + r * cols;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
            o[c] = from_float<T>((to_float(xr[c]) - mu) * s * to_float(weight[c]) +
                                 (bias ? to_float(bias[c]) : 0.0f));
        if (threadIdx.x == 0) {
            if (mean) mean[r] = mu;
            rstd[r] = s;
        }
    }
}

// With g = dout * weight and xhat = (x - mean) * rstd:
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)); the mean(g) term only when centred.
template <typename T>
__global__ void __launch_bounds__(kThreads)
norm_backward_kernel(int64_t rows, int64_t cols, const T *x, const T *weight, const float *mean,
                     const float *rstd, const T *dout, T *dx) {
    __shared__ float scratch[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * cols, *d = dout + r * cols;
        const float mu = mean ? mean[r] : 0.0f, s = rstd[r];
        float sum_g = 0.0f, sum_gx = 0.0f;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            const float g = to_float(d[c]) * to_float(weight[c]);
            sum_g += g;
            sum_gx += g * ((to_float(xr[c]) - mu) * s);
        }
        const float mean_g = mean ? block_reduce(sum_g, Sum(), scratch) / float(cols) : 0.0f;
        const float mean_gx = block_reduce(sum_gx, Sum(), scratch) / float(cols);
        T *dxr = dx + r * cols;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
            dxr[c] = from_float<T>(s * (to_float(d[c]) * to_float(weight[c]) - mean_g -
                                        (to_float(xr[c]) - mu) * s * mean_gx));
    }
}

// partial[chunk, c] = sum over the chunk's rows, in order, of term(r, c) (see add_column_sums).
template <typename T>
__global__ void column_partials_kernel(int64_t rows, int64_t cols, int64_t chunk_rows,
                                       const T *dout, const T *x, const float *mean,
                                       const float *rstd, double *partial) {
    const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    const int64_t r0 = int64_t(blockIdx.y) * chunk_rows;
    const int64_t r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
    double acc = 0.0;
    for (int64_t r = r0; r < r1; r++) {
        const float d = to_float(dout[r * cols + c]);
        acc += x ? double(d * ((to_float(x[r * cols + c]) - (mean ? mean[r] : 0.0f)) * rstd[r]))
                 : double(d);
    }
    partial[blockIdx.y * cols + c] = acc;
}

// out[c] += the chunks' partial sums, added in chunk order and rounded once.
__global__ void add_column_partials_kernel(int64_t chunks, int64_t cols, const double *partial,
                                           float *out) {
    const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    double acc = out[c];
    for (int64_t i = 0; i < chunks; i++) acc += partial[i * cols + c];
    out[c] = float(acc);
}

} // namespace

template <typename T>
int add_column_sums(int64_t rows, int64_t cols, const T *dout, const T *x, const float *mean,
                    const float *rstd, float *out, void *stream) {
    // At least 64 rows per chunk, and at most 4096 chunks (the grid's y dimension).
    const int64_t chunk_rows = std::max<int64_t>(64, ceil_div(rows, 4096));
    const int64_t chunks = ceil_div(rows, chunk_rows);
    DeviceBuffer partial;
    PMOE_CHECK(partial.allocate(sizeof(double) * chunks * cols, stream, "column partial sums"));
    const unsigned column_blocks = unsigned(ceil_div(cols, kThreads));
    PMOE_CHECK(launch("column_partials", column_partials_kernel<T>,
                      dim3(column_blocks, unsigned(chunks)), kThreads, 0, stream, rows, cols,
                      chunk_rows, dout, x, mean, rstd, partial.as<double>()));
    return launch("add_column_partials", add_column_partials_kernel, column_blocks, kThreads, 0,
                  stream, chunks, cols, partial.as<const double>(), out);
}

template int add_column_sums<float>(int64_t, int64_t, const float *, const float *,
                                    const float *, const float *, float *, void *);
template int add_column_sums<__nv_bfloat16>(int64_t, int64_t, const __nv_bfloat16 *,
                                            const __nv_bfloat16 *, const float *, const float *,
                                            float *, void *);

} // namespace cuda
} // namespace pmoe

namespace pmoe_impl {

int layernorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps, const void *x,
                      const void *weight, const void *bias, void *out, float *mean, float *rstd,
                      void *stream) {
    return guarded("pmoe_layernorm_forward", [&] {
        return with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            return launch("layernorm_forward", norm_forward_kernel<T>, row_blocks(rows), kThreads,
                          0, stream, int64_t(rows), int64_t(cols), eps, static_cast<const T *>(x),
                          static_cast<const T *>(weight), static_cast<const T *>(bias),
                          static_cast<T *>(out), mean, rstd);
        });
    });
}

int layernorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x, const void *weight,
                       const float *mean, const float *rstd, const void *dout, void *dx,
                       float *dweight, float *dbias, void *stream) {
    return guarded("pmoe_layernorm_backward", [&] {
        return with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const T *xs = static_cast<const T *>(x), *d = static_cast<const T *>(dout);
            PMOE_CHECK(launch("layernorm_backward", norm_backward_kernel<T>, row_blocks(rows),
                              kThreads, 0, stream, int64_t(rows), int64_t(cols), xs,
                              static_cast<const T *>(weight), mean, rstd, d,
                              static_cast<T *>(dx)));
            PMOE_CHECK(add_column_sums<T>(rows, cols, d, xs, mean, rstd, dweight, stream));
            return add_column_sums<T>(rows, cols, d, nullptr, nullptr, nullptr, dbias, stream);
        });
    });
}

int rmsnorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps, const void *x,
                    const void *weight, void *out, float *rstd, void *stream) {
    return guarded("pmoe_rmsnorm_forward", [&] {
        return with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            return launch("rmsnorm_forward", norm_forward_kernel<T>, row_blocks(rows), kThreads, 0,
                          stream, int64_t(rows), int64_t(cols), eps, static_cast<const T *>(x),
                          static_cast<const T *>(weight), static_cast<const T *>(nullptr),
                          static_cast<T *>(out), static_cast<float *>(nullptr), rstd);
        });
    });
}

int rmsnorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x, const void *weight,
                     const float *rstd, const void *dout, void *dx, float *dweight, void *stream) {
    return guarded("pmoe_rmsnorm_backward", [&] {
        return with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const T *xs = static_cast<const T *>(x), *d = static_cast<const T *>(dout);
            const float *no_mean = nullptr;
            PMOE_CHECK(launch("rmsnorm_backward", norm_backward_kernel<T>, row_blocks(rows),
                              kThreads, 0, stream, int64_t(rows), int64_t(cols), xs,
                              static_cast<const T *>(weight), no_mean, rstd, d,
                              static_cast<T *>(dx)));
            return add_column_sums<T>(rows, cols, d, xs, no_mean, rstd, dweight, stream);
        });
    });
}

} // namespace pmoe_impl
