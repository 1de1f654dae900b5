// Optimizer kernels over flat f32 buffers (as cpu/optimizer.cpp): the AdamW update on the
// gradients scaled by the clipping factor, one thread per parameter (writing the f32 or bf16
// working copy of the updated masters when asked), and the sum of squares behind gradient-norm
// clipping, by a fixed tree: blocks of a fixed number of elements reduce in double, then one
// block adds the block sums.
#include "dense.cuh"

namespace pmoe {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kSquaresPerBlock = 1 << 16;

// The bias corrections are computed once on the host, in double, as on the CPU. working may be
// NULL (no copy; W is then float).
template <typename W>
__global__ void adamw_kernel(int64_t n, float *params, const float *grads, float grad_scale,
                             float *m, float *v, float lr, float beta1, float beta2, float eps,
                             float weight_decay, float correction1, float correction2, W *working) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float g = grads[i] * grad_scale, p = params[i];
        const float mi = beta1 * m[i] + (1.0f - beta1) * g;
        const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        const float updated =
            p - lr * ((mi / correction1) / (sqrtf(vi / correction2) + eps) + weight_decay * p);
        params[i] = updated;
        if (working) working[i] = from_float<W>(updated);
    }
}

// partial[b] = sum of x[i]^2 over block b's kSquaresPerBlock elements, in double.
__global__ void __launch_bounds__(kThreads)
sum_squares_partial_kernel(int64_t n, const float *x, double *partial) {
    __shared__ double scratch[32];
    const int64_t i0 = int64_t(blockIdx.x) * kSquaresPerBlock;
    const int64_t i1 = i0 + kSquaresPerBlock < n ? i0 + kSquaresPerBlock : n;
    double acc = 0.0;
    for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) acc += double(x[i]) * x[i];
    acc = block_reduce(acc, Sum(), scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// *total = sum of values[0..n), one block, fixed order.
__global__ void __launch_bounds__(kThreads)
sum_doubles_kernel(int64_t n, const double *values, double *total) {
    __shared__ double scratch[32];
    double acc = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += values[i];
    acc = block_reduce(acc, Sum(), scratch);
    if (threadIdx.x == 0) *total = acc;
}

} // namespace
} // namespace cuda
} // namespace pmoe

namespace pmoe_impl {

int adamw_step(int64_t n, float *params, const float *grads, float grad_scale, float *m, float *v,
               float lr, float beta1, float beta2, float eps, float weight_decay, int32_t step,
               int32_t working_dtype, void *working, void *stream) {
    return guarded("pmoe_adamw_step", [&] {
        const float correction1 = float(1.0 - std::pow(double(beta1), step));
        const float correction2 = float(1.0 - std::pow(double(beta2), step));
        return with_device_dtype(working_dtype, [&](auto t) {
            using W = decltype(t);
            return launch("adamw", adamw_kernel<W>, grid_for(n, kThreads), kThreads, 0, stream,
                          n, params, grads, grad_scale, m, v, lr, beta1, beta2, eps, weight_decay,
                          correction1, correction2, static_cast<W *>(working));
        });
    });
}

// sum_squares is device memory, like x.
int sum_squares(int64_t n, const float *x, double *sum_squares, void *stream) {
    return guarded("pmoe_sum_squares", [&] {
        const int64_t blocks = ceil_div(n, kSquaresPerBlock);
        DeviceBuffer partial;
        PMOE_CHECK(partial.allocate(sizeof(double) * (blocks > 0 ? blocks : 1), stream,
                                    "sum of squares partial sums"));
        if (blocks > 0)
            PMOE_CHECK(launch("sum_squares_partial", sum_squares_partial_kernel, unsigned(blocks),
                              kThreads, 0, stream, n, x, partial.as<double>()));
        return launch("sum_squares_total", sum_doubles_kernel, 1, kThreads, 0, stream, blocks,
                      partial.as<const double>(), sum_squares);
    });
}

} // namespace pmoe_impl
