package dev.panamoe.ops.dense;

import static dev.panamoe.ops.dense.DenseTestSupport.BF16;
import static dev.panamoe.ops.dense.DenseTestSupport.DTYPES;
import static dev.panamoe.ops.dense.DenseTestSupport.F32;
import static dev.panamoe.ops.dense.DenseTestSupport.LIB;
import static dev.panamoe.ops.dense.DenseTestSupport.NULL;
import static dev.panamoe.ops.dense.DenseTestSupport.assertClose;
import static dev.panamoe.ops.dense.DenseTestSupport.assertDeterministic;
import static dev.panamoe.ops.dense.DenseTestSupport.assertInvalid;
import static dev.panamoe.ops.dense.DenseTestSupport.assertOk;
import static dev.panamoe.ops.dense.DenseTestSupport.bytes;
import static dev.panamoe.ops.dense.DenseTestSupport.dot;
import static dev.panamoe.ops.dense.DenseTestSupport.floats;
import static dev.panamoe.ops.dense.DenseTestSupport.nans;
import static dev.panamoe.ops.dense.DenseTestSupport.numericGradient;
import static dev.panamoe.ops.dense.DenseTestSupport.read;
import static dev.panamoe.ops.dense.DenseTestSupport.toDouble;
import static dev.panamoe.ops.dense.DenseTestSupport.name;
import static dev.panamoe.ops.dense.DenseTestSupport.rounding;
import static dev.panamoe.ops.dense.DenseTestSupport.uniform;
import static dev.panamoe.ops.kernels.KernelTestSupport.bf16Bits;
import static dev.panamoe.ops.kernels.KernelTestSupport.nanTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.readTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.representable;
import static dev.panamoe.ops.kernels.KernelTestSupport.tensor;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import dev.panamoe.bindings.panamoe_h;
import dev.panamoe.ops.kernels.KernelTestSupport;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** pmoe_bias_add/backward, pmoe_add, pmoe_accumulate and pmoe_scale against double references. */
class ElementwiseKernelTest {

