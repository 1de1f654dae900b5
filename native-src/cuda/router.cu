// Router (scores + top-k, and backward) and the load-balancing losses, one warp per token.
// Same semantics as cpu/router.cpp and cpu/losses.cpp: top-k on the logits (the score
// functions are increasing), ties to the lower expert id.
#include "common.cuh"

namespace pmoe {
namespace cuda {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kThreads = 32 * kWarpsPerBlock;

// Check slots (InputChecks) of this file.
constexpr int kCheckLogits = 0, kCheckIds = 1, kCheckCounts = 2;

struct Pick {
    float value;
    int id;
};

// (value desc, id asc): the order in which the router picks experts.
__device__ __forceinline__ bool before(float v, int id, Pick p) {
    return p.id < 0 || v > p.value || (v == p.value && id < p.id);
}

__device__ __forceinline__ Pick better(Pick a, Pick b) {
    return b.id >= 0 && before(b.value, b.id, a) ? b : a;
}

// The best logit strictly after `prev` in pick order, over the whole row (a warp).
__device__ Pick next_pick(const float *row, int experts, Pick prev) {
    Pick best{0.0f, -1};
    for (int e = threadIdx.x & 31; e < experts; e += 32) {
        const float v = row[e];
        const bool after_prev = prev.id < 0 || v < prev.value || (v == prev.value && e > prev.id);
        if (after_prev && before(v, e, best)) best = Pick{v, e};
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
        const Pick other{__shfl_xor_sync(kFullMask, best.value, offset),
                         __shfl_xor_sync(kFullMask, best.id, offset)};
        best = better(best, other);
    }
    return best;
}

__device__ __forceinline__ float score_of(float logit, float max, bool softmax) {
    return softmax ? expf(logit - max) : 1.0f / (1.0f + expf(-logit));
}

// One warp per token: pick the top-k (lane j keeps pick j), then scores and weights.
// Softmax works on exp(logit - max) until the end: the picked ones divided by their own sum are
// exactly the softmax over the picked logits.
__global__ void __launch_bounds__(kThreads)
router_forward_kernel(pmoe_router_config cfg, const float *logits, float *scores,
                      float *topk_weights, int32_t *topk_ids, unsigned long long *checks) {
    const int token = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (token >= cfg.tokens) return;
    const int E = cfg.experts, K = cfg.top_k;
    const bool softmax = cfg.score_func == PMOE_SCORE_SOFTMAX;
    const float *row = logits + int64_t(token) * E;
    float *srow = scores + int64_t(token) * E;

    for (int e = lane; e < E; e += 32)
        if (!isfinite(row[e])) record_bad(checks, kCheckLogits, int64_t(token) * E + e);

    Pick pick{0.0f, -1};
    float max = 0.0f;
    for (int j = 0; j < K; j++) {
        pick = next_pick(row, E, pick); // the same in every lane
        if (j == 0) max = pick.value;
        if (pick.id < 0) break; // only with non-finite logits (reported above)
        if (lane == j % 32) topk_ids[int64_t(token) * K + j] = pick.id;
    }
    __syncwarp();

    float total = 0.0f;
    for (int e = lane; e < E; e += 32) {
        const float s = score_of(row[e], max, softmax);
        srow[e] = s;
        total += s;
    }
    total = warp_reduce(total, Sum());
    __syncwarp(); // srow is read across lanes below

    // Weights: the picked scores, in pick order; each lane handles its picks j = lane + 32 i.
    float selected = 0.0f;
    if (cfg.renormalize)
        for (int j = 0; j < K; j++) {
            const int id = topk_ids[int64_t(token) * K + j];
            if (id >= 0 && id < E) selected += srow[id];
        }
    for (int j = lane; j < K; j += 32) {
        const int id = topk_ids[int64_t(token) * K + j];
        const float s = id >= 0 && id < E ? srow[id] : 0.0f;
        topk_weights[int64_t(token) * K + j] = cfg.renormalize ? s / selected : softmax ? s / total : s;
    }
    __syncwarp();
    if (softmax)
        for (int e = lane; e < E; e += 32) srow[e] /= total;
}

// One warp per token. The gradient on the scores is grad_scores plus the weights' gradient at
// the picked experts: w_j = s[id_j], or with renormalisation w_j = s[id_j] / S, whose gradient on
// s[id_j] is (g_j - sum_i w_i g_i) / S. Then through the score function.
__global__ void __launch_bounds__(kThreads)
router_backward_kernel(pmoe_router_config cfg, const float *scores, const int32_t *topk_ids,
                       const float *grad_topk_weights, const float *grad_scores,
                       float *grad_logits, unsigned long long *checks) {
    const int token = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (token >= cfg.tokens) return;
    const int E = cfg.experts, K = cfg.top_k;
    const float *srow = scores + int64_t(token) * E;
    const int32_t *ids = topk_ids + int64_t(token) * K;
    const float *gw = grad_topk_weights + int64_t(token) * K;

    float sum = 0.0f, mean_grad = 0.0f; // every lane computes them, in pick order
    if (cfg.renormalize) {
        for (int j = 0; j < K; j++)
            if (ids[j] >= 0 && ids[j] < E) sum += srow[ids[j]];
        for (int j = 0; j < K; j++)
            if (ids[j] >= 0 && ids[j] < E) mean_grad += srow[ids[j]] / sum * gw[j];
    }
    for (int j = lane; j < K; j += 32)
        if (ids[j] < 0 || ids[j] >= E) record_bad(checks, kCheckIds, int64_t(token) * K + j);

    float dot = 0.0f;
    for (int e = lane; e < E; e += 32) {
        float g = grad_scores ? grad_scores[int64_t(token) * E + e] : 0.0f;
        for (int j = 0; j < K; j++)
            if (ids[j] == e) g += cfg.renormalize ? (gw[j] - mean_grad) / sum : gw[j];
        grad_logits[int64_t(token) * E + e] = g;
        dot += srow[e] * g;
    }
    dot = warp_reduce(dot, Sum());
    __syncwarp();
    for (int e = lane; e < E; e += 32) {
        float &g = grad_logits[int64_t(token) * E + e];
        const float s = srow[e];
        g = cfg.score_func == PMOE_SCORE_SOFTMAX ? s * (g - dot) : g * s * (1.0f - s);
    }
}

// ---- losses ----

// expert_counts[e] += slots routed to e (zeroed before). Integer atomics: the result does not
// depend on their order.
__global__ void count_experts_kernel(int64_t slots, int experts, const int32_t *ids,
                                     int32_t *counts, unsigned long long *checks) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s < slots; s += stride) {
        const int id = ids[s];
        if (id < 0 || id >= experts)
            record_bad(checks, kCheckIds, s);
        else
            atomicAdd(counts + id, 1);
    }
}

