package dev.panamoe.ops.dense;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.panamoe.bindings.NativeStatus;
import dev.panamoe.bindings.panamoe_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import java.util.function.Function;
import java.util.function.ToDoubleFunction;
import java.util.regex.Pattern;

/**
 * Plumbing of the dense-operator kernel tests: native buffers, status and message checks,
 * tolerance comparisons, central finite differences and the 1-vs-2-threads determinism check.
 * Kernels are called through the raw bindings, so these tests see exactly the C ABI.
 */
final class DenseTestSupport {
    private DenseTestSupport() {}

    static final panamoe_h LIB = panamoe_h.cpu();
    static final MemorySegment NULL = MemorySegment.NULL;
    static final int F32 = panamoe_h.PMOE_DTYPE_F32(), BF16 = panamoe_h.PMOE_DTYPE_BF16();
    /**
     * The storage types every operator is tested in. A bf16 call gets bf16-exact inputs
     * (KernelTestSupport.representable) and is checked against the double reference on them:
     * its math is f32 and each bf16 output element is rounded once, so its tolerance is the f32
     * one plus {@link #rounding}.
     */
    static final int[] DTYPES = {F32, BF16};

    /** Relative error one rounding to bf16 (8-bit significand) adds to an output: 2^-8; 0 for f32. */
    static double rounding(int dtype) {
        return dtype == BF16 ? dev.panamoe.ops.kernels.KernelTestSupport.BF16_EPS : 0;
    }

    static String name(int dtype) {
        return dtype == BF16 ? "bf16" : "f32";
    }

    // ---- native buffers (a zero-length one still has a real address) ----

    static MemorySegment floats(Arena arena, float... values) {
        MemorySegment s = arena.allocate(JAVA_FLOAT, Math.max(1, values.length)).asSlice(0, 4L * values.length);
        MemorySegment.copy(values, 0, s, JAVA_FLOAT, 0, values.length);
        return s;
    }

    static MemorySegment ints(Arena arena, int... values) {
        MemorySegment s = arena.allocate(JAVA_INT, Math.max(1, values.length)).asSlice(0, 4L * values.length);
        MemorySegment.copy(values, 0, s, JAVA_INT, 0, values.length);
        return s;
    }

    /** n floats of NaN: an output must overwrite every element it owns. */
    static MemorySegment nans(Arena arena, int n) {
        float[] v = new float[n];
        java.util.Arrays.fill(v, Float.NaN);
        return floats(arena, v);
    }

    static float[] read(MemorySegment s) {
        return s.toArray(JAVA_FLOAT);
    }

    static double readDouble(MemorySegment s) {
        return s.get(JAVA_DOUBLE, 0);
    }

    static byte[] bytes(MemorySegment... outputs) {
        java.io.ByteArrayOutputStream all = new java.io.ByteArrayOutputStream();
        for (MemorySegment s : outputs) all.writeBytes(s.toArray(JAVA_BYTE));
        return all.toByteArray();
    }

    // ---- random inputs ----

    static float[] uniform(Random rnd, int n, double lo, double hi) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (lo + (hi - lo) * rnd.nextDouble());
        return v;
    }

    static int[] randomInts(Random rnd, int n, int lo, int hi) {
        int[] v = new int[n];
        for (int i = 0; i < n; i++) v[i] = lo + rnd.nextInt(hi - lo);
        return v;
    }

    static double[] toDouble(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) d[i] = v[i];
        return d;
    }

    static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }

    // ---- status ----

    static String lastError() {
        return LIB.pmoe_last_error().getString(0);
    }

    static void assertOk(int status, String call) {
        assertEquals(panamoe_h.PMOE_OK(), status,
                () -> call + " failed: " + lastError() + " (status " + NativeStatus.name(status) + ")");
    }

    /** PMOE_ERR_INVALID_ARGUMENT whose message names `argument` (whole word) and contains `value`. */
    static void assertInvalid(int status, String argument, String value) {
        String message = lastError();
        assertEquals(panamoe_h.PMOE_ERR_INVALID_ARGUMENT(), status,
                () -> "expected PMOE_ERR_INVALID_ARGUMENT naming " + argument + ", got "
                        + NativeStatus.name(status) + ": \"" + message + "\"");
        assertTrue(Pattern.compile("\\b" + Pattern.quote(argument) + "\\b").matcher(message).find(),
                () -> "message does not name " + argument + ": \"" + message + "\"");
        assertTrue(message.contains(value), () -> "message does not give " + value + ": \"" + message + "\"");
    }

    // ---- comparisons ----

    /** |actual[i] - expected[i]| <= relative * |expected[i]| + absolute for every i (NaN fails). */
    static void assertClose(String what, double[] expected, float[] actual, double relative, double absolute) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(actual[i] - expected[i]);
            double tol = relative * Math.abs(expected[i]) + absolute;
            if (!(err <= tol)) {
                fail(String.format("%s: element %d: expected %.9g, got %.9g (|diff| %.3g > %.3g)",
                        what, i, expected[i], actual[i], err, tol));
            }
        }
    }

    /**
     * Central differences of `loss` at `x` in double precision, step 1e-5 * max(1, |x_i|):
     * truncation and cancellation errors ~1e-10, far below the f32 tolerances they check.
     */
    static double[] numericGradient(double[] x, ToDoubleFunction<double[]> loss) {
        double[] g = new double[x.length];
        double[] probe = x.clone();
        for (int i = 0; i < x.length; i++) {
            double h = 1e-5 * Math.max(1, Math.abs(x[i]));
            probe[i] = x[i] + h;
            double up = loss.applyAsDouble(probe);
            probe[i] = x[i] - h;
            double down = loss.applyAsDouble(probe);
            probe[i] = x[i];
            g[i] = (up - down) / (2 * h);
        }
        return g;
    }

    // ---- determinism ----

    /**
     * Runs `kernel` (fresh arena each time; it returns its output bytes) with 1, 2 and again 2
     * threads, and requires bitwise-identical outputs. Restores the previous thread count.
     */
    static void assertDeterministic(String name, Function<Arena, byte[]> kernel) {
        int previous;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment n = arena.allocate(JAVA_INT);
            assertOk(LIB.pmoe_get_num_threads(n), "pmoe_get_num_threads");
            previous = n.get(JAVA_INT, 0);
        }
        try {
            byte[] reference = runWith(1, kernel);
            for (int n : new int[] {2, 2}) {
                assertArrayEquals(reference, runWith(n, kernel), name + ": output with " + n + " threads differs from 1 thread");
            }
        } finally {
            assertOk(LIB.pmoe_set_num_threads(previous), "pmoe_set_num_threads");
        }
    }

    private static byte[] runWith(int threads, Function<Arena, byte[]> kernel) {
        assertOk(LIB.pmoe_set_num_threads(threads), "pmoe_set_num_threads(" + threads + ")");
        try (Arena arena = Arena.ofConfined()) {
            return kernel.apply(arena);
        }
    }
}
