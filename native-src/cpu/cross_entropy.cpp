// Fused softmax cross-entropy over the vocabulary: the loss and dlogits of a row come straight
// from its logits, without materialising the probabilities. Logits and dlogits are f32 or bf16;
// the softmax, the losses and their mean are computed in f32/double whatever the storage. One
// thread per row; the mean loss is summed in row order afterwards.
#include "common.hpp"
#include "dense.hpp"

namespace pmoe {
namespace {

// The row's softmax is exp(x - max) / sum.
struct Softmax {
    float max;
    double sum;
};

// Row x's max and sum of exp(x - max), each exp(x - max) kept in e (vocab floats) for the
// caller. exp_approx, not libm's exp (a call per element), so that the loops vectorise: with
// expf, the backward over GPT-2's 50257 logits took as long as a whole step of `small`
// (jmh/README.md, seventh session). exp_approx makes a number of a NaN, so a row with a NaN, or
// whose max is not finite (+inf, or every logit -inf), is made NaN throughout here, as exp's
// arithmetic would make it: NaN sum, loss and gradient.
template <typename T> Softmax softmax_of(const T *x, int64_t vocab, float *e) {
    float max = -INFINITY;
    int nan = 0;
    for (int64_t v = 0; v < vocab; v++) {
        const float xv = load(x[v]);
        max = std::max(max, xv);
        nan |= xv != xv;
    }
    if (nan || !std::isfinite(max)) {
        for (int64_t v = 0; v < vocab; v++) e[v] = NAN;
        return {max, NAN};
    }
    for (int64_t v = 0; v < vocab; v++) e[v] = exp_approx(load(x[v]) - max);
    return {max, lane_sum<double>(vocab, [&](int64_t v) { return e[v]; })};
}

// Each thread's row of exp(x - max).
thread_local ThreadBuffer exps;

// row(r, e) for each row r < rows, on the team, e the thread's row of vocab floats; else the
// kernel's out-of-memory error (a thread whose row cannot be allocated runs no row).
template <typename Row> int for_each_row(const char *kernel, int64_t rows, int32_t vocab, Row row) {
    const bool ok = on_team_with_scratch(
        rows * vocab, []() -> ThreadBuffer & { return exps; }, size_t(vocab) * sizeof(float),
        [&](bool ready, float *e) {
#pragma omp for schedule(static)
            for (int64_t r = 0; r < rows; r++)
                if (ready) row(r, e);
        });
    return ok ? PMOE_OK : fail(PMOE_ERR_RUNTIME, "%s: out of memory for a row of %d floats", kernel, vocab);
}

} // namespace
} // namespace pmoe

namespace pmoe_impl {

int cross_entropy_forward(int32_t dtype, int32_t rows, int32_t vocab, const void *logits,
                          const int32_t *targets, float *losses, float *mean_loss,
                          int32_t *kept_rows, void *) {
    return guarded("pmoe_cross_entropy_forward", [&] {
        PMOE_CHECK(require_ids_in_range("targets", targets, rows, -1, vocab));
        PMOE_CHECK(with_dtype(dtype, [&](auto tag) {
            using T = decltype(tag);
            return for_each_row("pmoe_cross_entropy_forward", rows, vocab, [&](int64_t r, float *e) {
                const T *x = static_cast<const T *>(logits) + r * vocab;
                const Softmax sm = softmax_of(x, vocab, e);
                losses[r] = targets[r] < 0 ? 0.0f : float(std::log(sm.sum) + sm.max - load(x[targets[r]]));
            });
        }));
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
        return with_dtype(dtype, [&](auto tag) {
            using T = decltype(tag);
            // exp(x - max) is computed once, in e, for the sum and the gradient.
            return for_each_row("pmoe_cross_entropy_backward", rows, vocab, [&](int64_t r, float *e) {
                // Reads x[v] before writing d[v], so dlogits may alias logits.
                const T *x = static_cast<const T *>(logits) + r * vocab;
                T *d = static_cast<T *>(dlogits) + r * vocab;
                const int32_t target = targets[r];
                if (target < 0) {
                    for (int64_t v = 0; v < vocab; v++) d[v] = store<T>(0.0f);
                    return;
                }
                const float inv = float(1.0 / softmax_of(x, vocab, e).sum);
                for (int64_t v = 0; v < vocab; v++)
                    d[v] = store<T>((e[v] * inv - (v == target ? 1.0f : 0.0f)) * grad_scale);
            });
        });
    });
}

} // namespace pmoe_impl
