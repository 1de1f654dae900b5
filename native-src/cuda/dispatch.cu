// Dispatch plan on the device: a stable counting sort of the (token, k) slots by physical
// expert, then the per-expert capacity cut, giving exactly cpu/dispatch.cpp's plan. No atomics
// decide a position; every position is a count of earlier slots:
//   1. chunk_rank:    per chunk of slots (one warp, in slot order), each slot's rank among the
//                     chunk's slots of its expert (__match_any_sync), and the chunk's counts;
//   2. expert_scan:   per expert, an exclusive scan of its counts over the chunks (block scan);
//   3. expert_offsets: kept = min(count, capacity) per expert, scanned into offsets (block scan);
//   4. positions:     rank of a slot in its expert = chunk base + rank in chunk; dropping by
//                     position keeps rank < capacity;
//   4'. dropping by probability instead lists every expert's slots in slot order, and a block
//                     per expert keeps the `capacity` heaviest (radix select on a unique 64-bit
//                     key: weight, then the earlier slot) before ranking the kept ones.
#include "common.cuh"

namespace pmoe {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kCheckIds = 0, kCheckRemap = 1, kCheckWeights = 2;

// Slots per chunk: a multiple of 32, grown with the expert count so that the per-chunk count
// table (chunks x experts) stays about as large as the slots themselves.
int64_t chunk_slots(int experts) { return 256 * ceil_div(experts, 256); }

__device__ __forceinline__ unsigned lanes_below() { return (1u << (threadIdx.x & 31)) - 1u; }

// One warp per chunk; count (shared, one int per physical expert) walks the chunk in order.
__global__ void __launch_bounds__(32)
chunk_rank_kernel(int64_t slots, int64_t chunk, int logical, int physical, const int32_t *ids,
                  const int32_t *remap, int32_t *expert_of, int32_t *rank_in_chunk,
                  int32_t *chunk_counts, unsigned long long *checks) {
    PMOE_DYNAMIC_SHARED(int32_t, count);
    const int lane = threadIdx.x;
    if (remap && blockIdx.x == 0)
        for (int i = lane; i < logical; i += 32)
            if (remap[i] < 0 || remap[i] >= physical) record_bad(checks, kCheckRemap, i);
    for (int p = lane; p < physical; p += 32) count[p] = 0;
    __syncwarp();
    const int64_t s0 = int64_t(blockIdx.x) * chunk, s1 = min(slots, s0 + chunk);
    for (int64_t base = s0; base < s1; base += 32) {
        const int64_t s = base + lane;
        int p = -1;
        if (s < s1) {
            const int id = ids[s];
            if (id < 0 || id >= logical) {
                record_bad(checks, kCheckIds, s);
            } else {
                p = remap ? remap[id] : id;
                if (p < 0 || p >= physical) p = -1; // recorded by the remap scan
            }
        }
        const unsigned peers = __match_any_sync(kFullMask, p);
        const int before = p >= 0 ? count[p] : 0;
        __syncwarp();
        if (p >= 0 && lane == 31 - __clz(int(peers))) count[p] = before + __popc(peers);
        if (s < s1) {
            expert_of[s] = p;
            rank_in_chunk[s] = p >= 0 ? before + __popc(peers & lanes_below()) : -1;
        }
        __syncwarp();
    }
    int32_t *out = chunk_counts + int64_t(blockIdx.x) * physical;
    for (int p = lane; p < physical; p += 32) out[p] = count[p];
}

// Block per expert: chunk_counts[c][p] becomes the number of the expert's slots in chunks < c;
// totals[p] = all of them.
__global__ void __launch_bounds__(kThreads)
expert_scan_kernel(int chunks, int physical, int32_t *chunk_counts, int32_t *totals) {
    __shared__ int32_t scratch[32];
    const int p = blockIdx.x;
    int32_t carry = 0;
    for (int c0 = 0; c0 < chunks; c0 += kThreads) {
        const int c = c0 + threadIdx.x;
        const int32_t v = c < chunks ? chunk_counts[int64_t(c) * physical + p] : 0;
        int32_t tile = 0;
        const int32_t before = block_exclusive_scan(v, scratch, &tile);
        if (c < chunks) chunk_counts[int64_t(c) * physical + p] = carry + before;
        carry += tile;
    }
    if (threadIdx.x == 0) totals[p] = carry;
}

// One block: counts[p] = min(totals[p], capacity) (capacity < 0: dropless), offsets = their
// exclusive scan, offsets[physical] = the sum.
__global__ void __launch_bounds__(kThreads)
expert_offsets_kernel(int physical, const int32_t *totals, int capacity, int32_t *counts,
                      int32_t *offsets) {
    __shared__ int32_t scratch[32];
    int32_t carry = 0;
    for (int p0 = 0; p0 < physical; p0 += kThreads) {
        const int p = p0 + threadIdx.x;
        int32_t kept = 0;
        if (p < physical) kept = capacity < 0 ? totals[p] : min(totals[p], capacity);
        int32_t tile = 0;
        const int32_t before = block_exclusive_scan(kept, scratch, &tile);
        if (p < physical) {
            counts[p] = kept;
            offsets[p] = carry + before;
        }
        carry += tile;
    }
    if (threadIdx.x == 0) offsets[physical] = carry;
}

// Rank of slot s among its expert's slots, in slot order (-1 for an invalid id).
__device__ __forceinline__ int32_t expert_rank(int64_t s, int64_t chunk, int physical,
                                               const int32_t *expert_of,
                                               const int32_t *rank_in_chunk,
                                               const int32_t *chunk_base) {
    const int p = expert_of[s];
    return p < 0 ? -1 : chunk_base[(s / chunk) * physical + p] + rank_in_chunk[s];
}

// Dropless or dropping by position: slot s keeps rank < capacity (capacity < 0: all).
// sorted_slot was filled with -1 before.
__global__ void positions_kernel(int64_t slots, int64_t chunk, int physical, int capacity,
                                 const int32_t *expert_of, const int32_t *rank_in_chunk,
                                 const int32_t *chunk_base, const int32_t *offsets,
                                 int32_t *slot_position, int32_t *sorted_slot) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s < slots; s += stride) {
        const int32_t r = expert_rank(s, chunk, physical, expert_of, rank_in_chunk, chunk_base);
        const bool kept = r >= 0 && (capacity < 0 || r < capacity);
        const int32_t row = kept ? offsets[expert_of[s]] + r : -1;
        slot_position[s] = row;
        if (kept) sorted_slot[row] = int32_t(s);
    }
}

