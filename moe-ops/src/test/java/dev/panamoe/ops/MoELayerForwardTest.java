package dev.panamoe.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.function.Predicate;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** MoELayer.forward against the double-precision ReferenceMoE, on configurations chosen to hit the ragged cases. */
class MoELayerForwardTest {
    private static final Backend CPU = CpuBackend.get();

    /**
     * f32 vs double: every output is a few chained dot products of length <= 2 * ffn over O(1)
     * values; the measured error is <= 1e-7 of the output scale. 1e-5 leaves a 100x margin and
     * still catches any wrong term (a wrong weight, a missed or extra slot is O(0.1)).
     */
    private static final double TOLERANCE = 1e-5;

    /** A scenario: the layer's config, the batch, a placement, and an optional push of W_gate[0, expert]. */
    record Case(String name, MoELayer.Config cfg, int tokens, int[] remap, int steeredExpert, float steer,
            Predicate<ReferenceMoE.Result> scenario) {
        @Override
        public String toString() {
            return name;
        }
    }

    static MoELayer.Config.Builder base(int hidden, int ffn, int experts, int topK) {
        return MoELayer.Config.builder().hidden(hidden).ffn(ffn).experts(experts).topK(topK).auxLossCoeff(0.05f)
                .zLossCoeff(0.01f);
    }

    static Stream<Case> cases() {
        return Stream.of(
                new Case("swiglu, softmax renormalized, dropless", base(16, 24, 4, 2).build(), 13, null, -1, 0,
                        r -> r.dropped() == 0),
                new Case("gelu, sigmoid, capacity 1.0 drops by position",
                        base(16, 20, 4, 2).activation(Activation.GELU).scoreFunction(ScoreFunction.SIGMOID)
                                .renormalize(false).capacityFactor(1.0).dropPolicy(DropPolicy.BY_POSITION).build(),
                        16, null, 0, 1.5f, r -> r.dropped() > 0),
                new Case("silu, softmax, capacity 0.75 drops by probability",
                        base(12, 16, 6, 2).activation(Activation.SILU).renormalize(false).capacityFactor(0.75)
                                .dropPolicy(DropPolicy.BY_PROBABILITY).build(),
                        24, null, -1, 0, r -> r.dropped() > 0),
                new Case("an expert with zero tokens", base(16, 12, 4, 2).build(), 20, null, 3, -40f,
                        r -> r.logicalCounts()[3] == 0),
                new Case("all tokens to one expert", base(16, 12, 4, 1).build(), 20, null, 1, 40f,
                        r -> r.logicalCounts()[1] == 20),
                new Case("one hot expert, capacity 1.0 by position",
                        base(16, 12, 4, 1).capacityFactor(1.0).dropPolicy(DropPolicy.BY_POSITION).build(), 20, null,
                        1, 8f, r -> r.logicalCounts()[1] == 20 && r.dropped() == 20 - 5),
                new Case("one hot expert, capacity 1.0 by probability",
                        base(16, 12, 4, 1).renormalize(false).capacityFactor(1.0)
                                .dropPolicy(DropPolicy.BY_PROBABILITY).build(),
                        20, null, 1, 8f, r -> r.dropped() == 15 && !keptArePrefix(r)),
                new Case("fewer tokens than experts", base(8, 8, 8, 2).build(), 3, null, -1, 0,
                        r -> countZero(r.logicalCounts()) >= 2),
                new Case("k equals experts", base(8, 8, 3, 3).capacityFactor(1.0).build(), 9, null, -1, 0,
                        r -> r.dropped() == 0),
                new Case("remap permutation with drops",
                        base(16, 12, 4, 2).capacityFactor(0.75).dropPolicy(DropPolicy.BY_POSITION).build(), 16,
                        new int[] {2, 0, 3, 1}, 2, 1.5f, r -> r.dropped() > 0),
                new Case("a single token", base(16, 12, 4, 2).activation(Activation.GELU).build(), 1, null, -1, 0,
                        r -> r.dropped() == 0),
                new Case("sigmoid renormalized, capacity 1.5 by probability",
                        base(16, 12, 5, 2).scoreFunction(ScoreFunction.SIGMOID).capacityFactor(1.5).build(), 30,
                        null, 4, 1.5f, r -> r.dropped() > 0));
    }

    private static boolean keptArePrefix(ReferenceMoE.Result r) {
        boolean seenDrop = false;
        for (boolean[] token : r.kept()) {
            for (boolean kept : token) {
                if (kept && seenDrop) {
                    return false;
                }
                seenDrop |= !kept;
            }
        }
        return true;
    }

