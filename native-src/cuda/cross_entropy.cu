// Fused softmax cross-entropy over the vocabulary (f32 or bf16 logits and dlogits; softmax and
// losses in f32), as cpu/cross_entropy.cpp: a block per
// row reduces the row's max and sum of exponentials; the mean loss is a one-block reduction
// over the rows in a fixed order.
#include "dense.cuh"

namespace pmoe {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kCheckTargets = 0;

unsigned row_blocks(int64_t rows) { return unsigned(rows > 65535 * 16 ? 65535 * 16 : rows); }

// The row's softmax is exp(x - max) / sum; every thread of the block gets both. A NaN is
// skipped by the max (fmaxf) but reaches the sum, so the loss is NaN as it should be.
struct Softmax {
    float max, sum;
};

template <typename T> __device__ Softmax block_softmax(const T *x, int64_t vocab, float *scratch) {
    float max = -INFINITY;
    for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) max = fmaxf(max, to_float(x[v]));
    max = block_reduce(max, Max(), scratch);
    float sum = 0.0f;
    for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) sum += expf(to_float(x[v]) - max);
    return {max, block_reduce(sum, Sum(), scratch)};
}

// A target outside [-1, vocab) is recorded (once, by thread 0); the block skips its row.
__device__ bool valid_target(int32_t target, int64_t r, int64_t vocab,
                             unsigned long long *checks) {
    const bool valid = target >= -1 && target < vocab;
    if (!valid && threadIdx.x == 0) record_bad(checks, kCheckTargets, r);
    return valid;
}

// losses[r] = logsumexp(logits[r]) - logits[r, target], 0 for an ignored row (target -1).
template <typename T>
__global__ void __launch_bounds__(kThreads)
cross_entropy_forward_kernel(int64_t rows, int64_t vocab, const T *logits,
                             const int32_t *targets, float *losses, unsigned long long *checks) {
    __shared__ float scratch[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int32_t target = targets[r];
        if (!valid_target(target, r, vocab, checks)) continue;
        if (target < 0) {
            if (threadIdx.x == 0) losses[r] = 0.0f;
            continue;
        }
        const T *x = logits + r * vocab;
        const Softmax sm = block_softmax(x, vocab, scratch);
        if (threadIdx.x == 0)
            losses[r] = float(log(double(sm.sum)) + sm.max - to_float(x[target]));
    }
}

// *mean_loss = sum of the kept rows' losses / their count (0 if none), summed in double;
// *kept_rows = that count. Either pointer may be NULL. One block.
__global__ void __launch_bounds__(kThreads)
cross_entropy_mean_kernel(int64_t rows, const int32_t *targets, const float *losses,
                          float *mean_loss, int32_t *kept_rows) {
    __shared__ double sums[32];
    __shared__ int32_t counts[32];
    double total = 0.0;
    int32_t kept = 0;
    for (int64_t r = threadIdx.x; r < rows; r += blockDim.x)
        if (targets[r] >= 0) {
            total += losses[r];
            kept++;
        }
    total = block_reduce(total, Sum(), sums);
    kept = block_reduce(kept, Sum(), counts);
    if (threadIdx.x != 0) return;
    if (mean_loss) *mean_loss = kept > 0 ? float(total / kept) : 0.0f;
    if (kept_rows) *kept_rows = kept;
}

// dlogits[r, v] = (softmax(logits[r])[v] - (v == target)) * grad_scale, zeros for an ignored
// row. The row's reductions finish before any thread writes, and each thread reads x[v] before
// writing d[v], so dlogits may alias logits.
template <typename T>
__global__ void __launch_bounds__(kThreads)
cross_entropy_backward_kernel(int64_t rows, int64_t vocab, const T *logits,
                              const int32_t *targets, float grad_scale, T *dlogits,
                              unsigned long long *checks) {
    __shared__ float scratch[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int32_t target = targets[r];
        if (!valid_target(target, r, vocab, checks)) continue;
        const T *x = logits + r * vocab;
        T *d = dlogits + r * vocab;
        if (target < 0) {
            for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) d[v] = from_float<T>(0.0f);
            continue;
        }
        const Softmax sm = block_softmax(x, vocab, scratch);
        const float inv = float(1.0 / double(sm.sum));
        for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x)
            d[v] = from_float<T>((expf(to_float(x[v]) - sm.max) * inv - (v == target ? 1.0f : 0.0f)) *
                                 grad_scale);
    }
}

} // namespace
} // namespace cuda
} // namespace pmoe

namespace pmoe_impl {

// mean_loss and kept_rows, like losses, are device memory.
int cross_entropy_forward(int32_t dtype, int32_t rows, int32_t vocab, const void *logits,
                          const int32_t *targets, float *losses, float *mean_loss,
                          int32_t *kept_rows, void *stream) {
    return guarded("pmoe_cross_entropy_forward", [&] {
        InputChecks checks;
        PMOE_CHECK(checks.begin(stream));
        if (rows > 0)
            PMOE_CHECK(with_device_dtype(dtype, [&](auto t) {
                using T = decltype(t);
                return launch("cross_entropy_forward", cross_entropy_forward_kernel<T>,
                              row_blocks(rows), kThreads, 0, stream, int64_t(rows),
                              int64_t(vocab), static_cast<const T *>(logits), targets, losses,
                              checks.device());
            }));
        if (mean_loss || kept_rows)
            PMOE_CHECK(launch("cross_entropy_mean", cross_entropy_mean_kernel, 1, kThreads, 0,
                              stream, int64_t(rows), targets, static_cast<const float *>(losses),
                              mean_loss, kept_rows));
        PMOE_CHECK(checks.finish(stream));
        return ids_error(checks, kCheckTargets, "targets", targets, -1, vocab);
    });
}

int cross_entropy_backward(int32_t dtype, int32_t rows, int32_t vocab, const void *logits,
                           const int32_t *targets, float grad_scale, void *dlogits, void *stream) {
    return guarded("pmoe_cross_entropy_backward", [&] {
        InputChecks checks;
        PMOE_CHECK(checks.begin(stream));
        PMOE_CHECK(with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            return launch("cross_entropy_backward", cross_entropy_backward_kernel<T>,
                          row_blocks(rows), kThreads, 0, stream, int64_t(rows), int64_t(vocab),
                          static_cast<const T *>(logits), targets, grad_scale,
                          static_cast<T *>(dlogits), checks.device());
        }));
        PMOE_CHECK(checks.finish(stream));
        return ids_error(checks, kCheckTargets, "targets", targets, -1, vocab);
    });
}

} // namespace pmoe_impl
