// Permute (token rows -> expert-sorted rows) and unpermute-combine, f32 or bf16 storage, with
// 16-byte loads and stores where rows and pointers allow. Same semantics as cpu/permute.cpp:
// bf16 math accumulates in f32 and rounds once; each output row is written by one block from
// its inputs in a fixed order, so results are deterministic.
#include <initializer_list>

#include "common.cuh"

namespace pmoe {
namespace cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kCheckPositions = 0, kCheckRepeats = 1;
constexpr int32_t kNoOwner = 0x7f7f7f7f; // memset pattern 0x7f: larger than any slot

// V elements of T moved as one load/store (16 bytes when V * sizeof(T) == 16).
template <typename T, int V> struct alignas(sizeof(T) * V) Pack {
    T v[V];
};

// Elements per pack: 16 bytes when the row length and every pointer allow it, else 1.
template <typename T> int pack_width(int64_t hidden, std::initializer_list<const void *> ptrs) {
    constexpr int wide = 16 / sizeof(T);
    if (hidden % wide != 0) return 1;
    for (const void *p : ptrs)
        if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return 1;
    return wide;
}

// out[r, :] = x[sorted_slot[r] / K, :], zeros for an empty row (slot -1). Block per row.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
permute_kernel(int rows, int top_k, int64_t slots, int64_t hidden, const T *x,
               const int32_t *sorted_slot, T *out, unsigned long long *checks) {
    using P = Pack<T, V>;
    const int64_t packs = hidden / V;
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const int32_t slot = sorted_slot[r];
        const bool valid = slot >= -1 && slot < slots;
        if (!valid && threadIdx.x == 0) record_bad(checks, kCheckPositions, r);
        P *dst = reinterpret_cast<P *>(out + int64_t(r) * hidden);
        if (slot < 0 || !valid) {
            P zero;
            for (int i = 0; i < V; i++) zero.v[i] = from_float<T>(0.0f);
            for (int64_t i = threadIdx.x; i < packs; i += kThreads) dst[i] = zero;
        } else {
            const P *src = reinterpret_cast<const P *>(x + int64_t(slot / top_k) * hidden);
            for (int64_t i = threadIdx.x; i < packs; i += kThreads) dst[i] = src[i];
        }
    }
}

// dst[t, :] = sum_j w[t, j] * src[slot_position[t * K + j], :] over kept slots, in j order;
// weights == nullptr means all ones (the permute backward). Block per token.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
gather_sum_kernel(int tokens, int top_k, int rows, int64_t hidden, const T *src,
                  const float *weights, const int32_t *slot_position, T *dst,
                  unsigned long long *checks) {
    using P = Pack<T, V>;
    const int64_t packs = hidden / V;
    for (int t = blockIdx.x; t < tokens; t += gridDim.x) {
        const int64_t first = int64_t(t) * top_k;
        for (int j = threadIdx.x; j < top_k; j += kThreads) {
            const int32_t row = slot_position[first + j];
            if (row < -1 || row >= rows) record_bad(checks, kCheckPositions, first + j);
        }
        for (int64_t i = threadIdx.x; i < packs; i += kThreads) {
            float acc[V];
            for (int e = 0; e < V; e++) acc[e] = 0.0f;
            for (int j = 0; j < top_k; j++) {
                const int32_t row = slot_position[first + j];
                if (row < 0 || row >= rows) continue;
                const float w = weights ? weights[first + j] : 1.0f;
                const P in = reinterpret_cast<const P *>(src + int64_t(row) * hidden)[i];
                for (int e = 0; e < V; e++) acc[e] += w * to_float(in.v[e]);
            }
            P out;
            for (int e = 0; e < V; e++) out.v[e] = from_float<T>(acc[e]);
            reinterpret_cast<P *>(dst + int64_t(t) * hidden)[i] = out;
        }
    }
}

// owner[row] = the smallest slot that names the row (owner was filled with kNoOwner).
__global__ void row_owner_kernel(int64_t slots, int rows, const int32_t *slot_position,
                                 int32_t *owner, unsigned long long *checks) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s < slots; s += stride) {
        const int32_t row = slot_position[s];
        if (row < -1 || row >= rows)
            record_bad(checks, kCheckPositions, s);
        else if (row >= 0)
            atomicMin(owner + row, int32_t(s));
    }
}

