// Permute (token rows -> expert-sorted rows) and unpermute-combine, with f32 or bf16 storage.
// Memory-bound row copies and axpys, parallel over output rows: each output row is written by
// one thread from its inputs in a fixed order, so results do not depend on the thread count.
// bf16 math accumulates in f32 and rounds once per output element.
#include <algorithm>
#include <vector>

#include "common.hpp"

namespace pmoe {
namespace {

size_t element_size(int32_t dtype) {
    return dtype == PMOE_DTYPE_F32 ? sizeof(float) : sizeof(uint16_t);
}

// dst[t, :] = sum_j w[t, j] * src[slot_position[t * K + j], :] over the kept slots, zeros when
// none is kept; weights == NULL means all ones (the permute backward). Accumulates a chunk of
// the row in f32 on the stack.
template <typename T>
void gather_sum(int32_t tokens, int32_t top_k, int32_t hidden, const T *src,
                const float *weights, const int32_t *slot_position, T *dst) {
    constexpr int64_t kChunk = 512;
#pragma omp parallel for num_threads(threads_for(int64_t(tokens) * top_k * hidden)) schedule(static)
    for (int32_t t = 0; t < tokens; t++) {
        const int64_t first_slot = int64_t(t) * top_k;
        T *out = dst + int64_t(t) * hidden;
        for (int64_t c0 = 0; c0 < hidden; c0 += kChunk) {
            const int64_t n = std::min<int64_t>(kChunk, hidden - c0);
            float acc[kChunk];
            for (int64_t i = 0; i < n; i++) acc[i] = 0.0f;
            for (int32_t j = 0; j < top_k; j++) {
                const int32_t row = slot_position[first_slot + j];
                if (row < 0) continue;
                const float w = weights ? weights[first_slot + j] : 1.0f;
                const T *in = src + int64_t(row) * hidden + c0;
                for (int64_t i = 0; i < n; i++) acc[i] += w * load(in[i]);
            }
            for (int64_t i = 0; i < n; i++) out[c0 + i] = store<T>(acc[i]);
        }
    }
}

// <a, b> in f32 with 16 independent lanes (they vectorise and cut the rounding error), summed
// in a fixed order.
template <typename T> float dot(const T *a, const T *b, int64_t n) {
    constexpr int kLanes = 16;
    float lane[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; l++) lane[l] += load(a[i + l]) * load(b[i + l]);
    for (int l = 0; i + l < n; l++) lane[l] += load(a[i + l]) * load(b[i + l]);
    float sum = 0.0f;
    for (int l = 0; l < kLanes; l++) sum += lane[l];
    return sum;
}

// Every kept slot owns its row of grad_expert_out (the plan gives each row one slot), so the
// rows are written without conflicts; rows that no slot references are zeroed.
template <typename T>
void combine_backward(int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
                      const T *grad_y, const T *expert_out, const float *weights,
                      const int32_t *slot_position, const std::vector<int32_t> &owner,
                      T *grad_expert_out, float *grad_weights) {
#pragma omp parallel num_threads(threads_for((int64_t(tokens) * top_k + rows) * hidden))
    {
#pragma omp for schedule(static)
        for (int32_t t = 0; t < tokens; t++) {
            const T *gy = grad_y + int64_t(t) * hidden;
            for (int64_t s = int64_t(t) * top_k; s < int64_t(t + 1) * top_k; s++) {
                const int32_t row = slot_position[s];
                if (row < 0) {
                    grad_weights[s] = 0.0f;
                    continue;
                }
                T *g = grad_expert_out + int64_t(row) * hidden;
                const float w = weights[s];
                for (int64_t i = 0; i < hidden; i++) g[i] = store<T>(w * load(gy[i]));
                grad_weights[s] = dot(gy, expert_out + int64_t(row) * hidden, hidden);
            }
        }
#pragma omp for schedule(static)
        for (int32_t r = 0; r < rows; r++)
            if (owner[r] < 0)
                std::memset(grad_expert_out + int64_t(r) * hidden, 0, sizeof(T) * hidden);
    }
}

} // namespace
} // namespace pmoe