// Every slot at its dropless row: by_expert lists each expert's slots in slot order.
__global__ void list_by_expert_kernel(int64_t slots, int64_t chunk, int physical,
                                      const int32_t *expert_of, const int32_t *rank_in_chunk,
                                      const int32_t *chunk_base, const int32_t *all_offsets,
                                      int32_t *by_expert) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s < slots; s += stride) {
        const int32_t r = expert_rank(s, chunk, physical, expert_of, rank_in_chunk, chunk_base);
        if (r >= 0) by_expert[all_offsets[expert_of[s]] + r] = int32_t(s);
    }
}

// Heavier slots have larger keys: the weight's bits in an order-preserving form (-0 as +0, as
// == compares them), then the earlier slot. Keys are unique because slots are.
__device__ __forceinline__ unsigned long long weight_key(float w, int32_t s) {
    unsigned bits = __float_as_uint(w == 0.0f ? 0.0f : w);
    bits ^= (bits >> 31) ? 0xffffffffu : 0x80000000u;
    return (unsigned long long)bits << 32 | (0xffffffffu - unsigned(s));
}

// Block per expert: of its n listed slots keep the `keep` heaviest, ranked in slot order.
__global__ void __launch_bounds__(kThreads)
keep_heaviest_kernel(int physical, int capacity, const int32_t *all_offsets,
                     const int32_t *offsets, const int32_t *counts, const int32_t *by_expert,
                     const float *weights, int32_t *slot_position, int32_t *sorted_slot,
                     unsigned long long *checks) {
    __shared__ unsigned long long kscratch[32];
    __shared__ int32_t scratch[32];
    const int p = blockIdx.x;
    const int32_t first = all_offsets[p], n = all_offsets[p + 1] - first, keep = counts[p];
    const int32_t *seg = by_expert + first;
    for (int i = threadIdx.x; i < n; i += kThreads)
        if (!isfinite(weights[seg[i]])) record_bad(checks, kCheckWeights, seg[i]);

    // threshold = the keep-th largest key, bit by bit from the top: the largest value that at
    // least `keep` keys reach.
    unsigned long long threshold = 0;
    if (keep < n)
        for (int bit = 63; bit >= 0; bit--) {
            const unsigned long long candidate = threshold | (1ull << bit);
            unsigned long long reach = 0;
            for (int i = threadIdx.x; i < n; i += kThreads)
                reach += weight_key(weights[seg[i]], seg[i]) >= candidate;
            if (block_reduce(reach, Sum(), kscratch) >= (unsigned long long)keep) threshold = candidate;
        }

    int32_t carry = 0;
    for (int i0 = 0; i0 < n; i0 += kThreads) {
        const int i = i0 + threadIdx.x;
        int32_t kept = 0;
        if (i < n) kept = keep == n || weight_key(weights[seg[i]], seg[i]) >= threshold;
        int32_t tile = 0;
        const int32_t before = block_exclusive_scan(kept, scratch, &tile);
        if (i < n) {
            const int32_t row = kept ? offsets[p] + carry + before : -1;
            slot_position[seg[i]] = row;
            if (kept) sorted_slot[row] = seg[i];
        }
        carry += tile;
    }
}

} // namespace
} // namespace cuda
} // namespace pmoe