// A slot that is not its row's owner repeats an earlier slot.
__global__ void repeated_rows_kernel(int64_t slots, int rows, const int32_t *slot_position,
                                     const int32_t *owner, unsigned long long *checks) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s < slots; s += stride) {
        const int32_t row = slot_position[s];
        if (row >= 0 && row < rows && owner[row] != s) record_bad(checks, kCheckRepeats, s);
    }
}

// grad_expert_out[pos(t, j), :] = w[t, j] * grad_y[t, :] and grad_weights[t, j] =
// <grad_y[t, :], expert_out[pos(t, j), :]> (0 if dropped); rows that no slot owns are zeroed.
// Block per token for the slots, then the unowned rows.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
combine_backward_kernel(int tokens, int top_k, int rows, int64_t hidden, const T *grad_y,
                        const T *expert_out, const float *weights, const int32_t *slot_position,
                        const int32_t *owner, T *grad_expert_out, float *grad_weights) {
    using P = Pack<T, V>;
    __shared__ float scratch[32];
    const int64_t packs = hidden / V;
    for (int t = blockIdx.x; t < tokens; t += gridDim.x) {
        const P *gy = reinterpret_cast<const P *>(grad_y + int64_t(t) * hidden);
        for (int j = 0; j < top_k; j++) {
            const int64_t s = int64_t(t) * top_k + j;
            const int32_t row = slot_position[s];
            if (row < 0 || row >= rows) {
                if (threadIdx.x == 0) grad_weights[s] = 0.0f;
                continue;
            }
            const float w = weights[s];
            const P *x = reinterpret_cast<const P *>(expert_out + int64_t(row) * hidden);
            P *g = reinterpret_cast<P *>(grad_expert_out + int64_t(row) * hidden);
            float dot = 0.0f;
            for (int64_t i = threadIdx.x; i < packs; i += kThreads) {
                const P a = gy[i], b = x[i];
                P out;
                for (int e = 0; e < V; e++) {
                    out.v[e] = from_float<T>(w * to_float(a.v[e]));
                    dot += to_float(a.v[e]) * to_float(b.v[e]);
                }
                g[i] = out;
            }
            dot = block_reduce(dot, Sum(), scratch);
            if (threadIdx.x == 0) grad_weights[s] = dot;
        }
    }
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        if (owner[r] != kNoOwner) continue;
        P zero;
        for (int e = 0; e < V; e++) zero.v[e] = from_float<T>(0.0f);
        for (int64_t i = threadIdx.x; i < packs; i += kThreads)
            reinterpret_cast<P *>(grad_expert_out + int64_t(r) * hidden)[i] = zero;
    }
}

unsigned blocks_for(int64_t n) { return unsigned(n < 1 ? 1 : n > 65535 ? 65535 : n); }

// The storage type and pack width of a launch, as a value for a generic lambda.
template <typename T, int V> struct Layout {
    using type = T;
    static constexpr int width = V;
};

// run(Layout<T, V>{}) for the dtype, with 16-byte packs where the row and pointers allow.
template <typename Run>
int with_layout(int32_t dtype, int64_t hidden, std::initializer_list<const void *> ptrs, Run run) {
    if (dtype == PMOE_DTYPE_F32)
        return pack_width<float>(hidden, ptrs) == 1 ? run(Layout<float, 1>{}) : run(Layout<float, 4>{});
    return pack_width<__nv_bfloat16>(hidden, ptrs) == 1 ? run(Layout<__nv_bfloat16, 1>{})
                                                        : run(Layout<__nv_bfloat16, 8>{});
}

#define PMOE_LAYOUT_TYPES(layout)                                                              \
    using T = typename decltype(layout)::type;                                                 \
    constexpr int V = decltype(layout)::width

} // namespace
} // namespace cuda
} // namespace pmoe

