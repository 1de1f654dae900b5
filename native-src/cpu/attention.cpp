// Causal multi-head self-attention on a fused qkv buffer, the straightforward way: the
// probabilities [B, H, T, T] are materialised and kept for the backward. One thread computes a
// whole (batch, head) pair, whose rows and columns of out/dqkv no other pair touches, so the
// result does not depend on the thread count.
#include <omp.h>

#include <vector>

#include "checks.hpp"
#include "dense.hpp"

namespace pmoe {
namespace {

// Where one (batch, head) pair lives: row t of q is q + t * stride (k, v likewise), D wide.
struct Head {
    int64_t T, D, stride;
    const float *q, *k, *v;
};

Head head_of(const float *qkv, int64_t b, int64_t h, int64_t T, int64_t C, int64_t H) {
    const float *base = qkv + b * T * 3 * C + h * (C / H);
    return {T, C / H, 3 * C, base, base + C, base + 2 * C};
}

float dot(int64_t n, const float *a, const float *b) {
    return lane_sum<float>(n, [&](int64_t i) { return a[i] * b[i]; });
}

// att[t, s] = softmax_{s <= t}(q_t . k_s * scale), 0 above the diagonal; out_t = sum_s att * v_s.
void attend(const Head &hd, float *att, float *out, int64_t out_stride) {
    const float scale = 1.0f / std::sqrt(float(hd.D));
    for (int64_t t = 0; t < hd.T; t++) {
        float *a = att + t * hd.T;
        const float *q = hd.q + t * hd.stride;
        float max = -INFINITY;
        for (int64_t s = 0; s <= t; s++) {
            a[s] = dot(hd.D, q, hd.k + s * hd.stride) * scale;
            max = std::max(max, a[s]);
        }
        double sum = 0;
        for (int64_t s = 0; s <= t; s++) {
            a[s] = std::exp(a[s] - max);
            sum += a[s];
        }
        const float inv = float(1.0 / sum);
        for (int64_t s = 0; s <= t; s++) a[s] *= inv;
        for (int64_t s = t + 1; s < hd.T; s++) a[s] = 0.0f;
        float *o = out + t * out_stride;
        for (int64_t d = 0; d < hd.D; d++) o[d] = 0.0f;
        for (int64_t s = 0; s <= t; s++) {
            const float *v = hd.v + s * hd.stride;
            for (int64_t d = 0; d < hd.D; d++) o[d] += a[s] * v[d];
        }
    }
}

// For query t, with datt_s = dout_t . v_s: dv_s += att_ts * dout_t; the softmax gives
// dpre_s = att_ts * (datt_s - sum_s' att_ts' * datt_s'); then dq_t += dpre_s * scale * k_s and
// dk_s += dpre_s * scale * q_t. `datt` is T floats of scratch; dq/dk/dv share qkv's layout.
void attend_backward(const Head &hd, const float *att, const float *dout, int64_t dout_stride,
                     float *dq, float *datt) {
    const float scale = 1.0f / std::sqrt(float(hd.D));
    float *dk = dq + (hd.k - hd.q), *dv = dq + (hd.v - hd.q);
    for (int64_t t = 0; t < hd.T; t++)
        for (float *g : {dq, dk, dv})
            for (int64_t d = 0; d < hd.D; d++) g[t * hd.stride + d] = 0.0f;
    for (int64_t t = 0; t < hd.T; t++) {
        const float *a = att + t * hd.T, *g = dout + t * dout_stride, *q = hd.q + t * hd.stride;
        for (int64_t s = 0; s <= t; s++) {
            datt[s] = dot(hd.D, g, hd.v + s * hd.stride);
            float *dvs = dv + s * hd.stride;
            for (int64_t d = 0; d < hd.D; d++) dvs[d] += a[s] * g[d];
        }
        const float mean =
            float(lane_sum<double>(t + 1, [&](int64_t s) { return a[s] * datt[s]; }));
        float *dqt = dq + t * hd.stride;
        for (int64_t s = 0; s <= t; s++) {
            const float dpre = a[s] * (datt[s] - mean) * scale;
            const float *ks = hd.k + s * hd.stride;
            float *dks = dk + s * hd.stride;
            for (int64_t d = 0; d < hd.D; d++) dqt[d] += dpre * ks[d];
            for (int64_t d = 0; d < hd.D; d++) dks[d] += dpre * q[d];
        }
    }
}

} // namespace
} // namespace pmoe

using namespace pmoe;

extern "C" {

PMOE_API int pmoe_attention_forward(int32_t batch, int32_t seq, int32_t channels, int32_t heads,
                                    const float *qkv, float *att, float *out, void *stream) {
    return guarded("pmoe_attention_forward", [&] {
        PMOE_CHECK(check_attention_forward(batch, seq, channels, heads, qkv, att, out));
        if (batch == 0) return PMOE_OK;
        const int64_t B = batch, T = seq, C = channels, H = heads;
#pragma omp parallel for collapse(2) num_threads(threads_for(B * T * T * C)) schedule(static)
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < H; h++)
                attend(head_of(qkv, b, h, T, C, H), att + (b * H + h) * T * T,
                       out + b * T * C + h * (C / H), C);
        return PMOE_OK;
    });
}

PMOE_API int pmoe_attention_backward(int32_t batch, int32_t seq, int32_t channels,
                                     int32_t heads, const float *qkv, const float *att,
                                     const float *dout, float *dqkv, void *stream) {
    return guarded("pmoe_attention_backward", [&] {
        PMOE_CHECK(check_attention_backward(batch, seq, channels, heads, qkv, att, dout, dqkv));
        if (batch == 0) return PMOE_OK;
        const int64_t B = batch, T = seq, C = channels, H = heads;
        const int threads = threads_for(B * T * T * C);
        // Scratch row per thread, allocated here: nothing may throw inside the parallel region.
        std::vector<float> scratch(size_t(threads) * T);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < H; h++)
                attend_backward(head_of(qkv, b, h, T, C, H), att + (b * H + h) * T * T,
                                dout + b * T * C + h * (C / H), C,
                                dqkv + b * T * 3 * C + h * (C / H),
                                scratch.data() + omp_get_thread_num() * T);
        return PMOE_OK;
    });
}

} // extern "C"
