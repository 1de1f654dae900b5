// Causal multi-head self-attention on a fused qkv buffer (f32 or bf16 qkv/out and gradients;
// scores, softmax and sums in f32), as cpu/attention.cpp: the probabilities att [B, H, T, T]
// (f32) are materialised and kept for the backward. In bf16, the probabilities and score
// gradients are rounded to bf16 where they multiply v, dout, k or q (accumulation stays f32),
// as the CPU's bf16 GEMMs take them.
//
// How this differs from a fused flash-style kernel: here a block handles one query row (b, h, t)
// with its T scores in shared memory, reads q, k, v from global memory once per row (no tiling
// of K/V through shared memory, no tensor cores), and writes the whole T x T probability matrix;
// the backward reads it back and keeps a second T x T buffer (the softmax gradient). Flash
// attention instead streams K/V tiles through shared memory with an online softmax, never
// materialises T x T, and recomputes the probabilities in the backward: O(T) memory instead of
// O(T^2) and several times less memory traffic. This version is the parity reference for the
// ABI, which itself returns att.
//
// Determinism without atomics: the backward computes dq per query row (kernel 1) and dk, dv per
// key row (kernel 2), each a sum over the other index in a fixed order.
#include "dense.cuh"

namespace pmoe {
namespace cuda {
namespace {

constexpr int kThreads = 128;

// Where one (batch, head) pair lives in qkv [B, T, 3C]: row t of q at q + t * stride (k, v
// likewise, C and 2C further), D wide.
template <typename E> struct Head {
    int64_t T, D, stride;
    const E *q, *k, *v;
};

template <typename E>
__device__ Head<E> head_of(const E *qkv, int64_t b, int64_t h, int64_t T, int64_t C, int64_t H) {
    const E *base = qkv + b * T * 3 * C + h * (C / H);
    return {T, C / H, 3 * C, base, base + C, base + 2 * C};
}

// A probability or score gradient as the operand of a product with E values: rounded to E.
template <typename E> __device__ float operand(float p) { return to_float(from_float<E>(p)); }

template <typename E> __device__ float dot(int64_t n, const E *a, const E *b) {
    float acc = 0.0f;
    for (int64_t i = 0; i < n; i++) acc += to_float(a[i]) * to_float(b[i]);
    return acc;
}

// Block (b, h, t): att[b, h, t, :] = softmax_{s <= t}(q_t . k_s / sqrt(D)) (0 for s > t) and
// out[b, t, h] = sum_s att * v_s. The row's scores live in dynamic shared memory (T floats).
template <typename E>
__global__ void __launch_bounds__(kThreads)
attention_forward_kernel(int64_t T, int64_t C, int64_t H, const E *qkv, float *att, E *out) {
    PMOE_DYNAMIC_SHARED(float, score);
    __shared__ float scratch[32];
    const int64_t row = blockIdx.x, t = row % T, bh = row / T, b = bh / H, h = bh % H;
    const Head<E> hd = head_of(qkv, b, h, T, C, H);
    const float scale = 1.0f / sqrtf(float(hd.D));
    const E *q = hd.q + t * hd.stride;
    float max = -INFINITY;
    for (int64_t s = threadIdx.x; s <= t; s += blockDim.x) {
        score[s] = dot(hd.D, q, hd.k + s * hd.stride) * scale;
        max = fmaxf(max, score[s]);
    }
    max = block_reduce(max, Max(), scratch);
    float sum = 0.0f;
    for (int64_t s = threadIdx.x; s <= t; s += blockDim.x) {
        score[s] = expf(score[s] - max);
        sum += score[s];
    }
    const float inv = 1.0f / block_reduce(sum, Sum(), scratch);
    float *a = att + row * T;
    for (int64_t s = threadIdx.x; s < T; s += blockDim.x) {
        const float p = s <= t ? score[s] * inv : 0.0f;
        if (s <= t) score[s] = operand<E>(p);
        a[s] = p;
    }
    __syncthreads();
    E *o = out + (b * T + t) * C + h * hd.D;
    for (int64_t d = threadIdx.x; d < hd.D; d += blockDim.x) {
        float acc = 0.0f;
        for (int64_t s = 0; s <= t; s++) acc += score[s] * to_float(hd.v[s * hd.stride + d]);
        o[d] = from_float<E>(acc);
    }
}

// Block (b, h, t), query side: with datt_s = dout_t . v_s, the softmax gradient
// dpre[t, s] = att_ts * (datt_s - sum_s' att_ts' datt_s') / sqrt(D) (kept in `dpre`
// [B, H, T, T] for kernel 2, rounded as an operand) and dq_t = sum_{s <= t} dpre[t, s] * k_s.
template <typename E>
__global__ void __launch_bounds__(kThreads)
attention_backward_query_kernel(int64_t T, int64_t C, int64_t H, const E *qkv, const float *att,
                                const E *dout, float *dpre, E *dqkv) {
    PMOE_DYNAMIC_SHARED(float, grad);
    __shared__ float scratch[32];
    const int64_t row = blockIdx.x, t = row % T, bh = row / T, b = bh / H, h = bh % H;
    const Head<E> hd = head_of(qkv, b, h, T, C, H);
    const float scale = 1.0f / sqrtf(float(hd.D));
    const float *a = att + row * T;
    const E *g = dout + (b * T + t) * C + h * hd.D;
    float weighted = 0.0f;
    for (int64_t s = threadIdx.x; s <= t; s += blockDim.x) {
        grad[s] = dot(hd.D, g, hd.v + s * hd.stride);
        weighted += a[s] * grad[s];
    }
    const float mean = block_reduce(weighted, Sum(), scratch);
    float *dp = dpre + row * T;
    for (int64_t s = threadIdx.x; s <= t; s += blockDim.x) {
        grad[s] = operand<E>(a[s] * (grad[s] - mean) * scale);
        dp[s] = grad[s];
    }
    __syncthreads();
    E *dq = dqkv + (hd.q - qkv) + t * hd.stride;
    for (int64_t d = threadIdx.x; d < hd.D; d += blockDim.x) {
        float acc = 0.0f;
        for (int64_t s = 0; s <= t; s++) acc += grad[s] * to_float(hd.k[s * hd.stride + d]);
        dq[d] = from_float<E>(acc);
    }
}

// Block (b, h, s), key side: dk_s = sum_{t >= s} dpre[t, s] * q_t and
// dv_s = sum_{t >= s} att[t, s] * dout_t, over t in increasing order.
template <typename E>
__global__ void __launch_bounds__(kThreads)
attention_backward_key_kernel(int64_t T, int64_t C, int64_t H, const E *qkv, const float *att,
                              const E *dout, const float *dpre, E *dqkv) {
    const int64_t row = blockIdx.x, s = row % T, bh = row / T, b = bh / H, h = bh % H;
    const Head<E> hd = head_of(qkv, b, h, T, C, H);
    const float *a = att + bh * T * T, *dp = dpre + bh * T * T;
    const E *g = dout + b * T * C + h * hd.D;
    E *dk = dqkv + (hd.k - qkv) + s * hd.stride, *dv = dqkv + (hd.v - qkv) + s * hd.stride;
    for (int64_t d = threadIdx.x; d < hd.D; d += blockDim.x) {
        float acc_k = 0.0f, acc_v = 0.0f;
        for (int64_t t = s; t < T; t++) {
            acc_k += dp[t * T + s] * to_float(hd.q[t * hd.stride + d]);
            acc_v += operand<E>(a[t * T + s]) * to_float(g[t * C + d]);
        }
        dk[d] = from_float<E>(acc_k);
        dv[d] = from_float<E>(acc_v);
    }
}

// A block per (b, h, t) row: the grid's x dimension holds at most 2^31 - 1 blocks.
int require_grid_rows(int64_t rows) {
    return rows <= INT32_MAX ? PMOE_OK
                             : fail(PMOE_ERR_UNSUPPORTED,
                                    "batch * heads * seq = %lld: the CUDA attention supports at "
                                    "most %d rows",
                                    (long long)rows, INT32_MAX);
}

} // namespace
} // namespace cuda
} // namespace pmoe

