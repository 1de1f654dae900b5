package dev.panamoe.ops.cuda;

import static dev.panamoe.ops.cuda.Harness.BF16;
import static dev.panamoe.ops.cuda.Harness.BF16_EPS;
import static dev.panamoe.ops.cuda.Harness.CPU;
import static dev.panamoe.ops.cuda.Harness.F32;
import static dev.panamoe.ops.cuda.Harness.F32_EPS;
import static dev.panamoe.ops.cuda.Harness.HOST;
import static dev.panamoe.ops.cuda.Harness.NO_STREAM;
import static dev.panamoe.ops.cuda.Harness.assertClose;
import static dev.panamoe.ops.cuda.Harness.assertCloseRounded;
import static dev.panamoe.ops.cuda.Harness.assertOk;
import static dev.panamoe.ops.cuda.Harness.assertSameInts;
import static dev.panamoe.ops.cuda.Harness.both;
import static dev.panamoe.ops.cuda.Harness.bothReject;
import static dev.panamoe.ops.cuda.Harness.floats;
import static dev.panamoe.ops.cuda.Harness.gaussian;
import static dev.panamoe.ops.cuda.Harness.ints;
import static dev.panamoe.ops.cuda.Harness.pointers;
import static dev.panamoe.ops.cuda.Harness.tensor;
import static dev.panamoe.ops.cuda.Harness.uniform;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.bindings.panamoe_h;
import dev.panamoe.bindings.pmoe_dispatch_config;
import dev.panamoe.bindings.pmoe_router_config;
import dev.panamoe.ops.cuda.Harness.Out;
import dev.panamoe.ops.cuda.Harness.Pair;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Every CUDA kernel of panamoe.h (MoE and dense operators), run through the host-execution
 * harness on random inputs (ragged and degenerate shapes included) and compared with the CPU
 * library: integers exactly, floats within f32 / bf16 tolerances; bad inputs must be rejected
 * with the CPU's exact status and message.
 */
class HostHarnessKernelTest {
    private static final int SOFTMAX = panamoe_h.PMOE_SCORE_SOFTMAX(), SIGMOID = panamoe_h.PMOE_SCORE_SIGMOID();
    private static final int DROPLESS = panamoe_h.PMOE_CAPACITY_DROPLESS();
    private static final int BY_POSITION = panamoe_h.PMOE_DROP_BY_POSITION();
    private static final int BY_PROBABILITY = panamoe_h.PMOE_DROP_BY_PROBABILITY();

    /** Entry points of the library itself, not kernels (checked in libraryFunctions). */
    private static final Set<String> LIBRARY_FUNCTIONS = Set.of("pmoe_last_error", "pmoe_version",
            "pmoe_backend_name", "pmoe_noop", "pmoe_set_num_threads", "pmoe_get_num_threads", "pmoe_cpu_isa",
            "pmoe_set_cpu_isa");

    @AfterAll
    static void report() {
        Set<String> cuda = Harness.exported(HOST);
        Set<String> notRun = new TreeSet<>(cuda);
        notRun.removeAll(Harness.RAN);
        notRun.removeAll(LIBRARY_FUNCTIONS);
        Set<String> missing = new TreeSet<>(Harness.exported(CPU));
        missing.removeAll(cuda);
        System.out.println("host-execution harness: ran " + Harness.RAN.size() + " CUDA kernels against the CPU library: "
                + Harness.list(Harness.RAN));
        System.out.println("host-execution harness: of these, " + Harness.RAN_BF16.size()
                + " ran on bf16 data against the CPU's bf16 path: " + Harness.list(Harness.RAN_BF16));
        // "Not run by these tests", not "cannot run": a run of some tests only (scripts/hostexec-tsan,
        // -Dtest=...) leaves the other kernels out; the whole suite runs every one (it prints none).
        System.out.println("host-execution harness: CUDA kernels not run by these tests: " + Harness.list(notRun));
        System.out.println("host-execution harness: CPU entry points with no CUDA kernel yet: " + Harness.list(missing));
    }

    @Test
    void everyCpuEntryPointHasACudaKernel() {
        Set<String> missing = new TreeSet<>(Harness.exported(CPU));
        missing.removeAll(Harness.exported(HOST));
        assertEquals(Set.of(), missing, "functions of the CPU library missing from " + Harness.HOST_LIBRARY);
        assertTrue(Harness.exported(HOST).contains("pmoe_attention_backward"), "the check sees the dense kernels");
        assertEquals("cuda", HOST.pmoe_backend_name().getString(0));
    }

    // ---- router ----

    private static MemorySegment routerConfig(Arena arena, int tokens, int experts, int topK, int score,
            int renormalize) {
        MemorySegment cfg = pmoe_router_config.allocate(arena);
        pmoe_router_config.tokens(cfg, tokens);
        pmoe_router_config.experts(cfg, experts);
        pmoe_router_config.top_k(cfg, topK);
        pmoe_router_config.score_func(cfg, score);
        pmoe_router_config.renormalize(cfg, renormalize);
        pmoe_router_config.reserved(cfg, 0);
        return cfg;
    }

    /** Logits with ties (a coarse grid) in half of the cases, so "ties to the lower id" is exercised. */
    private static float[] logits(Random rnd, int n, boolean ties) {
        float[] v = gaussian(rnd, n, 2.0);
        if (ties) for (int i = 0; i < n; i++) v[i] = Math.round(v[i] * 2) / 2.0f;
        return v;
    }

    @Test
    void routerForwardAndBackward() {
        int[][] shapes = {{1, 1, 1}, {7, 5, 2}, {37, 70, 8}, {130, 33, 33}, {20, 64, 6}};
        Random rnd = new Random(1);
        for (int[] s : shapes) {
            int tokens = s[0], experts = s[1], topK = s[2];
            for (int score : new int[] {SOFTMAX, SIGMOID}) {
                for (int renorm = 0; renorm <= 1; renorm++) {
                    String what = String.format("router T=%d E=%d K=%d score=%d renorm=%d", tokens, experts, topK, score,
                            renorm);
                    try (Arena arena = Arena.ofConfined()) {
                        MemorySegment cfg = routerConfig(arena, tokens, experts, topK, score, renorm);
                        MemorySegment logits = floats(arena, logits(rnd, tokens * experts, renorm == 1));
                        Pair fwd = both(arena, "pmoe_router_forward",
                                List.of(Out.floats((long) tokens * experts), Out.floats((long) tokens * topK),
                                        Out.ints((long) tokens * topK)),
                                (lib, o) -> lib.pmoe_router_forward(cfg, logits, o[0], o[1], o[2], NO_STREAM));
                        assertSameInts(what + " topk_ids", fwd.cpu()[2], fwd.host()[2]);
                        assertClose(what + " scores", fwd.cpu()[0], fwd.host()[0], F32, 16 * F32_EPS, 1e-9);
                        assertClose(what + " weights", fwd.cpu()[1], fwd.host()[1], F32, 16 * F32_EPS, 1e-9);

                        MemorySegment scores = fwd.cpu()[0], ids = fwd.cpu()[2];
                        MemorySegment gradWeights = floats(arena, gaussian(rnd, tokens * topK, 1));
                        MemorySegment gradScores = renorm == 1 ? floats(arena, gaussian(rnd, tokens * experts, 1))
                                : MemorySegment.NULL;
                        Pair bwd = both(arena, "pmoe_router_backward", List.of(Out.floats((long) tokens * experts)),
                                (lib, o) -> lib.pmoe_router_backward(cfg, scores, ids, gradWeights, gradScores, o[0],
                                        NO_STREAM));
                        assertClose(what + " grad_logits", bwd.cpu()[0], bwd.host()[0], F32, 64 * F32_EPS, 1e-6);
                    }
                }
            }
        }
    }

    @Test
    void routerRejectsBadInputsAsTheCpuDoes() {
        try (Arena arena = Arena.ofConfined()) {
            int tokens = 9, experts = 8, topK = 2;
            MemorySegment cfg = routerConfig(arena, tokens, experts, topK, SOFTMAX, 1);
            float[] v = gaussian(new Random(2), tokens * experts, 1);
            v[5 * experts + 3] = Float.NaN;
            v[7 * experts + 1] = Float.POSITIVE_INFINITY;
            MemorySegment logits = floats(arena, v);
            List<Out> outs = List.of(Out.floats(tokens * experts), Out.floats(tokens * topK), Out.ints(tokens * topK));
            String m = bothReject(arena, "pmoe_router_forward", outs,
                    (lib, o) -> lib.pmoe_router_forward(cfg, logits, o[0], o[1], o[2], NO_STREAM));
            assertTrue(m.contains("logits[5, 3]"), m);

            int[] ids = new int[tokens * topK];
            ids[7] = 99;
            ids[11] = -4;
            MemorySegment badIds = ints(arena, ids);
            MemorySegment scores = floats(arena, uniform(new Random(3), tokens * experts, 0, 1));
            MemorySegment grad = floats(arena, new float[tokens * topK]);
            m = bothReject(arena, "pmoe_router_backward", List.of(Out.floats(tokens * experts)),
                    (lib, o) -> lib.pmoe_router_backward(cfg, scores, badIds, grad, MemorySegment.NULL, o[0],
                            NO_STREAM));
            assertTrue(m.contains("topk_ids[7] = 99"), m);
            pmoe_router_config.reserved(cfg, 3);
            bothReject(arena, "pmoe_router_forward", outs,
                    (lib, o) -> lib.pmoe_router_forward(cfg, logits, o[0], o[1], o[2], NO_STREAM));
        }
    }

    // ---- losses ----

