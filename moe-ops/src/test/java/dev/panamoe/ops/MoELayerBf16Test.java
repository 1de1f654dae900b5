package dev.panamoe.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * MoELayer in bf16 (mixed precision: bf16 activations and working weights, f32 masters, f32
 * weight gradients, f32 router) against the f32 layer on the same weights and input.
 *
 * <p>"The same weights": both layers get identical masters rounded to bf16, and x and gradY are
 * bf16 values, so the two layers read the same numbers and route the same way (the logits are
 * f32 sums of the same bf16 products in both; the test checks the top-k ids agree). What
 * differs is the rounding of every bf16 intermediate: each rounding to nearest bf16 (8
 * significant bits) has relative error <= u = 2^-9. To first order the relative errors of the
 * roundings a tensor depends on add up, each scaled by the sensitivity of what follows; the
 * activations' relative sensitivity |x f'(x) / f(x)| is <= 1.5 where their outputs carry the
 * norm. Counting the roundings along the longest chain (a SwiGLU row counts twice, for its gate
 * and up halves) and rounding up:
 * <ul>
 * <li>y: h (2), act(h), the expert output, y: 5 roundings -> bound 8u;
 * <li>the expert weights' gradients (f32 sums of products of rounded rows): a (3) and the
 * expert output's gradient for W2, xs and h's gradient (through a's gradient, h and act: 6)
 * for W1 -> bound 12u;
 * <li>gradX and the gate's gradient add the rounded permuted-row gradients, gradX itself and
 * the logits' gradient (rounded for the bf16 gate GEMMs) -> bound 16u.
 * </ul>
 * Measured on these cases: at most 2.5u for every tensor. A layer that read the f32 masters
 * instead of the copies, or dropped or doubled a term, is off by orders of magnitude more; the
 * second test checks that the copies are what the passes read.
 */
class MoELayerBf16Test {
    private static final Backend CPU = CpuBackend.get();
    private static final double U = 0x1p-9;
    /** The bounds derived above: y; the expert weights' gradients; gradX and the router's gradient. */
    static final double Y_BOUND = 8 * U, EXPERT_GRAD_BOUND = 12 * U, GRAD_X_BOUND = 16 * U;

    /** The bound above for a parameter's gradient (the router's, or an expert's). */
    static double gradBound(Parameter p) {
        return p.name().startsWith("router") ? GRAD_X_BOUND : EXPERT_GRAD_BOUND;
    }

    record Case(String name, MoELayer.Config.Builder cfg, int tokens) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Case> cases() {
        return Stream.of(
                new Case("swiglu, softmax renormalized, dropless",
                        MoELayer.Config.builder().hidden(64).ffn(96).experts(8).topK(2), 48),
                new Case("gelu, sigmoid, capacity 1.0 by probability",
                        MoELayer.Config.builder().hidden(48).ffn(40).experts(6).topK(2).activation(Activation.GELU)
                                .scoreFunction(ScoreFunction.SIGMOID).renormalize(false).capacityFactor(1.0),
                        37),
                new Case("silu, one token, k = experts",
                        MoELayer.Config.builder().hidden(16).ffn(24).experts(3).topK(3).activation(Activation.SILU), 1));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void matchesTheF32LayerWithinBf16Rounding(Case c) {
        MoELayer.Config f32 = c.cfg().dtype(DType.F32).build();
        MoELayer.Config bf16 = c.cfg().dtype(DType.BF16).build();
        try (TensorScope scope = TensorScope.confined(CPU); MoELayer ref = new MoELayer(CPU, f32, 21);
                MoELayer half = new MoELayer(CPU, bf16, 21)) {
            List<Parameter> refParams = ref.parameters(), halfParams = half.parameters();
            for (int i = 0; i < refParams.size(); i++) {
                float[] rounded = roundedToBf16(refParams.get(i).value().toFloatArray());
                refParams.get(i).value().copyFrom(rounded);
                halfParams.get(i).value().copyFrom(rounded);
            }
            half.refreshWorkingCopies();
            float[][] x = roundedToBf16(TestData.input(c.tokens(), f32.hidden(), 3));
            float[][] g = roundedToBf16(TestData.input(c.tokens(), f32.hidden(), 4));

            ref.zeroGrad();
            float[] yRef = ref.forward(TestData.tensor(scope, "x", x)).toFloatArray();
            float[] gradXRef = ref.backward(TestData.tensor(scope, "gradY", g)).toFloatArray();
            half.zeroGrad();
            Tensor y = half.forward(TestData.tensor(scope, "xh", x, DType.BF16));
            assertEquals(DType.BF16, y.dtype());
            assertArrayEquals(ref.workspace().topkIds().toIntArray(), half.workspace().topkIds().toIntArray(),
                    "routing (top-k ids)");
            float[] yHalf = y.toFloatArray();
            Tensor gradX = half.backward(TestData.tensor(scope, "gh", g, DType.BF16));
            assertEquals(DType.BF16, gradX.dtype());

            assertRelativeError("y", yRef, yHalf, Y_BOUND);
            assertRelativeError("gradX", gradXRef, gradX.toFloatArray(), GRAD_X_BOUND);
            for (int i = 0; i < refParams.size(); i++) {
                Parameter p = halfParams.get(i);
                assertEquals(DType.F32, p.grad().dtype(), p.name() + " gradient dtype");
                assertRelativeError(p.name() + ".grad", refParams.get(i).grad().toFloatArray(), p.grad().toFloatArray(),
                        gradBound(p));
            }
            assertEquals(ref.workspace().auxLoss(), half.workspace().auxLoss(), 1e-5 * ref.workspace().auxLoss(), "aux");
            assertEquals(ref.workspace().zLoss(), half.workspace().zLoss(), 1e-5 * ref.workspace().zLoss(), "z");
        }
    }

    /**
     * The passes read the bf16 working copies, not the masters: changing a master alone leaves y
     * unchanged until refreshWorkingCopies, which then changes it.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void passesReadTheWorkingCopiesRefreshedFromTheMasters(Case c) {
        MoELayer.Config cfg = c.cfg().dtype(DType.BF16).build();
        try (TensorScope scope = TensorScope.confined(CPU); MoELayer layer = new MoELayer(CPU, cfg, 8)) {
            Tensor x = TestData.tensor(scope, "x", TestData.input(c.tokens(), cfg.hidden(), 5), DType.BF16);
            float[] before = layer.forward(x).toFloatArray();
            for (Parameter p : layer.experts().parameters()) {
                p.value().fill(0.5f);
            }
            assertArrayEquals(before, layer.forward(x).toFloatArray(), "masters changed, copies not refreshed");
            layer.refreshWorkingCopies();
            float[] after = layer.forward(x).toFloatArray();
            assertFalse(java.util.Arrays.equals(before, after), "y after refreshing the copies");
        }
    }

    @org.junit.jupiter.api.Test
    void rejectsInputsOfTheOtherDtype() {
        MoELayer.Config cfg = MoELayer.Config.builder().hidden(8).ffn(8).experts(2).topK(1).dtype(DType.BF16).build();
        try (TensorScope scope = TensorScope.confined(CPU); MoELayer layer = new MoELayer(CPU, cfg, 1)) {
            Tensor f32 = scope.allocate("x", DType.F32, 3, 8);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> layer.forward(f32));
            assertTrue(e.getMessage().contains("x: expected dtype bf16, got f32"), e.getMessage());
            Tensor x = scope.allocate("xh", DType.BF16, 3, 8);
            x.fill(0.25f);
            layer.forward(x);
            e = assertThrows(IllegalArgumentException.class, () -> layer.backward(f32));
            assertTrue(e.getMessage().contains("gradY: expected dtype bf16, got f32"), e.getMessage());
            x.setFloat(5, Float.NaN);
            e = assertThrows(IllegalArgumentException.class, () -> layer.forward(x));
            assertTrue(e.getMessage().contains("x: non-finite value NaN at [0, 5]"), e.getMessage());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> MoELayer.Config.builder().hidden(8).ffn(8).experts(2).topK(1).dtype(DType.I32).build());
        assertTrue(e.getMessage().contains("dtype: must be f32 or bf16, got i32"), e.getMessage());
    }

    /** |actual - expected| / |expected| in the Frobenius norm must be <= bound; returns it. */
    static double assertRelativeError(String what, float[] expected, float[] actual, double bound) {
        assertEquals(expected.length, actual.length, what + ": length");
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.length; i++) {
            assertTrue(Float.isFinite(actual[i]), what + "[" + i + "] = " + actual[i]);
            diff += Math.pow((double) actual[i] - expected[i], 2);
            norm += Math.pow(expected[i], 2);
        }
        double rel = Math.sqrt(diff / norm);
        assertTrue(norm > 0, what + ": all zero");
        assertTrue(rel <= bound, String.format("%s: relative error %.3e exceeds %.3e", what, rel, bound));
        return rel;
    }

    private static float[] roundedToBf16(float[] v) {
        float[] r = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            int bits = Float.floatToRawIntBits(v[i]);
            r[i] = Float.intBitsToFloat(((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16);
        }
        return r;
    }

    private static float[][] roundedToBf16(float[][] m) {
        float[][] r = new float[m.length][];
        for (int i = 0; i < m.length; i++) {
            r[i] = roundedToBf16(m[i]);
        }
        return r;
    }
}
