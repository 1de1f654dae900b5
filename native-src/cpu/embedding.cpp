// Token + position embedding (GPT-2): out[b, t] = wte[ids[b, t]] + wpe[t], and its backward;
// f32 or bf16 tables and activations, gradients of the tables in f32.
#include "common.hpp"
#include "dense.hpp"

namespace pmoe {
namespace {

// dwte[ids[n]] += dout[n] and dwpe[n % seq] += dout[n] over the tokens n, in f32.
template <typename T>
void add_embedding_gradient(int64_t batch, int64_t seq, int64_t C, const int32_t *ids,
                            const T *dout, float *dwte, float *dwpe) {
    const int64_t tokens = batch * seq;
    // Tokens that share an id must be added in token order, without atomics: threads own
    // blocks of columns of the whole table and every thread scans all tokens in order.
    constexpr int64_t block = 64;
    const int64_t blocks = (C + block - 1) / block;
#pragma omp parallel num_threads(threads_for(tokens * C))
    {
#pragma omp for schedule(static) nowait
        for (int64_t b = 0; b < blocks; b++) {
            const int64_t c0 = b * block, c1 = std::min(C, c0 + block);
            for (int64_t n = 0; n < tokens; n++) {
                float *row = dwte + ids[n] * C;
                const T *d = dout + n * C;
                for (int64_t c = c0; c < c1; c++) row[c] += load(d[c]);
            }
        }
        // A position's row is owned by one thread and summed over the batch in order.
#pragma omp for schedule(static)
        for (int64_t t = 0; t < seq; t++)
            for (int64_t b = 0; b < batch; b++) {
                float *row = dwpe + t * C;
                const T *d = dout + (b * seq + t) * C;
                for (int64_t c = 0; c < C; c++) row[c] += load(d[c]);
            }
    }
}

} // namespace
} // namespace pmoe

namespace pmoe_impl {

int embedding_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t vocab,
                      int32_t max_seq, const int32_t *ids, const void *wte, const void *wpe,
                      void *out, void *) {
    return guarded("pmoe_embedding_forward", [&] {
        PMOE_CHECK(require_ids_in_range("ids", ids, int64_t(batch) * seq, 0, vocab));
        const int64_t tokens = int64_t(batch) * seq, C = channels;
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
#pragma omp parallel for num_threads(threads_for(tokens * C)) schedule(static)
            for (int64_t n = 0; n < tokens; n++) {
                const T *token = static_cast<const T *>(wte) + ids[n] * C;
                const T *position = static_cast<const T *>(wpe) + (n % seq) * C;
                T *o = static_cast<T *>(out) + n * C;
                for (int64_t c = 0; c < C; c++) o[c] = store<T>(load(token[c]) + load(position[c]));
            }
            return PMOE_OK;
        });
    });
}

int embedding_backward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t vocab,
                       int32_t max_seq, const int32_t *ids, const void *dout, float *dwte,
                       float *dwpe, void *) {
    return guarded("pmoe_embedding_backward", [&] {
        PMOE_CHECK(require_ids_in_range("ids", ids, int64_t(batch) * seq, 0, vocab));
        return with_dtype(dtype, [&](auto t) {
            add_embedding_gradient(batch, seq, channels, ids,
                                   static_cast<const decltype(t) *>(dout), dwte, dwpe);
            return PMOE_OK;
        });
    });
}
} // namespace pmoe_impl
