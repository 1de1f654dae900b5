package dev.panamoe.runtime.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.Parameter;
import dev.panamoe.runtime.comm.InJvmWorld;
import dev.panamoe.runtime.parallel.ProcessGroups;
import dev.panamoe.runtime.report.OperatorTimer;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.plan.RankLayout;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

class GptMoeModelTest {
    private static final Backend CPU = CpuBackend.get();

    /** A batch of the model's shape: random inputs and targets. */
    private record Data(int[] inputs, int[] targets, int batch, int seq) {
        static Data random(GptMoeConfig c, int batch, int seq, long seed) {
            SplittableRandom rng = new SplittableRandom(seed);
            return new Data(ModelTestData.ids(rng, batch * seq, 0, c.vocab()),
                    ModelTestData.ids(rng, batch * seq, 0, c.vocab()), batch, seq);
        }

        float forward(GptMoeModel model) {
            return model.forward(inputs, targets, batch, seq);
        }
    }

    /** The loss and every gradient after zeroGrad, forward, backward(1). */
    private record Step(float loss, float aux, List<float[]> grads) {
        static Step run(GptMoeModel model, Data data) {
            model.zeroGrad();
            float loss = data.forward(model);
            float aux = model.auxLoss();
            model.backward(1f);
            return new Step(loss, aux, model.parameters().stream().map(ModelTestData::grads).toList());
        }

        void assertBitwiseEqual(Step other) {
            assertEquals(Float.floatToRawIntBits(loss), Float.floatToRawIntBits(other.loss), "loss");
            assertEquals(Float.floatToRawIntBits(aux), Float.floatToRawIntBits(other.aux), "aux loss");
            for (int i = 0; i < grads.size(); i++) {
                assertArrayEquals(grads.get(i), other.grads.get(i), "gradient " + i);
            }
        }
    }

    @Test
    void lossAtInitIsNearLnVocab() {
        GptMoeConfig tiny = GptMoeConfig.preset("tiny");
        try (GptMoeModel model = new GptMoeModel(CPU, tiny, 7)) {
            float loss = Data.random(tiny, 4, 64, 1).forward(model);
            // logits ~ N(0, (0.02 * sqrt(C))^2) at init: loss = ln V + a few hundredths
            assertEquals(Math.log(64), loss, 0.05, "loss at init");
            float aux = model.auxLoss();
            // near-uniform routing: aux = coeff * E * sum_e f_e P_e ~ coeff per layer, z-loss ~ coeff * ln(E)^2
            assertEquals(2 * (0.01 + 0.001 * Math.log(8) * Math.log(8)), aux, 0.01, "aux + z loss at init");
        }
    }

    @Test
    void sameSeedGivesBitwiseSameLossAndGradientsOnAnyThreadCount() {
        GptMoeConfig c = ModelTestData.small().build();
        Data data = Data.random(c, 3, 6, 5);
        int threads = CPU.numThreads();
        try (GptMoeModel a = new GptMoeModel(CPU, c, 42); GptMoeModel b = new GptMoeModel(CPU, c, 42);
                GptMoeModel other = new GptMoeModel(CPU, c, 43)) {
            CPU.setNumThreads(1);
            Step one = Step.run(a, data);
            CPU.setNumThreads(2);
            Step two = Step.run(b, data);
            one.assertBitwiseEqual(two);
            one.assertBitwiseEqual(Step.run(a, data));
            assertNotEquals(one.loss(), Step.run(other, data).loss(), "another seed, another model");
        } finally {
            CPU.setNumThreads(threads);
        }
    }

