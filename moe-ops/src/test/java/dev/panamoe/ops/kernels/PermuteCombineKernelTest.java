package dev.panamoe.ops.kernels;

import static dev.panamoe.ops.kernels.KernelTestSupport.BF16;
import static dev.panamoe.ops.kernels.KernelTestSupport.BF16_EPS;
import static dev.panamoe.ops.kernels.KernelTestSupport.F32;
import static dev.panamoe.ops.kernels.KernelTestSupport.F32_EPS;
import static dev.panamoe.ops.kernels.KernelTestSupport.LIB;
import static dev.panamoe.ops.kernels.KernelTestSupport.NO_STREAM;
import static dev.panamoe.ops.kernels.KernelTestSupport.abs;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertClose;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertDeterministic;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertExactly;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertInvalid;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertOk;
import static dev.panamoe.ops.kernels.KernelTestSupport.bytes;
import static dev.panamoe.ops.kernels.KernelTestSupport.dot;
import static dev.panamoe.ops.kernels.KernelTestSupport.floats;
import static dev.panamoe.ops.kernels.KernelTestSupport.ints;
import static dev.panamoe.ops.kernels.KernelTestSupport.maxAbs;
import static dev.panamoe.ops.kernels.KernelTestSupport.nanTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.numericGradient;
import static dev.panamoe.ops.kernels.KernelTestSupport.readTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.representable;
import static dev.panamoe.ops.kernels.KernelTestSupport.tensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.toDouble;
import static dev.panamoe.ops.kernels.KernelTestSupport.toFloats;
import static dev.panamoe.ops.kernels.KernelTestSupport.uniform;
import static dev.panamoe.ops.kernels.ReferenceKernels.BY_POSITION;
import static dev.panamoe.ops.kernels.ReferenceKernels.BY_PROBABILITY;
import static dev.panamoe.ops.kernels.ReferenceKernels.DROPLESS;

import dev.panamoe.ops.kernels.ReferenceKernels.CombineGrads;
import dev.panamoe.ops.kernels.ReferenceKernels.Plan;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * pmoe_permute / _backward and pmoe_combine / _backward in f32 and bf16 against the references.
 * bf16 cases feed the reference the bf16-rounded inputs; the tolerance is the final rounding to
 * bf16 (2^-8 relative) plus f32 accumulation error.
 */
class PermuteCombineKernelTest {

    /** A routing and its plan: which token rows go where, with dropped slots when capacity binds. */
    record Case(String name, int tokens, int topK, int hidden, Plan plan) {
        int rows() {
            return plan.rows();
        }
    }

    static Case routedCase(Random rnd, String name, int tokens, int topK, int experts, int hidden, int capacity, int policy) {
        int[] ids = LossKernelTest.randomIds(rnd, tokens, experts, topK, name.startsWith("all to expert 0"));
        float[] weights = DispatchPlanKernelTest.gridWeights(rnd, tokens * topK);
        return new Case(name, tokens, topK, hidden, ReferenceKernels.dispatchPlan(tokens, topK, experts, capacity, policy, ids, weights, null));
    }

    static List<Case> cases(Random rnd) {
        List<Case> cases = new ArrayList<>();
        cases.add(routedCase(rnd, "dropless", 37, 2, 8, 24, DROPLESS, BY_POSITION));
        cases.add(routedCase(rnd, "capacity by position", 64, 2, 8, 33, 9, BY_POSITION));
        cases.add(routedCase(rnd, "capacity by probability", 50, 4, 6, 16, 20, BY_PROBABILITY));
        cases.add(routedCase(rnd, "k = experts", 9, 4, 4, 7, DROPLESS, BY_POSITION));
        cases.add(routedCase(rnd, "tokens < experts", 3, 2, 16, 40, DROPLESS, BY_POSITION));
        cases.add(routedCase(rnd, "one token", 1, 1, 1, 5, DROPLESS, BY_POSITION));
        cases.add(routedCase(rnd, "everything dropped", 6, 2, 4, 8, 0, BY_POSITION));
        cases.add(routedCase(rnd, "all to expert 0", 30, 1, 4, 20, DROPLESS, BY_POSITION));
        cases.add(routedCase(rnd, "all to expert 0, capacity", 30, 1, 4, 20, 7, BY_PROBABILITY));
        return cases;
    }