    private static int countZero(int[] counts) {
        return (int) java.util.Arrays.stream(counts).filter(c -> c == 0).count();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void matchesDoubleReference(Case c) {
        try (MoELayer layer = new MoELayer(CPU, c.cfg(), 42); TensorScope scope = TensorScope.confined(CPU)) {
            if (c.steeredExpert() >= 0) {
                layer.router().weight().value().setFloat(c.steeredExpert(), c.steer()); // W_gate[0, e]
            }
            int[] remap = c.remap() == null ? TestData.identity(c.cfg().experts()) : c.remap();
            layer.setRemap(remap);
            float[][] x = TestData.input(c.tokens(), c.cfg().hidden(), 7);
            Tensor y = layer.forward(TestData.tensor(scope, "x", x));
            ReferenceMoE.Result ref = new ReferenceMoE(layer, remap).forward(TestData.toDouble(x));

            assertTrue(c.scenario().test(ref), "the reference run does not show the scenario '" + c.name() + "'");
            assertRoutingMatches(layer.workspace(), ref);
            double scale = Math.max(1, TestData.maxAbs(ref.y()));
            double err = TestData.maxAbsDiff(y.toFloatArray(), ref.y());
            assertTrue(err <= TOLERANCE * scale, "max |y - ref| = " + err + " (scale " + scale + ")");
            assertEquals(ref.aux(), layer.workspace().auxLoss(), TOLERANCE * Math.max(1, ref.aux()), "aux loss");
            assertEquals(ref.z(), layer.workspace().zLoss(), TOLERANCE * Math.max(1, ref.z()), "z-loss");
        }
    }

    /** Same experts, same kept slots, same counts per logical expert and per physical slot. */
    static void assertRoutingMatches(MoELayer.Workspace ws, ReferenceMoE.Result ref) {
        int k = ref.ids()[0].length;
        int[] ids = ws.topkIds().toIntArray();
        int[] position = ws.plan().slotPosition().toIntArray();
        for (int t = 0; t < ref.ids().length; t++) {
            for (int j = 0; j < k; j++) {
                assertEquals(ref.ids()[t][j], ids[t * k + j], "expert of token " + t + " choice " + j);
                assertEquals(ref.kept()[t][j], position[t * k + j] >= 0, "kept flag of token " + t + " choice " + j);
            }
        }
        assertArrayEquals(ref.logicalCounts(), ws.routedCounts(), "routed slots per logical expert");
        assertArrayEquals(ref.physicalCounts(), ws.plan().counts(), "kept rows per physical expert");
        assertEquals(ref.dropped(), ws.plan().droppedSlots(), "dropped slots");
    }

    @Test
    void reusesWorkspaceForSameTokenCountAndReallocatesOnChange() {
        MoELayer.Config cfg = base(16, 12, 4, 2).capacityFactor(1.0).build();
        try (MoELayer layer = new MoELayer(CPU, cfg, 3); TensorScope scope = TensorScope.confined(CPU)) {
            ReferenceMoE ref = new ReferenceMoE(layer, TestData.identity(4));
            Tensor first = forwardAndCheck(layer, ref, scope, 8, 1);
            long address = first.data().address();
            Tensor second = forwardAndCheck(layer, ref, scope, 8, 2);
            assertSame(first, second, "same token count: same output buffer");
            assertEquals(address, second.data().address());
            forwardAndCheck(layer, ref, scope, 11, 3);
            IllegalStateException closed = assertThrows(IllegalStateException.class, first::data);
            assertTrue(closed.getMessage().contains("'y'"), closed.getMessage());
            forwardAndCheck(layer, ref, scope, 8, 4);
        }
    }

    private static Tensor forwardAndCheck(MoELayer layer, ReferenceMoE ref, TensorScope scope, int tokens, long seed) {
        float[][] x = TestData.input(tokens, layer.config().hidden(), seed);
        Tensor y = layer.forward(TestData.tensor(scope, "x", x));
        ReferenceMoE.Result r = ref.forward(TestData.toDouble(x));
        assertRoutingMatches(layer.workspace(), r);
        double err = TestData.maxAbsDiff(y.toFloatArray(), r.y());
        assertTrue(err <= TOLERANCE * Math.max(1, TestData.maxAbs(r.y())), "max |y - ref| = " + err + " for " + tokens + " tokens");
        return y;
    }
}
