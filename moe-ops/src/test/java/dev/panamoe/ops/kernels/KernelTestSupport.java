package dev.panamoe.ops.kernels;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.panamoe.bindings.CpuIsa;
import dev.panamoe.bindings.NativeStatus;
import dev.panamoe.bindings.panamoe_h;
import java.io.ByteArrayOutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;
import java.util.function.Function;
import java.util.function.IntToDoubleFunction;
import java.util.function.ToDoubleFunction;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;

/**
 * Plumbing shared by the kernel tests: native buffers in a caller's arena, status checks,
 * tolerance comparisons, bf16 rounding, central finite differences and the determinism check.
 * Kernels are called through the raw bindings so that these tests see exactly the C ABI.
 */
public final class KernelTestSupport {
    private KernelTestSupport() {}

    static final panamoe_h LIB = panamoe_h.cpu();
    static final MemorySegment NO_STREAM = MemorySegment.NULL;
    public static final int F32 = panamoe_h.PMOE_DTYPE_F32(), BF16 = panamoe_h.PMOE_DTYPE_BF16();

    /** f32 unit roundoff (2^-24); tolerances below are stated as multiples of it or above it. */
    static final double F32_EPS = 0x1p-24;
    /** Relative error of one round-to-nearest-even conversion to bf16 (8 significant bits). */
    public static final double BF16_EPS = 0x1p-8;

    /**
     * Runs body at instruction-set `level` (PMOE_ISA_*), then restores the level in use before.
     * Aborts (skips) the test with the library's reason ("CPU lacks avx512_bf16") when the CPU
     * lacks the level.
     */
    public static void atLevel(int level, Runnable body) {
        int before = CpuIsa.query(LIB).level();
        int status = LIB.pmoe_set_cpu_isa(level);
        if (status == panamoe_h.PMOE_ERR_UNSUPPORTED()) {
            Assumptions.abort(lastError());
        }
        assertOk(status, "pmoe_set_cpu_isa(" + level + ")");
        try {
            assertEquals(level, CpuIsa.query(LIB).level(), "level in use");
            body.run();
        } finally {
            CpuIsa.set(LIB, before);
        }
    }

    // ---- native buffers (size-0 arrays still get a non-NULL address: zero sizes are legal) ----

    public static MemorySegment floats(Arena arena, float... values) {
        MemorySegment s = arena.allocate(JAVA_FLOAT, Math.max(1, values.length)).asSlice(0, 4L * values.length);
        MemorySegment.copy(values, 0, s, JAVA_FLOAT, 0, values.length);
        return s;
    }

    static MemorySegment ints(Arena arena, int... values) {
        MemorySegment s = arena.allocate(JAVA_INT, Math.max(1, values.length)).asSlice(0, 4L * values.length);
        MemorySegment.copy(values, 0, s, JAVA_INT, 0, values.length);
        return s;
    }

    /** bf16 buffer holding `values` rounded to nearest even (callers pass values already rounded). */
    public static MemorySegment bf16(Arena arena, float... values) {
        short[] bits = new short[values.length];
        for (int i = 0; i < values.length; i++) bits[i] = bf16Bits(values[i]);
        MemorySegment s = arena.allocate(JAVA_SHORT, Math.max(1, bits.length)).asSlice(0, 2L * bits.length);
        MemorySegment.copy(bits, 0, s, JAVA_SHORT, 0, bits.length);
        return s;
    }

    /** A buffer of `dtype` (PMOE_DTYPE_F32 or _BF16) holding `values`. */
    public static MemorySegment tensor(Arena arena, int dtype, float... values) {
        return dtype == BF16 ? bf16(arena, values) : floats(arena, values);
    }

    /** `n` elements of `dtype` filled with NaN: outputs must overwrite every element they own. */
    public static MemorySegment nanTensor(Arena arena, int dtype, int n) {
        float[] v = new float[n];
        Arrays.fill(v, Float.NaN);
        return tensor(arena, dtype, v);
    }

