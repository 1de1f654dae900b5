package dev.panamoe.ops.dense;

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
import static dev.panamoe.ops.dense.DenseTestSupport.rounding;
import static dev.panamoe.ops.dense.DenseTestSupport.uniform;
import static dev.panamoe.ops.kernels.KernelTestSupport.atLevel;
import static dev.panamoe.ops.kernels.KernelTestSupport.nanTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.readTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.representable;
import static dev.panamoe.ops.kernels.KernelTestSupport.tensor;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.panamoe.bindings.panamoe_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * pmoe_layernorm_* and pmoe_rmsnorm_* against a double reference (forward, saved statistics) and
 * finite differences of it (backward). RMSNorm is the reference with centred == false, no bias.
 */
class NormKernelTest {

    /** Normalised rows; stats (if not null) receives mean[rows] then rstd[rows]. */
    static double[] reference(boolean centred, int rows, int cols, double eps, double[] x, double[] w,
                              double[] b, double[] stats) {
        double[] out = new double[rows * cols];
        for (int r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            if (centred) {
                for (int c = 0; c < cols; c++) mean += x[r * cols + c];
                mean /= cols;
            }
            for (int c = 0; c < cols; c++) var += (x[r * cols + c] - mean) * (x[r * cols + c] - mean);
            double rstd = 1 / Math.sqrt(var / cols + eps);
            for (int c = 0; c < cols; c++)
                out[r * cols + c] = (x[r * cols + c] - mean) * rstd * w[c] + (b == null ? 0 : b[c]);
            if (stats != null) {
                stats[r] = mean;
                stats[rows + r] = rstd;
            }
        }
        return out;
    }

    /** {rows, cols}: one column (zero variance: eps alone), two columns, 2 column blocks of the gradient sums. */
    static final int[][] SHAPES = {{5, 7}, {1, 1}, {3, 1}, {3, 2}, {19, 70}};
    static final float[] EPS = {1e-5f, 0.5f};

    /** Inputs off-centre so that the mean matters. */
    static float[] input(Random rnd, int n) {
        return uniform(rnd, n, -0.5, 1.5);
    }

    @Test
    void forwardMatchesReference() {
        Random rnd = new Random(4);
        for (int dtype : DTYPES)
        for (boolean centred : new boolean[] {true, false}) {
            for (int[] s : SHAPES) {
                for (float eps : EPS) {
                    int rows = s[0], cols = s[1];
                    float[] x = representable(dtype, input(rnd, rows * cols));
                    float[] w = representable(dtype, uniform(rnd, cols, -2, 2));
                    float[] b = representable(dtype, uniform(rnd, cols, -1, 1));
                    double[] stats = new double[2 * rows];
                    double[] expected = reference(centred, rows, cols, eps, toDouble(x), toDouble(w),
                            centred ? toDouble(b) : null, stats);
                    try (Arena arena = Arena.ofConfined()) {
                        MemorySegment out = nanTensor(arena, dtype, rows * cols), mean = nans(arena, rows);
                        MemorySegment rstd = nans(arena, rows);
                        if (centred) {
                            assertOk(LIB.pmoe_layernorm_forward(dtype, rows, cols, eps, tensor(arena, dtype, x),
                                    tensor(arena, dtype, w), tensor(arena, dtype, b), out, mean, rstd, NULL),
                                    "pmoe_layernorm_forward");
                        } else {
                            assertOk(LIB.pmoe_rmsnorm_forward(dtype, rows, cols, eps, tensor(arena, dtype, x),
                                    tensor(arena, dtype, w), out, rstd, NULL), "pmoe_rmsnorm_forward");
                        }
                        String what = (centred ? "layernorm" : "rmsnorm") + " dtype=" + dtype + " rows=" + rows
                                + " cols=" + cols + " eps=" + eps;
                        // A few f32 roundings of terms <= |xhat| |w| + |b| <~ 1e3 (one column, eps 1e-5: rstd ~ 316),
                        // plus the output's rounding to bf16; the statistics stay f32.
                        assertClose(what + " out", expected, readTensor(out, dtype), 1e-6 + rounding(dtype), 1e-6);
                        double[] rstdExpected = java.util.Arrays.copyOfRange(stats, rows, 2 * rows);
                        assertClose(what + " rstd", rstdExpected, read(rstd), 1e-6, 0);
                        if (centred) {
                            assertClose(what + " mean", java.util.Arrays.copyOf(stats, rows), read(mean), 1e-6, 1e-7);
                        }
                    }
                }
            }
        }
    }