    /** x[r, c] + bias[c]. */
    static double[] biasAdded(int rows, int cols, double[] x, double[] bias) {
        double[] out = x.clone();
        for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) out[r * cols + c] += bias[c];
        return out;
    }

    /** {rows, cols}: a single element, one row, one column, 3 column blocks of the gradient sum. */
    static final int[][] SHAPES = {{1, 1}, {1, 9}, {6, 1}, {5, 7}, {37, 130}};

    @Test
    void biasAddMatchesReference() {
        Random rnd = new Random(7);
        for (int dtype : DTYPES)
        for (int[] s : SHAPES) {
            int rows = s[0], cols = s[1];
            float[] x = representable(dtype, uniform(rnd, rows * cols, -1, 1));
            float[] bias = representable(dtype, uniform(rnd, cols, -1, 1));
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment xs = tensor(arena, dtype, x);
                assertOk(LIB.pmoe_bias_add(dtype, rows, cols, tensor(arena, dtype, bias), xs, NULL), "pmoe_bias_add");
                // One rounding (to f32 or bf16) of an exact sum.
                assertClose("bias_add " + name(dtype) + " " + rows + "x" + cols,
                        biasAdded(rows, cols, toDouble(x), toDouble(bias)), readTensor(xs, dtype), 0x1p-24 + rounding(dtype), 0);
            }
        }
    }

    /** d<dout, x + bias>/d bias by central differences, added to the gradient already in dbias. */
    @Test
    void biasBackwardAccumulatesFiniteDifferenceGradient() {
        Random rnd = new Random(8);
        for (int dtype : DTYPES)
        for (int[] s : SHAPES) {
            int rows = s[0], cols = s[1];
            float[] dout = representable(dtype, uniform(rnd, rows * cols, -1, 1)), dbias0 = uniform(rnd, cols, -1, 1);
            double[] x = toDouble(uniform(rnd, rows * cols, -1, 1)), g = toDouble(dout);
            double[] expected = numericGradient(toDouble(uniform(rnd, cols, -1, 1)),
                    b -> dot(g, biasAdded(rows, cols, x, b)));
            for (int c = 0; c < cols; c++) expected[c] += dbias0[c];
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment dbias = floats(arena, dbias0);
                assertOk(LIB.pmoe_bias_backward(dtype, rows, cols, tensor(arena, dtype, dout), dbias, NULL),
                        "pmoe_bias_backward");
                // Summed in double into the f32 gradient: one final rounding (plus the differences' ~1e-10).
                assertClose("bias_backward " + name(dtype) + " " + rows + "x" + cols, expected, read(dbias), 0x1p-23, 1e-9);
            }
        }
    }

    @Test
    void addAccumulateAndScaleMatchReference() {
        Random rnd = new Random(9);
        for (int dtype : DTYPES)
        for (int n : new int[] {1, 8, 1001}) {
            float[] a = representable(dtype, uniform(rnd, n, -1, 1)), b = representable(dtype, uniform(rnd, n, -1, 1));
            double[] sum = new double[n], scaled = new double[n];
            for (int i = 0; i < n; i++) {
                sum[i] = (double) a[i] + b[i];
                scaled[i] = -0.75 * a[i];
            }
            try (Arena arena = Arena.ofConfined()) {
                // Each result is one rounding (to f32 or bf16) of an exact value.
                double tol = 0x1p-24 + rounding(dtype);
                String what = name(dtype) + " n=" + n;
                MemorySegment as = tensor(arena, dtype, a), bs = tensor(arena, dtype, b), out = nanTensor(arena, dtype, n);
                assertOk(LIB.pmoe_add(dtype, n, as, bs, out, NULL), "pmoe_add");
                assertClose("add " + what, sum, readTensor(out, dtype), tol, 0);
                assertOk(LIB.pmoe_add(dtype, n, as, bs, as, NULL), "pmoe_add in place");
                assertClose("add in place " + what, sum, readTensor(as, dtype), tol, 0);
                MemorySegment y = tensor(arena, dtype, b);
                assertOk(LIB.pmoe_accumulate(dtype, n, tensor(arena, dtype, a), y, NULL), "pmoe_accumulate");
                assertClose("accumulate " + what, sum, readTensor(y, dtype), tol, 0);
                MemorySegment x = tensor(arena, dtype, a);
                assertOk(LIB.pmoe_scale(dtype, n, -0.75f, x, NULL), "pmoe_scale");
                assertClose("scale " + what, scaled, readTensor(x, dtype), tol, 0);
            }
        }
    }

    /**
     * f32 -> bf16 rounds to nearest even exactly as KernelTestSupport.bf16Bits (ties, the largest
     * finite values overflowing to inf, subnormals, signed zeros, inf and NaN), bf16 -> f32 widens
     * exactly, and the same dtype copies bit for bit.
     */
    @Test
    void convertRoundsToNearestEven() {
        Random rnd = new Random(18);
        float[] special = {0f, -0f, 1f, -1f, Float.MAX_VALUE, -Float.MAX_VALUE, 0x1.fefffep127f, Float.MIN_VALUE,
            0x1.008p0f, 0x1.018p0f, 0x1.00800001p0f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN};
        for (int n : new int[] {0, 1, special.length, 5000}) {
            float[] v = new float[n];
            for (int i = 0; i < n; i++) {
                v[i] = n <= special.length ? special[i]
                        : Float.intBitsToFloat(rnd.nextInt()); // every exponent, NaN payloads included
            }
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment src = floats(arena, v), bf = nanTensor(arena, BF16, n), back = nans(arena, n);
                assertOk(LIB.pmoe_convert(n, F32, src, BF16, bf, NULL), "f32 -> bf16");
                short[] bits = bf.toArray(java.lang.foreign.ValueLayout.JAVA_SHORT);
                for (int i = 0; i < n; i++) {
                    int index = i;
                    assertEquals(bf16Bits(v[i]), bits[i], () -> "bf16 of " + v[index] + " (bits "
                            + Integer.toHexString(Float.floatToRawIntBits(v[index])) + ")");
                }
                assertOk(LIB.pmoe_convert(n, BF16, bf, F32, back, NULL), "bf16 -> f32");
                float[] widened = readTensor(bf, BF16);
                assertArrayEquals(bytes(floats(arena, widened)), bytes(back), "bf16 -> f32 widens exactly, n=" + n);
                MemorySegment copy = nans(arena, n), bfCopy = nanTensor(arena, BF16, n);
                assertOk(LIB.pmoe_convert(n, F32, src, F32, copy, NULL), "f32 -> f32");
                assertOk(LIB.pmoe_convert(n, BF16, bf, BF16, bfCopy, NULL), "bf16 -> bf16");
                assertArrayEquals(bytes(src), bytes(copy), "f32 copy, n=" + n);
                assertArrayEquals(bytes(bf), bytes(bfCopy), "bf16 copy, n=" + n);
            }
        }
        assertOk(LIB.pmoe_convert(0, F32, NULL, BF16, NULL, NULL), "n 0 reads nothing");
    }

    @Test
    void emptyInputsReadNothing() {
        assertOk(LIB.pmoe_bias_add(F32, 0, 3, NULL, NULL, NULL), "bias_add, rows 0");
        assertOk(LIB.pmoe_bias_backward(F32, 0, 3, NULL, NULL, NULL), "bias_backward, rows 0");
        assertOk(LIB.pmoe_add(F32, 0, NULL, NULL, NULL, NULL), "add, n 0");
        assertOk(LIB.pmoe_accumulate(F32, 0, NULL, NULL, NULL), "accumulate, n 0");
        assertOk(LIB.pmoe_scale(F32, 0, 2f, NULL, NULL), "scale, n 0");
    }

    @Test
    void deterministicAcrossThreadCounts() {
        Random rnd = new Random(10);
        int rows = 257, cols = 200, n = rows * cols;
        float[] x = uniform(rnd, n, -1, 1), y = uniform(rnd, n, -1, 1), bias = uniform(rnd, cols, -1, 1);
        for (int dtype : DTYPES) {
            assertDeterministic("elementwise " + name(dtype), arena -> {
                MemorySegment xs = tensor(arena, dtype, x), ys = tensor(arena, dtype, y), out = nanTensor(arena, dtype, n);
                MemorySegment dbias = floats(arena, bias), bf = nanTensor(arena, BF16, n);
                assertOk(LIB.pmoe_bias_backward(dtype, rows, cols, xs, dbias, NULL), "bias_backward");
                assertOk(LIB.pmoe_bias_add(dtype, rows, cols, tensor(arena, dtype, bias), xs, NULL), "bias_add");
                assertOk(LIB.pmoe_add(dtype, n, xs, ys, out, NULL), "add");
                assertOk(LIB.pmoe_accumulate(dtype, n, out, ys, NULL), "accumulate");
                assertOk(LIB.pmoe_scale(dtype, n, 0.3f, ys, NULL), "scale");
                assertOk(LIB.pmoe_convert(n, dtype, ys, BF16, bf, NULL), "convert");
                return bytes(dbias, xs, out, ys, bf);
            });
        }
    }

    /**
     * The spans run 8 lanes wide at AVX2 and 16 at AVX-512 with the same bits: bias add and its
     * gradient, add, accumulate, scale and every conversion, f32 and bf16, on every length from 1 to 40 (every
     * tail of both widths), across a parallel block boundary (4096) and on a long run, with NaN,
     * infinities and values that round up to infinity in bf16.
     */
    @Test
    void theAvx512SpansGiveTheAvx2Bits() {
        Random rnd = new Random(12);
        int[] lengths = IntStream.concat(IntStream.rangeClosed(1, 40), IntStream.of(4095, 4097, 70001)).toArray();
        for (int n : lengths) {
            int cols = 1 + n % 37, rows = n / cols;
            float[] x = uniform(rnd, n, -3, 3), y = uniform(rnd, n, -3, 3), bias = uniform(rnd, cols, -1, 1);
            if (n > 20) {
                x[n / 3] = Float.NaN;
                x[n / 2] = Float.POSITIVE_INFINITY;
                y[n - 2] = Float.NEGATIVE_INFINITY;
                x[n - 3] = Float.MAX_VALUE; // rounds up to infinity in bf16
            }
            for (int dtype : DTYPES) {
                byte[][] avx2 = new byte[1][];
                KernelTestSupport.atLevel(panamoe_h.PMOE_ISA_AVX2(), () -> {
                    try (Arena arena = Arena.ofConfined()) {
                        avx2[0] = spanOutputs(arena, dtype, rows, cols, n, x, y, bias);
                    }
                });
                KernelTestSupport.atLevel(panamoe_h.PMOE_ISA_AVX512(), () -> {
                    try (Arena arena = Arena.ofConfined()) {
                        assertArrayEquals(avx2[0], spanOutputs(arena, dtype, rows, cols, n, x, y, bias),
                                "n=" + n + " " + name(dtype) + ": AVX-512 spans vs AVX2's");
                    }
                });
            }
        }
    }

    /**
     * The bias gradient of y's first rows x cols, add, x converted to each dtype, accumulate,
     * scale, bias add (rows x cols of x), as bytes.
     */
    private static byte[] spanOutputs(Arena arena, int dtype, int rows, int cols, int n, float[] x, float[] y,
            float[] bias) {
        MemorySegment xs = tensor(arena, dtype, x), ys = tensor(arena, dtype, y), sum = nanTensor(arena, dtype, n);
        MemorySegment toF32 = nanTensor(arena, F32, n), toBf16 = nanTensor(arena, BF16, n), dbias = floats(arena, bias);
        assertOk(LIB.pmoe_bias_backward(dtype, rows, cols, ys, dbias, NULL), "bias_backward");
        assertOk(LIB.pmoe_add(dtype, n, xs, ys, sum, NULL), "add");
        assertOk(LIB.pmoe_convert(n, dtype, xs, F32, toF32, NULL), "convert to f32");
        assertOk(LIB.pmoe_convert(n, dtype, xs, BF16, toBf16, NULL), "convert to bf16");
        assertOk(LIB.pmoe_accumulate(dtype, n, xs, ys, NULL), "accumulate");
        assertOk(LIB.pmoe_scale(dtype, n, 0.3f, xs, NULL), "scale");
        assertOk(LIB.pmoe_bias_add(dtype, rows, cols, tensor(arena, dtype, bias), xs, NULL), "bias_add");
        return bytes(dbias, sum, toF32, toBf16, ys, xs);
    }

    @Test
    void rejectsBadArguments() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment x = floats(arena, new float[6]), b = floats(arena, new float[3]);
            assertInvalid(LIB.pmoe_bias_add(F32, 2, 0, b, x, NULL), "cols", "0");
            assertInvalid(LIB.pmoe_bias_add(F32, -2, 3, b, x, NULL), "rows", "-2");
            assertInvalid(LIB.pmoe_bias_add(F32, 2, 3, NULL, x, NULL), "bias", "NULL");
            assertInvalid(LIB.pmoe_bias_backward(F32, 2, 3, x, NULL, NULL), "dbias", "NULL");
            assertInvalid(LIB.pmoe_add(F32, -1, x, x, x, NULL), "n", "-1");
            assertInvalid(LIB.pmoe_add(F32, 6, x, x, NULL, NULL), "out", "NULL");
            assertInvalid(LIB.pmoe_accumulate(F32, 6, NULL, x, NULL), "x", "NULL");
            assertInvalid(LIB.pmoe_scale(F32, 6, Float.NaN, x, NULL), "alpha", "nan");
            assertInvalid(LIB.pmoe_scale(F32, 6, Float.POSITIVE_INFINITY, x, NULL), "alpha", "inf");
            assertInvalid(LIB.pmoe_add(2, 6, x, x, x, NULL), "dtype", "2");
            assertInvalid(LIB.pmoe_bias_backward(-1, 2, 3, x, b, NULL), "dtype", "-1");
            assertInvalid(LIB.pmoe_convert(6, 2, x, F32, x, NULL), "src_dtype", "2");
            assertInvalid(LIB.pmoe_convert(6, F32, x, 9, x, NULL), "dst_dtype", "9");
            assertInvalid(LIB.pmoe_convert(-3, F32, x, BF16, x, NULL), "n", "-3");
            assertInvalid(LIB.pmoe_convert(6, F32, NULL, BF16, x, NULL), "src", "NULL");
        }
    }
}
