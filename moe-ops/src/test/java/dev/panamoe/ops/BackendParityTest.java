package dev.panamoe.ops;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A device backend against the CPU reference, op by op on random inputs of several shapes
 * (including empty groups and zero rows), then a whole MoE layer forward and backward. Every
 * op runs once per backend on the same inputs, uploaded with the tensors' host accessors; ints
 * must match exactly, floats within {@link #tolerance()} relative to the CPU (0: bitwise). Then
 * the MoE layer in bf16, within a bound derived from bf16 rounding (below).
 */
abstract class BackendParityTest {
    static final Backend CPU = CpuBackend.get();

    abstract Backend backend();

    abstract double tolerance();

    /** One computation on a backend: inputs made in the scope, outputs read back. */
    interface Op {
        List<float[]> run(Backend b, TensorScope s);
    }

    private void parity(String what, Op op) {
        List<float[]> expected;
        List<float[]> actual;
        try (TensorScope s = TensorScope.confined(CPU)) {
            expected = op.run(CPU, s);
        }
        try (TensorScope s = TensorScope.confined(backend())) {
            actual = op.run(backend(), s);
        }
        assertEquals(expected.size(), actual.size(), what);
        for (int i = 0; i < expected.size(); i++) {
            assertClose(what + ", output " + i, expected.get(i), actual.get(i));
        }
    }

    private void assertClose(String what, float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            double e = expected[i];
            double a = actual[i];
            boolean ok = tolerance() == 0 ? Float.floatToIntBits(expected[i]) == Float.floatToIntBits(actual[i])
                    : Math.abs(e - a) <= tolerance() * (1 + Math.abs(e));
            assertTrue(ok, what + ": element " + i + " is " + a + ", the CPU gives " + e);
        }
    }

    static float[] random(int n, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rng.nextDouble(-1, 1);
        }
        return v;
    }

    static Tensor floats(TensorScope s, String name, long seed, int... shape) {
        return s.ofFloats(name, random(Math.toIntExact(Tensor.numel(shape)), seed), shape);
    }

    static float[] asFloats(int[] v) {
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            f[i] = v[i];
        }
        return f;
    }

    @Test
    void gemmInAllTranspositions() {
        int[][] shapes = {{5, 7, 3}, {0, 4, 3}, {33, 17, 65}, {1, 1, 1}};
        for (int[] mnk : shapes) {
            for (int t = 0; t < 4; t++) {
                boolean ta = (t & 1) != 0;
                boolean tb = (t & 2) != 0;
                int m = mnk[0];
                int n = mnk[1];
                int k = mnk[2];
                parity("gemm " + m + "x" + n + "x" + k + " transA " + ta + " transB " + tb, (b, s) -> {
                    Tensor a = ta ? floats(s, "a", 1, k, m) : floats(s, "a", 1, m, k);
                    Tensor w = tb ? floats(s, "b", 2, n, k) : floats(s, "b", 2, k, n);
                    Tensor c = floats(s, "c", 3, m, n);
                    b.gemm(ta, tb, 0.75f, a, w, 0.5f, c);
                    return List.of(c.toFloatArray());
                });
            }
        }
    }

    @Test
    void groupedGemmsOverRaggedGroups() {
        int[] offsets = {0, 3, 3, 10, 11};
        int groups = offsets.length - 1;
        int rows = 11;
        int k = 6;
        int n = 5;
        parity("grouped gemm nn, nt, tn", (b, s) -> {
            Tensor off = s.ofInts("offsets", offsets, groups + 1);
            Tensor a = floats(s, "a", 4, rows, k);
            List<Tensor> nn = new ArrayList<>();
            List<Tensor> nt = new ArrayList<>();
            List<Tensor> tn = new ArrayList<>();
            for (int g = 0; g < groups; g++) {
                nn.add(floats(s, "wnn" + g, 10 + g, k, n));
                nt.add(floats(s, "wnt" + g, 20 + g, n, k));
                tn.add(floats(s, "out" + g, 30 + g, k, n));
            }
            Tensor c1 = s.allocate("c1", DType.F32, rows, n);
            Tensor c2 = s.allocate("c2", DType.F32, rows, n);
            b.groupedGemmNn(off, a, s.table("nn", nn), c1);
            b.groupedGemmNt(off, a, s.table("nt", nt), c2);
            b.groupedGemmTn(off, a, c1, 0.5f, s.table("tn", tn));
            List<float[]> out = new ArrayList<>(List.of(c1.toFloatArray(), c2.toFloatArray()));
            tn.forEach(t -> out.add(t.toFloatArray()));
            return out;
        });
    }

    @Test
    void routingDispatchPermuteAndCombineWithTheirBackwards() {
        int tokens = 37;
        int experts = 6;
        int k = 2;
        int hidden = 8;
        for (int capacity : new int[] {Backend.CAPACITY_DROPLESS, 9}) {
            parity("router, dispatch (capacity " + capacity + "), permute, combine", (b, s) -> {
                Tensor logits = floats(s, "logits", 5, tokens, experts);
                Tensor scores = s.allocate("scores", DType.F32, tokens, experts);
                Tensor weights = s.allocate("weights", DType.F32, tokens, k);
                Tensor ids = s.allocate("ids", DType.I32, tokens, k);
                b.routerForward(ScoreFunction.SOFTMAX, true, logits, scores, weights, ids);
                Tensor remap = s.ofInts("remap", new int[] {5, 4, 3, 2, 1, 0}, experts);
                Tensor counts = s.allocate("counts", DType.I32, experts);
                Tensor offsets = s.allocate("offsets", DType.I32, experts + 1);
                Tensor position = s.allocate("position", DType.I32, tokens, k);
                Tensor sorted = s.allocate("sorted", DType.I32, tokens * k);
                b.dispatchPlan(ids, weights, remap, experts, capacity, DropPolicy.BY_PROBABILITY, counts, offsets,
                        position, sorted);
                int rows = offsets.getInt(experts);
                Tensor x = floats(s, "x", 6, tokens, hidden);
                Tensor permuted = s.allocate("permuted", DType.F32, rows, hidden);
                b.permute(x, sorted, k, permuted);
                Tensor y = s.allocate("y", DType.F32, tokens, hidden);
                b.combine(permuted, weights, position, y);
                Tensor gradY = floats(s, "gradY", 7, tokens, hidden);
                Tensor gradExpertOut = s.allocate("gradExpertOut", DType.F32, rows, hidden);
                Tensor gradWeights = s.allocate("gradWeights", DType.F32, tokens, k);
                b.combineBackward(gradY, permuted, weights, position, gradExpertOut, gradWeights);
                Tensor gradX = s.allocate("gradX", DType.F32, tokens, hidden);
                b.permuteBackward(gradExpertOut, position, gradX);
                Tensor gradLogits = s.allocate("gradLogits", DType.F32, tokens, experts);
                b.routerBackward(ScoreFunction.SOFTMAX, true, scores, ids, gradWeights, null, gradLogits);
                return List.of(scores.toFloatArray(), weights.toFloatArray(), asFloats(ids.toIntArray()),
                        asFloats(counts.toIntArray()), asFloats(offsets.toIntArray()),
                        asFloats(position.toIntArray()), asFloats(sorted.toIntArray()), y.toFloatArray(),
                        gradExpertOut.toFloatArray(), gradWeights.toFloatArray(), gradX.toFloatArray(),
                        gradLogits.toFloatArray());
            });
        }
    }

    @Test
    void denseOperatorsAndScalarResults() {
        int batch = 2;
        int seq = 5;
        int c = 8;
        int heads = 2;
        int vocab = 11;
        parity("layernorm, attention, cross-entropy, sum of squares, non-finite scan, AdamW", (b, s) -> {
            Tensor x = floats(s, "x", 8, batch, seq, c);
            Tensor w = floats(s, "w", 9, c);
            Tensor bias = floats(s, "bias", 10, c);
            Tensor ln = s.allocate("ln", DType.F32, batch, seq, c);
            Tensor mean = s.allocate("mean", DType.F32, batch * seq);
            Tensor rstd = s.allocate("rstd", DType.F32, batch * seq);
            b.layerNormForward(x, w, bias, 1e-5f, ln, mean, rstd);
            Tensor qkv = floats(s, "qkv", 11, batch, seq, 3 * c);
            Tensor att = s.allocate("att", DType.F32, batch, heads, seq, seq);
            Tensor attOut = s.allocate("attOut", DType.F32, batch, seq, c);
            b.attentionForward(heads, qkv, att, attOut);
            Tensor logits = floats(s, "logits", 12, batch * seq, vocab);
            int[] t = new int[batch * seq];
            for (int i = 0; i < t.length; i++) {
                t[i] = i == 3 ? -1 : (i * 7) % vocab;
            }
            Tensor targets = s.ofInts("targets", t, batch * seq);
            Tensor losses = s.allocate("losses", DType.F32, batch * seq);
            float meanLoss = b.crossEntropyForward(logits, targets, losses);
            Tensor gradLogits = s.allocate("gradLogits", DType.F32, batch * seq, vocab);
            b.crossEntropyBackward(logits, targets, 0.25f, gradLogits);
            double squares = b.sumSquares(logits);
            long finiteScan = b.findNonFinite(logits);
            logits.setFloat(17, Float.NaN);
            long nanAt = b.findNonFinite(logits);
            Tensor p = floats(s, "p", 13, 40);
            Tensor m = s.allocate("m", DType.F32, 40);
            Tensor v = s.allocate("v", DType.F32, 40);
            b.adamwStep(p, floats(s, "g", 14, 40), 1f, m, v, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1);
            Tensor working = s.allocate("working", DType.BF16, 40);
            b.adamwStep(p, floats(s, "g2", 15, 40), 0.5f, m, v, working, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 2);
            return List.of(ln.toFloatArray(), mean.toFloatArray(), rstd.toFloatArray(), att.toFloatArray(),
                    attOut.toFloatArray(), losses.toFloatArray(), gradLogits.toFloatArray(), p.toFloatArray(),
                    m.toFloatArray(), v.toFloatArray(), working.toFloatArray(),
                    new float[] {meanLoss, (float) squares, finiteScan, nanAt});
        });
    }

    @Test
    void moeLayerForwardAndBackward() {
        MoELayer.Config config = MoELayer.Config.builder().hidden(16).ffn(24).experts(4).topK(2).capacityFactor(1.25)
                .auxLossCoeff(0.01f).zLossCoeff(0.001f).build();
        parity("MoE layer forward + backward", (b, s) -> {
            try (MoELayer layer = new MoELayer(b, config, 42)) {
                Tensor x = floats(s, "x", 15, 29, config.hidden());
                Tensor gradY = floats(s, "gradY", 16, 29, config.hidden());
                layer.zeroGrad();
                List<float[]> out = new ArrayList<>();
                out.add(layer.forward(x).toFloatArray());
                out.add(new float[] {layer.workspace().auxLoss(), layer.workspace().zLoss()});
                out.add(asFloats(layer.workspace().routedCounts()));
                out.add(layer.backward(gradY).toFloatArray());
                for (Parameter p : layer.parameters()) {
                    out.add(p.grad().toFloatArray());
                }
                return out;
            }
        });
    }

    /** One output of the bf16 layer; bf16Bound is NaN where it is compared as f32 (ints, losses). */
    record Output(String name, float[] values, double bf16Bound) {
    }

    /**
     * The MoE layer in bf16 (f32 masters and gradients, bf16 working copies, rows and their
     * gradients) forward and backward on both backends, from the same seed and the same bf16
     * input, on {@link MoELayerBf16Test}'s cases. The bound: each backend's bf16 layer is within
     * that test's bound B of an f32 layer on the same (rounded) weights, whatever the order of
     * its f32 sums (B counts the bf16 roundings along the longest chain, 8 to 16 units of 2^-9),
     * and the two backends' f32 layers are within {@link #tolerance()} of each other; so the two
     * bf16 layers are within 2B + tolerance() in relative error (Frobenius norm) per tensor. That
     * catches a device kernel gone wrong (errors of order 1) on the GPU; each bf16 kernel's
     * rounding is checked finer, element by element (f32 tolerance + one bf16 ulp), by the
     * host-execution harness. The top-k ids and expert counts (the f32 router on the same bf16
     * products) must match exactly, the aux and z losses within tolerance(); with tolerance() 0
     * every output is compared bitwise. The bound is a worst case: the CPU at its avx2 and
     * avx512_bf16 levels (other f32 roundings) differs on these cases by at most 1e-7 (2026-12-05);
     * the test prints the largest error, for the first GPU run to compare.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.panamoe.ops.MoELayerBf16Test#cases")
    void moeLayerInBf16ForwardAndBackward(MoELayerBf16Test.Case c) {
        MoELayer.Config config = c.cfg().dtype(DType.BF16).build();
        List<Output> expected, actual;
        try (TensorScope s = TensorScope.confined(CPU)) {
            expected = bf16Layer(CPU, s, config, c.tokens());
        }
        try (TensorScope s = TensorScope.confined(backend())) {
            actual = bf16Layer(backend(), s, config, c.tokens());
        }
        assertEquals(expected.size(), actual.size(), "outputs");
        double worst = 0;
        for (int i = 0; i < expected.size(); i++) {
            Output e = expected.get(i);
            float[] a = actual.get(i).values();
            if (tolerance() == 0 || Double.isNaN(e.bf16Bound())) assertClose(c + ", " + e.name(), e.values(), a);
            else worst = Math.max(worst, MoELayerBf16Test.assertRelativeError(c + ", " + e.name(), e.values(), a,
                    2 * e.bf16Bound() + tolerance()));
        }
        System.out.printf(Locale.ROOT, "bf16 MoE layer (%s) on %s: %s%n", c, backend().name(), tolerance() == 0
                ? "bitwise the CPU's" : String.format(Locale.ROOT, "largest relative error %.2e", worst));
    }

    private static List<Output> bf16Layer(Backend b, TensorScope s, MoELayer.Config config, int tokens) {
        try (MoELayer layer = new MoELayer(b, config, 42)) {
            Tensor x = TestData.tensor(s, "x", TestData.input(tokens, config.hidden(), 15), DType.BF16);
            Tensor gradY = TestData.tensor(s, "gradY", TestData.input(tokens, config.hidden(), 16), DType.BF16);
            layer.zeroGrad();
            List<Output> out = new ArrayList<>();
            out.add(new Output("y", layer.forward(x).toFloatArray(), MoELayerBf16Test.Y_BOUND));
            out.add(new Output("top-k ids", asFloats(layer.workspace().topkIds().toIntArray()), Double.NaN));
            out.add(new Output("routed counts", asFloats(layer.workspace().routedCounts()), Double.NaN));
            out.add(new Output("aux and z losses", new float[] {layer.workspace().auxLoss(), layer.workspace().zLoss()},
                    Double.NaN));
            out.add(new Output("gradX", layer.backward(gradY).toFloatArray(), MoELayerBf16Test.GRAD_X_BOUND));
            for (Parameter p : layer.parameters()) {
                out.add(new Output(p.name() + ".grad", p.grad().toFloatArray(), MoELayerBf16Test.gradBound(p)));
            }
            return out;
        }
    }
}
