// Fused softmax cross-entropy over the vocabulary: the loss and dlogits of a row come straight
// from its logits, without materialising the probabilities. Logits and dlogits are f32 or bf16;
// the softmax, the losses and their mean are computed in f32/double whatever the storage. One
// thread per row; the mean loss is summed in row order afterwards.
#include <atomic>

#include "common.hpp"
#include "dense.hpp"

namespace pmoe {
namespace {

thread_local ThreadBuffer exps;

// The row's softmax is exp(x - max) / sum.
struct Softmax {
    float max;
    double sum;
};

// With e (vocab floats), also keeps each exp(x - max) there for the caller.
template <typename T> Softmax softmax_of(const T *x, int64_t vocab, float *e = nullptr) {
    float max = -INFINITY;
    for (int64_t v = 0; v < vocab; v++) max = std::max(max, load(x[v]));
    // A NaN is skipped by the max but reaches the sum, so the loss is NaN as it should be.
    const double sum = lane_sum<double>(vocab, [&](int64_t v) {
        const float ev = std::exp(load(x[v]) - max);
        if (e) e[v] = ev;
        return ev;
    });
    return {max, sum};
}

} // namespace
} // namespace pmoe

namespace pmoe_impl {

int cross_entropy_forward(int32_t dtype, int32_t rows, int32_t vocab, const void *logits,
                          const int32_t *targets, float *losses, float *mean_loss,
                          int32_t *kept_rows, void *) {
    return guarded("pmoe_cross_entropy_forward", [&] {
        PMOE_CHECK(require_ids_in_range("targets", targets, rows, -1, vocab));
        with_dtype(dtype, [&](auto tag) {
            using T = decltype(tag);
#pragma omp parallel for num_threads(threads_for(int64_t(rows) * vocab)) schedule(static)
            for (int64_t r = 0; r < rows; r++) {
                const T *x = static_cast<const T *>(logits) + r * vocab;
                const Softmax sm = softmax_of(x, vocab);
                losses[r] = targets[r] < 0
                                ? 0.0f
                                : float(std::log(sm.sum) + sm.max - load(x[targets[r]]));
            }
            return PMOE_OK;
        });
        double total = 0;
        int32_t kept = 0;
        for (int64_t r = 0; r < rows; r++)
            if (targets[r] >= 0) {
                total += losses[r];
                kept++;
            }
        if (mean_loss) *mean_loss = kept > 0 ? float(total / kept) : 0.0f;
        if (kept_rows) *kept_rows = kept;
        return PMOE_OK;
    });
}

int cross_entropy_backward(int32_t dtype, int32_t rows, int32_t vocab, const void *logits,
                           const int32_t *targets, float grad_scale, void *dlogits, void *) {
    return guarded("pmoe_cross_entropy_backward", [&] {
        PMOE_CHECK(require_ids_in_range("targets", targets, rows, -1, vocab));
        const int threads = threads_for(int64_t(rows) * vocab);
        std::atomic<bool> out_of_memory{false};
        with_dtype(dtype, [&](auto tag) {
            using T = decltype(tag);
#pragma omp parallel num_threads(threads)
            {
                // The thread's row of exp(x - max), computed once for the sum and the gradient.
                float *e = exps.grow(size_t(vocab) * sizeof(float)) ? exps.as<float>() : nullptr;
                if (!e) out_of_memory = true;
#pragma omp for schedule(static)
                for (int64_t r = 0; r < rows; r++) {
                    if (!e) continue;
                    // Reads x[v] before writing d[v], so dlogits may alias logits.
                    const T *x = static_cast<const T *>(logits) + r * vocab;
                    T *d = static_cast<T *>(dlogits) + r * vocab;
                    const int32_t target = targets[r];
                    if (target < 0) {
                        for (int64_t v = 0; v < vocab; v++) d[v] = store<T>(0.0f);
                        continue;
                    }
                    const float inv = float(1.0 / softmax_of(x, vocab, e).sum);
                    for (int64_t v = 0; v < vocab; v++)
                        d[v] = store<T>((e[v] * inv - (v == target ? 1.0f : 0.0f)) * grad_scale);
                }
            }
            return PMOE_OK;
        });
        if (out_of_memory)
            return fail(PMOE_ERR_RUNTIME, "pmoe_cross_entropy_backward: out of memory for a row of %d floats",
                        vocab);
        return PMOE_OK;
    });
}

} // namespace pmoe_impl
