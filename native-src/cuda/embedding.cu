// Token + position embedding (f32 or bf16 tables and activations, f32 table gradients) and its
// backward, as cpu/embedding.cpp. The backward adds
// every token's gradient row into its id's row of dwte without atomics: a thread owns one column
// of a fixed subset of the ids (id % parts) and scans all tokens in order, so each element of
// dwte receives its tokens in token order, as on the CPU, whatever the launch. (llm.c instead
// sorts the tokens by id first and gives each id's run to a block; faster for long sequences,
// but a device sort for one kernel.)
#include "dense.cuh"

namespace pmoe {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kCheckIds = 0;

// out[n, c] = wte[ids[n], c] + wpe[n % seq, c]; a token whose id is out of range is recorded
// (by its column-0 element) and skipped.
template <typename T>
__global__ void embedding_forward_kernel(int64_t tokens, int64_t seq, int64_t channels,
                                         int vocab, const int32_t *ids, const T *wte,
                                         const T *wpe, T *out, unsigned long long *checks) {
    const int64_t n_all = tokens * channels, stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n_all; i += stride) {
        const int64_t n = i / channels, c = i % channels;
        const int32_t id = ids[n];
        if (id < 0 || id >= vocab) {
            if (c == 0) record_bad(checks, kCheckIds, n);
            continue;
        }
        out[i] = from_float<T>(to_float(wte[id * channels + c]) +
                               to_float(wpe[(n % seq) * channels + c]));
    }
}

// dwte[v, c] += dout[n, c] for the tokens n with ids[n] == v, in token order. Thread
// (part, c) owns column c of the ids v with v % parts == part.
template <typename T>
__global__ void embedding_backward_wte_kernel(int64_t tokens, int64_t channels, int vocab,
                                              int parts, const int32_t *ids, const T *dout,
                                              float *dwte, unsigned long long *checks) {
    const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int part = blockIdx.y;
    if (c >= channels) return;
    for (int64_t n = 0; n < tokens; n++) {
        const int32_t id = ids[n];
        if (id < 0 || id >= vocab) {
            if (c == 0 && part == 0) record_bad(checks, kCheckIds, n);
        } else if (id % parts == part) {
            dwte[id * channels + c] += to_float(dout[n * channels + c]);
        }
    }
}

// dwpe[t, c] += sum_b dout[b, t, c], in batch order; one thread per element of dwpe.
template <typename T>
__global__ void embedding_backward_wpe_kernel(int64_t batch, int64_t seq, int64_t channels,
                                              const T *dout, float *dwpe) {
    const int64_t n = seq * channels, stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        float acc = dwpe[i];
        for (int64_t b = 0; b < batch; b++) acc += to_float(dout[b * n + i]);
        dwpe[i] = acc;
    }
}

} // namespace
} // namespace cuda
} // namespace pmoe

namespace pmoe_impl {

int embedding_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t vocab,
                      int32_t max_seq, const int32_t *ids, const void *wte, const void *wpe,
                      void *out, void *stream) {
    return guarded("pmoe_embedding_forward", [&] {
        const int64_t tokens = int64_t(batch) * seq;
        InputChecks checks;
        PMOE_CHECK(checks.begin(stream));
        PMOE_CHECK(with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            return launch("embedding_forward", embedding_forward_kernel<T>,
                          grid_for(tokens * channels, kThreads), kThreads, 0, stream, tokens,
                          int64_t(seq), int64_t(channels), vocab, ids, static_cast<const T *>(wte),
                          static_cast<const T *>(wpe), static_cast<T *>(out), checks.device());
        }));
        PMOE_CHECK(checks.finish(stream));
        return ids_error(checks, kCheckIds, "ids", ids, 0, vocab);
    });
}

int embedding_backward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t vocab,
                       int32_t max_seq, const int32_t *ids, const void *dout, float *dwte,
                       float *dwpe, void *stream) {
    return guarded("pmoe_embedding_backward", [&] {
        const int64_t tokens = int64_t(batch) * seq;
        // Enough id subsets for about 32 Ki threads, at most one per id.
        const int parts = int(std::min<int64_t>(vocab, std::max<int64_t>(1, 32768 / channels)));
        InputChecks checks;
        PMOE_CHECK(checks.begin(stream));
        PMOE_CHECK(with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const T *d = static_cast<const T *>(dout);
            PMOE_CHECK(launch("embedding_backward_wte", embedding_backward_wte_kernel<T>,
                              dim3(unsigned(ceil_div(channels, kThreads)), unsigned(parts)),
                              kThreads, 0, stream, tokens, int64_t(channels), vocab, parts, ids, d,
                              dwte, checks.device()));
            return launch("embedding_backward_wpe", embedding_backward_wpe_kernel<T>,
                          grid_for(int64_t(seq) * channels, kThreads), kThreads, 0, stream,
                          int64_t(batch), int64_t(seq), int64_t(channels), d, dwpe);
        }));
        PMOE_CHECK(checks.finish(stream));
        return ids_error(checks, kCheckIds, "ids", ids, 0, vocab);
    });
}

} // namespace pmoe_impl
