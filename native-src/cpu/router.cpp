// Router: per-token scores (softmax or sigmoid) and top-k selection, and their backward.
// One thread handles a token from start to finish, so results do not depend on the thread count.
#include "common.hpp"

namespace pmoe {
namespace {

// ids = the k largest logits in decreasing order, ties to the lower id: insertion into a sorted
// list (values kept in `values`, the k-th also in a register) where a candidate must beat an
// entry strictly, so equal values stay in id order. Softmax and sigmoid are increasing, so
// this is the top-k of the scores, without the ties that rounding the scores would create.
void select_top_k(const float *logits, int32_t experts, int32_t k, int32_t *ids, float *values) {
    int32_t n = 0;
    float kth = 0.0f; // values[k - 1] once the list is full
    for (int32_t e = 0; e < experts; e++) {
        const float v = logits[e];
        if (n == k && !(v > kth)) continue;
        int32_t i = n < k ? n++ : k - 1;
        for (; i > 0 && v > values[i - 1]; i--) {
            ids[i] = ids[i - 1];
            values[i] = values[i - 1];
        }
        ids[i] = e;
        values[i] = v;
        if (n == k) kth = values[k - 1];
    }
}

// The weights row first holds the selected logits (select_top_k's scratch). Softmax keeps
// exp(logit - max) in `scores` until the end: the selected ones, divided by their own sum,
// are exactly the softmax over the selected logits (the max is selected).
void route_token(const pmoe_router_config &cfg, const float *logits, float *scores,
                 float *weights, int32_t *ids) {
    const int32_t E = cfg.experts, K = cfg.top_k;
    const bool softmax = cfg.score_func == PMOE_SCORE_SOFTMAX;
    select_top_k(logits, E, K, ids, weights);
    if (softmax) {
        const float max = weights[0];
        for (int32_t e = 0; e < E; e++) scores[e] = exp_approx(logits[e] - max);
    } else {
        for (int32_t e = 0; e < E; e++) scores[e] = sigmoid_approx(logits[e]);
    }
    if (cfg.renormalize) {
        double selected = 0;
        for (int32_t j = 0; j < K; j++) selected += scores[ids[j]];
        for (int32_t j = 0; j < K; j++) weights[j] = float(scores[ids[j]] / selected);
    }
    if (softmax) {
        double total = 0;
        for (int32_t e = 0; e < E; e++) total += scores[e];
        for (int32_t e = 0; e < E; e++) scores[e] = float(scores[e] / total);
    }
    if (!cfg.renormalize)
        for (int32_t j = 0; j < K; j++) weights[j] = scores[ids[j]];
}

// First the gradient on the scores, built in grad_logits: grad_scores plus the weights'
// gradient at the selected experts. w_j = s[id_j], or with renormalization w_j = s[id_j] / S,
// S = sum_j s[id_j], whose gradient on s[id_j] is (g_j - sum_i w_i g_i) / S.
// Then through the score function: softmax s * (g - <s, g>), sigmoid g * s * (1 - s).
void backprop_token(const pmoe_router_config &cfg, const float *scores, const int32_t *ids,
                    const float *grad_weights, const float *grad_scores, float *grad_logits) {
    const int32_t E = cfg.experts, K = cfg.top_k;
    for (int32_t e = 0; e < E; e++) grad_logits[e] = grad_scores ? grad_scores[e] : 0.0f;
    if (cfg.renormalize) {
        double sum = 0, mean_grad = 0;
        for (int32_t j = 0; j < K; j++) sum += scores[ids[j]];
        for (int32_t j = 0; j < K; j++) mean_grad += scores[ids[j]] / sum * grad_weights[j];
        for (int32_t j = 0; j < K; j++)
            grad_logits[ids[j]] += float((grad_weights[j] - mean_grad) / sum);
    } else {
        for (int32_t j = 0; j < K; j++) grad_logits[ids[j]] += grad_weights[j];
    }
    if (cfg.score_func == PMOE_SCORE_SOFTMAX) {
        double dot = 0;
        for (int32_t e = 0; e < E; e++) dot += double(scores[e]) * grad_logits[e];
        for (int32_t e = 0; e < E; e++) grad_logits[e] = float(scores[e] * (grad_logits[e] - dot));
    } else {
        for (int32_t e = 0; e < E; e++)
            grad_logits[e] = grad_logits[e] * scores[e] * (1.0f - scores[e]);
    }
}

} // namespace
} // namespace pmoe

namespace pmoe_impl {

int router_forward(const pmoe_router_config *cfg, const float *logits, float *scores,
                   float *topk_weights, int32_t *topk_ids, void *) {
    return guarded("pmoe_router_forward", [&] {
        const pmoe_router_config c = *cfg;
        PMOE_CHECK(require_finite("logits", logits, c.tokens, c.experts, "token", "expert"));
#pragma omp parallel for num_threads(threads_for(int64_t(c.tokens) * c.experts * EXP_WORK)) schedule(static)
        for (int32_t t = 0; t < c.tokens; t++)
            route_token(c, logits + int64_t(t) * c.experts, scores + int64_t(t) * c.experts,
                        topk_weights + int64_t(t) * c.top_k, topk_ids + int64_t(t) * c.top_k);
        return PMOE_OK;
    });
}

int router_backward(const pmoe_router_config *cfg, const float *scores, const int32_t *topk_ids,
                    const float *grad_topk_weights, const float *grad_scores, float *grad_logits,
                    void *) {
    return guarded("pmoe_router_backward", [&] {
        const pmoe_router_config c = *cfg;
        PMOE_CHECK(require_ids_in_range("topk_ids", topk_ids, int64_t(c.tokens) * c.top_k, 0,
                                        c.experts));
#pragma omp parallel for num_threads(threads_for(int64_t(c.tokens) * c.experts * EXP_WORK)) schedule(static)
        for (int32_t t = 0; t < c.tokens; t++) {
            const int64_t row = int64_t(t) * c.experts, slots = int64_t(t) * c.top_k;
            backprop_token(c, scores + row, topk_ids + slots, grad_topk_weights + slots,
                           grad_scores ? grad_scores + row : nullptr, grad_logits + row);
        }
        return PMOE_OK;
    });
}

} // namespace pmoe_impl