    static MemorySegment intsFilled(Arena arena, int n, int value) {
        int[] v = new int[n];
        Arrays.fill(v, value);
        return ints(arena, v);
    }

    /** A `T* const*` array of the given segments' addresses. */
    static MemorySegment pointers(Arena arena, MemorySegment... targets) {
        MemorySegment s = arena.allocate(ADDRESS, Math.max(1, targets.length));
        for (int i = 0; i < targets.length; i++) s.setAtIndex(ADDRESS, i, targets[i]);
        return s;
    }

    public static float[] toFloats(MemorySegment s) {
        return s.toArray(JAVA_FLOAT);
    }

    static int[] toInts(MemorySegment s) {
        return s.toArray(JAVA_INT);
    }

    /** The values of a buffer of `dtype`, widened to f32. */
    public static float[] readTensor(MemorySegment s, int dtype) {
        if (dtype != BF16) return toFloats(s);
        short[] bits = s.toArray(JAVA_SHORT);
        float[] v = new float[bits.length];
        for (int i = 0; i < bits.length; i++) v[i] = Float.intBitsToFloat((bits[i] & 0xffff) << 16);
        return v;
    }

    /** Concatenated bytes of several output buffers, for bitwise comparisons. */
    static byte[] bytes(MemorySegment... outputs) {
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        for (MemorySegment s : outputs) all.writeBytes(s.toArray(JAVA_BYTE));
        return all.toByteArray();
    }

    // ---- bf16 (round to nearest even, as native common.hpp) ----