namespace pmoe_impl {

int dispatch_plan(const pmoe_dispatch_config *cfg, const int32_t *topk_ids,
                  const float *topk_weights, const int32_t *remap, int32_t *expert_counts,
                  int32_t *expert_offsets, int32_t *slot_position, int32_t *sorted_slot,
                  void *stream) {
    return guarded("pmoe_dispatch_plan", [&] {
        const pmoe_dispatch_config c = *cfg;
        const int64_t slots = int64_t(c.tokens) * c.top_k;
        const int P = c.physical_experts;
        const bool dropless = c.capacity == PMOE_CAPACITY_DROPLESS;
        const bool by_weight = !dropless && c.drop_policy == PMOE_DROP_BY_PROBABILITY;
        const size_t count_bytes = sizeof(int32_t) * size_t(P);
        if (count_bytes > 227 * 1024)
            return fail(PMOE_ERR_UNSUPPORTED,
                        "physical_experts = %d: the CUDA dispatch plan supports at most %d", P,
                        int(227 * 1024 / sizeof(int32_t)));

        const int64_t chunk = chunk_slots(P), chunks = ceil_div(slots, chunk);
        DeviceBuffer expert_of, rank_in_chunk, chunk_base, totals;
        PMOE_CHECK(expert_of.allocate(sizeof(int32_t) * slots, stream, "dispatch expert ids"));
        PMOE_CHECK(rank_in_chunk.allocate(sizeof(int32_t) * slots, stream, "dispatch ranks"));
        PMOE_CHECK(chunk_base.allocate(sizeof(int32_t) * chunks * P, stream, "dispatch chunk counts"));
        PMOE_CHECK(totals.allocate(count_bytes, stream, "dispatch expert totals"));
        InputChecks checks;
        PMOE_CHECK(checks.begin(stream));

        PMOE_CHECK(launch("dispatch_chunk_rank", chunk_rank_kernel, unsigned(chunks), 32,
                          count_bytes, stream, slots, chunk, c.logical_experts, P, topk_ids, remap,
                          expert_of.as<int32_t>(), rank_in_chunk.as<int32_t>(),
                          chunk_base.as<int32_t>(), checks.device()));
        PMOE_CHECK(launch("dispatch_expert_scan", expert_scan_kernel, unsigned(P), kThreads, 0,
                          stream, int(chunks), P, chunk_base.as<int32_t>(), totals.as<int32_t>()));
        PMOE_CHECK(launch("dispatch_expert_offsets", expert_offsets_kernel, 1, kThreads, 0, stream,
                          P, totals.as<const int32_t>(), dropless ? -1 : c.capacity, expert_counts,
                          expert_offsets));
        PMOE_CHECK(memset_async(sorted_slot, 0xff, sizeof(int32_t) * slots, stream));
        if (!by_weight) {
            PMOE_CHECK(launch("dispatch_positions", positions_kernel, grid_for(slots, kThreads),
                              kThreads, 0, stream, slots, chunk, P, dropless ? -1 : c.capacity,
                              expert_of.as<const int32_t>(), rank_in_chunk.as<const int32_t>(),
                              chunk_base.as<const int32_t>(), expert_offsets, slot_position,
                              sorted_slot));
        } else {
            DeviceBuffer all_counts, all_offsets, by_expert;
            PMOE_CHECK(all_counts.allocate(count_bytes, stream, "dispatch dropless counts"));
            PMOE_CHECK(all_offsets.allocate(count_bytes + sizeof(int32_t), stream,
                                            "dispatch dropless offsets"));
            PMOE_CHECK(by_expert.allocate(sizeof(int32_t) * slots, stream, "dispatch slot lists"));
            PMOE_CHECK(memset_async(slot_position, 0xff, sizeof(int32_t) * slots, stream));
            PMOE_CHECK(launch("dispatch_dropless_offsets", expert_offsets_kernel, 1, kThreads, 0,
                              stream, P, totals.as<const int32_t>(), -1, all_counts.as<int32_t>(),
                              all_offsets.as<int32_t>()));
            PMOE_CHECK(launch("dispatch_list_by_expert", list_by_expert_kernel,
                              grid_for(slots, kThreads), kThreads, 0, stream, slots, chunk, P,
                              expert_of.as<const int32_t>(), rank_in_chunk.as<const int32_t>(),
                              chunk_base.as<const int32_t>(), all_offsets.as<const int32_t>(),
                              by_expert.as<int32_t>()));
            PMOE_CHECK(launch("dispatch_keep_heaviest", keep_heaviest_kernel, unsigned(P), kThreads,
                              0, stream, P, c.capacity, all_offsets.as<const int32_t>(),
                              static_cast<const int32_t *>(expert_offsets),
                              static_cast<const int32_t *>(expert_counts),
                              by_expert.as<const int32_t>(), topk_weights, slot_position,
                              sorted_slot, checks.device()));
        }
        PMOE_CHECK(checks.finish(stream));
        PMOE_CHECK(ids_error(checks, kCheckIds, "topk_ids", topk_ids, 0, c.logical_experts));
        PMOE_CHECK(ids_error(checks, kCheckRemap, "remap", remap, 0, P));
        return finite_error(checks, kCheckWeights, "topk_weights", topk_weights, c.top_k, "token",
                            "choice");
    });
}

} // namespace pmoe_impl