constexpr int kTokensPerChunk = 64;

// partial[c] = sum over the tokens t of chunk c of sum_e counts[e] * scores[t, e], in double and
// in a fixed order (thread strides over experts, then a block reduction).
__global__ void __launch_bounds__(kThreads)
aux_loss_partial_kernel(int tokens, int experts, const float *scores, const int32_t *counts,
                        double *partial) {
    __shared__ double scratch[32];
    const int t0 = blockIdx.x * kTokensPerChunk, t1 = min(tokens, t0 + kTokensPerChunk);
    double acc = 0.0;
    for (int e = threadIdx.x; e < experts; e += blockDim.x) {
        double column = 0.0;
        for (int t = t0; t < t1; t++) column += scores[int64_t(t) * experts + e];
        acc += column * counts[e];
    }
    acc = block_reduce(acc, Sum(), scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// *out = scale * sum of values[0..n), one block, fixed order.
__global__ void __launch_bounds__(kThreads)
scaled_sum_kernel(int n, const double *values, double scale, float *out) {
    __shared__ double scratch[32];
    double acc = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += values[i];
    acc = block_reduce(acc, Sum(), scratch);
    if (threadIdx.x == 0) *out = float(scale * acc);
}

// grad_scores[t, e] = scale * counts[e]; counts checked in [0, slots].
__global__ void aux_loss_backward_kernel(int tokens, int experts, const int32_t *counts,
                                         int64_t slots, double scale, float *grad_scores,
                                         unsigned long long *checks) {
    const int64_t n = int64_t(tokens) * experts, stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        const int e = int(i % experts);
        const int c = counts[e];
        if (i < experts && (c < 0 || c > slots)) record_bad(checks, kCheckCounts, e);
        grad_scores[i] = float(scale * c);
    }
}

// log(sum_e exp(x_e)) of a row, by a warp (every lane gets it).
__device__ float warp_logsumexp(const float *row, int n) {
    float max = -INFINITY;
    for (int e = threadIdx.x & 31; e < n; e += 32) max = fmaxf(max, row[e]);
    max = warp_reduce(max, Max());
    float sum = 0.0f;
    for (int e = threadIdx.x & 31; e < n; e += 32) sum += expf(row[e] - max);
    sum = warp_reduce(sum, Sum());
    return max + logf(sum);
}

// lse2[t] = logsumexp(logits[t])^2; non-finite logits recorded.
__global__ void __launch_bounds__(kThreads)
z_loss_terms_kernel(int tokens, int experts, const float *logits, double *lse2,
                    unsigned long long *checks) {
    const int token = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
    if (token >= tokens) return;
    const float *row = logits + int64_t(token) * experts;
    for (int e = threadIdx.x & 31; e < experts; e += 32)
        if (!isfinite(row[e])) record_bad(checks, kCheckLogits, int64_t(token) * experts + e);
    const float lse = warp_logsumexp(row, experts);
    if ((threadIdx.x & 31) == 0) lse2[token] = double(lse) * lse;
}

// grad[t, e] += scale * lse_t * softmax(logits_t)[e].
__global__ void __launch_bounds__(kThreads)
z_loss_backward_kernel(int tokens, int experts, const float *logits, float scale,
                       float *grad_logits, unsigned long long *checks) {
    const int token = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
    if (token >= tokens) return;
    const float *row = logits + int64_t(token) * experts;
    float *grad = grad_logits + int64_t(token) * experts;
    for (int e = threadIdx.x & 31; e < experts; e += 32)
        if (!isfinite(row[e])) record_bad(checks, kCheckLogits, int64_t(token) * experts + e);
    const float lse = warp_logsumexp(row, experts);
    for (int e = threadIdx.x & 31; e < experts; e += 32) grad[e] += scale * lse * expf(row[e] - lse);
}

unsigned warps_grid(int tokens) { return unsigned(ceil_div(tokens, kWarpsPerBlock)); }

} // namespace
} // namespace cuda
} // namespace pmoe