    public static short bf16Bits(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) return (short) ((bits >>> 16) | 0x40);
        bits += 0x7fff + ((bits >>> 16) & 1);
        return (short) (bits >>> 16);
    }

    public static float roundToBf16(float f) {
        return Float.intBitsToFloat((bf16Bits(f) & 0xffff) << 16);
    }

    /** Values as the kernel sees them for `dtype`: unchanged for f32, rounded for bf16. */
    public static float[] representable(int dtype, float[] values) {
        if (dtype != BF16) return values;
        float[] r = new float[values.length];
        for (int i = 0; i < r.length; i++) r[i] = roundToBf16(values[i]);
        return r;
    }

    // ---- random inputs ----

    static float[] uniform(Random rnd, int n, double lo, double hi) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (lo + (hi - lo) * rnd.nextDouble());
        return v;
    }

    static float[] gaussian(Random rnd, int n, double std) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (std * rnd.nextGaussian());
        return v;
    }

    static double[] toDouble(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) d[i] = v[i];
        return d;
    }

    static double[] abs(double[] v) {
        double[] a = new double[v.length];
        for (int i = 0; i < v.length; i++) a[i] = Math.abs(v[i]);
        return a;
    }

    static double maxAbs(double[] v) {
        double m = 0;
        for (double x : v) m = Math.max(m, Math.abs(x));
        return m;
    }

    // ---- status ----

    static String lastError() {
        return LIB.pmoe_last_error().getString(0);
    }

    static void assertOk(int status, String call) {
        assertEquals(panamoe_h.PMOE_OK(), status,
                () -> call + " failed: " + lastError() + " (status " + NativeStatus.name(status) + ")");
    }

    /**
     * A rejected call: `status` must be `expected` and pmoe_last_error() must name `argument` (as a
     * whole word, so "a" does not match inside "data") and contain `value` when it is not null.
     */
    static void assertRejected(int expected, int status, String argument, String value) {
        String message = lastError();
        assertEquals(expected, status, () -> "expected " + NativeStatus.name(expected) + " naming " + argument
                + ", got " + NativeStatus.name(status) + ": \"" + message + "\"");
        assertTrue(Pattern.compile("\\b" + Pattern.quote(argument) + "\\b").matcher(message).find(),
                () -> "message does not name " + argument + ": \"" + message + "\"");
        if (value != null) assertTrue(message.contains(value),
                () -> "message does not give the value " + value + ": \"" + message + "\"");
    }

    static void assertInvalid(int status, String argument, String value) {
        assertRejected(panamoe_h.PMOE_ERR_INVALID_ARGUMENT(), status, argument, value);
    }

    // ---- comparisons ----

    /** |actual[i] - expected[i]| <= tolerance(i) for every i (NaN never passes). */
    public static void assertClose(String what, double[] expected, float[] actual, IntToDoubleFunction tolerance) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(actual[i] - expected[i]);
            double tol = tolerance.applyAsDouble(i);
            if (!(err <= tol)) {
                fail(String.format("%s: element %d: expected %.9g, got %.9g (|diff| %.3g > tolerance %.3g)",
                        what, i, expected[i], actual[i], err, tol));
            }
        }
    }

    /** Relative tolerance against |expected| plus an absolute floor. */
    static void assertClose(String what, double[] expected, float[] actual, double relative, double absolute) {
        assertClose(what, expected, actual, i -> relative * Math.abs(expected[i]) + absolute);
    }

    static void assertExactly(String what, float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            int e = Float.floatToRawIntBits(expected[i]);
            int a = Float.floatToRawIntBits(actual[i]);
            if (e != a) fail(String.format("%s: element %d: expected %s, got %s", what, i, expected[i], actual[i]));
        }
    }

    // ---- finite differences (double precision, on the double references) ----

    /**
     * Central differences of `loss` at `x`: step 1e-5 * max(1, |x_i|) leaves a truncation error
     * ~1e-10 relative and a cancellation error ~1e-11, far below the f32 tolerances they check.
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

    /** A loss term that depends only on row `row` (its `values`) of a row-major input. */
    interface RowLoss {
        double apply(int row, double[] values);
    }

    /**
     * {@link #numericGradient} of sum_r loss(r, x[r, :]) for x [rows, width], taken row by row
     * (each row's differences evaluate only that row's term).
     */
    static double[] rowwiseNumericGradient(double[] x, int width, RowLoss loss) {
        double[] g = new double[x.length];
        for (int r = 0; width > 0 && r < x.length / width; r++) {
            int row = r;
            double[] rowGrad = numericGradient(Arrays.copyOfRange(x, r * width, (r + 1) * width), v -> loss.apply(row, v));
            System.arraycopy(rowGrad, 0, g, r * width, width);
        }
        return g;
    }

    /** Row `row` of a row-major array with rows of `width`. */
    static double[] row(double[] x, int row, int width) {
        return Arrays.copyOfRange(x, row * width, (row + 1) * width);
    }

    static int[] row(int[] x, int row, int width) {
        return Arrays.copyOfRange(x, row * width, (row + 1) * width);
    }

    static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }

    // ---- threads and determinism ----

    static int threads() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment n = arena.allocate(JAVA_INT);
            assertOk(LIB.pmoe_get_num_threads(n), "pmoe_get_num_threads");
            return n.get(JAVA_INT, 0);
        }
    }

    static void setThreads(int n) {
        assertOk(LIB.pmoe_set_num_threads(n), "pmoe_set_num_threads(" + n + ")");
    }

    /**
     * Runs `kernel` (fresh arena each time; it returns its output bytes) with 1, 2 and 3 threads and
     * twice with 2, and requires bitwise-identical outputs. Restores the previous thread count.
     */
    static void assertDeterministic(String name, Function<Arena, byte[]> kernel) {
        int previous = threads();
        try {
            byte[] reference = runWith(1, kernel);
            for (int n : new int[] {2, 2, 3}) {
                assertArrayEquals(reference, runWith(n, kernel), name + ": output with " + n + " threads differs from 1 thread");
            }
        } finally {
            setThreads(previous);
        }
    }

    private static byte[] runWith(int threads, Function<Arena, byte[]> kernel) {
        setThreads(threads);
        try (Arena arena = Arena.ofConfined()) {
            return kernel.apply(arena);
        }
    }
}
