// Causal multi-head self-attention on a fused qkv buffer, the straightforward way: the
// probabilities [B, H, T, T] are materialised (in f32) and kept for the backward. qkv, out and
// their gradients are f32 or bf16; scores, softmax and every sum run in f32 (the softmax's sum
// in double), in per-thread f32 rows that are rounded once into the output. One thread computes
// a whole (batch, head) pair, whose rows and columns of out/dqkv no other pair touches, so the
// result does not depend on the thread count.
#include <omp.h>

#include <vector>

#include "common.hpp"
#include "dense.hpp"

namespace pmoe {
namespace {

// Where one (batch, head) pair lives: row t of q is q + t * stride (k, v likewise), D wide.
template <typename T> struct Head {
    int64_t seq, D, stride;
    const T *q, *k, *v;
};

template <typename T>
Head<T> head_of(const T *qkv, int64_t b, int64_t h, int64_t seq, int64_t C, int64_t H) {
    const T *base = qkv + b * seq * 3 * C + h * (C / H);
    return {seq, C / H, 3 * C, base, base + C, base + 2 * C};
}

template <typename T> float dot(int64_t n, const T *a, const T *b) {
    return lane_sum<float>(n, [&](int64_t i) { return load(a[i]) * load(b[i]); });
}

// att[t, s] = softmax_{s <= t}(q_t . k_s * scale), 0 above the diagonal; out_t = sum_s att * v_s,
// summed in `o` (D floats of scratch).
template <typename T>
void attend(const Head<T> &hd, float *att, T *out, int64_t out_stride, float *o) {
    const float scale = 1.0f / std::sqrt(float(hd.D));
    for (int64_t t = 0; t < hd.seq; t++) {
        float *a = att + t * hd.seq;
        const T *q = hd.q + t * hd.stride;
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
        for (int64_t s = t + 1; s < hd.seq; s++) a[s] = 0.0f;
        for (int64_t d = 0; d < hd.D; d++) o[d] = 0.0f;
        for (int64_t s = 0; s <= t; s++) {
            const T *v = hd.v + s * hd.stride;
            for (int64_t d = 0; d < hd.D; d++) o[d] += a[s] * load(v[d]);
        }
        T *ot = out + t * out_stride;
        for (int64_t d = 0; d < hd.D; d++) ot[d] = store<T>(o[d]);
    }
}

// For query t, with datt_s = dout_t . v_s: dv_s += att_ts * dout_t; the softmax gives
// dpre_s = att_ts * (datt_s - sum_s' att_ts' * datt_s'); then dq_t += dpre_s * scale * k_s and
// dk_s += dpre_s * scale * q_t. `scratch` holds T floats (datt) then the pair's dq/dk/dv rows
// in f32 (T rows of 3 * D, laid out like qkv's), which are rounded into dqkv at the end.
template <typename T>
void attend_backward(const Head<T> &hd, const float *att, const T *dout, int64_t dout_stride,
                     T *dqkv, float *scratch) {
    const float scale = 1.0f / std::sqrt(float(hd.D));
    const int64_t D = hd.D, row = 3 * D;
    float *datt = scratch, *dq = scratch + hd.seq, *dk = dq + D, *dv = dq + 2 * D;
    for (int64_t i = 0; i < hd.seq * row; i++) dq[i] = 0.0f;
    for (int64_t t = 0; t < hd.seq; t++) {
        const float *a = att + t * hd.seq;
        const T *g = dout + t * dout_stride, *q = hd.q + t * hd.stride;
        for (int64_t s = 0; s <= t; s++) {
            datt[s] = dot(D, g, hd.v + s * hd.stride);
            float *dvs = dv + s * row;
            for (int64_t d = 0; d < D; d++) dvs[d] += a[s] * load(g[d]);
        }
        const float mean =
            float(lane_sum<double>(t + 1, [&](int64_t s) { return a[s] * datt[s]; }));
        float *dqt = dq + t * row;
        for (int64_t s = 0; s <= t; s++) {
            const float dpre = a[s] * (datt[s] - mean) * scale;
            const T *ks = hd.k + s * hd.stride;
            float *dks = dk + s * row;
            for (int64_t d = 0; d < D; d++) dqt[d] += dpre * load(ks[d]);
            for (int64_t d = 0; d < D; d++) dks[d] += dpre * load(q[d]);
        }
    }
    const int64_t C = hd.stride / 3;
    for (int64_t t = 0; t < hd.seq; t++)
        for (int64_t part = 0; part < 3; part++)
            for (int64_t d = 0; d < D; d++)
                dqkv[t * hd.stride + part * C + d] = store<T>(dq[t * row + part * D + d]);
}

} // namespace
} // namespace pmoe

namespace pmoe_impl {

int attention_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t heads,
                      const void *qkv, float *att, void *out, void *) {
    return guarded("pmoe_attention_forward", [&] {
        const int64_t B = batch, T = seq, C = channels, H = heads, D = C / H;
        const int threads = threads_for(B * T * T * C);
        // Scratch row per thread, allocated here: nothing may throw inside the parallel region.
        std::vector<float> scratch(size_t(threads) * D);
        return with_dtype(dtype, [&](auto tag) {
            using E = decltype(tag);
            const E *x = static_cast<const E *>(qkv);
            E *y = static_cast<E *>(out);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
            for (int64_t b = 0; b < B; b++)
                for (int64_t h = 0; h < H; h++)
                    attend(head_of(x, b, h, T, C, H), att + (b * H + h) * T * T,
                           y + b * T * C + h * D, C, scratch.data() + omp_get_thread_num() * D);
            return PMOE_OK;
        });
    });
}

int attention_backward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t heads,
                       const void *qkv, const float *att, const void *dout, void *dqkv, void *) {
    return guarded("pmoe_attention_backward", [&] {
        const int64_t B = batch, T = seq, C = channels, H = heads, D = C / H;
        const int threads = threads_for(B * T * T * C);
        const int64_t per_thread = T + T * 3 * D;
        std::vector<float> scratch(size_t(threads) * per_thread);
        return with_dtype(dtype, [&](auto tag) {
            using E = decltype(tag);
            const E *x = static_cast<const E *>(qkv), *g = static_cast<const E *>(dout);
            E *dx = static_cast<E *>(dqkv);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
            for (int64_t b = 0; b < B; b++)
                for (int64_t h = 0; h < H; h++)
                    attend_backward(head_of(x, b, h, T, C, H), att + (b * H + h) * T * T,
                                    g + b * T * C + h * D, C, dx + b * T * 3 * C + h * D,
                                    scratch.data() + omp_get_thread_num() * per_thread);
            return PMOE_OK;
        });
    });
}

} // namespace pmoe_impl