    /**
     * With loss = <dout, norm(x)>: dx (overwritten, NaN before), dweight and dbias (accumulated
     * onto random values) against central differences of the reference.
     */
    @Test
    void backwardMatchesFiniteDifferences() {
        Random rnd = new Random(5);
        for (int dtype : DTYPES)
        for (boolean centred : new boolean[] {true, false}) {
            for (int[] s : SHAPES) {
                for (float eps : EPS) {
                    int rows = s[0], cols = s[1];
                    float[] x = representable(dtype, input(rnd, rows * cols));
                    float[] w = representable(dtype, uniform(rnd, cols, -2, 2));
                    float[] b = representable(dtype, uniform(rnd, cols, -1, 1));
                    float[] dout = representable(dtype, uniform(rnd, rows * cols, -1, 1));
                    float[] dw0 = uniform(rnd, cols, -1, 1), db0 = uniform(rnd, cols, -1, 1);
                    double[] xd = toDouble(x), wd = toDouble(w), bd = centred ? toDouble(b) : null, g = toDouble(dout);
                    double[] numX = numericGradient(xd, v -> dot(g, reference(centred, rows, cols, eps, v, wd, bd, null)));
                    double[] numW = numericGradient(wd, v -> dot(g, reference(centred, rows, cols, eps, xd, v, bd, null)));
                    double[] numB = centred ? numericGradient(bd, v -> dot(g, reference(true, rows, cols, eps, xd, wd, v, null))) : null;
                    for (int c = 0; c < cols; c++) {
                        numW[c] += dw0[c];
                        if (centred) numB[c] += db0[c];
                    }
                    try (Arena arena = Arena.ofConfined()) {
                        MemorySegment xs = tensor(arena, dtype, x), ws = tensor(arena, dtype, w);
                        MemorySegment mean = nans(arena, rows), rstd = nans(arena, rows);
                        MemorySegment dx = nanTensor(arena, dtype, rows * cols), dw = floats(arena, dw0), db = floats(arena, db0);
                        MemorySegment out = nanTensor(arena, dtype, rows * cols), gs = tensor(arena, dtype, dout);
                        if (centred) {
                            assertOk(LIB.pmoe_layernorm_forward(dtype, rows, cols, eps, xs, ws, tensor(arena, dtype, b), out,
                                    mean, rstd, NULL), "forward");
                            assertOk(LIB.pmoe_layernorm_backward(dtype, rows, cols, xs, ws, mean, rstd, gs, dx, dw, db, NULL),
                                    "pmoe_layernorm_backward");
                        } else {
                            assertOk(LIB.pmoe_rmsnorm_forward(dtype, rows, cols, eps, xs, ws, out, rstd, NULL), "forward");
                            assertOk(LIB.pmoe_rmsnorm_backward(dtype, rows, cols, xs, ws, rstd, gs, dx, dw, NULL),
                                    "pmoe_rmsnorm_backward");
                        }
                        String what = (centred ? "layernorm" : "rmsnorm") + " dtype=" + dtype + " rows=" + rows
                                + " cols=" + cols + " eps=" + eps;
                        // dx: a few roundings of terms ~ rstd * |g| <~ 600 in the one-column case, ~5 otherwise,
                        // plus dx's rounding to bf16; dweight and dbias are f32 for both dtypes.
                        double scale = cols == 1 && eps < 0.1 ? 1e3 : 10;
                        assertClose(what + " dx", numX, readTensor(dx, dtype), 1e-5 + rounding(dtype), 1e-6 * scale);
                        // Column sums in double of rows f32 products dout * xhat, each within a few ulps.
                        assertClose(what + " dweight", numW, read(dw), 1e-5, 1e-6 * rows);
                        if (centred) assertClose(what + " dbias", numB, read(db), 1e-6, 1e-7);
                    }
                }
            }
        }
    }

