package dev.panamoe.runtime.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class AdamWTest {

    private static final float BETA1 = 0.9f;
    private static final float BETA2 = 0.95f;
    private static final float EPS = 1e-8f;
    private static final float DECAY = 0.1f;

    /** One parameter's state in double precision, updated by the textbook formulas. */
    private static final class Reference {
        final double[] p;
        final double[] m;
        final double[] v;
        final double decay;

        Reference(float[] p, double decay) {
            this.p = new double[p.length];
            for (int i = 0; i < p.length; i++) {
                this.p[i] = p[i];
            }
            this.m = new double[p.length];
            this.v = new double[p.length];
            this.decay = decay;
        }

        void step(float[] g, double lr, int t) {
            for (int i = 0; i < p.length; i++) {
                m[i] = BETA1 * m[i] + (1 - BETA1) * g[i];
                v[i] = BETA2 * v[i] + (1 - BETA2) * (double) g[i] * g[i];
                double mHat = m[i] / (1 - Math.pow(BETA1, t));
                double vHat = v[i] / (1 - Math.pow(BETA2, t));
                p[i] -= lr * (mHat / (Math.sqrt(vHat) + EPS) + decay * p[i]);
            }
        }
    }

    private static float[] random(SplittableRandom rng, int n, double scale) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (scale * (2 * rng.nextDouble() - 1));
        }
        return x;
    }

    private static void assertClose(double[] expected, float[] actual, double tol, String what) {
        assertEquals(expected.length, actual.length);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], tol * (1 + Math.abs(expected[i])), what + "[" + i + "]");
        }
    }

    @Test
    void threeStepsMatchADoublePrecisionReferenceAndDecayOnlyMatrices() {
        CpuBackend cpu = CpuBackend.get();
        SplittableRandom rng = new SplittableRandom(11);
        try (TensorScope scope = TensorScope.confined(cpu)) {
            Parameter matrix = Parameter.allocate(scope, "w", 5, 7);
            Parameter vector = Parameter.allocate(scope, "b", 7);
            Parameter single = Parameter.allocate(scope, "experts.0.w1", 1, 1);
            List<Parameter> params = List.of(matrix, vector, single);
            Reference[] ref = new Reference[params.size()];
            for (int i = 0; i < params.size(); i++) {
                Parameter p = params.get(i);
                p.value().copyFrom(random(rng, (int) p.value().numel(), 1.0));
                ref[i] = new Reference(p.value().toFloatArray(), p.value().rank() >= 2 ? DECAY : 0);
            }
            try (AdamW adam = new AdamW(cpu, params, DECAY, BETA1, BETA2, EPS)) {
                double[] lrs = {1e-2, 3e-2, 5e-3};
                for (int t = 1; t <= 3; t++) {
                    for (int i = 0; i < params.size(); i++) {
                        // Gradients of mixed scales, some tiny, so eps and bias correction both matter.
                        float[] g = random(rng, (int) params.get(i).grad().numel(), t == 2 ? 1e-6 : 0.5);
                        params.get(i).grad().copyFrom(g);
                        ref[i].step(g, (float) lrs[t - 1], t);
                    }
                    adam.step((float) lrs[t - 1], t);
                }
                for (int i = 0; i < params.size(); i++) {
                    String name = params.get(i).name();
                    AdamW.State s = adam.state(name);
                    assertSame(params.get(i), s.parameter());
                    assertEquals(ref[i].decay, s.weightDecay(), 0.0, name);
                    assertClose(ref[i].p, params.get(i).value().toFloatArray(), 2e-6, name);
                    assertClose(ref[i].m, s.m().toFloatArray(), 2e-6, name + ".m");
                    assertClose(ref[i].v, s.v().toFloatArray(), 2e-6, name + ".v");
                }
                assertEquals(List.of("w", "b", "experts.0.w1"),
                        adam.states().stream().map(s -> s.parameter().name()).toList());
            }
        }
    }

    @Test
    void eachParameterOwnsItsMomentsAndNamesAreUnique() {
        CpuBackend cpu = CpuBackend.get();
        try (TensorScope scope = TensorScope.confined(cpu)) {
            Parameter a = Parameter.allocate(scope, "experts.0.w1", 3, 2);
            Parameter b = Parameter.allocate(scope, "experts.1.w1", 3, 2);
            try (AdamW adam = new AdamW(cpu, List.of(a, b), 0f, BETA1, BETA2, EPS)) {
                a.grad().fill(1f);
                adam.step(0.1f, 1);
                assertTrue(adam.state("experts.0.w1").m().getFloat(0) != 0f);
                assertEquals(0f, adam.state("experts.1.w1").m().getFloat(0), "expert 1's moment untouched by expert 0's gradient");
                assertEquals("experts.1.w1.m", adam.state("experts.1.w1").m().name());
                assertArrayEquals(new int[] {3, 2}, adam.state("experts.1.w1").v().shape());
                assertTrue(assertThrows(IllegalArgumentException.class, () -> adam.state("experts.2.w1")).getMessage()
                        .contains("no parameter 'experts.2.w1'"));
            }
            // a working copy is written in the update's pass, rounded to nearest even; a parameter without one is updated alone
            try (AdamW adam = new AdamW(cpu, List.of(a, b), 0f, BETA1, BETA2, EPS)) {
                Tensor copyOfA = scope.allocate("a.bf16", DType.BF16, 3, 2);
                copyOfA.fill(-7f);
                a.value().copyFrom(new float[] {1.00390625f, 2f, 3f, 4f, 5f, 6f});
                a.grad().fill(0f);
                b.grad().fill(1f);
                float bBefore = b.value().getFloat(0);
                adam.step(0.1f, 1, 1f, Map.of(a.value(), copyOfA));
                assertArrayEquals(new float[] {1f, 2f, 3f, 4f, 5f, 6f}, copyOfA.toFloatArray(), "1 + 2^-8 rounds to even");
                assertTrue(b.value().getFloat(0) != bBefore, "the parameter without a copy is updated too");
            }
            assertTrue(assertThrows(IllegalArgumentException.class, () -> new AdamW(cpu, List.of(a, a), 0f, BETA1, BETA2, EPS))
                    .getMessage().contains("'experts.0.w1' appears twice"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> new AdamW(cpu, List.of(a), 0f, 1f, BETA2, EPS))
                    .getMessage().contains("beta1"));
        }
    }
}