    @Test
    void parameterNamesAreUniqueAndEveryTensorIsItsOwn() {
        GptMoeConfig c = ModelTestData.small().layers(4).tiedEmbeddings(false).build();
        try (GptMoeModel model = new GptMoeModel(CPU, c, 1)) {
            List<Parameter> params = model.parameters();
            Set<String> names = params.stream().map(Parameter::name).collect(Collectors.toSet());
            assertEquals(params.size(), names.size(), "unique names");
            assertEquals("wte", params.get(0).name());
            assertEquals("wpe", params.get(1).name());
            assertEquals("head.weight", params.getLast().name());
            for (String expected : List.of("blocks.0.ln1.weight", "blocks.0.attn.qkv.weight", "blocks.0.attn.proj.bias",
                    "blocks.0.mlp.fc.weight", "blocks.2.mlp.proj.bias", "blocks.1.moe.gate", "blocks.3.moe.experts.3.w2",
                    "lnf.bias")) {
                assertTrue(names.contains(expected), expected);
            }
            Set<Long> addresses = new HashSet<>();
            for (Parameter p : params) {
                assertTrue(addresses.add(p.value().data().address()), p.name() + " shares memory");
                assertTrue(addresses.add(p.grad().data().address()), p.name() + ".grad shares memory");
            }
            assertEquals(c.parameterCount(), params.stream().mapToLong(p -> p.value().numel()).sum());
            assertEquals(params.stream().map(Parameter::name).toList(),
                    model.parameters().stream().map(Parameter::name).toList(), "fixed order");
        }
    }

    @Test
    void presetsParameterCountIsWhatTheModelAllocates() {
        for (String name : List.of("tiny", "small")) {
            GptMoeConfig c = GptMoeConfig.preset(name);
            try (GptMoeModel model = new GptMoeModel(CPU, c, 1)) {
                assertEquals(c.parameterCount(), model.parameters().stream().mapToLong(p -> p.value().numel()).sum(),
                        name);
                assertEquals(c.moeLayerCount(), model.moeLayerCount(), name);
            }
        }
    }

    @Test
    void initialisationFollowsGpt2() {
        GptMoeConfig c = GptMoeConfig.preset("tiny");
        try (GptMoeModel model = new GptMoeModel(CPU, c, 3)) {
            double residual = 0.02 / Math.sqrt(2 * c.layers());
            for (Parameter p : model.parameters()) {
                float[] v = ModelTestData.values(p);
                double mean = 0;
                double sq = 0;
                for (float x : v) {
                    mean += x;
                    sq += (double) x * x;
                }
                mean /= v.length;
                double std = Math.sqrt(sq / v.length - mean * mean);
                String n = p.name();
                if (n.matches(".*(ln\\d|lnf)\\.weight")) {
                    assertTrue(mean == 1 && std == 0, n + " starts at 1");
                } else if (n.endsWith(".bias")) {
                    assertTrue(mean == 0 && std == 0, n + " starts at 0");
                } else {
                    boolean projection = n.endsWith("proj.weight") || n.endsWith(".w2");
                    double expected = projection ? residual : 0.02;
                    assertEquals(expected, std, expected * 0.15, n + " std");
                }
            }
        }
    }

    @Test
    void tiedHeadAddsItsGradientIntoWte() {
        GptMoeConfig c = ModelTestData.small().build();
        // inputs use only ids 0..4: rows 5.. of wte get gradient only through the head
        int[] inputs = new int[2 * 4];
        Arrays.setAll(inputs, i -> i % 5);
        int[] targets = ModelTestData.ids(new SplittableRandom(3), 8, 0, c.vocab());
        try (GptMoeModel tied = new GptMoeModel(CPU, c, 9);
                GptMoeModel untied = new GptMoeModel(CPU, c.toBuilder().tiedEmbeddings(false).build(), 9)) {
            assertEquals(c.parameterCount() + (long) c.vocab() * c.hidden(), untied.config().parameterCount());
            assertTrue(tied.parameters().stream().noneMatch(p -> p.name().equals("head.weight")));
            for (GptMoeModel m : List.of(tied, untied)) {
                m.zeroGrad();
                m.forward(inputs, targets, 2, 4);
                m.backward(1f);
            }
            float[] tiedWte = ModelTestData.grads(tied.parameters().get(0));
            float[] untiedWte = ModelTestData.grads(untied.parameters().get(0));
            float[] head = ModelTestData.grads(untied.parameters().getLast());
            int unusedRows = (c.vocab() - 5) * c.hidden();
            int from = 5 * c.hidden();
            assertTrue(Arrays.equals(new float[unusedRows], Arrays.copyOfRange(untiedWte, from, untiedWte.length)),
                    "untied: rows of unused ids get no embedding gradient");
            assertTrue(!Arrays.equals(new float[unusedRows], Arrays.copyOfRange(head, from, head.length)),
                    "untied: the head gets gradient on every row");
            assertTrue(!Arrays.equals(new float[unusedRows], Arrays.copyOfRange(tiedWte, from, tiedWte.length)),
                    "tied: wte gets the head's gradient");
        }
    }