    @Test
    void emptyRowsReadNothing() {
        assertOk(LIB.pmoe_layernorm_forward(F32, 0, 4, 1e-5f, NULL, NULL, NULL, NULL, NULL, NULL, NULL), "layernorm forward");
        assertOk(LIB.pmoe_layernorm_backward(F32, 0, 4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), "layernorm backward");
        assertOk(LIB.pmoe_rmsnorm_forward(F32, 0, 4, 1e-5f, NULL, NULL, NULL, NULL, NULL), "rmsnorm forward");
        assertOk(LIB.pmoe_rmsnorm_backward(F32, 0, 4, NULL, NULL, NULL, NULL, NULL, NULL, NULL), "rmsnorm backward");
    }

    @Test
    void deterministicAcrossThreadCounts() {
        Random rnd = new Random(6);
        int rows = 37, cols = 200;
        for (int dtype : DTYPES) {
            float[] x = input(rnd, rows * cols), w = uniform(rnd, cols, -2, 2), b = uniform(rnd, cols, -1, 1);
            float[] dout = uniform(rnd, rows * cols, -1, 1);
            assertDeterministic("layernorm dtype=" + dtype, arena -> layerNormOutputs(arena, dtype, rows, cols, x, w, b, dout));
            assertDeterministic("rmsnorm dtype=" + dtype, arena -> rmsNormOutputs(arena, dtype, rows, cols, x, w, dout));
        }
    }

    /**
     * The per-row math runs 8 lanes wide at AVX2 and 16 at AVX-512 with the same bits: every
     * output of both norms, forward and backward, f32 and bf16, on every width from 1 to 40
     * (every tail of both vector widths) and a few wider ones, with a NaN and an infinity in x,
     * agrees bit for bit between the two levels.
     */
    @Test
    void theAvx512RowMathGivesTheAvx2Bits() {
        Random rnd = new Random(8);
        int[] widths = IntStream.concat(IntStream.rangeClosed(1, 40), IntStream.of(256, 300, 1001)).toArray();
        for (int cols : widths) {
            int rows = 1 + cols % 5;
            float[] x = input(rnd, rows * cols), w = uniform(rnd, cols, -2, 2), b = uniform(rnd, cols, -1, 1);
            float[] dout = uniform(rnd, rows * cols, -1, 1);
            if (rows * cols > 20) {
                x[rows * cols / 3] = Float.NaN;
                x[rows * cols - 2] = Float.POSITIVE_INFINITY;
            }
            for (int dtype : DTYPES) {
                byte[][] avx2 = new byte[2][];
                atLevel(panamoe_h.PMOE_ISA_AVX2(), () -> {
                    try (Arena arena = Arena.ofConfined()) {
                        avx2[0] = layerNormOutputs(arena, dtype, rows, cols, x, w, b, dout);
                        avx2[1] = rmsNormOutputs(arena, dtype, rows, cols, x, w, dout);
                    }
                });
                atLevel(panamoe_h.PMOE_ISA_AVX512(), () -> {
                    try (Arena arena = Arena.ofConfined()) {
                        String what = rows + "x" + cols + " dtype=" + dtype + ": AVX-512 row math vs AVX2's";
                        assertArrayEquals(avx2[0], layerNormOutputs(arena, dtype, rows, cols, x, w, b, dout), "layernorm " + what);
                        assertArrayEquals(avx2[1], rmsNormOutputs(arena, dtype, rows, cols, x, w, dout), "rmsnorm " + what);
                    }
                });
            }
        }
    }