namespace pmoe_impl {

int permute(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
            const void *x, const int32_t *sorted_slot, void *out, void *stream) {
    return guarded("pmoe_permute", [&] {
        const int64_t slots = int64_t(tokens) * top_k;
        InputChecks checks;
        PMOE_CHECK(checks.begin(stream));
        PMOE_CHECK(with_layout(dtype, hidden, {x, out}, [&](auto layout) {
            PMOE_LAYOUT_TYPES(layout);
            return launch("permute", permute_kernel<T, V>, blocks_for(rows), kThreads, 0, stream,
                          rows, top_k, slots, int64_t(hidden), static_cast<const T *>(x),
                          sorted_slot, static_cast<T *>(out), checks.device());
        }));
        PMOE_CHECK(checks.finish(stream));
        return ids_error(checks, kCheckPositions, "sorted_slot", sorted_slot, -1, slots);
    });
}

namespace {
// permute_backward and combine: the same gather-sum, with or without weights.
int gather_sum(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
               const void *src, const float *weights, const int32_t *slot_position, void *dst,
               void *stream) {
    InputChecks checks;
    PMOE_CHECK(checks.begin(stream));
    PMOE_CHECK(with_layout(dtype, hidden, {src, dst}, [&](auto layout) {
        PMOE_LAYOUT_TYPES(layout);
        return launch("gather_sum", gather_sum_kernel<T, V>, blocks_for(tokens), kThreads, 0,
                      stream, tokens, top_k, rows, int64_t(hidden), static_cast<const T *>(src),
                      weights, slot_position, static_cast<T *>(dst), checks.device());
    }));
    PMOE_CHECK(checks.finish(stream));
    return ids_error(checks, kCheckPositions, "slot_position", slot_position, -1, rows);
}
} // namespace

int permute_backward(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
                     const void *grad_out, const int32_t *slot_position, void *grad_x,
                     void *stream) {
    return guarded("pmoe_permute_backward", [&] {
        return gather_sum(dtype, tokens, top_k, rows, hidden, grad_out, nullptr, slot_position,
                          grad_x, stream);
    });
}

int combine(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
            const void *expert_out, const float *topk_weights, const int32_t *slot_position,
            void *y, void *stream) {
    return guarded("pmoe_combine", [&] {
        return gather_sum(dtype, tokens, top_k, rows, hidden, expert_out, topk_weights,
                          slot_position, y, stream);
    });
}

int combine_backward(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
                     const void *grad_y, const void *expert_out, const float *topk_weights,
                     const int32_t *slot_position, void *grad_expert_out, float *grad_weights,
                     void *stream) {
    return guarded("pmoe_combine_backward", [&] {
        const int64_t slots = int64_t(tokens) * top_k;
        InputChecks checks;
        PMOE_CHECK(checks.begin(stream));
        DeviceBuffer owner;
        PMOE_CHECK(owner.allocate(sizeof(int32_t) * (rows > 0 ? rows : 1), stream, "row owners"));
        PMOE_CHECK(memset_async(owner.as<void>(), 0x7f, sizeof(int32_t) * rows, stream));
        PMOE_CHECK(launch("combine_row_owner", row_owner_kernel, grid_for(slots, 256), 256, 0,
                          stream, slots, rows, slot_position, owner.as<int32_t>(), checks.device()));
        PMOE_CHECK(launch("combine_repeated_rows", repeated_rows_kernel, grid_for(slots, 256), 256,
                          0, stream, slots, rows, slot_position, owner.as<const int32_t>(),
                          checks.device()));
        PMOE_CHECK(with_layout(dtype, hidden, {grad_y, expert_out, grad_expert_out}, [&](auto layout) {
            PMOE_LAYOUT_TYPES(layout);
            return launch("combine_backward", combine_backward_kernel<T, V>,
                          blocks_for(tokens > rows ? tokens : rows), kThreads, 0, stream, tokens,
                          top_k, rows, int64_t(hidden), static_cast<const T *>(grad_y),
                          static_cast<const T *>(expert_out), topk_weights, slot_position,
                          owner.as<const int32_t>(), static_cast<T *>(grad_expert_out),
                          grad_weights);
        }));
        PMOE_CHECK(checks.finish(stream));
        PMOE_CHECK(ids_error(checks, kCheckPositions, "slot_position", slot_position, -1, rows));
        const int64_t repeat = checks.first_bad(kCheckRepeats);
        if (repeat < 0) return PMOE_OK;
        const int32_t row = read_element(slot_position, repeat);
        return fail_repeated_row(repeat, row, read_element(owner.as<const int32_t>(), row));
    });
}

} // namespace pmoe_impl
