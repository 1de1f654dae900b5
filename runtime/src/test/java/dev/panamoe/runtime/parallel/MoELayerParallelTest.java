package dev.panamoe.runtime.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.Activation;
import dev.panamoe.ops.Backend;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.comm.InJvmWorld;
import dev.panamoe.runtime.train.AdamW;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.plan.RankLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The MoE layer on the in-JVM ranks of a plan ({@link MoELayers#create}) against the same layer
 * on one device on the concatenated tokens: outputs, input gradients, aux and z losses, and
 * (after reduceGradients, shards gathered back) the gate and expert gradients, within 1e-5 of
 * each tensor's largest magnitude. The checks of the layer's arguments, workspaces and remap are
 * the single device's (BadInputTest, MoELayerApiTest): one code path serves both.
 */
class MoELayerParallelTest {
    private static final Backend CPU = CpuBackend.get();
    private static final Duration TIMEOUT = Duration.ofSeconds(60);
    private static final int HIDDEN = 8;
    private static final int FFN = 8;
    private static final int EXPERTS = 8;
    private static final int TOP_K = 2;
    /** Tokens of each data index: ragged, one rank with a single token. */
    private static final int[] TOKENS = {5, 1, 7, 3, 6, 2, 9, 4};
    /** Added to expert e's logit for every token: most tokens go to experts 0-2, none to 6-7. */
    private static final float[] LOGIT_BIAS = {3f, 2.5f, 2f, 1f, 0.5f, 0f, -4f, -4f};
    private static final float LOSS_SCALE = 0.7f;
    private static final double TOLERANCE = 1e-5;
    /** bf16 on a plan against bf16 on one device (see bf16MatchesOneDeviceInBf16AndF32WithinItsRounding). */
    private static final double BF16_PARALLEL = 4 * 0x1p-8;
    /** bf16 on a plan against f32 on one device, same weights. */
    private static final double BF16_VS_F32 = 16 * 0x1p-8;

    private static void assertClose(String what, float[] expected, float[] actual) {
        TensorAsserts.assertClose(what, expected, actual, TOLERANCE);
    }

    private static MoELayer.Config config(Activation act, double capacityFactor, float aux, float z) {
        return MoELayer.Config.builder().hidden(HIDDEN).ffn(FFN).experts(EXPERTS).topK(TOP_K).activation(act)
                .capacityFactor(capacityFactor).auxLossCoeff(aux).zLossCoeff(z).build();
    }

    /** What one rank computed, with its expert gradients by name (this rank's TP shards). */
    private record RankResult(int dataIndex, RankLayout.Coordinates at, float[] y, float[] gradX, float aux, float z,
            float[] gateGrad, Map<String, float[]> expertGrads, int receivedRows) {
    }

    /** The single-device layer's results on the concatenated batch, and its full parameters. */
    private record Reference(float[] x, float[] gradY, int[] offsets, float[] y, float[] gradX, float aux, float z,
            int[] routed, Map<String, float[]> values, Map<String, float[]> grads) {

        float[] rows(float[] all, int dataIndex) {
            return Arrays.copyOfRange(all, offsets[dataIndex] * HIDDEN, offsets[dataIndex + 1] * HIDDEN);
        }

        MoELayers.FullParameters full() {
            return (name, shape) -> values.get(name).clone();
        }
    }

    @ParameterizedTest(name = "ep={0} edp={1} tp={2} {3} pp={4}")
    @CsvSource({"2,1,1,SWIGLU,1", "4,1,1,GELU,1", "8,1,1,SWIGLU,1", "4,2,1,SWIGLU,1", "2,2,1,GELU,1",
            "2,1,2,SWIGLU,1", "4,1,2,GELU,1", "2,2,2,SWIGLU,1", "2,1,2,GELU,2"})
    void matchesOneDeviceOnTheConcatenatedBatch(int ep, int edp, int tp, Activation act, int pp) {
        MoELayer.Config cfg = config(act, MoELayer.Config.DROPLESS, 0.01f, 0.001f);
        Reference ref = reference(cfg, ep * edp);
        int[] routed = ref.routed();
        assertTrue(Arrays.stream(routed).anyMatch(c -> c == 0), "some expert receives no rows: " + Arrays.toString(routed));
        assertTrue(Arrays.stream(routed).max().getAsInt() > 2 * TOP_K * ref.offsets()[ep * edp] / EXPERTS,
                "routing is skewed: " + Arrays.toString(routed));

        ParallelPlan plan = new ParallelPlan(pp, tp, ep, edp); // with pp = 2 each stage runs the layer on its own groups
        List<RankResult> results = runRanks(plan, cfg, ref, ExpertPlacement.identity(EXPERTS, ep, 0), null);
        assertMatchesReference(ref, results, tp, act);
        if (ep >= 4) { // experts 6 and 7 get no tokens, and they are all the experts of the last EP rank
            assertTrue(results.stream().anyMatch(r -> r.receivedRows() == 0), "a rank receives no rows");
        }
    }

    /**
     * Two micro-batches in flight, each in its own workspace (forward, forward, backward in
     * reverse order), accumulate the same gradients as one device running them one after the
     * other, and give each micro-batch's own outputs and input gradients.
     */
    @Test
    void microBatchesInSeparateWorkspacesAccumulateLikeOneDevice() {
        MoELayer.Config cfg = config(Activation.SWIGLU, MoELayer.Config.DROPLESS, 0.01f, 0.001f);
        ParallelPlan plan = new ParallelPlan(1, 2, 2, 2);
        int dp = plan.dataParallel();
        Reference ref = reference(cfg, 2 * dp); // micro-batch m of data index d = rows of d + m * dp
        float[][] y = new float[2][];
        float[][] gradX = new float[2][];
        Map<String, float[]> grads;
        try (MoELayer one = new MoELayer(CPU, cfg, 1); TensorScope s = TensorScope.shared(CPU)) {
            load(one, ref.values());
            for (int m = 0; m < 2; m++) {
                int from = ref.offsets()[m * dp];
                int n = ref.offsets()[(m + 1) * dp] - from;
                float[] x = Arrays.copyOfRange(ref.x(), from * HIDDEN, (from + n) * HIDDEN);
                float[] gy = Arrays.copyOfRange(ref.gradY(), from * HIDDEN, (from + n) * HIDDEN);
                y[m] = one.forward(s.ofFloats("x", x, n, HIDDEN)).toFloatArray();
                gradX[m] = one.backward(s.ofFloats("gy", gy, n, HIDDEN), LOSS_SCALE, one.workspace()).toFloatArray();
            }
            grads = gradsOf(one);
        }
        RankLayout layout = new RankLayout(plan);
        List<float[][]> perRank = InJvmWorld.run(plan.world(), TIMEOUT, comm -> {
            try (ProcessGroups groups = new ProcessGroups(layout, comm);
                    MoELayer layer = MoELayers.create(CPU, cfg, groups, ref.full());
                    MoELayer.Workspace second = layer.newWorkspace();
                    TensorScope s = TensorScope.shared(CPU)) {
                int d = layout.dataIndex(comm.rank());
                MoELayer.Workspace[] ws = {layer.workspace(), second};
                float[][] out = new float[4][];
                for (int m = 0; m < 2; m++) {
                    int n = TOKENS[d + m * dp];
                    out[m] = layer.forward(s.ofFloats("x", ref.rows(ref.x(), d + m * dp), n, HIDDEN), ws[m]).toFloatArray();
                }
                for (int m = 1; m >= 0; m--) {
                    int n = TOKENS[d + m * dp];
                    out[2 + m] = layer.backward(s.ofFloats("gy", ref.rows(ref.gradY(), d + m * dp), n, HIDDEN),
                            LOSS_SCALE, ws[m]).toFloatArray();
                }
                layer.reduceGradients();
                assertClose("gate grad", grads.get("gate"), layer.router().weight().grad().toFloatArray());
                return out;
            }
        });
        for (int rank = 0; rank < plan.world(); rank++) {
            int d = layout.dataIndex(rank);
            for (int m = 0; m < 2; m++) {
                int first = ref.offsets()[d + m * dp] - ref.offsets()[m * dp];
                int n = TOKENS[d + m * dp];
                float[] expectedY = Arrays.copyOfRange(y[m], first * HIDDEN, (first + n) * HIDDEN);
                float[] expectedGradX = Arrays.copyOfRange(gradX[m], first * HIDDEN, (first + n) * HIDDEN);
                assertClose("y of micro-batch " + m + " on rank " + rank, expectedY, perRank.get(rank)[m]);
                assertClose("gradX of micro-batch " + m + " on rank " + rank, expectedGradX, perRank.get(rank)[2 + m]);
            }
        }
    }

    /** What only a rank of a plan has: full values of the wrong size. */
    @Test
    void badParametersFailWithTheArgumentsName() {
        MoELayer.Config cfg = config(Activation.GELU, MoELayer.Config.DROPLESS, 0.01f, 0.001f);
        Reference ref = reference(cfg, 1);
        InJvmWorld.run(1, TIMEOUT, comm -> {
            try (ProcessGroups groups = new ProcessGroups(new RankLayout(ParallelPlan.SINGLE), comm);
                    MoELayer layer = MoELayers.create(CPU, cfg, groups, ref.full())) {
                var full = assertThrows(IllegalArgumentException.class,
                        () -> MoELayers.loadParameters(layer, (name, sh) -> new float[1]));
                assertTrue(full.getMessage().startsWith("full.gate: expected 64 values"), full.getMessage());
            }
            try (MoELayer one = new MoELayer(CPU, cfg, 1)) {
                var single = assertThrows(IllegalArgumentException.class, () -> MoELayers.placement(one));
                assertTrue(single.getMessage().startsWith("layer: not a layer of a plan"), single.getMessage());
            }
            return null;
        });
    }

    @Test
    void permutedPlacementWithMovedStateMatchesOneDevice() {
        MoELayer.Config cfg = config(Activation.SWIGLU, MoELayer.Config.DROPLESS, 0.01f, 0.001f);
        int ep = 4;
        int edp = 1;
        int tp = 2;
        Reference ref = reference(cfg, ep * edp);
        ExpertPlacement start = ExpertPlacement.identity(EXPERTS, ep, 1);
        ExpertPlacement permuted = shuffledPlacement(start, new SplittableRandom(11));
        assertTrue(start.changedSlots(permuted) >= 6, "the permutation moves most experts: " + permuted);

        List<RankResult> results = runRanks(new ParallelPlan(1, tp, ep, edp), cfg, ref, start, (groups, layer) -> {
            assertThrows(IllegalStateException.class, () -> layer.setPlacement(MoELayers.slots(permuted)));
            layer.applyPlacement(MoELayers.slots(permuted), shardsOf(ref, groups, cfg));
            assertEquals(permuted, MoELayers.placement(layer));
            int[] expected = Arrays.copyOfRange(permuted.slotTable(), groups.expert().rank() * 3,
                    groups.expert().rank() * 3 + 3);
            assertArrayEquals(expected, layer.localExperts());
        });
        assertMatchesReference(ref, results, tp, cfg.activation());
    }

    /**
     * bf16 (f32 masters, bf16 working copies, rows and input gradients; router, losses and weight
     * gradients in f32) on the ranks of a plan. Against the one-device bf16 layer on the
     * concatenated batch: every value the two compute differently (the DATA group's f32 sums,
     * TP's partial outputs each rounded to bf16 before their f32 sum, rows in another order in
     * a GEMM's f32 accumulation) can differ by one bf16 rounding, 2^-8 relative, where the f32
     * results straddle a rounding boundary, and that passes through at most the layer's four
     * bf16 roundings (h, act, the expert output, y): BF16_PARALLEL = 4 * 2^-8 of each tensor's
     * largest magnitude. Against the one-device f32 layer on the same weights and inputs: x,
     * the weights, h, act, the expert output and y each round once in bf16, and the gradients
     * as many times again: BF16_VS_F32 = 16 * 2^-8. (Measured on this test's data: at most
     * 0.0085 and 0.0121.) Without TP the outputs and input gradients are bitwise one device's:
     * each expert GEMM sees the same rows in the same order, and nothing bf16 is summed.
     */
    @ParameterizedTest(name = "bf16 ep={0} edp={1} tp={2}")
    @CsvSource({"4,1,1", "2,2,1", "2,1,2"})
    void bf16MatchesOneDeviceInBf16AndF32WithinItsRounding(int ep, int edp, int tp) {
        MoELayer.Config f32 = config(Activation.SWIGLU, MoELayer.Config.DROPLESS, 0.01f, 0.001f);
        MoELayer.Config bf16 = f32.toBuilder().dtype(DType.BF16).build();
        Reference oneBf16 = reference(bf16, ep * edp);
        Reference oneF32 = reference(f32, ep * edp);
        oneF32.values().forEach((name, v) -> assertArrayEquals(v, oneBf16.values().get(name), name + ": same weights"));
        List<RankResult> results = runRanks(new ParallelPlan(1, tp, ep, edp), bf16, oneBf16,
                ExpertPlacement.identity(EXPERTS, ep, 0), null);
        assertMatchesReference(oneBf16, results, tp, bf16.activation(), BF16_PARALLEL);
        if (tp == 1) {
            for (RankResult r : results) {
                assertArrayEquals(oneBf16.rows(oneBf16.y(), r.dataIndex()), r.y(), "y on rank " + r.at());
                assertArrayEquals(oneBf16.rows(oneBf16.gradX(), r.dataIndex()), r.gradX(), "gradX on rank " + r.at());
            }
        }
        assertMatchesReference(oneF32, results, tp, bf16.activation(), BF16_VS_F32);
    }

    /**
     * A bf16 layer's placement change that loads the moved experts' f32 masters (applyPlacement
     * rounds their bf16 working copies): every rank's outputs, input gradients, losses and
     * gradients are bitwise those of the unmoved layer, since each expert still sees the same
     * rows in the same order and the same working weights.
     */
    @Test
    void bf16PlacementChangeIsExact() {
        Bf16Move m = Bf16Move.of(Activation.SWIGLU, 11);
        List<RankResult> unmoved = runRanks(m.plan(), m.cfg(), m.ref(), m.start(), null);
        List<RankResult> after = runRanks(m.plan(), m.cfg(), m.ref(), m.start(),
                (groups, layer) -> layer.applyPlacement(MoELayers.slots(m.moved()), shardsOf(m.ref(), groups, m.cfg())));
        assertSameBits(unmoved, after);
    }

    /**
     * A bf16 layer after an AdamW step, moved by {@link ExpertMigration} (f32 masters, gradients
     * and moments; the working copies rounded from the moved masters): the next pass and the next
     * step's masters are bitwise those of the unmoved layer.
     */
    @Test
    void bf16ExpertMigrationAfterAStepIsExact() {
        Bf16Move m = Bf16Move.of(Activation.GELU, 3);
        Map<Boolean, List<RankResult>> passes = new HashMap<>();
        Map<Boolean, Map<String, float[]>> masters = new HashMap<>();
        for (boolean migrate : new boolean[] {false, true}) {
            Map<String, float[]> values = new java.util.concurrent.ConcurrentHashMap<>(); // "tp/name" -> master after step 2
            RankLayout layout = new RankLayout(m.plan());
            passes.put(migrate, InJvmWorld.run(m.plan().world(), TIMEOUT, comm -> {
                try (ProcessGroups groups = new ProcessGroups(layout, comm);
                        MoELayer layer = MoELayers.create(CPU, m.cfg(), groups, m.start(), m.ref().full());
                        AdamW adamw = new AdamW(CPU, slotParameters(layer), 0.1f, 0.9f, 0.999f, 1e-8f);
                        TensorScope s = TensorScope.shared(CPU)) {
                    int d = layout.dataIndex(comm.rank());
                    Tensor x = rows(s, m.cfg(), "x", m.ref().rows(m.ref().x(), d), TOKENS[d]);
                    Tensor gradY = rows(s, m.cfg(), "gy", m.ref().rows(m.ref().gradY(), d), TOKENS[d]);
                    pass(layer, groups, d, x, gradY);
                    adamw.step(1e-2f, 1);
                    layer.refreshWorkingCopies();
                    layer.zeroGrad();
                    if (migrate) {
                        new ExpertMigration(CPU, groups, adamw).apply(List.of(layer), List.of(m.moved()));
                    }
                    RankResult second = pass(layer, groups, d, x, gradY);
                    adamw.step(1e-2f, 2);
                    for (Parameter p : layer.expertParameters()) {
                        values.put(groups.coordinates().tp() + "/" + p.name(), p.value().toFloatArray());
                    }
                    return second;
                }
            }));
            masters.put(migrate, values);
        }
        assertSameBits(passes.get(false), passes.get(true));
        assertEquals(masters.get(false).keySet(), masters.get(true).keySet());
        masters.get(false).forEach((key, v) -> assertArrayEquals(v, masters.get(true).get(key), key + " after step 2"));
    }

    /** The gate and every local slot's w1 and w2 (free ones too, which a migration may fill), each under its own name. */
    private static List<Parameter> slotParameters(MoELayer layer) {
        List<Parameter> all = new ArrayList<>(List.of(layer.router().weight()));
        for (int l = 0; l < layer.placement().slotsPerDevice(); l++) {
            for (Parameter p : layer.slotParameters(l)) {
                all.add(new Parameter("slot" + l + "." + p.name(), p.value(), p.grad()));
            }
        }
        return all;
    }

    /** Rank by rank the same outputs, input gradients, losses and gate gradients, and the same expert gradients by (tp, name). */
    private static void assertSameBits(List<RankResult> expected, List<RankResult> actual) {
        Map<String, float[]> gradsBefore = new TreeMap<>();
        Map<String, float[]> gradsAfter = new TreeMap<>();
        for (int rank = 0; rank < expected.size(); rank++) {
            RankResult a = expected.get(rank);
            RankResult b = actual.get(rank);
            assertArrayEquals(a.y(), b.y(), "y on rank " + rank);
            assertArrayEquals(a.gradX(), b.gradX(), "gradX on rank " + rank);
            assertEquals(a.aux(), b.aux(), "aux loss on rank " + rank);
            assertEquals(a.z(), b.z(), "z loss on rank " + rank);
            assertArrayEquals(a.gateGrad(), b.gateGrad(), "gate grad on rank " + rank);
            a.expertGrads().forEach((name, g) -> gradsBefore.put(a.at().tp() + "/" + name, g));
            b.expertGrads().forEach((name, g) -> gradsAfter.put(b.at().tp() + "/" + name, g));
        }
        assertEquals(gradsBefore.keySet(), gradsAfter.keySet());
        gradsBefore.forEach((key, g) -> assertArrayEquals(g, gradsAfter.get(key), key + " grad"));
    }

    /**
     * A placement change between two passes that moves each expert's values and its accumulated
     * (not yet reduced) gradient shards to the new slots: the second pass and the summed
     * gradients of both passes equal one device running the batch twice.
     */
    @Test
    void migrationBetweenPassesMovesValuesAndGradients() {
        MoELayer.Config cfg = config(Activation.SWIGLU, MoELayer.Config.DROPLESS, 0.01f, 0.001f);
        ParallelPlan plan = new ParallelPlan(1, 2, 2, 2);
        Reference ref = reference(cfg, plan.dataParallel());
        ExpertPlacement start = ExpertPlacement.identity(EXPERTS, plan.ep(), 1);
        ExpertPlacement moved = shuffledPlacement(start, new SplittableRandom(5));
        assertTrue(start.changedSlots(moved) >= 6, "the permutation moves most experts: " + moved);
        RankLayout layout = new RankLayout(plan);
        Map<String, float[][]> published = new java.util.concurrent.ConcurrentHashMap<>(); // "edp/tp/name" -> value, grad
        List<RankResult> results = InJvmWorld.run(plan.world(), TIMEOUT, comm -> {
            try (ProcessGroups groups = new ProcessGroups(layout, comm);
                    MoELayer layer = MoELayers.create(CPU, cfg, groups, start, ref.full());
                    TensorScope s = TensorScope.shared(CPU)) {
                int d = layout.dataIndex(comm.rank());
                int n = TOKENS[d];
                Tensor x = s.ofFloats("x", ref.rows(ref.x(), d), n, HIDDEN);
                Tensor gradY = s.ofFloats("gy", ref.rows(ref.gradY(), d), n, HIDDEN);
                layer.forward(x);
                layer.backward(gradY, LOSS_SCALE, layer.workspace());
                String replica = groups.coordinates().edp() + "/" + groups.coordinates().tp() + "/";
                for (Parameter p : layer.expertParameters()) {
                    published.put(replica + p.name(), new float[][] {p.value().toFloatArray(), p.grad().toFloatArray()});
                }
                comm.barrier();
                layer.applyPlacement(MoELayers.slots(moved), (slot, expert, w1, w2) -> {
                    for (Parameter p : List.of(w1, w2)) {
                        float[][] state = published.get(replica + p.name());
                        p.value().copyFrom(state[0]);
                        p.grad().copyFrom(state[1]);
                    }
                });
                return pass(layer, groups, d, x, gradY);
            }
        });
        Map<String, float[]> twice = new HashMap<>();
        ref.grads().forEach((name, g) -> {
            float[] sum = g.clone();
            for (int i = 0; i < sum.length; i++) {
                sum[i] += g[i];
            }
            twice.put(name, sum);
        });
        Reference twoPasses = new Reference(ref.x(), ref.gradY(), ref.offsets(), ref.y(), ref.gradX(), ref.aux(),
                ref.z(), ref.routed(), ref.values(), twice);
        assertMatchesReference(twoPasses, results, plan.tp(), cfg.activation());
    }

    @Test
    void refusesPlacementChangesWithoutStateAndReplicas() {
        MoELayer.Config cfg = config(Activation.GELU, MoELayer.Config.DROPLESS, 0.01f, 0.001f);
        Reference ref = reference(cfg, 2);
        ExpertPlacement identity = ExpertPlacement.identity(EXPERTS, 2, 0);
        int[] table = identity.slotTable();
        table[0] = 4;
        table[4] = 0; // experts 0 and 4 swap devices
        ExpertPlacement swapped = ExpertPlacement.of(EXPERTS, 2, 4, table);
        runRanks(new ParallelPlan(1, 1, 2, 1), cfg, ref, identity, (groups, layer) -> {
            layer.setPlacement(MoELayers.slots(ExpertPlacement.identity(EXPERTS, 2, 0))); // the same placement is accepted
            assertArrayEquals(new int[] {0, 4}, layer.changedSlots(MoELayers.slots(swapped)));
            var refused = assertThrows(IllegalStateException.class, () -> layer.setPlacement(MoELayers.slots(swapped)));
            assertTrue(refused.getMessage().contains("[0, 4]") && refused.getMessage().contains("applyPlacement"),
                    refused.getMessage());
            assertEquals(identity, MoELayers.placement(layer));
            var replica = ExpertPlacement.identity(EXPERTS, 2, 1).withSlot(4, 7);
            var bigger = assertThrows(IllegalArgumentException.class, () -> layer.applyPlacement(MoELayers.slots(replica), (s, e, a, b) -> {
            }));
            assertTrue(bigger.getMessage().contains("slots per device"), bigger.getMessage());
        });
        ExpertPlacement replicated = ExpertPlacement.identity(EXPERTS, 2, 1).withSlot(4, 7);
        MoELayer.Config capped = config(Activation.GELU, 1.25, 0.01f, 0.001f);
        var error = assertThrows(RuntimeException.class, () -> runRanks(new ParallelPlan(1, 1, 2, 1), capped,
                reference(capped, 2), replicated, null));
        Throwable cause = error.getCause() != null ? error.getCause() : error;
        assertTrue(cause.getMessage().contains("expert 7 is in slots [4, 8]") && cause.getMessage().contains("dropless"),
                cause.getMessage());
    }

    /**
     * With a capacity factor, capacity applies per source rank (Megatron's semantics): each rank's
     * outputs and input gradients are those of one MoELayer on that rank's tokens alone, and the
     * summed gradients are the sum of those layers' gradients.
     */
    @ParameterizedTest(name = "ep={0} edp={1} tp={2}")
    @CsvSource({"4,1,1", "2,2,2"})
    void capacityIsPerSourceRank(int ep, int edp, int tp) {
        MoELayer.Config cfg = config(Activation.SWIGLU, 1.0, 0f, 0f);
        int dp = ep * edp;
        Reference whole = reference(cfg, dp);
        float[][] y = new float[dp][];
        float[][] gradX = new float[dp][];
        Map<String, float[]> grads = new HashMap<>();
        int dropped = 0;
        try (MoELayer one = new MoELayer(CPU, cfg, 1); TensorScope s = TensorScope.shared(CPU)) {
            load(one, whole.values());
            for (int d = 0; d < dp; d++) {
                int n = TOKENS[d];
                y[d] = one.forward(s.ofFloats("x", whole.rows(whole.x(), d), n, HIDDEN)).toFloatArray();
                dropped += one.workspace().plan().droppedSlots();
                gradX[d] = one.backward(s.ofFloats("gy", whole.rows(whole.gradY(), d), n, HIDDEN), LOSS_SCALE,
                        one.workspace()).toFloatArray();
            }
            grads = gradsOf(one);
        }
        assertTrue(dropped > 0, "the capacity drops some slots");

        List<RankResult> results = runRanks(new ParallelPlan(1, tp, ep, edp), cfg, whole,
                ExpertPlacement.identity(EXPERTS, ep, 0), null);
        Reference perRank = new Reference(whole.x(), whole.gradY(), whole.offsets(), concat(y), concat(gradX), 0f, 0f,
                whole.routed(), whole.values(), grads);
        assertMatchesReference(perRank, results, tp, cfg.activation());
    }

    // ---- helpers ----

    private static Reference reference(MoELayer.Config cfg, int dataRanks) {
        int[] offsets = new int[dataRanks + 1];
        for (int d = 0; d < dataRanks; d++) {
            offsets[d + 1] = offsets[d] + TOKENS[d];
        }
        int tokens = offsets[dataRanks];
        SplittableRandom rng = new SplittableRandom(42);
        float[] x = new float[tokens * HIDDEN];
        float[] gradY = new float[tokens * HIDDEN];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) (1 + 0.5 * rng.nextGaussian());
            gradY[i] = (float) rng.nextGaussian();
        }
        try (MoELayer one = new MoELayer(CPU, cfg, 7); TensorScope s = TensorScope.shared(CPU)) {
            skewGate(one.router().weight().value());
            one.refreshWorkingCopies();
            float[] y = one.forward(rows(s, cfg, "x", x, tokens)).toFloatArray();
            float aux = one.workspace().auxLoss();
            float z = one.workspace().zLoss();
            int[] routed = one.workspace().routedCounts();
            float[] gradX = one.backward(rows(s, cfg, "gy", gradY, tokens), LOSS_SCALE, one.workspace())
                    .toFloatArray();
            return new Reference(x, gradY, offsets, y, gradX, aux, z, routed, valuesOf(one), gradsOf(one));
        }
    }

    /** Adds LOGIT_BIAS[e] / HIDDEN to every row of gate column e: about LOGIT_BIAS[e] for inputs near 1. */
    private static void skewGate(Tensor gate) {
        float[] w = gate.toFloatArray();
        for (int i = 0; i < w.length; i++) {
            w[i] += LOGIT_BIAS[i % EXPERTS] / HIDDEN;
        }
        gate.copyFrom(w);
    }

    /** One forward and backward of data replica d's tokens, gradients reduced: what the rank computed. */
    private static RankResult pass(MoELayer layer, ProcessGroups groups, int d, Tensor x, Tensor gradY) {
        float[] y = layer.forward(x).toFloatArray();
        float[] gradX = layer.backward(gradY, LOSS_SCALE, layer.workspace()).toFloatArray();
        layer.reduceGradients();
        Map<String, float[]> expertGrads = new HashMap<>();
        for (Parameter p : layer.expertParameters()) {
            expertGrads.put(p.name(), p.grad().toFloatArray());
        }
        return new RankResult(d, groups.coordinates(), y, gradX, layer.workspace().auxLoss(),
                layer.workspace().zLoss(), layer.router().weight().grad().toFloatArray(), expertGrads,
                layer.workspace().receivedRows());
    }

    /** Runs the layer on every rank of plan: forward, optional setup before it, backward, reduceGradients. */
    private static List<RankResult> runRanks(ParallelPlan plan, MoELayer.Config cfg, Reference ref,
            ExpertPlacement placement, BiConsumer<ProcessGroups, MoELayer> setup) {
        RankLayout layout = new RankLayout(plan);
        return InJvmWorld.run(plan.world(), TIMEOUT, comm -> {
            try (ProcessGroups groups = new ProcessGroups(layout, comm);
                    MoELayer layer = MoELayers.create(CPU, cfg, groups, placement, ref.full());
                    TensorScope s = TensorScope.shared(CPU)) {
                if (setup != null) {
                    setup.accept(groups, layer);
                }
                int d = layout.dataIndex(comm.rank());
                int n = TOKENS[d];
                return pass(layer, groups, d, rows(s, cfg, "x", ref.rows(ref.x(), d), n),
                        rows(s, cfg, "gy", ref.rows(ref.gradY(), d), n));
            }
        });
    }

    private static void assertMatchesReference(Reference ref, List<RankResult> results, int tp, Activation act) {
        assertMatchesReference(ref, results, tp, act, TOLERANCE);
    }

    /** Every rank's outputs, input gradients, losses and gradients within tolerance of ref's (relative to each tensor's largest magnitude). */
    private static void assertMatchesReference(Reference ref, List<RankResult> results, int tp, Activation act,
            double tolerance) {
        for (RankResult r : results) {
            String at = " on rank " + r.at();
            TensorAsserts.assertClose("y" + at, ref.rows(ref.y(), r.dataIndex()), r.y(), tolerance);
            TensorAsserts.assertClose("gradX" + at, ref.rows(ref.gradX(), r.dataIndex()), r.gradX(), tolerance);
            TensorAsserts.assertClose("aux loss" + at, new float[] {ref.aux()}, new float[] {r.aux()}, tolerance);
            TensorAsserts.assertClose("z loss" + at, new float[] {ref.z()}, new float[] {r.z()}, tolerance);
            TensorAsserts.assertClose("gate grad" + at, ref.grads().get("gate"), r.gateGrad(), tolerance);
        }
        // each expert-data replica of each stage holds every expert once, split over tp ranks
        Map<String, Map<Integer, float[]>> shards = new TreeMap<>(); // "stage/edp/name" -> tp index -> shard
        for (RankResult r : results) {
            r.expertGrads().forEach((name, grad) -> {
                var previous = shards.computeIfAbsent(r.at().stage() + "/" + r.at().edp() + "/" + name, k -> new TreeMap<>()).put(r.at().tp(), grad);
                assertEquals(null, previous, name + " held twice in one replica");
            });
        }
        long replicas = results.stream().map(r -> r.at().stage() + "/" + r.at().edp()).distinct().count();
        assertEquals(replicas * EXPERTS * 2, shards.size(), "expert parameters per replica: " + shards.keySet());
        shards.forEach((key, byTp) -> {
            assertEquals(tp, byTp.size(), key + ": shards of every tp rank");
            String name = key.substring(key.lastIndexOf('/') + 1);
            List<float[]> parts = new ArrayList<>(byTp.values());
            float[] full = name.endsWith(".w1") ? ExpertShards.gatherW1(parts, HIDDEN, FFN, act)
                    : ExpertShards.gatherW2(parts, FFN, HIDDEN);
            TensorAsserts.assertClose(key + " grad", ref.grads().get(name), full, tolerance);
        });
    }

    /** Loads a moved expert's TP shard of ref's full values into its new slot, gradients zeroed. */
    private static MoELayer.SlotLoader shardsOf(Reference ref, ProcessGroups groups, MoELayer.Config cfg) {
        int tpIndex = groups.tensor().rank();
        int tp = groups.tensor().size();
        return (slot, expert, w1, w2) -> {
            w1.value().copyFrom(ExpertShards.shardW1(ref.values().get("experts." + expert + ".w1"), HIDDEN, FFN,
                    cfg.activation(), tpIndex, tp));
            w2.value().copyFrom(ExpertShards.shardW2(ref.values().get("experts." + expert + ".w2"), FFN, HIDDEN,
                    tpIndex, tp));
            w1.zeroGrad();
            w2.zeroGrad();
        };
    }

        /** A bf16 layer on tp=2 x ep=2 with one spare slot per rank, and a placement that moves most of its experts. */
    private record Bf16Move(MoELayer.Config cfg, ParallelPlan plan, Reference ref, ExpertPlacement start,
            ExpertPlacement moved) {
        static Bf16Move of(Activation act, long seed) {
            MoELayer.Config cfg = config(act, MoELayer.Config.DROPLESS, 0.01f, 0.001f).toBuilder().dtype(DType.BF16)
                    .build();
            ParallelPlan plan = new ParallelPlan(1, 2, 2, 1);
            ExpertPlacement start = ExpertPlacement.identity(EXPERTS, plan.ep(), 1);
            ExpertPlacement moved = shuffledPlacement(start, new SplittableRandom(seed));
            assertTrue(start.changedSlots(moved) >= 6, "the permutation moves most experts: " + moved);
            return new Bf16Move(cfg, plan, reference(cfg, plan.dataParallel()), start, moved);
        }
    }

    private static ExpertPlacement shuffledPlacement(ExpertPlacement shape, SplittableRandom rng) {
        int[] table = shape.slotTable();
        for (int i = table.length - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1);
            int t = table[i];
            table[i] = table[j];
            table[j] = t;
        }
        return ExpertPlacement.of(shape.experts(), shape.devices(), shape.slotsPerDevice(), table);
    }

    /** "gate", "experts.e.w1", "experts.e.w2" of a single-device layer: values. */
    private static Map<String, float[]> valuesOf(MoELayer layer) {
        Map<String, float[]> all = new HashMap<>();
        layer.parameters().forEach(p -> all.put(name(layer, p), p.value().toFloatArray()));
        return all;
    }

    private static Map<String, float[]> gradsOf(MoELayer layer) {
        Map<String, float[]> all = new HashMap<>();
        layer.parameters().forEach(p -> all.put(name(layer, p), p.grad().toFloatArray()));
        return all;
    }

    private static String name(MoELayer layer, Parameter p) {
        return p == layer.router().weight() ? MoELayers.GATE : p.name();
    }

    private static void load(MoELayer layer, Map<String, float[]> values) {
        layer.parameters().forEach(p -> p.value().copyFrom(values.get(name(layer, p))));
    }

    /** An input of the layer's dtype (bf16 rounds the values to nearest even). */
    private static Tensor rows(TensorScope s, MoELayer.Config cfg, String name, float[] values, int tokens) {
        Tensor t = s.allocate(name, cfg.dtype(), tokens, HIDDEN);
        t.copyFrom(values);
        return t;
    }

    private static float[] concat(float[][] parts) {
        int n = Arrays.stream(parts).mapToInt(p -> p.length).sum();
        float[] all = new float[n];
        int at = 0;
        for (float[] p : parts) {
            System.arraycopy(p, 0, all, at, p.length);
            at += p.length;
        }
        return all;
    }
}