namespace pmoe_impl {

// A pure copy, so one byte-level path serves both dtypes.
int permute(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
            const void *x, const int32_t *sorted_slot, void *out, void *) {
    return guarded("pmoe_permute", [&] {
        PMOE_CHECK(require_ids_in_range("sorted_slot", sorted_slot, rows, -1,
                                        int64_t(tokens) * top_k));
        const size_t row_bytes = element_size(dtype) * hidden;
        const char *src = static_cast<const char *>(x);
        char *dst = static_cast<char *>(out);
#pragma omp parallel for num_threads(threads_for(int64_t(rows) * hidden)) schedule(static)
        for (int32_t r = 0; r < rows; r++) {
            const int32_t slot = sorted_slot[r];
            if (slot < 0)
                std::memset(dst + r * row_bytes, 0, row_bytes);
            else
                std::memcpy(dst + r * row_bytes, src + size_t(slot / top_k) * row_bytes, row_bytes);
        }
        return PMOE_OK;
    });
}

int permute_backward(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
                     const void *grad_out, const int32_t *slot_position, void *grad_x, void *) {
    return guarded("pmoe_permute_backward", [&] {
        PMOE_CHECK(require_ids_in_range("slot_position", slot_position, int64_t(tokens) * top_k,
                                        -1, rows));
        if (dtype == PMOE_DTYPE_F32)
            gather_sum(tokens, top_k, hidden, static_cast<const float *>(grad_out), nullptr,
                       slot_position, static_cast<float *>(grad_x));
        else
            gather_sum(tokens, top_k, hidden, static_cast<const uint16_t *>(grad_out), nullptr,
                       slot_position, static_cast<uint16_t *>(grad_x));
        return PMOE_OK;
    });
}

int combine(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
            const void *expert_out, const float *topk_weights, const int32_t *slot_position,
            void *y, void *) {
    return guarded("pmoe_combine", [&] {
        PMOE_CHECK(require_ids_in_range("slot_position", slot_position, int64_t(tokens) * top_k,
                                        -1, rows));
        if (dtype == PMOE_DTYPE_F32)
            gather_sum(tokens, top_k, hidden, static_cast<const float *>(expert_out), topk_weights,
                       slot_position, static_cast<float *>(y));
        else
            gather_sum(tokens, top_k, hidden, static_cast<const uint16_t *>(expert_out),
                       topk_weights, slot_position, static_cast<uint16_t *>(y));
        return PMOE_OK;
    });
}

int combine_backward(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
                     const void *grad_y, const void *expert_out, const float *topk_weights,
                     const int32_t *slot_position, void *grad_expert_out, float *grad_weights,
                     void *) {
    return guarded("pmoe_combine_backward", [&] {
        const int64_t slots = int64_t(tokens) * top_k;
        PMOE_CHECK(require_ids_in_range("slot_position", slot_position, slots, -1, rows));
        // Two slots writing one row would race; a plan never does that, so reject it.
        std::vector<int32_t> owner(rows, -1); // slot that writes each row
        for (int64_t s = 0; s < slots; s++) {
            const int32_t row = slot_position[s];
            if (row < 0) continue;
            if (owner[row] >= 0) return fail_repeated_row(s, row, owner[row]);
            owner[row] = int32_t(s);
        }
        if (dtype == PMOE_DTYPE_F32)
            pmoe::combine_backward(tokens, top_k, rows, hidden,
                                   static_cast<const float *>(grad_y),
                                   static_cast<const float *>(expert_out), topk_weights,
                                   slot_position, owner, static_cast<float *>(grad_expert_out),
                                   grad_weights);
        else
            pmoe::combine_backward(tokens, top_k, rows, hidden,
                                   static_cast<const uint16_t *>(grad_y),
                                   static_cast<const uint16_t *>(expert_out), topk_weights,
                                   slot_position, owner, static_cast<uint16_t *>(grad_expert_out),
                                   grad_weights);
        return PMOE_OK;
    });
}

} // namespace pmoe_impl
