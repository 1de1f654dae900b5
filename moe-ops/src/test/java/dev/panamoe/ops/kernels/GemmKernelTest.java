package dev.panamoe.ops.kernels;

import static dev.panamoe.ops.kernels.KernelTestSupport.LIB;
import static dev.panamoe.ops.kernels.KernelTestSupport.NO_STREAM;
import static dev.panamoe.ops.kernels.KernelTestSupport.abs;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertClose;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertDeterministic;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertInvalid;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertOk;
import static dev.panamoe.ops.kernels.KernelTestSupport.bytes;
import static dev.panamoe.ops.kernels.KernelTestSupport.BF16;
import static dev.panamoe.ops.kernels.KernelTestSupport.BF16_EPS;
import static dev.panamoe.ops.kernels.KernelTestSupport.F32;
import static dev.panamoe.ops.kernels.KernelTestSupport.bf16;
import static dev.panamoe.ops.kernels.KernelTestSupport.floats;
import static dev.panamoe.ops.kernels.KernelTestSupport.readTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.representable;
import static dev.panamoe.ops.kernels.KernelTestSupport.tensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.toDouble;
import static dev.panamoe.ops.kernels.KernelTestSupport.uniform;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** pmoe_gemm against {@link ReferenceKernels#gemm}. */
class GemmKernelTest {

    private static final int[] SIZES = {0, 1, 7, 64, 65, 130};

    /**
     * One f32 product of length k has error <= k * 2^-24 * sum|a||b| (worst case) and ~sqrt(k) *
     * 2^-24 in practice; 1e-6 * sqrt(k + 1) of sum|alpha a b| + |beta c| is 16x the typical error and
     * above the worst case for every k used here (k <= 280).
     */
    static double gemmTolerance(int k, double magnitude) {
        return 1e-6 * Math.sqrt(k + 1) * magnitude;
    }

    /**
     * The error bound of a GEMM with operands of {@code dtype} into a C of {@code cDtype}: bf16 operands
     * are exact in f32 and so are their products, leaving the f32 sum's error (as for f32 operands);
     * a bf16 C adds one rounding to 8 significant bits of the result.
     */
    static double tolerance(int cDtype, int k, double magnitude, double expected) {
        return gemmTolerance(k, magnitude) + (cDtype == BF16 ? BF16_EPS * Math.abs(expected) : 0);
    }

    /**
     * A stored matrix [rows, cols] with row stride ld, values representable in dtype: the pad
     * columns hold NaN, which must never be read.
     */
    static float[] paddedMatrix(Random rnd, int dtype, int rows, int cols, int ld) {
        float[] m = new float[Math.max(0, rows * ld)];
        Arrays.fill(m, Float.NaN);
        for (int r = 0; r < rows; r++) System.arraycopy(representable(dtype, uniform(rnd, cols, -1, 1)), 0, m, r * ld, cols);
        return m;
    }

    static void checkGemm(Random rnd, boolean ta, boolean tb, int m, int n, int k, float alpha, float beta, int pad) {
        checkGemm(rnd, F32, F32, ta, tb, m, n, k, alpha, beta, pad);
    }

    /**
     * One gemm case with operands of dtype (pmoe_gemm for f32, pmoe_gemm_bf16 for bf16) and C of cDtype:
     * random a, b, c (NaN when beta == 0), padded strides; checks window and padding of c.
     */
    static void checkGemm(Random rnd, int dtype, int cDtype, boolean ta, boolean tb, int m, int n, int k, float alpha,
            float beta, int pad) {
        int aRows = ta ? k : m, aCols = ta ? m : k;
        int bRows = tb ? n : k, bCols = tb ? k : n;
        int lda = Math.max(1, aCols) + pad, ldb = Math.max(1, bCols) + pad, ldc = Math.max(1, n) + pad;
        float[] a = paddedMatrix(rnd, dtype, aRows, aCols, lda);
        float[] b = paddedMatrix(rnd, dtype, bRows, bCols, ldb);
        float[] c = paddedMatrix(rnd, cDtype, m, n, ldc);
        for (int i = 0; i < m; i++) for (int j = n; j < ldc; j++) c[i * ldc + j] = 1234.5f; // padding sentinel
        if (beta == 0) for (int i = 0; i < m; i++) Arrays.fill(c, i * ldc, i * ldc + n, Float.NaN);

        float[] got;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment cs = tensor(arena, cDtype, c);
            int status = dtype == F32
                    ? LIB.pmoe_gemm(ta ? 1 : 0, tb ? 1 : 0, m, n, k, alpha, floats(arena, a), lda, floats(arena, b), ldb,
                            beta, cs, ldc, NO_STREAM)
                    : LIB.pmoe_gemm_bf16(ta ? 1 : 0, tb ? 1 : 0, m, n, k, alpha, bf16(arena, a), lda, bf16(arena, b), ldb,
                            beta, cDtype, cs, ldc, NO_STREAM);
            assertOk(status, dtype == F32 ? "pmoe_gemm" : "pmoe_gemm_bf16");
            got = readTensor(cs, cDtype);
        }
        double[] expected = toDouble(c);
        ReferenceKernels.gemm(ta, tb, m, n, k, alpha, toDouble(a), lda, toDouble(b), ldb, beta, expected, ldc);
        double[] magnitude = abs(toDouble(c));
        ReferenceKernels.gemm(ta, tb, m, n, k, Math.abs(alpha), abs(toDouble(a)), lda, abs(toDouble(b)), ldb,
                Math.abs(beta), magnitude, ldc);
        String what = String.format("gemm dtype=%d c_dtype=%d ta=%b tb=%b m=%d n=%d k=%d alpha=%s beta=%s pad=%d", dtype,
                cDtype, ta, tb, m, n, k, alpha, beta, pad);
        assertClose(what, expected, got, i -> tolerance(cDtype, k, magnitude[i], expected[i]));
    }

    @Test
    void everyTransposeAndSizeMatchesReference() {
        Random rnd = new Random(11);
        float[][] alphaBeta = {{1, 0}, {1, 1}, {-0.5f, 0.75f}, {2.25f, 0}};
        int cases = 0;
        for (int t = 0; t < 4; t++) {
            for (int m : SIZES) {
                for (int n : SIZES) {
                    for (int k : SIZES) {
                        float[] ab = alphaBeta[cases % alphaBeta.length];
                        checkGemm(rnd, (t & 1) != 0, (t & 2) != 0, m, n, k, ab[0], ab[1], (cases / 4) % 2 * 3);
                        cases++;
                    }
                }
            }
        }
        assertEquals(4 * SIZES.length * SIZES.length * SIZES.length, cases);
    }

    @Test
    void betaZeroOverwritesNaNAndWideStridesAreRespected() {
        Random rnd = new Random(12);
        for (int t = 0; t < 4; t++) {
            checkGemm(rnd, (t & 1) != 0, (t & 2) != 0, 33, 47, 29, 1, 0, 17);
            checkGemm(rnd, (t & 1) != 0, (t & 2) != 0, 130, 65, 64, -1.5f, 0.5f, 64);
            checkGemm(rnd, (t & 1) != 0, (t & 2) != 0, 5, 3, 0, 1, 0, 2); // k = 0, beta = 0: C = 0
            checkGemm(rnd, (t & 1) != 0, (t & 2) != 0, 5, 3, 0, 1, 2, 2); // k = 0: C = beta * C
        }
    }

    /** Depths beyond one cache block, many row blocks, very wide C: the blocked paths of a tiled GEMM. */
    @Test
    void largeDepthRowsAndColumnsMatchReference() {
        Random rnd = new Random(14);
        for (int t = 0; t < 4; t++) {
            checkGemm(rnd, (t & 1) != 0, (t & 2) != 0, 40, 33, 600, 1, 0, 0);
            checkGemm(rnd, (t & 1) != 0, (t & 2) != 0, 301, 17, 257, 0.5f, -1, 1);
            checkGemm(rnd, (t & 1) != 0, (t & 2) != 0, 7, 2100, 9, 1, 1, 3);
        }
    }

    @Test
    void deterministicAcrossRunsAndThreadCounts() {
        Random rnd = new Random(13);
        int m = 257, n = 190, k = 301;
        float[] a = uniform(rnd, m * k, -1, 1), b = uniform(rnd, k * n, -1, 1), c = uniform(rnd, m * n, -1, 1);
        for (int t = 0; t < 4; t++) {
            boolean ta = (t & 1) != 0, tb = (t & 2) != 0;
            assertDeterministic("gemm ta=" + ta + " tb=" + tb, arena -> {
                MemorySegment cs = floats(arena, c);
                assertOk(LIB.pmoe_gemm(ta ? 1 : 0, tb ? 1 : 0, m, n, k, 0.5f, floats(arena, a), ta ? m : k,
                        floats(arena, b), tb ? k : n, 0.25f, cs, n, NO_STREAM), "pmoe_gemm");
                return bytes(cs);
            });
        }
    }

    @Test
    void rejectsBadArguments() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = floats(arena, new float[64]), b = floats(arena, new float[64]), c = floats(arena, new float[64]);
            assertInvalid(LIB.pmoe_gemm(2, 0, 4, 4, 4, 1, a, 4, b, 4, 0, c, 4, NO_STREAM), "trans_a", "2");
            assertInvalid(LIB.pmoe_gemm(0, -1, 4, 4, 4, 1, a, 4, b, 4, 0, c, 4, NO_STREAM), "trans_b", "-1");
            assertInvalid(LIB.pmoe_gemm(0, 0, -1, 4, 4, 1, a, 4, b, 4, 0, c, 4, NO_STREAM), "m", "-1");
            assertInvalid(LIB.pmoe_gemm(0, 0, 4, -3, 4, 1, a, 4, b, 4, 0, c, 4, NO_STREAM), "n", "-3");
            assertInvalid(LIB.pmoe_gemm(0, 0, 4, 4, -2, 1, a, 4, b, 4, 0, c, 4, NO_STREAM), "k", "-2");
            assertInvalid(LIB.pmoe_gemm(0, 0, 4, 4, 4, 1, a, 3, b, 4, 0, c, 4, NO_STREAM), "lda", "3");
            assertInvalid(LIB.pmoe_gemm(1, 0, 4, 2, 4, 1, a, 3, b, 2, 0, c, 2, NO_STREAM), "lda", "3"); // op(A)^T: lda >= m
            assertInvalid(LIB.pmoe_gemm(0, 1, 4, 4, 5, 1, a, 5, b, 4, 0, c, 4, NO_STREAM), "ldb", "4"); // op(B)^T: ldb >= k
            assertInvalid(LIB.pmoe_gemm(0, 0, 4, 4, 4, 1, a, 4, b, 4, 0, c, 2, NO_STREAM), "ldc", "2");
            assertInvalid(LIB.pmoe_gemm(0, 0, 4, 4, 4, 1, MemorySegment.NULL, 4, b, 4, 0, c, 4, NO_STREAM), "a", null);
            assertInvalid(LIB.pmoe_gemm(0, 0, 4, 4, 4, 1, a, 4, MemorySegment.NULL, 4, 0, c, 4, NO_STREAM), "b", null);
            assertInvalid(LIB.pmoe_gemm(0, 0, 4, 4, 4, 1, a, 4, b, 4, 0, MemorySegment.NULL, 4, NO_STREAM), "c", null);
            // pmoe_gemm_bf16: the same checks, and the output dtype
            assertInvalid(LIB.pmoe_gemm_bf16(0, 0, 4, 4, 4, 1, a, 4, b, 4, 0, 7, c, 4, NO_STREAM), "c_dtype", "7");
            assertInvalid(LIB.pmoe_gemm_bf16(0, 3, 4, 4, 4, 1, a, 4, b, 4, 0, BF16, c, 4, NO_STREAM), "trans_b", "3");
            assertInvalid(LIB.pmoe_gemm_bf16(1, 0, 4, 2, 4, 1, a, 3, b, 2, 0, F32, c, 2, NO_STREAM), "lda", "3");
            assertInvalid(LIB.pmoe_gemm_bf16(0, 0, 4, 4, 4, 1, a, 4, b, 4, 0, BF16, c, 3, NO_STREAM), "ldc", "3");
            assertInvalid(LIB.pmoe_gemm_bf16(0, 0, 4, 4, 4, 1, a, 4, MemorySegment.NULL, 4, 0, F32, c, 4, NO_STREAM), "b", null);
        }
    }
}
