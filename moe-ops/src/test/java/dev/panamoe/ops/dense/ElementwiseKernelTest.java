package dev.panamoe.ops.dense;

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
import static dev.panamoe.ops.dense.DenseTestSupport.uniform;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
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
        for (int[] s : SHAPES) {
            int rows = s[0], cols = s[1];
            float[] x = uniform(rnd, rows * cols, -1, 1), bias = uniform(rnd, cols, -1, 1);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment xs = floats(arena, x);
                assertOk(LIB.pmoe_bias_add(F32, rows, cols, floats(arena, bias), xs, NULL), "pmoe_bias_add");
                // One rounding of an exact sum.
                assertClose("bias_add " + rows + "x" + cols, biasAdded(rows, cols, toDouble(x), toDouble(bias)),
                        read(xs), 0x1p-24, 0);
            }
        }
    }

    /** d<dout, x + bias>/d bias by central differences, added to the gradient already in dbias. */
    @Test
    void biasBackwardAccumulatesFiniteDifferenceGradient() {
        Random rnd = new Random(8);
        for (int[] s : SHAPES) {
            int rows = s[0], cols = s[1];
            float[] dout = uniform(rnd, rows * cols, -1, 1), dbias0 = uniform(rnd, cols, -1, 1);
            double[] x = toDouble(uniform(rnd, rows * cols, -1, 1)), g = toDouble(dout);
            double[] expected = numericGradient(toDouble(uniform(rnd, cols, -1, 1)),
                    b -> dot(g, biasAdded(rows, cols, x, b)));
            for (int c = 0; c < cols; c++) expected[c] += dbias0[c];
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment dbias = floats(arena, dbias0);
                assertOk(LIB.pmoe_bias_backward(F32, rows, cols, floats(arena, dout), dbias, NULL), "pmoe_bias_backward");
                // Summed in double: one final rounding (plus the differences' ~1e-10).
                assertClose("bias_backward " + rows + "x" + cols, expected, read(dbias), 0x1p-23, 1e-9);
            }
        }
    }

    @Test
    void addAccumulateAndScaleMatchReference() {
        Random rnd = new Random(9);
        for (int n : new int[] {1, 8, 1001}) {
            float[] a = uniform(rnd, n, -1, 1), b = uniform(rnd, n, -1, 1);
            double[] sum = new double[n], scaled = new double[n];
            for (int i = 0; i < n; i++) {
                sum[i] = (double) a[i] + b[i];
                scaled[i] = -0.75 * a[i];
            }
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment as = floats(arena, a), bs = floats(arena, b), out = nans(arena, n);
                assertOk(LIB.pmoe_add(F32, n, as, bs, out, NULL), "pmoe_add");
                assertClose("add n=" + n, sum, read(out), 0x1p-24, 0);
                assertOk(LIB.pmoe_add(F32, n, as, bs, as, NULL), "pmoe_add in place");
                assertClose("add in place n=" + n, sum, read(as), 0x1p-24, 0);
                MemorySegment y = floats(arena, b);
                assertOk(LIB.pmoe_accumulate(F32, n, floats(arena, a), y, NULL), "pmoe_accumulate");
                assertClose("accumulate n=" + n, sum, read(y), 0x1p-24, 0);
                MemorySegment x = floats(arena, a);
                assertOk(LIB.pmoe_scale(F32, n, -0.75f, x, NULL), "pmoe_scale");
                assertClose("scale n=" + n, scaled, read(x), 0x1p-24, 0);
            }
        }
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
        assertDeterministic("elementwise", arena -> {
            MemorySegment xs = floats(arena, x), ys = floats(arena, y), out = nans(arena, n);
            MemorySegment dbias = floats(arena, bias);
            assertOk(LIB.pmoe_bias_backward(F32, rows, cols, xs, dbias, NULL), "bias_backward");
            assertOk(LIB.pmoe_bias_add(F32, rows, cols, dbias, xs, NULL), "bias_add");
            assertOk(LIB.pmoe_add(F32, n, xs, ys, out, NULL), "add");
            assertOk(LIB.pmoe_accumulate(F32, n, out, ys, NULL), "accumulate");
            assertOk(LIB.pmoe_scale(F32, n, 0.3f, ys, NULL), "scale");
            return bytes(dbias, xs, out, ys);
        });
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
        }
    }
}
