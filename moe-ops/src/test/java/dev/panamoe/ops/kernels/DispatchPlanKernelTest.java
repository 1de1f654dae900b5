package dev.panamoe.ops.kernels;

import static dev.panamoe.ops.kernels.KernelTestSupport.LIB;
import static dev.panamoe.ops.kernels.KernelTestSupport.NO_STREAM;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertDeterministic;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertInvalid;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertOk;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertRejected;
import static dev.panamoe.ops.kernels.KernelTestSupport.bytes;
import static dev.panamoe.ops.kernels.KernelTestSupport.floats;
import static dev.panamoe.ops.kernels.KernelTestSupport.ints;
import static dev.panamoe.ops.kernels.KernelTestSupport.intsFilled;
import static dev.panamoe.ops.kernels.KernelTestSupport.toInts;
import static dev.panamoe.ops.kernels.ReferenceKernels.BY_POSITION;
import static dev.panamoe.ops.kernels.ReferenceKernels.BY_PROBABILITY;
import static dev.panamoe.ops.kernels.ReferenceKernels.DROPLESS;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.panamoe.bindings.panamoe_h;
import dev.panamoe.bindings.pmoe_dispatch_config;
import dev.panamoe.ops.kernels.ReferenceKernels.Plan;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** pmoe_dispatch_plan against {@link ReferenceKernels#dispatchPlan}: every output int must be equal. */
class DispatchPlanKernelTest {

    /** Output sentinel: every element must be overwritten. */
    private static final int GARBAGE = 0x7eadbeef;

    static MemorySegment config(Arena arena, int tokens, int topK, int logical, int physical, int capacity, int policy) {
        MemorySegment cfg = pmoe_dispatch_config.allocate(arena);
        pmoe_dispatch_config.tokens(cfg, tokens);
        pmoe_dispatch_config.top_k(cfg, topK);
        pmoe_dispatch_config.logical_experts(cfg, logical);
        pmoe_dispatch_config.physical_experts(cfg, physical);
        pmoe_dispatch_config.capacity(cfg, capacity);
        pmoe_dispatch_config.drop_policy(cfg, policy);
        return cfg;
    }

    /** remap may be null (identity). */
    static Plan nativePlan(int tokens, int topK, int logical, int physical, int capacity, int policy, int[] ids,
                           float[] weights, int[] remap) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment counts = intsFilled(arena, physical, GARBAGE);
            MemorySegment offsets = intsFilled(arena, physical + 1, GARBAGE);
            MemorySegment position = intsFilled(arena, tokens * topK, GARBAGE);
            MemorySegment sorted = intsFilled(arena, tokens * topK, GARBAGE);
            assertOk(LIB.pmoe_dispatch_plan(config(arena, tokens, topK, logical, physical, capacity, policy), ints(arena, ids),
                    floats(arena, weights), remap == null ? MemorySegment.NULL : ints(arena, remap),
                    counts, offsets, position, sorted, NO_STREAM), "pmoe_dispatch_plan");
            return new Plan(toInts(counts), toInts(offsets), toInts(position), toInts(sorted));
        }
    }

    /** Random router-like ids: K distinct logical experts per token, skewed so some experts are empty. */
    static int[] routerIds(Random rnd, int tokens, int topK, int logical) {
        return LossKernelTest.randomIds(rnd, tokens, logical, topK, false);
    }

    /** Weights on a 1/8 grid so that equal weights (ties for the capacity cut) are frequent. */
    static float[] gridWeights(Random rnd, int n) {
        float[] w = new float[n];
        for (int i = 0; i < n; i++) w[i] = (1 + rnd.nextInt(8)) / 8f;
        return w;
    }

    /** A placement: every logical expert on one of `physical` slots (several experts may share one, some slots stay empty). */
    static int[] randomRemap(Random rnd, int logical, int physical) {
        int[] remap = new int[logical];
        for (int e = 0; e < logical; e++) remap[e] = rnd.nextInt(physical);
        return remap;
    }

    static void checkPlan(String what, int tokens, int topK, int logical, int physical, int capacity, int policy, int[] ids,
                          float[] weights, int[] remap) {
        Plan expected = ReferenceKernels.dispatchPlan(tokens, topK, physical, capacity, policy, ids, weights, remap);
        Plan got = nativePlan(tokens, topK, logical, physical, capacity, policy, ids, weights, remap);
        String where = String.format("%s T=%d K=%d logical=%d physical=%d capacity=%d policy=%d", what, tokens, topK, logical,
                physical, capacity, policy);
        assertArrayEquals(expected.counts(), got.counts(), where + " expert_counts");
        assertArrayEquals(expected.offsets(), got.offsets(), where + " expert_offsets");
        assertArrayEquals(expected.slotPosition(), got.slotPosition(), where + " slot_position");
        assertArrayEquals(expected.sortedSlot(), got.sortedSlot(), where + " sorted_slot (rows >= total are -1)");
    }

    @Test
    void identityAndRemappedPlansMatchReferenceForEveryCapacityAndPolicy() {
        Random rnd = new Random(51);
        int[][] shapes = {{1, 1, 1}, {5, 2, 8}, {64, 2, 8}, {3, 4, 16}, {33, 4, 4}, {257, 1, 3}};
        for (int[] shape : shapes) {
            int tokens = shape[0], topK = shape[1], logical = shape[2];
            int[] ids = routerIds(rnd, tokens, topK, logical);
            float[] weights = gridWeights(rnd, tokens * topK);
            int average = tokens * topK / logical;
            int[] capacities = {DROPLESS, 0, 1, 3, Math.max(1, average), tokens * topK};
            // identity, more physical slots than experts (some stay empty), fewer (experts share a slot)
            for (int physical : new int[] {logical, logical + 3, Math.max(1, logical / 2)}) {
                int[] remap = physical == logical ? null : randomRemap(rnd, logical, physical);
                for (int capacity : capacities) {
                    for (int policy : new int[] {BY_POSITION, BY_PROBABILITY}) {
                        checkPlan(remap == null ? "identity" : "remap", tokens, topK, logical, physical, capacity, policy, ids, weights, remap);
                    }
                }
            }
        }
    }

    @Test
    void degenerateRoutings() {
        Random rnd = new Random(52);
        // One expert gets every slot (K = 1): capacity keeps the first / the heaviest.
        int tokens = 40;
        int[] allZero = new int[tokens];
        float[] weights = gridWeights(rnd, tokens);
        for (int policy : new int[] {BY_POSITION, BY_PROBABILITY}) {
            for (int capacity : new int[] {DROPLESS, 0, 1, 7, 40, 41}) checkPlan("all to expert 0", tokens, 1, 6, 6, capacity, policy, allZero, weights, null);
        }
        // k = experts: every expert gets every token.
        int experts = 5;
        int[] everyExpert = new int[3 * experts];
        for (int s = 0; s < everyExpert.length; s++) everyExpert[s] = experts - 1 - s % experts;
        for (int capacity : new int[] {DROPLESS, 2}) {
            checkPlan("k = experts", 3, experts, experts, experts, capacity, BY_PROBABILITY, everyExpert, gridWeights(rnd, 15), null);
        }
        // Tokens < experts, and all weights tied: by-probability falls back to slot order.
        int[] few = {7, 2, 7, 0};
        float[] tied = {0.5f, 0.5f, 0.5f, 0.5f};
        checkPlan("tokens < experts, tied", 2, 2, 9, 9, 1, BY_PROBABILITY, few, tied, null);
        assertArrayEquals(new int[] {2, 1, -1, 0}, nativePlan(2, 2, 9, 9, 1, BY_PROBABILITY, few, tied, null).slotPosition(),
                "tied weights: expert 7 keeps its earlier slot 0");
        // Remap onto more physical slots than logical experts, two experts sharing a slot.
        checkPlan("shared slot", 4, 2, 3, 6, DROPLESS, BY_POSITION, new int[] {0, 1, 2, 0, 1, 2, 2, 0}, gridWeights(rnd, 8), new int[] {5, 1, 5});
    }

    @Test
    void byProbabilityKeepsTheLargestWeightsInSlotOrder() {
        // Expert 0 receives slots 0, 2, 4, 6 with weights 0.1, 0.9, 0.5, 0.9: capacity 2 keeps slots 2 and 6.
        int[] ids = {0, 1, 0, 1, 0, 1, 0, 1};
        float[] weights = {0.1f, 0.3f, 0.9f, 0.3f, 0.5f, 0.3f, 0.9f, 0.2f};
        Plan got = nativePlan(4, 2, 2, 2, 2, BY_PROBABILITY, ids, weights, null);
        assertArrayEquals(new int[] {2, 2}, got.counts());
        assertArrayEquals(new int[] {0, 2, 4}, got.offsets());
        assertArrayEquals(new int[] {-1, 2, 0, 3, -1, -1, 1, -1}, got.slotPosition());
        assertArrayEquals(new int[] {2, 6, 1, 3, -1, -1, -1, -1}, got.sortedSlot());
    }

    @Test
    void deterministicAcrossRunsAndThreadCounts() {
        Random rnd = new Random(53);
        int tokens = 8192, topK = 4, logical = 64, physical = 80;
        int[] ids = routerIds(rnd, tokens, topK, logical);
        float[] weights = gridWeights(rnd, tokens * topK);
        int[] remap = randomRemap(rnd, logical, physical);
        for (int capacity : new int[] {DROPLESS, 300}) {
            for (int policy : new int[] {BY_POSITION, BY_PROBABILITY}) {
                assertDeterministic("dispatch plan capacity=" + capacity + " policy=" + policy, arena -> {
                    Plan p = nativePlan(tokens, topK, logical, physical, capacity, policy, ids, weights, remap);
                    return bytes(ints(arena, p.counts()), ints(arena, p.offsets()), ints(arena, p.slotPosition()),
                            ints(arena, p.sortedSlot()));
                });
            }
        }
    }

    @Test
    void rejectsBadArguments() {
        int tokens = 2, topK = 2;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ids = ints(arena, 0, 1, 2, 3);
            MemorySegment w = floats(arena, 0.5f, 0.5f, 0.5f, 0.5f);
            MemorySegment counts = ints(arena, new int[8]), offsets = ints(arena, new int[9]);
            MemorySegment pos = ints(arena, new int[4]), sorted = ints(arena, new int[4]);
            MemorySegment ok = config(arena, tokens, topK, 4, 4, DROPLESS, BY_POSITION);

            assertInvalid(LIB.pmoe_dispatch_plan(MemorySegment.NULL, ids, w, MemorySegment.NULL, counts, offsets, pos, sorted, NO_STREAM), "cfg", null);
            assertInvalid(plan(config(arena, tokens, 0, 4, 4, DROPLESS, BY_POSITION), ids, w, MemorySegment.NULL, counts, offsets, pos, sorted),
                    "top_k", "0");
            assertInvalid(plan(config(arena, -1, topK, 4, 4, DROPLESS, BY_POSITION), ids, w, MemorySegment.NULL, counts, offsets, pos, sorted),
                    "tokens", "-1");
            assertInvalid(plan(config(arena, tokens, topK, 0, 4, DROPLESS, BY_POSITION), ids, w, ints(arena, 0), counts, offsets, pos, sorted),
                    "logical_experts", "0");
            assertInvalid(plan(config(arena, tokens, topK, 4, 0, DROPLESS, BY_POSITION), ids, w, ints(arena, 0, 0, 0, 0), counts, offsets, pos,
                    sorted), "physical_experts", "0");
            assertInvalid(plan(config(arena, tokens, topK, 4, 4, -2, BY_POSITION), ids, w, MemorySegment.NULL, counts, offsets, pos, sorted),
                    "capacity", "-2");
            assertInvalid(plan(config(arena, tokens, topK, 4, 4, 1, 2), ids, w, MemorySegment.NULL, counts, offsets, pos, sorted),
                    "drop_policy", "2");
            assertInvalid(plan(ok, ints(arena, 0, 1, 4, 3), w, MemorySegment.NULL, counts, offsets, pos, sorted), "topk_ids", "4");
            assertInvalid(plan(ok, ints(arena, 0, -1, 2, 3), w, MemorySegment.NULL, counts, offsets, pos, sorted), "topk_ids", "-1");
            assertInvalid(plan(config(arena, tokens, topK, 4, 6, DROPLESS, BY_POSITION), ids, w, ints(arena, 0, 1, 6, 2), counts, offsets,
                    pos, sorted), "remap", "6");
            assertInvalid(plan(config(arena, tokens, topK, 4, 6, DROPLESS, BY_POSITION), ids, w, ints(arena, 0, -1, 5, 2), counts, offsets,
                    pos, sorted), "remap", "-1");
            // remap NULL means identity, which needs as many physical as logical experts.
            assertInvalid(plan(config(arena, tokens, topK, 4, 6, DROPLESS, BY_POSITION), ids, w, MemorySegment.NULL, counts, offsets, pos,
                    sorted), "physical_experts", "6");
            assertInvalid(plan(config(arena, tokens, topK, 4, 4, 1, BY_PROBABILITY), ids, MemorySegment.NULL, MemorySegment.NULL, counts,
                    offsets, pos, sorted), "topk_weights", null);
            assertRejected(panamoe_h.PMOE_ERR_NON_FINITE(), plan(config(arena, tokens, topK, 4, 4, 1, BY_PROBABILITY), ids,
                    floats(arena, 0.5f, Float.NaN, 0.5f, 0.5f), MemorySegment.NULL, counts, offsets, pos, sorted), "topk_weights", "nan");
            assertInvalid(plan(ok, MemorySegment.NULL, w, MemorySegment.NULL, counts, offsets, pos, sorted), "topk_ids", null);
            assertInvalid(plan(ok, ids, w, MemorySegment.NULL, MemorySegment.NULL, offsets, pos, sorted), "expert_counts", null);
            assertInvalid(plan(ok, ids, w, MemorySegment.NULL, counts, MemorySegment.NULL, pos, sorted), "expert_offsets", null);
            assertInvalid(plan(ok, ids, w, MemorySegment.NULL, counts, offsets, MemorySegment.NULL, sorted), "slot_position", null);
            assertInvalid(plan(ok, ids, w, MemorySegment.NULL, counts, offsets, pos, MemorySegment.NULL), "sorted_slot", null);
        }
    }

    private static int plan(MemorySegment cfg, MemorySegment ids, MemorySegment weights, MemorySegment remap, MemorySegment counts,
                            MemorySegment offsets, MemorySegment pos, MemorySegment sorted) {
        return LIB.pmoe_dispatch_plan(cfg, ids, weights, remap, counts, offsets, pos, sorted, NO_STREAM);
    }
}
