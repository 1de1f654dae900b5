// Load-balancing losses: the Switch/GShard auxiliary loss and the router z-loss.
// Per-token terms are computed in parallel into a buffer and summed in token order, so the
// loss does not depend on the thread count.
#include <vector>

#include "common.hpp"

namespace pmoe {
namespace {

// Sum of per-token terms term(t), in double, in token order.
// `work` estimates the cost of all terms together.
template <typename F> double sum_over_tokens(int32_t tokens, int64_t work, F term) {
    std::vector<double> terms(tokens);
#pragma omp parallel for num_threads(threads_for(work)) schedule(static)
    for (int32_t t = 0; t < tokens; t++) terms[t] = term(t);
    double total = 0;
    for (double v : terms) total += v;
    return total;
}

// log(sum_e exp(x_e)), shifted by the max so no exponential overflows.
double logsumexp(const float *x, int32_t n) {
    float max = x[0];
    for (int32_t e = 1; e < n; e++) max = x[e] > max ? x[e] : max;
    double sum = 0;
    for (int32_t e = 0; e < n; e++) sum += std::exp(double(x[e]) - max);
    return max + std::log(sum);
}

} // namespace
} // namespace pmoe

namespace pmoe_impl {

// loss = coeff * E / (T * K * T) * sum_t sum_e counts[e] * scores[t, e], which is
// coeff * E * sum_e f_e * P_e with f_e = counts[e] / (T * K) and P_e = mean_t scores[t, e].
int aux_loss_forward(int32_t tokens, int32_t experts, int32_t top_k, const float *scores,
                     const int32_t *topk_ids, float coeff, float *loss, int32_t *expert_counts,
                     void *) {
    return guarded("pmoe_aux_loss_forward", [&] {
        const int64_t slots = int64_t(tokens) * top_k;
        PMOE_CHECK(require_ids_in_range("topk_ids", topk_ids, slots, 0, experts));
        std::vector<int32_t> counts(experts, 0);
        for (int64_t s = 0; s < slots; s++) counts[topk_ids[s]]++;
        const double total = sum_over_tokens(tokens, int64_t(tokens) * experts, [&](int32_t t) {
            const float *row = scores + int64_t(t) * experts;
            double dot = 0;
            for (int32_t e = 0; e < experts; e++) dot += double(counts[e]) * row[e];
            return dot;
        });
        *loss = float(double(coeff) * experts * total / (double(slots) * tokens));
        std::memcpy(expert_counts, counts.data(), sizeof(int32_t) * experts);
        return PMOE_OK;
    });
}

// d loss / d scores[t, e] = coeff * E * counts[e] / (T * K * T), the same for every token.
int aux_loss_backward(int32_t tokens, int32_t experts, int32_t top_k, const int32_t *expert_counts,
                      float coeff, float grad_loss, float *grad_scores, void *) {
    return guarded("pmoe_aux_loss_backward", [&] {
        const int64_t slots = int64_t(tokens) * top_k;
        PMOE_CHECK(require_ids_in_range("expert_counts", expert_counts, experts, 0, slots + 1));
        std::vector<float> grad(experts);
        for (int32_t e = 0; e < experts; e++)
            grad[e] = float(double(grad_loss) * coeff * experts * expert_counts[e] /
                            (double(slots) * tokens));
#pragma omp parallel for num_threads(threads_for(int64_t(tokens) * experts)) schedule(static)
        for (int32_t t = 0; t < tokens; t++)
            std::memcpy(grad_scores + int64_t(t) * experts, grad.data(), sizeof(float) * experts);
        return PMOE_OK;
    });
}

int z_loss_forward(int32_t tokens, int32_t experts, const float *logits, float coeff, float *loss,
                   void *) {
    return guarded("pmoe_z_loss_forward", [&] {
        PMOE_CHECK(require_finite("logits", logits, tokens, experts, "token", "expert"));
        const double total = sum_over_tokens(tokens, int64_t(tokens) * experts * EXP_WORK, [&](int32_t t) {
            const double lse = logsumexp(logits + int64_t(t) * experts, experts);
            return lse * lse;
        });
        *loss = float(double(coeff) * total / tokens);
        return PMOE_OK;
    });
}

// d loss / d logits[t, e] = coeff * 2 * lse_t / T * softmax(logits_t)[e].
int z_loss_backward(int32_t tokens, int32_t experts, const float *logits, float coeff,
                    float grad_loss, float *grad_logits, void *) {
    return guarded("pmoe_z_loss_backward", [&] {
        PMOE_CHECK(require_finite("logits", logits, tokens, experts, "token", "expert"));
#pragma omp parallel for num_threads(threads_for(int64_t(tokens) * experts * EXP_WORK)) schedule(static)
        for (int32_t t = 0; t < tokens; t++) {
            const float *row = logits + int64_t(t) * experts;
            float *grad = grad_logits + int64_t(t) * experts;
            const double lse = logsumexp(row, experts);
            const double scale = double(grad_loss) * coeff * 2.0 * lse / tokens;
            for (int32_t e = 0; e < experts; e++)
                grad[e] += float(scale * std::exp(double(row[e]) - lse));
        }
        return PMOE_OK;
    });
}

} // namespace pmoe_impl
