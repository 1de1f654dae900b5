package dev.panamoe.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Finite-difference check of MoELayer.backward. The scalar is
 * L = sum(y * G) + lossScale * (aux + z); the layer's gradients (f32) of x, the gate and every
 * expert weight are compared with central differences of L computed by the double-precision
 * ReferenceMoE (whose forward the layer matches, see MoELayerForwardTest).
 *
 * <p>Tolerance: with h = 1e-6 in double the difference quotient is exact to ~1e-9 (truncation
 * h^2 * L''' ~ 1e-12, rounding 1e-16 * |L| / h ~ 1e-10), so the error is the layer's f32
 * rounding through at most five chained GEMMs of length <= 2 * ffn: a few ulps, measured at
 * <= 3e-7 of each tensor's largest gradient. 1e-5 of that scale leaves a 30x margin, while a
 * missing or wrong term is off by a sizeable fraction of the scale (the aux/z-loss paths are
 * checked below to be over 10% of the gate's gradient).
 */
class MoELayerGradientTest {
    private static final Backend CPU = CpuBackend.get();
    private static final double H = 1e-6;
    private static final double TOLERANCE = 1e-5;

    record Case(String name, MoELayer.Config cfg, int tokens, int[] remap, float lossScale) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Case> cases() {
        MoELayer.Config.Builder small = MoELayer.Config.builder().hidden(8).ffn(6).experts(4).topK(2).auxLossCoeff(0.2f)
                .zLossCoeff(0.05f);
        return Stream.of(
                new Case("swiglu, softmax renormalized, dropless", small.build(), 6, null, 1f),
                new Case("gelu, sigmoid, capacity 1.0 by probability",
                        small.activation(Activation.GELU).scoreFunction(ScoreFunction.SIGMOID).renormalize(false)
                                .capacityFactor(1.0).dropPolicy(DropPolicy.BY_PROBABILITY).build(),
                        7, null, 0.5f),
                new Case("silu, softmax, capacity 0.75 by position, remapped",
                        small.activation(Activation.SILU).scoreFunction(ScoreFunction.SOFTMAX).renormalize(false)
                                .capacityFactor(0.75).dropPolicy(DropPolicy.BY_POSITION).build(),
                        8, new int[] {1, 3, 0, 2}, 2f),
                new Case("swiglu, k = experts", small.experts(3).topK(3).activation(Activation.SWIGLU).dropless().build(),
                        5, null, 1f));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void backwardMatchesFiniteDifferences(Case c) {
        MoELayer.Config cfg = c.cfg();
        int[] remap = c.remap() == null ? TestData.identity(cfg.experts()) : c.remap();
        try (MoELayer layer = new MoELayer(CPU, cfg, 11); TensorScope scope = TensorScope.confined(CPU)) {
            layer.setRemap(remap);
            float[][] x = TestData.input(c.tokens(), cfg.hidden(), 5);
            float[][] g = TestData.input(c.tokens(), cfg.hidden(), 6);
            layer.zeroGrad();
            layer.forward(TestData.tensor(scope, "x", x));
            float[] gradX = layer.backward(TestData.tensor(scope, "gradY", g), c.lossScale(), layer.workspace()).toFloatArray();

            ReferenceMoE ref = new ReferenceMoE(layer, remap);
            double[][] xd = TestData.toDouble(x);
            double[][] gd = TestData.toDouble(g);
            ReferenceMoE.Result base = ref.forward(xd);
            MoELayerForwardTest.assertRoutingMatches(layer.workspace(), base);
            Loss loss = new Loss(ref, xd, gd, c.lossScale(), base);
            if (cfg.dropPolicy() == DropPolicy.BY_PROBABILITY && !cfg.dropless()) {
                assertTrue(base.dropped() > 0, "the case must drop slots");
            }

            double[] fdX = new double[gradX.length];
            for (int i = 0; i < fdX.length; i++) {
                fdX[i] = loss.derivative(xd[i / cfg.hidden()], i % cfg.hidden());
            }
            assertClose("x", gradX, fdX);

            List<Parameter> params = layer.parameters();
            for (int p = 0; p < params.size(); p++) {
                double[] w = ref.params.get(p);
                double[] fd = new double[w.length];
                for (int i = 0; i < w.length; i++) {
                    fd[i] = loss.derivative(w, i);
                }
                assertClose(params.get(p).name(), params.get(p).grad().toFloatArray(), fd);
            }

            // The aux and z losses alone move the gate gradient by over a tenth of its scale (10^4
            // times the tolerance), so the check above would catch their gradients going missing.
            Loss lossesOnly = new Loss(ref, xd, new double[c.tokens()][cfg.hidden()], c.lossScale(), base);
            double[] gate = ref.gate();
            double[] fdLosses = new double[gate.length];
            double gateScale = 0;
            for (int i = 0; i < gate.length; i++) {
                fdLosses[i] = lossesOnly.derivative(gate, i);
                gateScale = Math.max(gateScale, Math.abs(params.get(0).grad().getFloat(i)));
            }
            double lossesScale = java.util.Arrays.stream(fdLosses).map(Math::abs).max().orElseThrow();
            assertTrue(lossesScale > 0.1 * gateScale,
                    "aux + z contribution " + lossesScale + " vs gate gradient scale " + gateScale);
        }
    }

    /** L(values[i] +- H) through the reference, checking that the routing does not change. */
    private record Loss(ReferenceMoE ref, double[][] x, double[][] g, double lossScale, ReferenceMoE.Result base) {
        double derivative(double[] values, int i) {
            double v = values[i];
            values[i] = v + H;
            double plus = evaluate();
            values[i] = v - H;
            double minus = evaluate();
            values[i] = v;
            return (plus - minus) / (2 * H);
        }

        private double evaluate() {
            ReferenceMoE.Result r = ref.forward(x);
            for (int t = 0; t < x.length; t++) {
                assertArrayEquals(base.ids()[t], r.ids()[t], "routing changed under the finite-difference step");
                assertArrayEquals(base.kept()[t], r.kept()[t], "kept slots changed under the finite-difference step");
            }
            double s = lossScale * (r.aux() + r.z());
            for (int t = 0; t < x.length; t++) {
                for (int c = 0; c < g[t].length; c++) {
                    s += r.y()[t][c] * g[t][c];
                }
            }
            return s;
        }
    }

    private static void assertClose(String name, float[] actual, double[] expected) {
        assertEquals(expected.length, actual.length, name + ": gradient length");
        double scale = 0;
        double err = 0;
        for (int i = 0; i < expected.length; i++) {
            scale = Math.max(scale, Math.abs(expected[i]));
            err = Math.max(err, Math.abs(actual[i] - expected[i]));
        }
        // an expert that received no rows has an exactly zero gradient (scale 0)
        assertTrue(err <= TOLERANCE * scale, name + ": max |grad - fd| = " + err + ", scale " + scale);
    }
}