    @Test
    void backwardAccumulatesScaledGradients() {
        GptMoeConfig c = ModelTestData.small().build();
        Data data = Data.random(c, 2, 5, 8);
        try (GptMoeModel model = new GptMoeModel(CPU, c, 4)) {
            model.zeroGrad();
            data.forward(model);
            model.backward(1f);
            model.backward(1f);
            List<float[]> twice = model.parameters().stream().map(ModelTestData::grads).toList();
            model.zeroGrad();
            model.backward(2f);
            List<Parameter> params = model.parameters();
            for (int i = 0; i < params.size(); i++) {
                float[] g = ModelTestData.grads(params.get(i));
                for (int j = 0; j < g.length; j++) {
                    assertEquals(twice.get(i)[j], g[j], 1e-5 * Math.abs(g[j]) + 1e-9, params.get(i).name());
                }
            }
            model.zeroGrad();
            assertTrue(model.parameters().stream().allMatch(p -> Arrays.equals(ModelTestData.grads(p),
                    new float[ModelTestData.grads(p).length])), "zeroGrad clears every gradient");
        }
    }

    @Test
    void anyBatchShapeWorksAndTheCacheFollowsIt() {
        GptMoeConfig c = ModelTestData.small().build();
        Data a = Data.random(c, 2, 5, 1);
        Data b = Data.random(c, 3, 6, 2);
        Data single = Data.random(c, 1, 1, 3);
        try (GptMoeModel model = new GptMoeModel(CPU, c, 5); GptMoeModel fresh = new GptMoeModel(CPU, c, 5)) {
            Step first = Step.run(model, a);
            Step.run(model, b);
            Step.run(model, single);
            first.assertBitwiseEqual(Step.run(model, a));
            Step.run(fresh, b).assertBitwiseEqual(Step.run(model, b));
        }
    }

    @Test
    void ignoredTargetsDoNotCount() {
        GptMoeConfig c = ModelTestData.small().build();
        Data data = Data.random(c, 2, 4, 6);
        int[] masked = data.targets().clone();
        Arrays.fill(masked, 0, 4, -1);
        try (GptMoeModel model = new GptMoeModel(CPU, c, 2)) {
            // the mean over all 8 rows is the mean of the means over rows 0..3 and rows 4..7
            float all = model.forward(data.inputs(), data.targets(), 2, 4);
            float masked4 = model.forward(data.inputs(), masked, 2, 4);
            int[] firstHalf = data.targets().clone();
            Arrays.fill(firstHalf, 4, 8, -1);
            float first4 = model.forward(data.inputs(), firstHalf, 2, 4);
            assertEquals(all, (masked4 + first4) / 2, 1e-6);
            int[] none = new int[8];
            Arrays.fill(none, -1);
            assertEquals(0f, model.forward(data.inputs(), none, 2, 4));
            model.zeroGrad();
            model.backward(1f); // only the aux losses remain: finite gradients
            assertTrue(model.parameters().stream().allMatch(p -> allFinite(ModelTestData.grads(p))));
        }
    }

