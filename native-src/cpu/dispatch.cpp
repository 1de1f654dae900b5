// Dispatch plan: where each (token, k) slot goes in the expert-sorted buffer.
// A stable counting sort by physical expert, then a per-expert capacity cut. Sequential: it
// touches T * K ints once or twice, which is small next to moving the rows themselves.
#include <algorithm>
#include <vector>

#include "common.hpp"

namespace pmoe {
namespace {

// Moves the `keep` slots of seg[0..n) with the largest weights (ties: the earlier slot) to the
// front, in slot order. The order is total (slots are distinct), so the choice is unique.
void keep_heaviest(int32_t *seg, int32_t n, int32_t keep, const float *weights) {
    auto heavier = [weights](int32_t a, int32_t b) {
        return weights[a] > weights[b] || (weights[a] == weights[b] && a < b);
    };
    std::nth_element(seg, seg + keep, seg + n, heavier);
    std::sort(seg, seg + keep);
}

} // namespace
} // namespace pmoe

namespace pmoe_impl {

int dispatch_plan(const pmoe_dispatch_config *cfg, const int32_t *topk_ids,
                  const float *topk_weights, const int32_t *remap, int32_t *expert_counts,
                  int32_t *expert_offsets, int32_t *slot_position, int32_t *sorted_slot, void *) {
    return guarded("pmoe_dispatch_plan", [&] {
        const pmoe_dispatch_config c = *cfg;
        const int32_t slots = c.tokens * c.top_k, experts = c.physical_experts;
        const bool dropless = c.capacity == PMOE_CAPACITY_DROPLESS;
        const bool by_weight = !dropless && c.drop_policy == PMOE_DROP_BY_PROBABILITY;
        PMOE_CHECK(require_ids_in_range("topk_ids", topk_ids, slots, 0, c.logical_experts));
        if (remap) PMOE_CHECK(require_ids_in_range("remap", remap, c.logical_experts, 0, experts));
        if (by_weight)
            PMOE_CHECK(require_finite("topk_weights", topk_weights, c.tokens, c.top_k, "token",
                                      "choice"));

        // Stable counting sort: by_expert lists the slots of expert p, in slot order, at
        // [first[p], first[p + 1]).
        std::vector<int32_t> expert_of(slots), first(experts + 1, 0), by_expert(slots);
        for (int32_t s = 0; s < slots; s++) {
            expert_of[s] = remap ? remap[topk_ids[s]] : topk_ids[s];
            first[expert_of[s] + 1]++;
        }
        for (int32_t p = 0; p < experts; p++) first[p + 1] += first[p];
        std::vector<int32_t> cursor(first.begin(), first.end() - 1);
        for (int32_t s = 0; s < slots; s++) by_expert[cursor[expert_of[s]]++] = s;

        // Each expert keeps the first `keep` slots of its list (after moving the heaviest to
        // the front when dropping by probability), still in slot order.
        std::fill(slot_position, slot_position + slots, -1);
        int32_t row = 0;
        for (int32_t p = 0; p < experts; p++) {
            int32_t *seg = by_expert.data() + first[p];
            const int32_t n = first[p + 1] - first[p];
            const int32_t keep = dropless ? n : std::min(n, c.capacity);
            if (by_weight && keep > 0 && keep < n) keep_heaviest(seg, n, keep, topk_weights);
            expert_counts[p] = keep;
            expert_offsets[p] = row;
            for (int32_t i = 0; i < keep; i++, row++) {
                slot_position[seg[i]] = row;
                sorted_slot[row] = seg[i];
            }
        }
        expert_offsets[experts] = row;
        std::fill(sorted_slot + row, sorted_slot + slots, -1);
        return PMOE_OK;
    });
}

} // namespace pmoe_impl