    private static int[] randomIds(Random rnd, int tokens, int topK, int experts, boolean skewed) {
        int[] ids = new int[tokens * topK];
        for (int t = 0; t < tokens; t++) {
            // distinct ids per token, as the router gives; skewed routing favours the low experts
            List<Integer> pool = new java.util.ArrayList<>();
            for (int e = 0; e < experts; e++) pool.add(e);
            if (!skewed) java.util.Collections.shuffle(pool, rnd);
            else if (rnd.nextInt(4) == 0) java.util.Collections.shuffle(pool, rnd);
            for (int j = 0; j < topK; j++) ids[t * topK + j] = pool.get(j);
        }
        return ids;
    }

    @Test
    void auxAndZLosses() {
        int[][] shapes = {{1, 1, 1}, {13, 6, 2}, {150, 40, 8}, {65, 300, 3}};
        Random rnd = new Random(4);
        for (int[] s : shapes) {
            int tokens = s[0], experts = s[1], topK = s[2];
            String what = String.format("losses T=%d E=%d K=%d", tokens, experts, topK);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment scores = floats(arena, uniform(rnd, tokens * experts, 0, 1));
                MemorySegment ids = ints(arena, randomIds(rnd, tokens, topK, experts, true));
                Pair aux = both(arena, "pmoe_aux_loss_forward", List.of(Out.floats(1), Out.ints(experts)),
                        (lib, o) -> lib.pmoe_aux_loss_forward(tokens, experts, topK, scores, ids, 0.01f, o[0], o[1],
                                NO_STREAM));
                assertSameInts(what + " expert_counts", aux.cpu()[1], aux.host()[1]);
                assertClose(what + " aux loss", aux.cpu()[0], aux.host()[0], F32, 8 * F32_EPS, 0);

                MemorySegment counts = aux.cpu()[1];
                Pair auxGrad = both(arena, "pmoe_aux_loss_backward", List.of(Out.floats((long) tokens * experts)),
                        (lib, o) -> lib.pmoe_aux_loss_backward(tokens, experts, topK, counts, 0.01f, 1.5f, o[0],
                                NO_STREAM));
                assertClose(what + " aux grad", auxGrad.cpu()[0], auxGrad.host()[0], F32, 4 * F32_EPS, 0);

                MemorySegment logits = floats(arena, gaussian(rnd, tokens * experts, 3));
                Pair z = both(arena, "pmoe_z_loss_forward", List.of(Out.floats(1)),
                        (lib, o) -> lib.pmoe_z_loss_forward(tokens, experts, logits, 0.001f, o[0], NO_STREAM));
                assertClose(what + " z loss", z.cpu()[0], z.host()[0], F32, 64 * F32_EPS, 0);

                float[] base = gaussian(rnd, tokens * experts, 1);
                // z_loss_backward adds into grad_logits: both start from the same values
                Pair zGrad = both(arena, "pmoe_z_loss_backward", List.of(Out.floats((long) tokens * experts)),
                        (lib, o) -> {
                            MemorySegment.copy(base, 0, o[0], JAVA_FLOAT, 0, base.length);
                            return lib.pmoe_z_loss_backward(tokens, experts, logits, 0.001f, 2f, o[0], NO_STREAM);
                        });
                assertClose(what + " z grad", zGrad.cpu()[0], zGrad.host()[0], F32, 64 * F32_EPS, 1e-9);
            }
        }
    }

    @Test
    void lossesRejectBadInputsAsTheCpuDoes() {
        try (Arena arena = Arena.ofConfined()) {
            int tokens = 6, experts = 4, topK = 2;
            MemorySegment scores = floats(arena, new float[tokens * experts]);
            int[] ids = randomIds(new Random(5), tokens, topK, experts, false);
            ids[9] = 4;
            MemorySegment badIds = ints(arena, ids);
            bothReject(arena, "pmoe_aux_loss_forward", List.of(Out.floats(1), Out.ints(experts)),
                    (lib, o) -> lib.pmoe_aux_loss_forward(tokens, experts, topK, scores, badIds, 1f, o[0], o[1],
                            NO_STREAM));
            MemorySegment badCounts = ints(arena, 3, -1, 2, 100);
            bothReject(arena, "pmoe_aux_loss_backward", List.of(Out.floats(tokens * experts)),
                    (lib, o) -> lib.pmoe_aux_loss_backward(tokens, experts, topK, badCounts, 1f, 1f, o[0],
                            NO_STREAM));
            float[] v = new float[tokens * experts];
            v[13] = Float.NEGATIVE_INFINITY;
            MemorySegment logits = floats(arena, v);
            bothReject(arena, "pmoe_z_loss_forward", List.of(Out.floats(1)),
                    (lib, o) -> lib.pmoe_z_loss_forward(tokens, experts, logits, 1f, o[0], NO_STREAM));
            bothReject(arena, "pmoe_z_loss_backward", List.of(Out.floats(tokens * experts)),
                    (lib, o) -> lib.pmoe_z_loss_backward(tokens, experts, logits, 1f, 1f, o[0], NO_STREAM));
        }
    }

    // ---- dispatch plan ----

    private static MemorySegment dispatchConfig(Arena arena, int tokens, int topK, int logical, int physical,
            int capacity, int policy) {
        MemorySegment cfg = pmoe_dispatch_config.allocate(arena);
        pmoe_dispatch_config.tokens(cfg, tokens);
        pmoe_dispatch_config.top_k(cfg, topK);
        pmoe_dispatch_config.logical_experts(cfg, logical);
        pmoe_dispatch_config.physical_experts(cfg, physical);
        pmoe_dispatch_config.capacity(cfg, capacity);
        pmoe_dispatch_config.drop_policy(cfg, policy);
        return cfg;
    }

    /** The plan's four outputs from both libraries, compared exactly. */
    private static Pair plan(Arena arena, String what, MemorySegment cfg, int slots, int physical, MemorySegment ids,
            MemorySegment weights, MemorySegment remap) {
        Pair p = both(arena, "pmoe_dispatch_plan",
                List.of(Out.ints(physical), Out.ints(physical + 1), Out.ints(slots), Out.ints(slots)),
                (lib, o) -> lib.pmoe_dispatch_plan(cfg, ids, weights, remap, o[0], o[1], o[2], o[3], NO_STREAM));
        String[] names = {"expert_counts", "expert_offsets", "slot_position", "sorted_slot"};
        for (int i = 0; i < 4; i++) assertSameInts(what + " " + names[i], p.cpu()[i], p.host()[i]);
        return p;
    }

    @Test
    void dispatchPlanMatchesTheCpuExactly() {
        Random rnd = new Random(6);
        // tokens, top_k, logical, physical (> logical: replicas through remap), capacity
        int[][] cases = {{1, 1, 1, 1, DROPLESS}, {50, 2, 8, 8, DROPLESS}, {50, 2, 8, 8, 5}, {333, 4, 16, 16, 70},
                {97, 3, 6, 9, 20}, {64, 8, 64, 64, 0}, {300, 2, 5, 5, 1000}, {700, 1, 3, 3, 100}};
        for (int[] c : cases) {
            int tokens = c[0], topK = c[1], logical = c[2], physical = c[3], capacity = c[4];
            int slots = tokens * topK;
            for (boolean skewed : new boolean[] {false, true}) {
                for (int policy : new int[] {BY_POSITION, BY_PROBABILITY}) {
                    if (capacity == DROPLESS && policy == BY_PROBABILITY) continue;
                    String what = String.format("dispatch T=%d K=%d L=%d P=%d cap=%d policy=%d skewed=%b", tokens,
                            topK, logical, physical, capacity, policy, skewed);
                    try (Arena arena = Arena.ofConfined()) {
                        MemorySegment ids = ints(arena, randomIds(rnd, tokens, topK, logical, skewed));
                        float[] w = uniform(rnd, slots, 0, 1);
                        for (int i = 0; i < slots; i += 3) w[i] = 0.25f * rnd.nextInt(4); // ties, zeros
                        if (slots > 1) w[1] = -0.0f;
                        MemorySegment weights = floats(arena, w);
                        MemorySegment remap = MemorySegment.NULL;
                        if (physical != logical) {
                            int[] r = new int[logical];
                            for (int i = 0; i < logical; i++) r[i] = rnd.nextInt(physical);
                            remap = ints(arena, r);
                        }
                        MemorySegment cfg = dispatchConfig(arena, tokens, topK, logical, physical, capacity, policy);
                        plan(arena, what, cfg, slots, physical, ids, weights, remap);
                    }
                }
            }
        }
    }

    @Test
    void dispatchPlanRejectsBadInputsAsTheCpuDoes() {
        try (Arena arena = Arena.ofConfined()) {
            int tokens = 10, topK = 2, slots = tokens * topK;
            List<Out> outs = List.of(Out.ints(6), Out.ints(7), Out.ints(slots), Out.ints(slots));
            int[] ids = randomIds(new Random(7), tokens, topK, 4, false);
            ids[13] = 4;
            MemorySegment badIds = ints(arena, ids);
            MemorySegment weights = floats(arena, new float[slots]);
            MemorySegment cfg = dispatchConfig(arena, tokens, topK, 4, 6, 3, BY_PROBABILITY);
            MemorySegment remap = ints(arena, 0, 5, 2, 3);
            String m = bothReject(arena, "pmoe_dispatch_plan", outs,
                    (lib, o) -> lib.pmoe_dispatch_plan(cfg, badIds, weights, remap, o[0], o[1], o[2], o[3], NO_STREAM));
            assertTrue(m.contains("topk_ids[13] = 4"), m);

            MemorySegment goodIds = ints(arena, randomIds(new Random(7), tokens, topK, 4, false));
            MemorySegment badRemap = ints(arena, 0, 6, 2, -1);
            m = bothReject(arena, "pmoe_dispatch_plan", outs,
                    (lib, o) -> lib.pmoe_dispatch_plan(cfg, goodIds, weights, badRemap, o[0], o[1], o[2], o[3],
                            NO_STREAM));
            assertTrue(m.contains("remap[1] = 6"), m);

            float[] w = new float[slots];
            w[17] = Float.NaN;
            MemorySegment nanWeights = floats(arena, w);
            m = bothReject(arena, "pmoe_dispatch_plan", outs,
                    (lib, o) -> lib.pmoe_dispatch_plan(cfg, goodIds, nanWeights, remap, o[0], o[1], o[2], o[3],
                            NO_STREAM));
            assertTrue(m.contains("topk_weights[8, 1]"), m);
        }
    }

    // ---- permute / combine ----

    @Test
    void permuteAndCombineForwardAndBackward() {
        Random rnd = new Random(8);
        // tokens, top_k, experts, capacity, hidden: hidden 8 / 64 take the 16-byte path, 3 and 13 the scalar one
        int[][] cases = {{1, 1, 1, DROPLESS, 1}, {23, 2, 4, DROPLESS, 8}, {40, 3, 5, 9, 13}, {64, 4, 8, 20, 64},
                {17, 2, 3, 4, 3}, {6, 2, 3, 0, 8}}; // the last drops every slot: rows == 0
        for (int[] c : cases) {
            int tokens = c[0], topK = c[1], experts = c[2], capacity = c[3], hidden = c[4];
            int slots = tokens * topK;
            for (int dtype : new int[] {F32, BF16}) {
                String what = String.format("permute T=%d K=%d E=%d cap=%d H=%d dtype=%d", tokens, topK, experts,
                        capacity, hidden, dtype);
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment ids = ints(arena, randomIds(rnd, tokens, topK, experts, true));
                    MemorySegment weights = floats(arena, uniform(rnd, slots, 0, 1));
                    MemorySegment cfg = dispatchConfig(arena, tokens, topK, experts, experts, capacity, BY_POSITION);
                    Pair plan = plan(arena, what, cfg, slots, experts, ids, weights, MemorySegment.NULL);
                    int rows = plan.cpu()[1].getAtIndex(JAVA_INT, experts);
                    MemorySegment position = plan.cpu()[2], sorted = plan.cpu()[3];
                    double eps = 8 * F32_EPS; // sums of top_k terms in f32

                    MemorySegment x = tensor(arena, dtype, gaussian(rnd, tokens * hidden, 1));
                    Pair out = both(arena, dtype, "pmoe_permute", List.of(Out.of(dtype, (long) rows * hidden)),
                            (lib, o) -> lib.pmoe_permute(dtype, tokens, topK, rows, hidden, x, sorted, o[0], NO_STREAM));
                    assertClose(what + " out", out.cpu()[0], out.host()[0], dtype, 0, 0); // a copy: exact

                    MemorySegment gradOut = tensor(arena, dtype, gaussian(rnd, rows * hidden, 1));
                    Pair gx = both(arena, dtype, "pmoe_permute_backward", List.of(Out.of(dtype, (long) tokens * hidden)),
                            (lib, o) -> lib.pmoe_permute_backward(dtype, tokens, topK, rows, hidden, gradOut, position,
                                    o[0], NO_STREAM));
                    assertCloseRounded(what + " grad_x", gx.cpu()[0], gx.host()[0], dtype, eps, 1e-6);

                    MemorySegment expertOut = tensor(arena, dtype, gaussian(rnd, rows * hidden, 1));
                    Pair y = both(arena, dtype, "pmoe_combine", List.of(Out.of(dtype, (long) tokens * hidden)),
                            (lib, o) -> lib.pmoe_combine(dtype, tokens, topK, rows, hidden, expertOut, weights, position,
                                    o[0], NO_STREAM));
                    assertCloseRounded(what + " y", y.cpu()[0], y.host()[0], dtype, eps, 1e-6);

                    MemorySegment gradY = tensor(arena, dtype, gaussian(rnd, tokens * hidden, 1));
                    Pair cb = both(arena, dtype, "pmoe_combine_backward",
                            List.of(Out.of(dtype, (long) rows * hidden), Out.floats(slots)),
                            (lib, o) -> lib.pmoe_combine_backward(dtype, tokens, topK, rows, hidden, gradY, expertOut,
                                    weights, position, o[0], o[1], NO_STREAM));
                    assertCloseRounded(what + " grad_expert_out", cb.cpu()[0], cb.host()[0], dtype, eps, 1e-6);
                    // a dot product over the row, in another order: error grows with the row length
                    assertClose(what + " grad_weights", cb.cpu()[1], cb.host()[1], F32, 0, 1e-5 * hidden);
                }
            }
        }
    }

    @Test
    void unalignedRowsTakeTheScalarPath() {
        try (Arena arena = Arena.ofConfined()) {
            int tokens = 6, topK = 1, hidden = 8, rows = 6;
            MemorySegment sorted = ints(arena, 5, 4, 3, 2, 1, 0);
            float[] v = gaussian(new Random(9), tokens * hidden + 1, 1);
            for (int dtype : new int[] {F32, BF16}) {
                // one element (4 or 2 bytes) off a 16-byte boundary: rows of 8 elements, no 16-byte packs
                MemorySegment x = tensor(arena, dtype, v).asSlice(dtype == F32 ? 4 : 2);
                Pair out = both(arena, dtype, "pmoe_permute", List.of(Out.of(dtype, rows * hidden)),
                        (lib, o) -> lib.pmoe_permute(dtype, tokens, topK, rows, hidden, x, sorted, o[0], NO_STREAM));
                assertClose("permute unaligned, dtype " + dtype, out.cpu()[0], out.host()[0], dtype, 0, 0);
            }
        }
    }

    @Test
    void permuteAndCombineRejectBadInputsAsTheCpuDoes() {
        try (Arena arena = Arena.ofConfined()) {
            int tokens = 4, topK = 2, rows = 8, hidden = 4;
            MemorySegment x = floats(arena, new float[tokens * hidden]);
            MemorySegment badSorted = ints(arena, 0, 1, 2, 3, 4, 8, 6, -2);
            String m = bothReject(arena, "pmoe_permute", List.of(Out.floats(rows * hidden)),
                    (lib, o) -> lib.pmoe_permute(F32, tokens, topK, rows, hidden, x, badSorted, o[0], NO_STREAM));
            assertTrue(m.contains("sorted_slot[5] = 8"), m);

            MemorySegment repeated = ints(arena, 0, 1, 2, 3, 1, 5, -1, 7);
            MemorySegment weights = floats(arena, new float[tokens * topK]);
            MemorySegment rowsIn = floats(arena, new float[rows * hidden]);
            m = bothReject(arena, "pmoe_combine_backward", List.of(Out.floats(rows * hidden), Out.floats(tokens * topK)),
                    (lib, o) -> lib.pmoe_combine_backward(F32, tokens, topK, rows, hidden, x, rowsIn, weights,
                            repeated, o[0], o[1], NO_STREAM));
            assertTrue(m.contains("slot_position[4] = 1 repeats slot_position[1]"), m);

            MemorySegment outOfRange = ints(arena, 0, 1, 2, 3, 9, 5, -1, 7);
            bothReject(arena, "pmoe_combine", List.of(Out.floats(tokens * hidden)),
                    (lib, o) -> lib.pmoe_combine(F32, tokens, topK, rows, hidden, rowsIn, weights, outOfRange, o[0],
                            NO_STREAM));
            bothReject(arena, "pmoe_permute", List.of(Out.floats(rows * hidden)),
                    (lib, o) -> lib.pmoe_permute(7, tokens, topK, rows, hidden, x, badSorted, o[0], NO_STREAM));
        }
    }

    // ---- activations ----

    @Test
    void activationsForwardAndBackward() {
        Random rnd = new Random(10);
        int[][] shapes = {{0, 5}, {1, 1}, {3, 17}, {37, 64}};
        for (int dtype : new int[] {F32, BF16})
        for (int act : new int[] {panamoe_h.PMOE_ACT_GELU(), panamoe_h.PMOE_ACT_SILU(), panamoe_h.PMOE_ACT_SWIGLU()}) {
            for (int[] s : shapes) {
                int rows = s[0], cols = s[1];
                int inCols = act == panamoe_h.PMOE_ACT_SWIGLU() ? 2 * cols : cols;
                String what = String.format("activation %d dtype=%d rows=%d cols=%d", act, dtype, rows, cols);
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment in = tensor(arena, dtype, gaussian(rnd, rows * inCols, 3));
                    Pair fwd = both(arena, dtype, "pmoe_activation_forward", List.of(Out.of(dtype, (long) rows * cols)),
                            (lib, o) -> lib.pmoe_activation_forward(dtype, act, rows, cols, in, o[0], NO_STREAM));
                    assertCloseRounded(what + " out", fwd.cpu()[0], fwd.host()[0], dtype, 32 * F32_EPS, 1e-7);
                    MemorySegment gradOut = tensor(arena, dtype, gaussian(rnd, rows * cols, 1));
                    Pair bwd = both(arena, dtype, "pmoe_activation_backward", List.of(Out.of(dtype, (long) rows * inCols)),
                            (lib, o) -> lib.pmoe_activation_backward(dtype, act, rows, cols, in, gradOut, o[0], NO_STREAM));
                    assertCloseRounded(what + " grad_in", bwd.cpu()[0], bwd.host()[0], dtype, 64 * F32_EPS, 1e-7);
                }
            }
        }
    }

    // ---- GEMMs ----

    /** Tolerance per element of C = alpha op(A) op(B) + beta C: f32 accumulation error of two orders. */
    private static double[] gemmBound(float[] a, float[] b, float[] c, int m, int n, int k, boolean ta, boolean tb,
            int lda, int ldb, int ldc, float alpha, float beta) {
        double[] bound = new double[c.length];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) {
                    double av = ta ? a[p * lda + i] : a[i * lda + p], bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                    s += Math.abs(av * bv);
                }
                double old = beta == 0 ? 0 : Math.abs(beta * c[i * ldc + j]); // beta == 0: C (NaN here) unread
                bound[i * ldc + j] = 2 * (k + 2) * F32_EPS * (Math.abs(alpha) * s + old) + 1e-30;
            }
        }
        return bound;
    }

    @Test
    void gemmAllTransposes() {
        Random rnd = new Random(11);
        int[][] shapes = {{1, 1, 1}, {37, 29, 53}, {64, 64, 16}, {65, 130, 70}, {0, 5, 3}, {4, 0, 3}, {5, 6, 0}};
        for (int[] s : shapes) {
            int m = s[0], n = s[1], k = s[2];
            for (int ta = 0; ta <= 1; ta++) {
                for (int tb = 0; tb <= 1; tb++) {
                    for (float beta : new float[] {0f, 0.5f}) {
                        int lda = (ta == 1 ? m : k) + 3, ldb = (tb == 1 ? k : n) + 1, ldc = n + 2;
                        float[] a = gaussian(rnd, Math.max(1, (ta == 1 ? k : m) * lda), 1);
                        float[] b = gaussian(rnd, Math.max(1, (tb == 1 ? n : k) * ldb), 1);
                        float[] c0 = gaussian(rnd, Math.max(1, m * ldc), 1);
                        if (beta == 0) java.util.Arrays.fill(c0, Float.NaN); // beta == 0: C is not read
                        String what = String.format("gemm m=%d n=%d k=%d ta=%d tb=%d beta=%s", m, n, k, ta, tb, beta);
                        int fta = ta, ftb = tb;
                        try (Arena arena = Arena.ofConfined()) {
                            MemorySegment sa = floats(arena, a), sb = floats(arena, b);
                            Pair p = both(arena, "pmoe_gemm", List.of(Out.floats(c0.length)), (lib, o) -> {
                                MemorySegment.copy(c0, 0, o[0], JAVA_FLOAT, 0, c0.length);
                                return lib.pmoe_gemm(fta, ftb, m, n, k, 0.7f, sa, lda, sb, ldb, beta, o[0], ldc,
                                        NO_STREAM);
                            });
                            double[] bound = gemmBound(a, b, c0, m, n, k, ta == 1, tb == 1, lda, ldb, ldc, 0.7f, beta);
                            float[] cpu = p.cpu()[0].toArray(JAVA_FLOAT), host = p.host()[0].toArray(JAVA_FLOAT);
                            for (int i = 0; i < m; i++) {
                                for (int j = 0; j < ldc; j++) {
                                    int at = i * ldc + j;
                                    if (j >= n) { // padding between rows: untouched by both
                                        assertEquals(Float.floatToRawIntBits(c0[at]), Float.floatToRawIntBits(host[at]),
                                                what + " wrote the padding at " + at);
                                        continue;
                                    }
                                    double err = Math.abs((double) cpu[at] - host[at]);
                                    assertTrue(err <= bound[at], what + " element " + at + ": cpu " + cpu[at]
                                            + ", harness " + host[at]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void groupedGemmsOverRaggedGroups() {
        Random rnd = new Random(12);
        int[][] groupRows = {{}, {0}, {5}, {0, 5, 70, 0, 1, 33}, {64, 64, 1, 0, 0, 2}};
        int[][] kn = {{20, 37}, {64, 8}, {0, 5}, {7, 0}};
        for (int[] sizes : groupRows) {
            for (int[] d : kn) {
                int k = d[0], n = d[1], groups = sizes.length;
                int[] offsets = offsets(sizes);
                int rows = offsets[groups];
                String what = String.format("grouped rows=%s k=%d n=%d", java.util.Arrays.toString(sizes), k, n);
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment off = ints(arena, offsets);
                    MemorySegment a = floats(arena, gaussian(rnd, rows * k, 1));
                    MemorySegment[] w = new MemorySegment[groups];
                    for (int g = 0; g < groups; g++) w[g] = floats(arena, gaussian(rnd, k * n, 1));
                    MemorySegment weights = pointers(arena, w);
                    double tol = 2 * (k + 2) * F32_EPS * 4 * Math.max(1, k); // |a|,|w| ~ N(0,1): sum|ab| ~ 0.64 k

                    Pair nn = both(arena, "pmoe_grouped_gemm_nn", List.of(Out.floats((long) rows * n)),
                            (lib, o) -> lib.pmoe_grouped_gemm_nn(groups, off, k, n, a, weights, o[0], NO_STREAM));
                    assertClose(what + " nn", nn.cpu()[0], nn.host()[0], F32, 0, tol);
                    MemorySegment aT = floats(arena, gaussian(rnd, rows * n, 1)); // nt: a [rows, n] * W^T [n, k]
                    Pair nt = both(arena, "pmoe_grouped_gemm_nt", List.of(Out.floats((long) rows * k)),
                            (lib, o) -> lib.pmoe_grouped_gemm_nt(groups, off, n, k, aT, weights, o[0], NO_STREAM));
                    assertClose(what + " nt", nt.cpu()[0], nt.host()[0], F32, 0, 2 * (n + 2) * F32_EPS * 4 * Math.max(1, n));

                    MemorySegment b = floats(arena, gaussian(rnd, rows * n, 1));
                    for (float beta : new float[] {0f, 0.5f}) {
                        float[][] init = new float[groups][];
                        for (int g = 0; g < groups; g++) init[g] = beta == 0 ? nanArray(k * n) : gaussian(rnd, k * n, 1);
                        MemorySegment[][] outs = new MemorySegment[2][groups];
                        Pair tn = both(arena, "pmoe_grouped_gemm_tn", List.of(), (lib, o) -> {
                            MemorySegment[] dst = outs[lib == CPU ? 0 : 1];
                            for (int g = 0; g < groups; g++) dst[g] = floats(arena, init[g]);
                            return lib.pmoe_grouped_gemm_tn(groups, off, k, n, a, b, beta, pointers(arena, dst), NO_STREAM);
                        });
                        for (int g = 0; g < groups; g++) {
                            double tolTn = 2 * (sizes[g] + 2) * F32_EPS * 4 * Math.max(1, sizes[g]) + 1e-6;
                            assertClose(what + " tn beta=" + beta + " group " + g, outs[0][g], outs[1][g], F32, 0, tolTn);
                        }
                        assertEquals(0, tn.cpu().length);
                    }
                }
            }
        }
    }

    /**
     * The tensor-core path (cp.async, ldmatrix, mma.m16n8k16 through the harness's emulation)
     * against the CPU's bf16 grouped GEMM (f32 accumulation, rounded once to bf16; itself tested
     * against a double reference in GroupedGemmBf16Test): one bf16 rounding apart at most, plus
     * the accumulation-order difference.
     */
    @Test
    void tensorCoreGroupedGemmBf16() {
        Random rnd = new Random(14);
        int[][] groupRows = {{0, 17, 64, 0, 1, 70}, {130}, {}};
        int[][] kn = {{40, 72}, {64, 8}, {8, 64}, {0, 16}};
        for (int[] sizes : groupRows) {
            for (int[] d : kn) {
                int k = d[0], n = d[1], groups = sizes.length;
                int[] offsets = offsets(sizes);
                int rows = offsets[groups];
                String what = String.format("grouped bf16 rows=%s k=%d n=%d", java.util.Arrays.toString(sizes), k, n);
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment a = tensor(arena, BF16, gaussian(rnd, rows * k, 1));
                    MemorySegment[] w = new MemorySegment[groups];
                    for (int g = 0; g < groups; g++) w[g] = tensor(arena, BF16, gaussian(rnd, k * n, 1));
                    MemorySegment off = ints(arena, offsets), weights = pointers(arena, w);
                    Pair p = both(arena, "pmoe_grouped_gemm_nn_bf16", List.of(Out.of(BF16, (long) rows * n)),
                            (lib, o) -> lib.pmoe_grouped_gemm_nn_bf16(groups, off, k, n, a, weights, o[0], NO_STREAM));
                    float[] expected = Harness.read(p.cpu()[0], BF16), actual = Harness.read(p.host()[0], BF16);
                    double accumulation = 2 * (k + 2) * F32_EPS * 4 * Math.max(1, k);
                    assertClose(what, expected, actual, i -> BF16_EPS * Math.abs(expected[i]) + accumulation);
                }
            }
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment off = ints(arena, 0, 4);
            int status = HOST.pmoe_grouped_gemm_nn_bf16(1, off, 12, 8, tensor(arena, BF16, new float[48]),
                    pointers(arena, tensor(arena, BF16, new float[96])), tensor(arena, BF16, new float[32]), NO_STREAM);
            assertEquals(panamoe_h.PMOE_ERR_UNSUPPORTED(), status);
            assertTrue(Harness.lastError(HOST).contains("k = 12"), Harness.lastError(HOST));
        }
    }

    /** The kernels pmoe_gemm_bf16 may launch: the SIMT tiles, and the tensor-core kernel as nn, nt or tn. */
    private static final String[] DENSE_BF16_KERNELS = {"gemm", "gemm_nn_bf16", "gemm_nt_bf16", "gemm_tn_bf16"};

    /**
     * The bf16 GEMMs (dense and grouped nt and tn; f32 and bf16 outputs) against the CPU library (tested against
     * double references in GemmIsaLevelTest): the f32 accumulation-order difference, plus one bf16 rounding of each
     * side for a bf16 output. The dense GEMM runs on tensor cores when its operands are unpadded A B, A B^T or A^T B
     * (any size: ragged tails are staged element by element), else on the SIMT tiles; the harness's launch counts
     * show which kernel ran each call.
     */
    @Test
    void bf16GemmsDenseNtAndTn() {
        Random rnd = new Random(15);
        for (int[] s : new int[][] {{1, 1, 1}, {37, 29, 53}, {65, 130, 70}, {130, 72, 40}, {0, 5, 3}, {5, 6, 0}}) {
            int m = s[0], n = s[1], k = s[2];
            for (int t = 0; t < 4; t++) {
                int ta = t & 1, tb = t >> 1;
                for (int pad = 0; pad <= 1; pad++) {
                    int lda = (ta == 1 ? m : k) + pad, ldb = (tb == 1 ? k : n) + 2 * pad, ldc = n + pad;
                    int route = m * n == 0 ? -1 : pad == 1 || t == 3 ? 0 : ta == 1 ? 3 : tb == 1 ? 2 : 1;
                    for (int cDtype : new int[] {F32, BF16}) {
                        for (float beta : new float[] {0f, 1f}) {
                            float[] c0 = gaussian(rnd, Math.max(1, m * ldc), 1);
                            if (beta == 0) java.util.Arrays.fill(c0, Float.NaN); // beta == 0: C is not read
                            String what = String.format("gemm_bf16 m=%d n=%d k=%d ta=%d tb=%d pad=%d c_dtype=%d beta=%s",
                                    m, n, k, ta, tb, pad, cDtype, beta);
                            try (Arena arena = Arena.ofConfined()) {
                                MemorySegment sa = tensor(arena, BF16, gaussian(rnd, Math.max(1, (ta == 1 ? k : m) * lda), 1));
                                MemorySegment sb = tensor(arena, BF16, gaussian(rnd, Math.max(1, (tb == 1 ? n : k) * ldb), 1));
                                MemorySegment init = tensor(arena, cDtype, c0);
                                long[] before = new long[DENSE_BF16_KERNELS.length];
                                for (int i = 0; i < before.length; i++) before[i] = Harness.launches(DENSE_BF16_KERNELS[i]);
                                Pair p = both(arena, "pmoe_gemm_bf16", List.of(Out.of(cDtype, c0.length)), (lib, o) -> {
                                    MemorySegment.copy(init, 0, o[0], 0, o[0].byteSize());
                                    return lib.pmoe_gemm_bf16(ta, tb, m, n, k, 0.7f, sa, lda, sb, ldb, beta, cDtype, o[0],
                                            ldc, NO_STREAM);
                                });
                                for (int i = 0; i < before.length; i++)
                                    assertEquals(before[i] + (i == route ? 1 : 0), Harness.launches(DENSE_BF16_KERNELS[i]),
                                            what + ": launches of " + DENSE_BF16_KERNELS[i]);
                                float[] untouched = Harness.read(init, cDtype);
                                float[] expected = Harness.read(p.cpu()[0], cDtype), actual = Harness.read(p.host()[0], cDtype);
                                double accumulation = 2 * (k + 2) * F32_EPS * 4 * Math.max(1, k);
                                double rounding = cDtype == BF16 ? 2 * BF16_EPS : 0;
                                for (int i = 0; i < expected.length; i++) {
                                    if (i >= m * ldc || i % ldc >= n) { // padding (or nothing to compute): untouched
                                        assertEquals(Float.floatToRawIntBits(untouched[i]), Float.floatToRawIntBits(actual[i]),
                                                what + " wrote the padding at " + i);
                                        continue;
                                    }
                                    double err = Math.abs((double) actual[i] - expected[i]);
                                    assertTrue(err <= rounding * Math.abs(expected[i]) + accumulation,
                                            what + " element " + i + ": cpu " + expected[i] + ", harness " + actual[i]);
                                }
                            }
                        }
                    }
                }
            }
        }
        int[][] groupRows = {{}, {0}, {0, 5, 70, 0, 1, 33}};
        for (int[] sizes : groupRows) {
            for (int[] d : new int[][] {{20, 37}, {64, 8}, {0, 5}, {7, 0}}) {
                int k = d[0], n = d[1], groups = sizes.length;
                int[] offsets = offsets(sizes);
                int rows = offsets[groups];
                String what = String.format("grouped bf16 rows=%s k=%d n=%d", java.util.Arrays.toString(sizes), k, n);
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment off = ints(arena, offsets);
                    MemorySegment a = tensor(arena, BF16, gaussian(rnd, rows * k, 1));
                    MemorySegment b = tensor(arena, BF16, gaussian(rnd, rows * n, 1));
                    MemorySegment[] w = new MemorySegment[groups];
                    for (int g = 0; g < groups; g++) w[g] = tensor(arena, BF16, gaussian(rnd, k * n, 1));
                    MemorySegment weights = pointers(arena, w);
                    // nt: a [rows, k] * W^T with W [n, k] stored as the k * n values above
                    Pair nt = both(arena, "pmoe_grouped_gemm_nt_bf16", List.of(Out.of(BF16, (long) rows * n)),
                            (lib, o) -> lib.pmoe_grouped_gemm_nt_bf16(groups, off, k, n, a, weights, o[0], NO_STREAM));
                    float[] expected = Harness.read(nt.cpu()[0], BF16), actual = Harness.read(nt.host()[0], BF16);
                    double accumulation = 2 * (k + 2) * F32_EPS * 4 * Math.max(1, k);
                    assertClose(what + " nt", expected, actual, i -> 2 * BF16_EPS * Math.abs(expected[i]) + accumulation);
                    for (int outDtype : new int[] {F32, BF16}) {
                        float[][] init = new float[groups][];
                        for (int g = 0; g < groups; g++) init[g] = gaussian(rnd, k * n, 1);
                        MemorySegment[][] outs = new MemorySegment[2][groups];
                        both(arena, "pmoe_grouped_gemm_tn_bf16", List.of(), (lib, o) -> {
                            MemorySegment[] dst = outs[lib == CPU ? 0 : 1];
                            for (int g = 0; g < groups; g++) dst[g] = tensor(arena, outDtype, init[g]);
                            return lib.pmoe_grouped_gemm_tn_bf16(groups, off, k, n, a, b, 1f, outDtype, pointers(arena, dst),
                                    NO_STREAM);
                        });
                        for (int g = 0; g < groups; g++) {
                            float[] e = Harness.read(outs[0][g], outDtype), h = Harness.read(outs[1][g], outDtype);
                            double acc = 2 * (sizes[g] + 2) * F32_EPS * 4 * Math.max(1, sizes[g]) + 1e-6;
                            double rounding = outDtype == BF16 ? 2 * BF16_EPS : 0;
                            assertClose(what + " tn out_dtype=" + outDtype + " group " + g, e, h,
                                    i -> rounding * Math.abs(e[i]) + acc);
                        }
                    }
                }
            }
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment x = tensor(arena, BF16, new float[16]);
            bothReject(arena, "pmoe_gemm_bf16", List.of(),
                    (lib, o) -> lib.pmoe_gemm_bf16(0, 0, 2, 2, 2, 1f, x, 2, x, 2, 0f, 9, x, 2, NO_STREAM));
            bothReject(arena, "pmoe_grouped_gemm_tn_bf16", List.of(),
                    (lib, o) -> lib.pmoe_grouped_gemm_tn_bf16(1, ints(arena, 0, 2), 2, 2, x, x, 0f, 3,
                            pointers(arena, x), NO_STREAM));
            bothReject(arena, "pmoe_grouped_gemm_nt_bf16", List.of(),
                    (lib, o) -> lib.pmoe_grouped_gemm_nt_bf16(1, ints(arena, 1, 2), 2, 2, x, pointers(arena, x), x,
                            NO_STREAM));
        }
    }

    /** Group offsets [G + 1] of the group sizes. */
    private static int[] offsets(int[] sizes) {
        int[] offsets = new int[sizes.length + 1];
        for (int g = 0; g < sizes.length; g++) offsets[g + 1] = offsets[g] + sizes[g];
        return offsets;
    }

    private static float[] nanArray(int n) {
        float[] v = new float[n];
        java.util.Arrays.fill(v, Float.NaN);
        return v;
    }

    @Test
    void groupedGemmsRejectBadInputsAsTheCpuDoes() {
        try (Arena arena = Arena.ofConfined()) {
            int k = 3, n = 2;
            MemorySegment a = floats(arena, new float[30]), c = floats(arena, new float[20]);
            MemorySegment w = floats(arena, new float[k * n]);
            MemorySegment weights = pointers(arena, w, w, w);
            MemorySegment decreasing = ints(arena, 0, 4, 2, 5);
            String m = bothReject(arena, "pmoe_grouped_gemm_nn", List.of(),
                    (lib, o) -> lib.pmoe_grouped_gemm_nn(3, decreasing, k, n, a, weights, c, NO_STREAM));
            assertTrue(m.contains("offsets[2] = 2"), m);
            MemorySegment notFromZero = ints(arena, 1, 4, 6, 7);
            bothReject(arena, "pmoe_grouped_gemm_nt", List.of(),
                    (lib, o) -> lib.pmoe_grouped_gemm_nt(3, notFromZero, k, n, a, weights, c, NO_STREAM));
            MemorySegment offsets = ints(arena, 0, 4, 4, 7);
            MemorySegment nullWeight = pointers(arena, w, w, MemorySegment.NULL);
            m = bothReject(arena, "pmoe_grouped_gemm_nn", List.of(),
                    (lib, o) -> lib.pmoe_grouped_gemm_nn(3, offsets, k, n, a, nullWeight, c, NO_STREAM));
            assertTrue(m.contains("weights[2]"), m);
            bothReject(arena, "pmoe_grouped_gemm_tn", List.of(),
                    (lib, o) -> lib.pmoe_grouped_gemm_tn(3, offsets, k, n, a, c, 0f, nullWeight, NO_STREAM));
        }
    }

    // ---- dense transformer operators ----

    /** A copy of `init` in each library's output buffer before the call: outputs that are accumulated or updated in place. */
    private static void set(MemorySegment out, float[] init) {
        MemorySegment.copy(init, 0, out, JAVA_FLOAT, 0, init.length);
    }

    /** out = init stored as dtype (bf16: rounded to nearest even). */
    private static void set(MemorySegment out, int dtype, float[] init) {
        MemorySegment.copy(tensor(Arena.ofAuto(), dtype, init), 0, out, 0, out.byteSize());
    }

    private static int[] randomInts(Random rnd, int n, int lo, int hi) {
        int[] v = new int[n];
        for (int i = 0; i < n; i++) v[i] = lo + rnd.nextInt(hi - lo);
        return v;
    }

    @Test
    void embeddingForwardAndBackward() {
        Random rnd = new Random(20);
        // batch, seq, channels, vocab, max_seq; small vocabularies so that ids repeat
        int[][] shapes = {{1, 1, 1, 1, 1}, {2, 5, 7, 11, 8}, {3, 17, 40, 9, 20}, {1, 3, 300, 2, 3}, {0, 4, 3, 5, 4}};
        for (int dtype : new int[] {F32, BF16})
        for (int[] s : shapes) {
            int batch = s[0], seq = s[1], channels = s[2], vocab = s[3], maxSeq = s[4];
            String what = String.format("embedding dtype=%d B=%d T=%d C=%d V=%d", dtype, batch, seq, channels, vocab);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment ids = ints(arena, randomInts(rnd, batch * seq, 0, vocab));
                MemorySegment wte = tensor(arena, dtype, gaussian(rnd, vocab * channels, 1));
                MemorySegment wpe = tensor(arena, dtype, gaussian(rnd, maxSeq * channels, 1));
                Pair fwd = both(arena, dtype, "pmoe_embedding_forward", List.of(Out.of(dtype, (long) batch * seq * channels)),
                        (lib, o) -> lib.pmoe_embedding_forward(dtype, batch, seq, channels, vocab, maxSeq, ids, wte, wpe,
                                o[0], NO_STREAM));
                assertClose(what + " out", fwd.cpu()[0], fwd.host()[0], dtype, 0, 0);
                MemorySegment dout = tensor(arena, dtype, gaussian(rnd, batch * seq * channels, 1));
                float[] dwte = gaussian(rnd, vocab * channels, 1), dwpe = gaussian(rnd, maxSeq * channels, 1);
                Pair bwd = both(arena, dtype, "pmoe_embedding_backward",
                        List.of(Out.floats(dwte.length), Out.floats(dwpe.length)), (lib, o) -> {
                            set(o[0], dwte);
                            set(o[1], dwpe);
                            return lib.pmoe_embedding_backward(dtype, batch, seq, channels, vocab, maxSeq, ids, dout,
                                    o[0], o[1], NO_STREAM);
                        });
                // Both add each element's tokens one by one in token order: the same float sums.
                assertClose(what + " dwte", bwd.cpu()[0], bwd.host()[0], F32, 0, 0);
                assertClose(what + " dwpe", bwd.cpu()[1], bwd.host()[1], F32, 0, 0);
            }
        }
    }

    @Test
    void layerNormAndRmsNorm() {
        Random rnd = new Random(21);
        // Under TSan (OS threads): rows shorter and longer than a block (128 threads), and none.
        int[][] shapes = Harness.THREAD_SANITIZER ? new int[][] {{2, 37}, {1, 130}, {0, 5}}
                : new int[][] {{1, 1}, {1, 37}, {5, 64}, {33, 130}, {70, 7}, {0, 5}};
        float eps = 1e-5f;
        for (int dtype : new int[] {F32, BF16})
        for (int[] s : shapes) {
            int rows = s[0], cols = s[1];
            String what = String.format("norm dtype=%d rows=%d cols=%d", dtype, rows, cols);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment x = tensor(arena, dtype, gaussian(rnd, rows * cols, 2));
                MemorySegment weight = tensor(arena, dtype, gaussian(rnd, cols, 1));
                MemorySegment bias = tensor(arena, dtype, gaussian(rnd, cols, 1));
                MemorySegment dout = tensor(arena, dtype, gaussian(rnd, rows * cols, 1));
                float[] dweight = gaussian(rnd, cols, 1), dbias = gaussian(rnd, cols, 1);

                Pair ln = both(arena, dtype, "pmoe_layernorm_forward",
                        List.of(Out.of(dtype, (long) rows * cols), Out.floats(rows), Out.floats(rows)),
                        (lib, o) -> lib.pmoe_layernorm_forward(dtype, rows, cols, eps, x, weight, bias, o[0], o[1], o[2],
                                NO_STREAM));
                assertCloseRounded(what + " layernorm out", ln.cpu()[0], ln.host()[0], dtype, 64 * F32_EPS, 1e-5);
                assertClose(what + " layernorm mean", ln.cpu()[1], ln.host()[1], F32, 64 * F32_EPS, 1e-6);
                assertClose(what + " layernorm rstd", ln.cpu()[2], ln.host()[2], F32, 64 * F32_EPS, 0);
                MemorySegment mean = ln.cpu()[1], rstd = ln.cpu()[2];
                Pair lnb = both(arena, dtype, "pmoe_layernorm_backward",
                        List.of(Out.of(dtype, (long) rows * cols), Out.floats(cols), Out.floats(cols)), (lib, o) -> {
                            set(o[1], dweight);
                            set(o[2], dbias);
                            return lib.pmoe_layernorm_backward(dtype, rows, cols, x, weight, mean, rstd, dout, o[0], o[1],
                                    o[2], NO_STREAM);
                        });
                assertCloseRounded(what + " layernorm dx", lnb.cpu()[0], lnb.host()[0], dtype, 256 * F32_EPS, 1e-4);
                assertClose(what + " layernorm dweight", lnb.cpu()[1], lnb.host()[1], F32, 16 * F32_EPS, 1e-5);
                assertClose(what + " layernorm dbias", lnb.cpu()[2], lnb.host()[2], F32, 16 * F32_EPS, 1e-6);

                Pair rms = both(arena, dtype, "pmoe_rmsnorm_forward", List.of(Out.of(dtype, (long) rows * cols), Out.floats(rows)),
                        (lib, o) -> lib.pmoe_rmsnorm_forward(dtype, rows, cols, eps, x, weight, o[0], o[1], NO_STREAM));
                assertCloseRounded(what + " rmsnorm out", rms.cpu()[0], rms.host()[0], dtype, 64 * F32_EPS, 1e-6);
                assertClose(what + " rmsnorm rstd", rms.cpu()[1], rms.host()[1], F32, 64 * F32_EPS, 0);
                MemorySegment rmsRstd = rms.cpu()[1];
                Pair rmsb = both(arena, dtype, "pmoe_rmsnorm_backward", List.of(Out.of(dtype, (long) rows * cols), Out.floats(cols)),
                        (lib, o) -> {
                            set(o[1], dweight);
                            return lib.pmoe_rmsnorm_backward(dtype, rows, cols, x, weight, rmsRstd, dout, o[0], o[1],
                                    NO_STREAM);
                        });
                assertCloseRounded(what + " rmsnorm dx", rmsb.cpu()[0], rmsb.host()[0], dtype, 256 * F32_EPS, 1e-4);
                assertClose(what + " rmsnorm dweight", rmsb.cpu()[1], rmsb.host()[1], F32, 16 * F32_EPS, 1e-5);
            }
        }
    }

    @Test
    void biasAndElementwise() {
        Random rnd = new Random(22);
        int[][] shapes = {{0, 4}, {1, 1}, {3, 33}, {150, 100}};
        for (int dtype : new int[] {F32, BF16})
        for (int[] s : shapes) {
            int rows = s[0], cols = s[1], n = rows * cols;
            String what = String.format("elementwise dtype=%d rows=%d cols=%d", dtype, rows, cols);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment bias = tensor(arena, dtype, gaussian(rnd, cols, 1));
                float[] av = gaussian(rnd, n, 1);
                MemorySegment a = tensor(arena, dtype, av);
                float[] x = gaussian(rnd, n, 1), dbias = gaussian(rnd, cols, 1);
                // One f32 operation rounded once to dtype: both libraries agree exactly.
                Pair add = both(arena, dtype, "pmoe_bias_add", List.of(Out.of(dtype, n)), (lib, o) -> {
                    set(o[0], dtype, x);
                    return lib.pmoe_bias_add(dtype, rows, cols, bias, o[0], NO_STREAM);
                });
                assertClose(what + " bias_add", add.cpu()[0], add.host()[0], dtype, 0, 0);
                Pair bwd = both(arena, dtype, "pmoe_bias_backward", List.of(Out.floats(cols)), (lib, o) -> {
                    set(o[0], dbias);
                    return lib.pmoe_bias_backward(dtype, rows, cols, a, o[0], NO_STREAM);
                });
                assertClose(what + " bias_backward", bwd.cpu()[0], bwd.host()[0], F32, 2 * F32_EPS, 1e-6);
                MemorySegment b = tensor(arena, dtype, x);
                Pair sum = both(arena, dtype, "pmoe_add", List.of(Out.of(dtype, n)),
                        (lib, o) -> lib.pmoe_add(dtype, n, a, b, o[0], NO_STREAM));
                assertClose(what + " add", sum.cpu()[0], sum.host()[0], dtype, 0, 0);
                Pair acc = both(arena, dtype, "pmoe_accumulate", List.of(Out.of(dtype, n)), (lib, o) -> {
                    set(o[0], dtype, x);
                    return lib.pmoe_accumulate(dtype, n, a, o[0], NO_STREAM);
                });
                assertClose(what + " accumulate", acc.cpu()[0], acc.host()[0], dtype, 0, 0);
                Pair scaled = both(arena, dtype, "pmoe_scale", List.of(Out.of(dtype, n)), (lib, o) -> {
                    set(o[0], dtype, x);
                    return lib.pmoe_scale(dtype, n, -0.37f, o[0], NO_STREAM);
                });
                assertClose(what + " scale", scaled.cpu()[0], scaled.host()[0], dtype, 0, 0);
                int other = dtype == F32 ? BF16 : F32;
                MemorySegment src = tensor(arena, other, av);
                Pair converted = both(arena, BF16, "pmoe_convert", List.of(Out.of(dtype, n)),
                        (lib, o) -> lib.pmoe_convert(n, other, src, dtype, o[0], NO_STREAM));
                assertClose(what + " convert", converted.cpu()[0], converted.host()[0], dtype, 0, 0);
            }
        }
    }

    @Test
    void attentionForwardAndBackward() {
        Random rnd = new Random(23);
        // batch, seq, channels, heads: T = 1, D = 1, a longer sequence, an empty batch
        int[][] shapes = {{1, 1, 4, 1}, {2, 5, 12, 3}, {1, 40, 16, 2}, {2, 7, 6, 6}, {0, 3, 4, 2}};
        for (int dtype : new int[] {F32, BF16})
        for (int[] s : shapes) {
            int batch = s[0], seq = s[1], channels = s[2], heads = s[3];
            String what = String.format("attention dtype=%d B=%d T=%d C=%d H=%d", dtype, batch, seq, channels, heads);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment qkv = tensor(arena, dtype, gaussian(rnd, batch * seq * 3 * channels, 1));
                Pair fwd = both(arena, dtype, "pmoe_attention_forward",
                        List.of(Out.floats((long) batch * heads * seq * seq), Out.of(dtype, (long) batch * seq * channels)),
                        (lib, o) -> lib.pmoe_attention_forward(dtype, batch, seq, channels, heads, qkv, o[0], o[1],
                                NO_STREAM));
                assertClose(what + " att", fwd.cpu()[0], fwd.host()[0], F32, 64 * F32_EPS, 1e-6);
                assertCloseRounded(what + " out", fwd.cpu()[1], fwd.host()[1], dtype, 64 * F32_EPS, 1e-5);
                MemorySegment att = fwd.cpu()[0], dout = tensor(arena, dtype, gaussian(rnd, batch * seq * channels, 1));
                Pair bwd = both(arena, dtype, "pmoe_attention_backward", List.of(Out.of(dtype, (long) batch * seq * 3 * channels)),
                        (lib, o) -> lib.pmoe_attention_backward(dtype, batch, seq, channels, heads, qkv, att, dout, o[0],
                                NO_STREAM));
                assertCloseRounded(what + " dqkv", bwd.cpu()[0], bwd.host()[0], dtype, 256 * F32_EPS, 1e-5);
            }
        }
    }

    @Test
    void crossEntropyForwardAndBackward() {
        Random rnd = new Random(24);
        int[][] shapes = {{1, 1}, {1, 50}, {9, 33}, {40, 257}, {0, 10}};
        for (int dtype : new int[] {F32, BF16})
        for (int[] s : shapes) {
            int rows = s[0], vocab = s[1];
            String what = String.format("cross-entropy dtype=%d rows=%d vocab=%d", dtype, rows, vocab);
            try (Arena arena = Arena.ofConfined()) {
                float[] logits = gaussian(rnd, rows * vocab, 3);
                int[] targets = randomInts(rnd, rows, -1, vocab); // -1: ignored row
                if (rows > 1) targets[0] = -1;
                MemorySegment x = tensor(arena, dtype, logits), t = ints(arena, targets);
                Pair fwd = both(arena, dtype, "pmoe_cross_entropy_forward",
                        List.of(Out.floats(rows), Out.floats(1), Out.ints(1)),
                        (lib, o) -> lib.pmoe_cross_entropy_forward(dtype, rows, vocab, x, t, o[0], o[1], o[2], NO_STREAM));
                assertClose(what + " losses", fwd.cpu()[0], fwd.host()[0], F32, 16 * F32_EPS, 1e-6);
                assertClose(what + " mean", fwd.cpu()[1], fwd.host()[1], F32, 16 * F32_EPS, 1e-6);
                assertSameInts(what + " kept", fwd.cpu()[2], fwd.host()[2]);
                float scale = 1.0f / Math.max(1, fwd.cpu()[2].get(JAVA_INT, 0));
                Pair bwd = both(arena, dtype, "pmoe_cross_entropy_backward", List.of(Out.of(dtype, (long) rows * vocab)),
                        (lib, o) -> lib.pmoe_cross_entropy_backward(dtype, rows, vocab, x, t, scale, o[0], NO_STREAM));
                double rel = 16 * F32_EPS;
                assertCloseRounded(what + " dlogits", bwd.cpu()[0], bwd.host()[0], dtype, rel, 1e-7);
                // In place: dlogits aliases logits.
                Pair inPlace = both(arena, dtype, "pmoe_cross_entropy_backward", List.of(Out.of(dtype, (long) rows * vocab)),
                        (lib, o) -> {
                            set(o[0], dtype, logits);
                            return lib.pmoe_cross_entropy_backward(dtype, rows, vocab, o[0], t, scale, o[0], NO_STREAM);
                        });
                assertCloseRounded(what + " dlogits in place", bwd.cpu()[0], inPlace.host()[0], dtype, rel, 1e-7);
            }
        }
        for (int dtype : new int[] {F32, BF16}) {
            try (Arena arena = Arena.ofConfined()) { // every row ignored: mean 0, kept 0
                MemorySegment x = tensor(arena, dtype, gaussian(rnd, 12, 1)), t = ints(arena, -1, -1, -1);
                Pair none = both(arena, dtype, "pmoe_cross_entropy_forward", List.of(Out.floats(3), Out.floats(1), Out.ints(1)),
                        (lib, o) -> lib.pmoe_cross_entropy_forward(dtype, 3, 4, x, t, o[0], o[1], o[2], NO_STREAM));
                assertEquals(0f, none.host()[1].get(JAVA_FLOAT, 0), "dtype " + dtype);
                assertEquals(0, none.host()[2].get(JAVA_INT, 0), "dtype " + dtype);
            }
        }
    }

    @Test
    void adamwAndSumOfSquares() {
        Random rnd = new Random(25);
        for (int n : new int[] {0, 1, 37, 70_000}) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment grads = floats(arena, gaussian(rnd, n, 1));
                float[] params = gaussian(rnd, n, 1), m = gaussian(rnd, n, 0.1), v = uniform(rnd, n, 0, 0.01);
                for (int step : new int[] {1, 7}) {
                    // no working copy, then an f32 and a bf16 one (mixed precision's)
                    for (int working : new int[] {-1, F32, BF16}) {
                        // the later step with gradient clipping's factor, read with the gradients
                        float scale = step == 1 ? 1f : 0.37f;
                        String what = "adamw n=" + n + " step " + step + " grad_scale " + scale + " working dtype "
                                + working;
                        List<Out> outs = working < 0 ? List.of(Out.floats(n), Out.floats(n), Out.floats(n))
                                : List.of(Out.floats(n), Out.floats(n), Out.floats(n), Out.of(working, n));
                        Pair p = both(arena, working, "pmoe_adamw_step", outs, (lib, o) -> {
                            set(o[0], params);
                            set(o[1], m);
                            set(o[2], v);
                            return lib.pmoe_adamw_step(n, o[0], grads, scale, o[1], o[2], 3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f,
                                    step, working < 0 ? F32 : working, working < 0 ? MemorySegment.NULL : o[3],
                                    NO_STREAM);
                        });
                        // nvcc may fuse a * b + c into one rounding where g++ rounds twice: a few ulps of
                        // the terms (about 0.1 for m, 1 for params), not of a result that cancels
                        for (int i = 0; i < 3; i++)
                            assertClose(what + " buffer " + i, p.cpu()[i], p.host()[i], F32, 8 * F32_EPS, 4e-8);
                        if (working < 0) continue;
                        // the copy is the kernel's own updated masters rounded once: bit for bit ...
                        MemorySegment rounded = tensor(arena, working, Harness.read(p.host()[0], F32));
                        assertEquals(-1L, rounded.mismatch(p.host()[3]),
                                what + ": the harness's copy is not its masters rounded to the working dtype");
                        // ... so against the CPU's: the masters' tolerance plus one unit of the working dtype
                        assertCloseRounded(what + " working copy", p.cpu()[3], p.host()[3], working, 8 * F32_EPS, 4e-8);
                    }
                }
                Pair sq = both(arena, "pmoe_sum_squares", List.of(new Out(8, (byte) 0xff)),
                        (lib, o) -> lib.pmoe_sum_squares(n, grads, o[0], NO_STREAM));
                double cpu = sq.cpu()[0].get(JAVA_DOUBLE, 0), host = sq.host()[0].get(JAVA_DOUBLE, 0);
                assertEquals(cpu, host, 1e-12 * Math.max(1, cpu), "sum of squares n=" + n);
            }
        }
    }

    @Test
    void denseOperatorsRejectBadInputsAsTheCpuDoes() {
        Random rnd = new Random(26);
        try (Arena arena = Arena.ofConfined()) {
            int[] badIds = {0, 1, 2, 3, 4, 11, 0, 12};
            MemorySegment ids = ints(arena, badIds), table = floats(arena, new float[11 * 3]);
            MemorySegment pos = floats(arena, new float[8 * 3]), grad = floats(arena, new float[8 * 3]);
            List<Out> embOut = List.of(Out.floats(8 * 3), Out.floats(11 * 3));
            String m = bothReject(arena, "pmoe_embedding_forward", embOut,
                    (lib, o) -> lib.pmoe_embedding_forward(F32, 2, 4, 3, 11, 8, ids, table, pos, o[0], NO_STREAM));
            assertTrue(m.contains("ids[5] = 11"), m);
            bothReject(arena, "pmoe_embedding_backward", embOut,
                    (lib, o) -> lib.pmoe_embedding_backward(F32, 2, 4, 3, 11, 8, ids, grad, o[1], o[0], NO_STREAM));
            bothReject(arena, "pmoe_embedding_forward", embOut,
                    (lib, o) -> lib.pmoe_embedding_forward(F32, 1, 9, 3, 11, 8, ids, table, pos, o[0], NO_STREAM));

            MemorySegment x = floats(arena, gaussian(rnd, 12, 1)), w = floats(arena, new float[4]);
            List<Out> normOut = List.of(Out.floats(12), Out.floats(3), Out.floats(3));
            m = bothReject(arena, "pmoe_layernorm_forward", normOut,
                    (lib, o) -> lib.pmoe_layernorm_forward(F32, 3, 4, 0f, x, w, w, o[0], o[1], o[2], NO_STREAM));
            assertTrue(m.contains("eps = 0"), m);
            bothReject(arena, "pmoe_layernorm_backward", normOut, (lib, o) -> lib.pmoe_layernorm_backward(F32, 3, 4, x, w,
                    o[1], o[2], x, o[0], w, MemorySegment.NULL, NO_STREAM));
            bothReject(arena, "pmoe_rmsnorm_forward", normOut,
                    (lib, o) -> lib.pmoe_rmsnorm_forward(F32, 3, 4, 1e-5f, x, MemorySegment.NULL, o[0], o[1], NO_STREAM));
            bothReject(arena, "pmoe_rmsnorm_backward", normOut,
                    (lib, o) -> lib.pmoe_rmsnorm_backward(F32, -1, 4, x, w, o[1], x, o[0], w, NO_STREAM));
            bothReject(arena, "pmoe_bias_add", normOut, (lib, o) -> lib.pmoe_bias_add(F32, 3, 0, w, o[0], NO_STREAM));
            bothReject(arena, "pmoe_bias_backward", normOut,
                    (lib, o) -> lib.pmoe_bias_backward(F32, 3, 4, MemorySegment.NULL, o[1], NO_STREAM));
            bothReject(arena, "pmoe_add", normOut, (lib, o) -> lib.pmoe_add(F32, 12, x, MemorySegment.NULL, o[0], NO_STREAM));
            bothReject(arena, "pmoe_accumulate", normOut, (lib, o) -> lib.pmoe_accumulate(F32, -2, x, o[0], NO_STREAM));
            m = bothReject(arena, "pmoe_scale", normOut, (lib, o) -> lib.pmoe_scale(F32, 12, Float.NaN, o[0], NO_STREAM));
            assertTrue(m.contains("alpha = nan"), m);
            m = bothReject(arena, "pmoe_layernorm_forward", normOut,
                    (lib, o) -> lib.pmoe_layernorm_forward(2, 3, 4, 1e-5f, x, w, w, o[0], o[1], o[2], NO_STREAM));
            assertTrue(m.contains("dtype must be PMOE_DTYPE_F32 (0) or PMOE_DTYPE_BF16 (1), got 2"), m);
            bothReject(arena, "pmoe_convert", normOut, (lib, o) -> lib.pmoe_convert(12, F32, x, -1, o[0], NO_STREAM));
            bothReject(arena, "pmoe_find_nonfinite", normOut,
                    (lib, o) -> lib.pmoe_find_nonfinite(5, 12, x, o[0], NO_STREAM));

            MemorySegment qkv = floats(arena, new float[2 * 3 * 12]);
            List<Out> attOut = List.of(Out.floats(2 * 3 * 3 * 3), Out.floats(2 * 3 * 12));
            m = bothReject(arena, "pmoe_attention_forward", attOut,
                    (lib, o) -> lib.pmoe_attention_forward(F32, 2, 3, 4, 3, qkv, o[0], o[1], NO_STREAM));
            assertTrue(m.contains("channels = 4 is not divisible by heads = 3"), m);
            bothReject(arena, "pmoe_attention_backward", attOut,
                    (lib, o) -> lib.pmoe_attention_backward(F32, 2, 0, 4, 2, qkv, o[0], qkv, o[1], NO_STREAM));

            MemorySegment logits = floats(arena, gaussian(rnd, 5 * 7, 1));
            List<Out> ceOut = List.of(Out.floats(5 * 7), Out.floats(1), Out.ints(1));
            for (int[] targets : new int[][] {{0, 1, 2, 7, 3}, {0, -2, 1, 1, 1}}) {
                MemorySegment t = ints(arena, targets);
                m = bothReject(arena, "pmoe_cross_entropy_forward", ceOut,
                        (lib, o) -> lib.pmoe_cross_entropy_forward(F32, 5, 7, logits, t, o[0], o[1], o[2], NO_STREAM));
                assertTrue(m.startsWith("targets["), m);
                bothReject(arena, "pmoe_cross_entropy_backward", ceOut,
                        (lib, o) -> lib.pmoe_cross_entropy_backward(F32, 5, 7, logits, t, 1f, o[0], NO_STREAM));
            }

            List<Out> optOut = List.of(Out.floats(12), Out.floats(12), Out.floats(12), new Out(8, (byte) 0));
            m = bothReject(arena, "pmoe_adamw_step", optOut, (lib, o) -> lib.pmoe_adamw_step(12, o[0], x, 1f, o[1], o[2],
                    1e-3f, 1f, 0.9f, 1e-8f, 0f, 1, F32, MemorySegment.NULL, NO_STREAM));
            assertTrue(m.contains("beta1 = 1"), m);
            bothReject(arena, "pmoe_adamw_step", optOut, (lib, o) -> lib.pmoe_adamw_step(12, o[0], x, 1f, o[1], o[2], 1e-3f,
                    0.9f, 0.9f, 1e-8f, 0f, 0, F32, MemorySegment.NULL, NO_STREAM));
            m = bothReject(arena, "pmoe_adamw_step", optOut, (lib, o) -> lib.pmoe_adamw_step(12, o[0], x, 1f, o[1], o[2],
                    1e-3f, 0.9f, 0.9f, 1e-8f, 0f, 1, 7, o[3], NO_STREAM));
            assertTrue(m.contains("working_dtype"), m);
            bothReject(arena, "pmoe_sum_squares", optOut,
                    (lib, o) -> lib.pmoe_sum_squares(12, x, MemorySegment.NULL, NO_STREAM));
        }
    }

    // ---- library ----

    @Test
    void findNonfinite() {
        try (Arena arena = Arena.ofConfined()) {
            float[] v = gaussian(new Random(13), 5000, 1);
            for (int[] bad : new int[][] {{}, {4321}, {777, 4000, 4999}, {0}}) {
                float[] x = v.clone();
                for (int i = 0; i < bad.length; i++) x[bad[i]] = i % 2 == 0 ? Float.NaN : Float.NEGATIVE_INFINITY;
                for (int dtype : new int[] {F32, BF16}) {
                    MemorySegment sx = tensor(arena, dtype, x);
                    Pair p = both(arena, dtype, "pmoe_find_nonfinite", List.of(new Out(8, (byte) 0x11)),
                            (lib, o) -> lib.pmoe_find_nonfinite(dtype, x.length, sx, o[0], NO_STREAM));
                    long expected = bad.length == 0 ? -1 : bad[0];
                    assertEquals(expected, p.cpu()[0].get(JAVA_LONG, 0), "dtype " + dtype);
                    assertEquals(expected, p.host()[0].get(JAVA_LONG, 0), "harness first_index, dtype " + dtype);
                }
            }
            for (int dtype : new int[] {F32, BF16}) {
                Pair empty = both(arena, dtype, "pmoe_find_nonfinite", List.of(new Out(8, (byte) 0x11)),
                        (lib, o) -> lib.pmoe_find_nonfinite(dtype, 0, MemorySegment.NULL, o[0], NO_STREAM));
                assertEquals(-1L, empty.host()[0].get(JAVA_LONG, 0), "dtype " + dtype);
            }
        }
    }

    @Test
    void libraryFunctions() {
        try (Arena arena = Arena.ofConfined()) {
            assertOk(HOST, HOST.pmoe_set_num_threads(3), "pmoe_set_num_threads");
            MemorySegment n = arena.allocate(JAVA_INT);
            assertOk(HOST, HOST.pmoe_get_num_threads(n), "pmoe_get_num_threads");
            assertEquals(3, n.get(JAVA_INT, 0));
            bothReject(arena, "pmoe_set_num_threads", List.of(), (lib, o) -> lib.pmoe_set_num_threads(0));
            MemorySegment cuda = arena.allocate(JAVA_INT, 3), cpu = arena.allocate(JAVA_INT, 3);
            assertOk(HOST, HOST.pmoe_version(cuda, cuda.asSlice(4), cuda.asSlice(8)), "pmoe_version");
            assertOk(CPU, CPU.pmoe_version(cpu, cpu.asSlice(4), cpu.asSlice(8)), "pmoe_version");
            assertEquals(java.util.Arrays.toString(cpu.toArray(JAVA_INT)), java.util.Arrays.toString(cuda.toArray(JAVA_INT)),
                    "the cpu and cuda libraries implement the same ABI version");
            assertEquals("", Harness.lastError(HOST), "a successful call clears the error message");
            assertEquals(panamoe_h.PMOE_OK(), HOST.pmoe_noop());
            // no CPU kernels, so no instruction-set level to report or choose
            assertEquals(panamoe_h.PMOE_ERR_UNSUPPORTED(), HOST.pmoe_cpu_isa(n, n));
            assertTrue(Harness.lastError(HOST).contains("no CPU kernels"), Harness.lastError(HOST));
            assertEquals(panamoe_h.PMOE_ERR_UNSUPPORTED(), HOST.pmoe_set_cpu_isa(panamoe_h.PMOE_ISA_AVX2()));
        }
    }
}