    @Test
    void expertCountsCoverEveryRoutedSlot() {
        GptMoeConfig c = ModelTestData.small().moeEvery(1).build();
        try (GptMoeModel model = new GptMoeModel(CPU, c, 2)) {
            Data.random(c, 3, 5, 4).forward(model);
            int[][] counts = model.expertCounts();
            assertEquals(2, counts.length);
            for (int[] layer : counts) {
                assertEquals(c.experts(), layer.length);
                assertEquals(3 * 5 * c.topK(), Arrays.stream(layer).sum());
            }
        }
    }

    @Test
    void sgdOnOneBatchLowersTheLoss() {
        GptMoeConfig tiny = GptMoeConfig.preset("tiny");
        Data data = Data.random(tiny, 2, 32, 11);
        try (GptMoeModel model = new GptMoeModel(CPU, tiny, 1)) {
            float[] losses = new float[6];
            for (int step = 0; step < losses.length; step++) {
                model.zeroGrad();
                losses[step] = data.forward(model);
                model.backward(1f);
                for (Parameter p : model.parameters()) {
                    float[] v = ModelTestData.values(p);
                    float[] g = ModelTestData.grads(p);
                    for (int i = 0; i < v.length; i++) {
                        v[i] -= 0.1f * g[i];
                    }
                    p.value().copyFrom(v);
                }
            }
            // routing changes make single steps noisy; the trend must be clearly down
            assertTrue(losses[1] < losses[0], Arrays.toString(losses));
            assertTrue(losses[losses.length - 1] < losses[0] - 0.5, Arrays.toString(losses));
        }
    }

    @Test
    void timerSeesEveryOperator() {
        GptMoeConfig c = ModelTestData.small().build();
        try (GptMoeModel model = new GptMoeModel(CPU, c, 2)) {
            OperatorTimer timer = new OperatorTimer();
            model.setTimer(timer);
            Step.run(model, Data.random(c, 2, 3, 1));
            Set<String> ops = timer.entries().stream().map(OperatorTimer.Entry::name).collect(Collectors.toSet());
            assertEquals(Set.of("embedding", "norm", "linear", "attention", "residual", "moe", "gelu", "lm_head",
                    "cross_entropy", "cross_entropy.backward", "lm_head.backward", "norm.backward", "moe.backward",
                    "linear.backward", "gelu.backward", "attention.backward", "residual.backward",
                    "embedding.backward"), ops);
            long calls = timer.entries().stream().filter(e -> e.name().equals("linear")).findFirst().orElseThrow().calls();
            assertEquals(6, calls, "qkv, proj per block + fc, proj of the dense block");
            model.setTimer(null);
            long total = timer.totalNanos();
            Step.run(model, Data.random(c, 2, 3, 1));
            assertEquals(total, timer.totalNanos(), "no timing once the timer is removed");
        }
    }

    @Test
    void badCallsNameTheArgument() {
        GptMoeConfig c = ModelTestData.small().build();
        Data data = Data.random(c, 2, 3, 1);
        try (GptMoeModel model = new GptMoeModel(CPU, c, 2)) {
            assertMessage(IllegalStateException.class, "backward", () -> model.backward(1f));
            assertMessage(IllegalStateException.class, "auxLoss", model::auxLoss);
            assertMessage(IllegalStateException.class, "expertCounts", model::expertCounts);
            int[] badInput = data.inputs().clone();
            badInput[4] = c.vocab();
            assertMessage(IllegalArgumentException.class, "inputs[4]: 11", () -> model.forward(badInput, data.targets(), 2, 3));
            int[] badTarget = data.targets().clone();
            badTarget[1] = -2;
            assertMessage(IllegalArgumentException.class, "targets[1]: -2", () -> model.forward(data.inputs(), badTarget, 2, 3));
            assertMessage(IllegalArgumentException.class, "inputs: expected batch * seq = 9",
                    () -> model.forward(data.inputs(), data.targets(), 3, 3));
            assertMessage(IllegalArgumentException.class, "seq: must be in [1, maxSeq=6], got 7",
                    () -> model.forward(new int[7], new int[7], 1, 7));
            assertMessage(IllegalArgumentException.class, "batch: must be >= 1, got 0",
                    () -> model.forward(new int[0], new int[0], 0, 3));
            assertMessage(IllegalArgumentException.class, "inputs: expected batch * seq = 6 ids, got null",
                    () -> model.forward(null, data.targets(), 2, 3));
            assertMessage(IllegalArgumentException.class, "i: MoE layer 1", () -> model.moeLayer(1));
            data.forward(model);
            assertMessage(IllegalArgumentException.class, "gradScale: must be finite, got NaN",
                    () -> model.backward(Float.NaN));
        }
        assertMessage(IllegalArgumentException.class, "backend, config", () -> new GptMoeModel(null, c, 1));
    }