namespace pmoe_impl {

// cfg is host memory (a small struct); the arrays are device memory.
int router_forward(const pmoe_router_config *cfg, const float *logits, float *scores,
                   float *topk_weights, int32_t *topk_ids, void *stream) {
    return guarded("pmoe_router_forward", [&] {
        const pmoe_router_config c = *cfg;
        InputChecks checks;
        PMOE_CHECK(checks.begin(stream));
        PMOE_CHECK(launch("router_forward", router_forward_kernel, warps_grid(c.tokens), kThreads,
                          0, stream, c, logits, scores, topk_weights, topk_ids, checks.device()));
        PMOE_CHECK(checks.finish(stream));
        return finite_error(checks, kCheckLogits, "logits", logits, c.experts, "token", "expert");
    });
}

int router_backward(const pmoe_router_config *cfg, const float *scores, const int32_t *topk_ids,
                    const float *grad_topk_weights, const float *grad_scores, float *grad_logits,
                    void *stream) {
    return guarded("pmoe_router_backward", [&] {
        const pmoe_router_config c = *cfg;
        InputChecks checks;
        PMOE_CHECK(checks.begin(stream));
        PMOE_CHECK(launch("router_backward", router_backward_kernel, warps_grid(c.tokens),
                          kThreads, 0, stream, c, scores, topk_ids, grad_topk_weights, grad_scores,
                          grad_logits, checks.device()));
        PMOE_CHECK(checks.finish(stream));
        return ids_error(checks, kCheckIds, "topk_ids", topk_ids, 0, c.experts);
    });
}

int aux_loss_forward(int32_t tokens, int32_t experts, int32_t top_k, const float *scores,
                     const int32_t *topk_ids, float coeff, float *loss, int32_t *expert_counts,
                     void *stream) {
    return guarded("pmoe_aux_loss_forward", [&] {
        const int64_t slots = int64_t(tokens) * top_k;
        const int chunks = int(ceil_div(tokens, kTokensPerChunk));
        InputChecks checks;
        PMOE_CHECK(checks.begin(stream));
        DeviceBuffer partial;
        PMOE_CHECK(partial.allocate(sizeof(double) * chunks, stream, "aux loss partial sums"));
        PMOE_CHECK(memset_async(expert_counts, 0, sizeof(int32_t) * experts, stream));
        PMOE_CHECK(launch("count_experts", count_experts_kernel, grid_for(slots, 256), 256, 0,
                          stream, slots, experts, topk_ids, expert_counts, checks.device()));
        PMOE_CHECK(launch("aux_loss_partial", aux_loss_partial_kernel, chunks, kThreads, 0, stream,
                          tokens, experts, scores, expert_counts, partial.as<double>()));
        // loss = coeff * E / (T * K * T) * sum_t sum_e counts[e] * scores[t, e]
        const double scale = double(coeff) * experts / (double(slots) * tokens);
        PMOE_CHECK(launch("aux_loss_sum", scaled_sum_kernel, 1, kThreads, 0, stream, chunks,
                          partial.as<const double>(), scale, loss));
        PMOE_CHECK(checks.finish(stream));
        return ids_error(checks, kCheckIds, "topk_ids", topk_ids, 0, experts);
    });
}

int aux_loss_backward(int32_t tokens, int32_t experts, int32_t top_k, const int32_t *expert_counts,
                      float coeff, float grad_loss, float *grad_scores, void *stream) {
    return guarded("pmoe_aux_loss_backward", [&] {
        const int64_t slots = int64_t(tokens) * top_k;
        const double scale = double(grad_loss) * coeff * experts / (double(slots) * tokens);
        InputChecks checks;
        PMOE_CHECK(checks.begin(stream));
        PMOE_CHECK(launch("aux_loss_backward", aux_loss_backward_kernel,
                          grid_for(int64_t(tokens) * experts, 256), 256, 0, stream, tokens,
                          experts, expert_counts, slots, scale, grad_scores, checks.device()));
        PMOE_CHECK(checks.finish(stream));
        return ids_error(checks, kCheckCounts, "expert_counts", expert_counts, 0, slots + 1);
    });
}

int z_loss_forward(int32_t tokens, int32_t experts, const float *logits, float coeff, float *loss,
                   void *stream) {
    return guarded("pmoe_z_loss_forward", [&] {
        InputChecks checks;
        PMOE_CHECK(checks.begin(stream));
        DeviceBuffer terms;
        PMOE_CHECK(terms.allocate(sizeof(double) * tokens, stream, "z-loss terms"));
        PMOE_CHECK(launch("z_loss_terms", z_loss_terms_kernel, warps_grid(tokens), kThreads, 0,
                          stream, tokens, experts, logits, terms.as<double>(), checks.device()));
        PMOE_CHECK(launch("z_loss_sum", scaled_sum_kernel, 1, kThreads, 0, stream, tokens,
                          terms.as<const double>(), double(coeff) / tokens, loss));
        PMOE_CHECK(checks.finish(stream));
        return finite_error(checks, kCheckLogits, "logits", logits, experts, "token", "expert");
    });
}

int z_loss_backward(int32_t tokens, int32_t experts, const float *logits, float coeff,
                    float grad_loss, float *grad_logits, void *stream) {
    return guarded("pmoe_z_loss_backward", [&] {
        InputChecks checks;
        PMOE_CHECK(checks.begin(stream));
        const float scale = float(double(grad_loss) * coeff * 2.0 / tokens);
        PMOE_CHECK(launch("z_loss_backward", z_loss_backward_kernel, warps_grid(tokens), kThreads,
                          0, stream, tokens, experts, logits, scale, grad_logits, checks.device()));
        PMOE_CHECK(checks.finish(stream));
        return finite_error(checks, kCheckLogits, "logits", logits, experts, "token", "expert");
    });
}

} // namespace pmoe_impl