    /** LayerNorm forward then backward: out, mean, rstd, dx, dweight, dbias as bytes. */
    private static byte[] layerNormOutputs(Arena arena, int dtype, int rows, int cols, float[] x, float[] w, float[] b,
            float[] dout) {
        MemorySegment xs = tensor(arena, dtype, x), ws = tensor(arena, dtype, w);
        MemorySegment mean = nans(arena, rows), rstd = nans(arena, rows);
        MemorySegment out = nanTensor(arena, dtype, rows * cols), dx = nanTensor(arena, dtype, rows * cols);
        MemorySegment dw = floats(arena, new float[cols]), db = floats(arena, new float[cols]);
        assertOk(LIB.pmoe_layernorm_forward(dtype, rows, cols, 1e-5f, xs, ws, tensor(arena, dtype, b), out, mean,
                rstd, NULL), "forward");
        assertOk(LIB.pmoe_layernorm_backward(dtype, rows, cols, xs, ws, mean, rstd, tensor(arena, dtype, dout), dx,
                dw, db, NULL), "backward");
        return bytes(out, mean, rstd, dx, dw, db);
    }

    /** RMSNorm forward then backward: out, rstd, dx, dweight as bytes. */
    private static byte[] rmsNormOutputs(Arena arena, int dtype, int rows, int cols, float[] x, float[] w, float[] dout) {
        MemorySegment xs = tensor(arena, dtype, x), ws = tensor(arena, dtype, w), rstd = nans(arena, rows);
        MemorySegment out = nanTensor(arena, dtype, rows * cols), dx = nanTensor(arena, dtype, rows * cols);
        MemorySegment dw = floats(arena, new float[cols]);
        assertOk(LIB.pmoe_rmsnorm_forward(dtype, rows, cols, 1e-5f, xs, ws, out, rstd, NULL), "forward");
        assertOk(LIB.pmoe_rmsnorm_backward(dtype, rows, cols, xs, ws, rstd, tensor(arena, dtype, dout), dx, dw, NULL),
                "backward");
        return bytes(out, rstd, dx, dw);
    }

    @Test
    void rejectsBadArguments() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment x = floats(arena, new float[6]), w = floats(arena, new float[3]), r = floats(arena, new float[2]);
            assertInvalid(LIB.pmoe_layernorm_forward(F32, 2, 3, 0f, x, w, w, x, r, r, NULL), "eps", "0");
            assertInvalid(LIB.pmoe_rmsnorm_forward(F32, 2, 3, Float.NaN, x, w, x, r, NULL), "eps", "nan");
            assertInvalid(LIB.pmoe_layernorm_forward(F32, 2, 0, 1e-5f, x, w, w, x, r, r, NULL), "cols", "0");
            assertInvalid(LIB.pmoe_rmsnorm_forward(F32, -3, 3, 1e-5f, x, w, x, r, NULL), "rows", "-3");
            assertInvalid(LIB.pmoe_layernorm_forward(F32, 2, 3, 1e-5f, x, w, NULL, x, r, r, NULL), "bias", "NULL");
            assertInvalid(LIB.pmoe_layernorm_backward(F32, 2, 3, x, w, r, r, x, x, w, NULL, NULL), "dbias", "NULL");
            assertInvalid(LIB.pmoe_rmsnorm_backward(F32, 2, 3, x, w, NULL, x, x, w, NULL), "rstd", "NULL");
            assertInvalid(LIB.pmoe_layernorm_forward(2, 2, 3, 1e-5f, x, w, w, x, r, r, NULL), "dtype", "2");
            assertInvalid(LIB.pmoe_rmsnorm_backward(-1, 2, 3, x, w, r, x, x, w, NULL), "dtype", "-1");
        }
    }
}