    /**
     * The single-device constructor builds the model on a world of one rank, and a rank of a plan
     * of one rank starts from the same parameters, in the same order; only the single device
     * decodes, and each holds its own MoE layer class (transitional, issue 10).
     */
    @Test
    void aSingleDeviceIsAWorldOfOneRankAndStartsAsARankOfAPlanOfOne() {
        GptMoeConfig c = ModelTestData.small().build();
        try (GptMoeModel one = new GptMoeModel(CPU, c, 3)) {
            assertTrue(one.isSingleDevice());
            assertEquals(ParallelPlan.SINGLE, one.groups().plan());
            assertEquals(1, one.groups().world().size());
            assertTrue(one.isFirst() && one.isLast());
            assertEquals(c.moeLayerCount(), one.moeLayers().size());
            assertSame(one.moeLayers().get(0), one.moeLayer(0));
            InJvmWorld.run(1, Duration.ofSeconds(30), comm -> {
                try (ProcessGroups groups = new ProcessGroups(new RankLayout(ParallelPlan.SINGLE), comm);
                        GptMoeModel rank = new GptMoeModel(CPU, c, 3, groups)) {
                    assertTrue(!rank.isSingleDevice());
                    assertEquals(one.parameters().stream().map(Parameter::name).toList(),
                            rank.parameters().stream().map(Parameter::name).toList());
                    for (int i = 0; i < one.parameters().size(); i++) {
                        assertArrayEquals(one.parameters().get(i).value().toFloatArray(),
                                rank.parameters().get(i).value().toFloatArray(), one.parameters().get(i).name());
                    }
                    assertEquals(c.moeLayerCount(), rank.moeLayers().size());
                    assertMessage(IllegalStateException.class, "a single device", () -> new Generator(rank));
                }
                return null;
            });
        }
        assertMessage(IllegalArgumentException.class, "groups: must not be null",
                () -> new GptMoeModel(CPU, c, 3, (ProcessGroups) null));
    }

    private static void assertMessage(Class<? extends RuntimeException> type, String fragment,
            org.junit.jupiter.api.function.Executable call) {
        RuntimeException e = assertThrows(type, call);
        assertTrue(e.getMessage().contains(fragment), () -> "message '" + e.getMessage() + "' lacks '" + fragment + "'");
    }

    private static boolean allFinite(float[] v) {
        for (float x : v) {
            if (!Float.isFinite(x)) {
                return false;
            }
        }
        return true;
    }

    @Test
    void closedModelFailsLoudly() {
        GptMoeConfig c = ModelTestData.small().build();
        GptMoeModel model = new GptMoeModel(CPU, c, 2);
        Data data = Data.random(c, 1, 2, 1);
        data.forward(model);
        Parameter wte = model.parameters().get(0);
        model.close();
        assertThrows(IllegalStateException.class, () -> data.forward(model));
        assertThrows(IllegalStateException.class, () -> wte.value().getFloat(0));
    }
}