namespace pmoe_impl {

int attention_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t heads,
                      const void *qkv, float *att, void *out, void *stream) {
    return guarded("pmoe_attention_forward", [&] {
        const int64_t rows = int64_t(batch) * heads * seq;
        PMOE_CHECK(require_grid_rows(rows));
        return with_device_dtype(dtype, [&](auto t) {
            using E = decltype(t);
            return launch("attention_forward", attention_forward_kernel<E>, unsigned(rows),
                          kThreads, sizeof(float) * seq, stream, int64_t(seq), int64_t(channels),
                          int64_t(heads), static_cast<const E *>(qkv), att, static_cast<E *>(out));
        });
    });
}

int attention_backward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t heads,
                       const void *qkv, const float *att, const void *dout, void *dqkv,
                       void *stream) {
    return guarded("pmoe_attention_backward", [&] {
        const int64_t rows = int64_t(batch) * heads * seq;
        PMOE_CHECK(require_grid_rows(rows));
        DeviceBuffer dpre;
        PMOE_CHECK(dpre.allocate(sizeof(float) * rows * seq, stream, "attention softmax gradient"));
        return with_device_dtype(dtype, [&](auto t) {
            using E = decltype(t);
            const E *x = static_cast<const E *>(qkv), *g = static_cast<const E *>(dout);
            E *dx = static_cast<E *>(dqkv);
            PMOE_CHECK(launch("attention_backward_query", attention_backward_query_kernel<E>,
                              unsigned(rows), kThreads, sizeof(float) * seq, stream, int64_t(seq),
                              int64_t(channels), int64_t(heads), x, att, g, dpre.as<float>(),
                              dx));
            return launch("attention_backward_key", attention_backward_key_kernel<E>,
                          unsigned(rows), kThreads, 0, stream, int64_t(seq), int64_t(channels),
                          int64_t(heads), x, att, g, dpre.as<const float>(), dx);
        });
    });
}

} // namespace pmoe_impl