    // ---- native calls (inputs are values representable in dtype; outputs start as NaN) ----

    static float[] nativePermute(int dtype, Case c, float[] x) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = nanTensor(arena, dtype, c.rows() * c.hidden());
            assertOk(LIB.pmoe_permute(dtype, c.tokens(), c.topK(), c.rows(), c.hidden(), tensor(arena, dtype, x),
                    ints(arena, c.plan().sortedSlot()), out, NO_STREAM), "pmoe_permute");
            return readTensor(out, dtype);
        }
    }

    static float[] nativePermuteBackward(int dtype, Case c, float[] gradOut) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment gradX = nanTensor(arena, dtype, c.tokens() * c.hidden());
            assertOk(LIB.pmoe_permute_backward(dtype, c.tokens(), c.topK(), c.rows(), c.hidden(), tensor(arena, dtype, gradOut),
                    ints(arena, c.plan().slotPosition()), gradX, NO_STREAM), "pmoe_permute_backward");
            return readTensor(gradX, dtype);
        }
    }

    static float[] nativeCombine(int dtype, Case c, float[] expertOut, float[] weights) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment y = nanTensor(arena, dtype, c.tokens() * c.hidden());
            assertOk(LIB.pmoe_combine(dtype, c.tokens(), c.topK(), c.rows(), c.hidden(), tensor(arena, dtype, expertOut),
                    floats(arena, weights), ints(arena, c.plan().slotPosition()), y, NO_STREAM), "pmoe_combine");
            return readTensor(y, dtype);
        }
    }

    /** Returns {grad_expert_out, grad_weights}. */
    static float[][] nativeCombineBackward(int dtype, Case c, float[] gradY, float[] expertOut, float[] weights) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment gradExpertOut = nanTensor(arena, dtype, c.rows() * c.hidden());
            MemorySegment gradWeights = nanTensor(arena, F32, c.tokens() * c.topK());
            assertOk(LIB.pmoe_combine_backward(dtype, c.tokens(), c.topK(), c.rows(), c.hidden(), tensor(arena, dtype, gradY),
                    tensor(arena, dtype, expertOut), floats(arena, weights), ints(arena, c.plan().slotPosition()),
                    gradExpertOut, gradWeights, NO_STREAM), "pmoe_combine_backward");
            return new float[][] {readTensor(gradExpertOut, dtype), toFloats(gradWeights)};
        }
    }

    /**
     * Tolerance of a result whose exact value is `expected` and whose terms have absolute sum
     * `magnitude` over `terms` products: f32 accumulation (terms ulps of the magnitude) plus, for
     * bf16 outputs, one rounding of the result.
     */
    static double tolerance(int dtype, double expected, double magnitude, int terms) {
        double accumulation = 2 * terms * F32_EPS * magnitude;
        return accumulation + (dtype == BF16 ? BF16_EPS * Math.abs(expected) : F32_EPS * Math.abs(expected));
    }

    static String describe(int dtype, Case c) {
        return String.format("%s %s (T=%d K=%d H=%d rows=%d)", dtype == BF16 ? "bf16" : "f32", c.name(), c.tokens(), c.topK(),
                c.hidden(), c.rows());
    }

    @Test
    void permuteCopiesRowsExactly() {
        Random rnd = new Random(61);
        for (int dtype : new int[] {F32, BF16}) {
            for (Case c : cases(rnd)) {
                float[] x = representable(dtype, uniform(rnd, c.tokens() * c.hidden(), -4, 4));
                double[] expected = ReferenceKernels.permute(c.topK(), c.rows(), c.hidden(), toDouble(x), c.plan().sortedSlot());
                float[] want = new float[expected.length];
                for (int i = 0; i < want.length; i++) want[i] = (float) expected[i];
                assertExactly(describe(dtype, c) + " permute", want, nativePermute(dtype, c, x));
            }
        }
    }

    @Test
    void permuteBackwardSumsKeptSlots() {
        Random rnd = new Random(62);
        for (int dtype : new int[] {F32, BF16}) {
            for (Case c : cases(rnd)) {
                float[] gradOut = representable(dtype, uniform(rnd, c.rows() * c.hidden(), -1, 1));
                int[] pos = c.plan().slotPosition();
                double[] expected = ReferenceKernels.permuteBackward(c.tokens(), c.topK(), c.hidden(), toDouble(gradOut), pos);
                double[] magnitude = ReferenceKernels.permuteBackward(c.tokens(), c.topK(), c.hidden(), abs(toDouble(gradOut)), pos);
                assertClose(describe(dtype, c) + " permute_backward", expected, nativePermuteBackward(dtype, c, gradOut),
                        i -> tolerance(dtype, expected[i], magnitude[i], c.topK()));
            }
        }
    }

    @Test
    void combineAndBackwardMatchReference() {
        Random rnd = new Random(63);
        for (int dtype : new int[] {F32, BF16}) {
            for (Case c : cases(rnd)) {
                String what = describe(dtype, c);
                int[] pos = c.plan().slotPosition();
                float[] expertOut = representable(dtype, uniform(rnd, c.rows() * c.hidden(), -2, 2));
                float[] weights = uniform(rnd, c.tokens() * c.topK(), 0, 1);
                float[] gradY = representable(dtype, uniform(rnd, c.tokens() * c.hidden(), -1, 1));

                double[] y = ReferenceKernels.combine(c.tokens(), c.topK(), c.hidden(), toDouble(expertOut), toDouble(weights), pos);
                double[] yMagnitude = ReferenceKernels.combine(c.tokens(), c.topK(), c.hidden(), abs(toDouble(expertOut)),
                        toDouble(weights), pos);
                assertClose(what + " combine", y, nativeCombine(dtype, c, expertOut, weights),
                        i -> tolerance(dtype, y[i], yMagnitude[i], c.topK()));

                CombineGrads expected = ReferenceKernels.combineBackward(c.tokens(), c.topK(), c.rows(), c.hidden(), toDouble(gradY),
                        toDouble(expertOut), toDouble(weights), pos);
                CombineGrads magnitude = ReferenceKernels.combineBackward(c.tokens(), c.topK(), c.rows(), c.hidden(),
                        abs(toDouble(gradY)), abs(toDouble(expertOut)), toDouble(weights), pos);
                float[][] got = nativeCombineBackward(dtype, c, gradY, expertOut, weights);
                assertClose(what + " grad_expert_out", expected.expertOut(), got[0],
                        i -> tolerance(dtype, expected.expertOut()[i], magnitude.expertOut()[i], 1));
                // grad_weights is f32 whatever the dtype: only accumulation error over `hidden` products.
                assertClose(what + " grad_weights (0 for dropped slots)", expected.weights(), got[1],
                        i -> tolerance(F32, expected.weights()[i], magnitude.weights()[i], c.hidden()));
            }
        }
    }

    /** combine_backward against central differences of the reference combine, loss = <grad_y, y>. */
    @Test
    void combineBackwardMatchesFiniteDifferences() {
        Random rnd = new Random(64);
        for (Case c : List.of(routedCase(rnd, "fd", 12, 2, 4, 6, 5, BY_PROBABILITY), routedCase(rnd, "fd k = E", 5, 3, 3, 4, DROPLESS, BY_POSITION))) {
            int[] pos = c.plan().slotPosition();
            float[] expertOut = uniform(rnd, c.rows() * c.hidden(), -2, 2);
            float[] weights = uniform(rnd, c.tokens() * c.topK(), 0, 1);
            float[] gradY = uniform(rnd, c.tokens() * c.hidden(), -1, 1);
            double[] gy = toDouble(gradY), w = toDouble(weights), eo = toDouble(expertOut);
            double[] dExpertOut = numericGradient(eo, x -> dot(gy, ReferenceKernels.combine(c.tokens(), c.topK(), c.hidden(), x, w, pos)));
            double[] dWeights = numericGradient(w, x -> dot(gy, ReferenceKernels.combine(c.tokens(), c.topK(), c.hidden(), eo, x, pos)));
            float[][] got = nativeCombineBackward(F32, c, gradY, expertOut, weights);
            assertClose(c.name() + " d/d expert_out", dExpertOut, got[0], 1e-6, 1e-7 * maxAbs(dExpertOut));
            assertClose(c.name() + " d/d weights", dWeights, got[1], 1e-5, 1e-6 * maxAbs(dWeights));
        }
    }

    @Test
    void deterministicAcrossRunsAndThreadCounts() {
        Random rnd = new Random(65);
        Case c = routedCase(rnd, "large", 1024, 4, 16, 128, 300, BY_PROBABILITY);
        float[] x = uniform(rnd, c.tokens() * c.hidden(), -1, 1);
        float[] expertOut = uniform(rnd, c.rows() * c.hidden(), -1, 1);
        float[] weights = uniform(rnd, c.tokens() * c.topK(), 0, 1);
        for (int dtype : new int[] {F32, BF16}) {
            float[] xs = representable(dtype, x), eo = representable(dtype, expertOut);
            String d = dtype == BF16 ? " bf16" : " f32";
            assertDeterministic("permute" + d, arena -> bytes(floats(arena, nativePermute(dtype, c, xs))));
            assertDeterministic("permute_backward" + d, arena -> bytes(floats(arena, nativePermuteBackward(dtype, c, eo))));
            assertDeterministic("combine" + d, arena -> bytes(floats(arena, nativeCombine(dtype, c, eo, weights))));
            assertDeterministic("combine_backward" + d, arena -> {
                float[][] g = nativeCombineBackward(dtype, c, xs, eo, weights);
                return bytes(floats(arena, g[0]), floats(arena, g[1]));
            });
        }
    }

    @Test
    void rejectsBadArguments() {
        int tokens = 2, topK = 2, rows = 3, hidden = 4;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment x = floats(arena, new float[16]), out = floats(arena, new float[16]);
            MemorySegment w = floats(arena, new float[4]), gw = floats(arena, new float[4]);
            MemorySegment sorted = ints(arena, 0, 3, 2, -1);
            MemorySegment pos = ints(arena, 0, -1, 2, 1);

            assertInvalid(LIB.pmoe_permute(2, tokens, topK, rows, hidden, x, sorted, out, NO_STREAM), "dtype", "2");
            assertInvalid(LIB.pmoe_permute(F32, tokens, topK, 5, hidden, x, sorted, out, NO_STREAM), "rows", "5");
            assertInvalid(LIB.pmoe_permute(F32, tokens, topK, rows, -1, x, sorted, out, NO_STREAM), "hidden", "-1");
            assertInvalid(LIB.pmoe_permute(F32, tokens, 0, rows, hidden, x, sorted, out, NO_STREAM), "top_k", "0");
            assertInvalid(LIB.pmoe_permute(F32, tokens, topK, rows, hidden, x, ints(arena, 0, 4, 2, -1), out, NO_STREAM), "sorted_slot", "4");
            assertInvalid(LIB.pmoe_permute(F32, tokens, topK, rows, hidden, x, ints(arena, 0, -2, 2, -1), out, NO_STREAM), "sorted_slot", "-2");
            assertInvalid(LIB.pmoe_permute(F32, tokens, topK, rows, hidden, MemorySegment.NULL, sorted, out, NO_STREAM), "x", null);
            assertInvalid(LIB.pmoe_permute(F32, tokens, topK, rows, hidden, x, MemorySegment.NULL, out, NO_STREAM), "sorted_slot", null);
            assertInvalid(LIB.pmoe_permute(F32, tokens, topK, rows, hidden, x, sorted, MemorySegment.NULL, NO_STREAM), "out", null);

            assertInvalid(LIB.pmoe_permute_backward(-1, tokens, topK, rows, hidden, x, pos, out, NO_STREAM), "dtype", "-1");
            assertInvalid(LIB.pmoe_permute_backward(F32, tokens, topK, rows, hidden, x, ints(arena, 0, 3, 2, 1), out, NO_STREAM),
                    "slot_position", "3");
            assertInvalid(LIB.pmoe_permute_backward(F32, tokens, topK, rows, hidden, x, ints(arena, 0, -2, 2, 1), out, NO_STREAM),
                    "slot_position", "-2");
            assertInvalid(LIB.pmoe_permute_backward(F32, -3, topK, rows, hidden, x, pos, out, NO_STREAM), "tokens", "-3");
            assertInvalid(LIB.pmoe_permute_backward(F32, tokens, topK, rows, hidden, x, pos, MemorySegment.NULL, NO_STREAM), "grad_x", null);
            assertInvalid(LIB.pmoe_permute_backward(F32, tokens, topK, rows, hidden, MemorySegment.NULL, pos, out, NO_STREAM), "grad_out", null);

            assertInvalid(LIB.pmoe_combine(5, tokens, topK, rows, hidden, x, w, pos, out, NO_STREAM), "dtype", "5");
            assertInvalid(LIB.pmoe_combine(F32, tokens, topK, rows, hidden, x, w, ints(arena, 0, 7, 2, 1), out, NO_STREAM), "slot_position", "7");
            assertInvalid(LIB.pmoe_combine(F32, tokens, topK, rows, hidden, x, MemorySegment.NULL, pos, out, NO_STREAM), "topk_weights", null);
            assertInvalid(LIB.pmoe_combine(F32, tokens, topK, rows, hidden, MemorySegment.NULL, w, pos, out, NO_STREAM), "expert_out", null);
            assertInvalid(LIB.pmoe_combine(F32, tokens, topK, rows, hidden, x, w, pos, MemorySegment.NULL, NO_STREAM), "y", null);
            assertInvalid(LIB.pmoe_combine(F32, tokens, topK, -1, hidden, x, w, pos, out, NO_STREAM), "rows", "-1");

            assertInvalid(LIB.pmoe_combine_backward(3, tokens, topK, rows, hidden, x, x, w, pos, out, gw, NO_STREAM), "dtype", "3");
            assertInvalid(LIB.pmoe_combine_backward(F32, tokens, topK, rows, hidden, x, x, w, ints(arena, 0, -5, 2, 1), out, gw, NO_STREAM),
                    "slot_position", "-5");
            // Two slots on one row would make grad_expert_out ambiguous (and race).
            assertInvalid(LIB.pmoe_combine_backward(F32, tokens, topK, rows, hidden, x, x, w, ints(arena, 0, 2, 2, 1), out, gw, NO_STREAM),
                    "slot_position", "2");
            assertInvalid(LIB.pmoe_combine_backward(F32, tokens, topK, rows, hidden, x, x, w, pos, out, MemorySegment.NULL, NO_STREAM),
                    "grad_weights", null);
            assertInvalid(LIB.pmoe_combine_backward(F32, tokens, topK, rows, hidden, x, x, w, pos, MemorySegment.NULL, gw, NO_STREAM),
                    "grad_expert_out", null);
            assertInvalid(LIB.pmoe_combine_backward(F32, tokens, topK, rows, hidden, MemorySegment.NULL, x, w, pos, out, gw, NO_STREAM),
                    "grad_y", null);
        }
    }
}
