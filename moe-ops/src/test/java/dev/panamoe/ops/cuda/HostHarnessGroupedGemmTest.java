package dev.panamoe.ops.cuda;

import static dev.panamoe.ops.cuda.Harness.BF16;
import static dev.panamoe.ops.cuda.Harness.BF16_EPS;
import static dev.panamoe.ops.cuda.Harness.F32;
import static dev.panamoe.ops.cuda.Harness.F32_EPS;
import static dev.panamoe.ops.cuda.Harness.HOST;
import static dev.panamoe.ops.cuda.Harness.NO_STREAM;
import static dev.panamoe.ops.cuda.Harness.assertClose;
import static dev.panamoe.ops.cuda.Harness.assertOk;
import static dev.panamoe.ops.cuda.Harness.bf16Values;
import static dev.panamoe.ops.cuda.Harness.gaussian;
import static dev.panamoe.ops.cuda.Harness.ints;
import static dev.panamoe.ops.cuda.Harness.pointers;
import static dev.panamoe.ops.cuda.Harness.read;
import static dev.panamoe.ops.cuda.Harness.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The bf16 grouped GEMMs on tensor cores (nn, nt, tn: {@code tc::grouped_gemm_tc_kernel} in gemm.cu) through
 * the host-execution harness against double-precision products of the same bf16 values. The shapes reach every
 * path of the kernel's 128 x 128 x 32 tiles: several m and n tiles per group with partial ones, zero-row groups,
 * more depth steps than pipeline stages (the buffer ring wraps) with a partial last step, more tiles than the
 * harness's blocks (the persistent loop), k and n not multiples of 8 and misaligned matrices (nt and tn: chunks
 * staged element by element, element-wise stores), tn with beta into f32 and bf16 outputs. Each case runs twice,
 * so that the harness's alternating schedule runs it in order once and as a random interleaving of blocks and
 * warps once.
 */
class HostHarnessGroupedGemmTest {
    private static final int NN = 0, NT = 1, TN = 2;

    /** Element (i, j) of an operand. */
    @FunctionalInterface
    private interface Operand {
        double at(int i, int j);
    }

    /**
     * sum[i * n + j] = sum over p of x(i, p) * y(p, j) in double, magnitude[i * n + j] the sum of the products'
     * absolute values (what the f32 accumulation error scales with).
     */
    private static void product(int m, int depth, int n, Operand x, Operand y, double[] sum, double[] magnitude) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 0, abs = 0;
                for (int p = 0; p < depth; p++) {
                    double v = x.at(i, p) * y.at(p, j);
                    s += v;
                    abs += Math.abs(v);
                }
                sum[i * n + j] = s;
                magnitude[i * n + j] = abs;
            }
    }

    /** bf16 values at an address 2 bytes past a 16-byte boundary when `misaligned`. */
    private static MemorySegment bf16(Arena arena, float[] v, boolean misaligned) {
        if (!misaligned) return tensor(arena, BF16, v);
        float[] padded = new float[v.length + 1];
        System.arraycopy(v, 0, padded, 1, v.length);
        return tensor(arena, BF16, padded).asSlice(2, 2L * v.length);
    }

    private static int[] offsets(int[] sizes) {
        int[] offsets = new int[sizes.length + 1];
        for (int g = 0; g < sizes.length; g++) offsets[g + 1] = offsets[g] + sizes[g];
        return offsets;
    }

    /** A bf16 output of `n` elements filled with NaN, so that an element left unwritten fails. */
    private static MemorySegment poisoned(Arena arena, int dtype, int n, boolean misaligned) {
        float[] nan = new float[n];
        Arrays.fill(nan, Float.NaN);
        if (dtype == F32 && misaligned) {
            float[] padded = new float[n + 1];
            Arrays.fill(padded, Float.NaN);
            return tensor(arena, F32, padded).asSlice(4, 4L * n);
        }
        return dtype == F32 ? tensor(arena, F32, nan) : bf16(arena, nan, misaligned);
    }

    /**
     * nn ({@code c = a * W_g}) or nt ({@code c = a * W_g^T}, W_g stored [n, k]) on the harness against the double
     * reference; `misaligned` lists the groups whose weight starts 2 bytes past a 16-byte boundary.
     */
    private static void checkNnNt(int mode, Random rnd, int[] sizes, int k, int n, boolean misalignedA,
            int... misaligned) {
        int groups = sizes.length;
        int[] offsets = offsets(sizes);
        int rows = offsets[groups];
        String what = String.format("%s bf16 rows=%s k=%d n=%d%s misaligned weights %s", mode == NN ? "nn" : "nt",
                Arrays.toString(sizes), k, n, misalignedA ? " misaligned a," : "", Arrays.toString(misaligned));
        float[] a = bf16Values(gaussian(rnd, rows * k, 1));
        float[][] w = new float[groups][];
        for (int g = 0; g < groups; g++) w[g] = bf16Values(gaussian(rnd, k * n, 1));
        double[] expected = new double[rows * n], magnitude = new double[rows * n];
        for (int g = 0; g < groups; g++) {
            int r0 = offsets[g], gg = g;
            double[] sum = new double[sizes[g] * n], abs = new double[sizes[g] * n];
            product(sizes[g], k, n, (i, p) -> a[(r0 + i) * k + p],
                    mode == NN ? (p, j) -> w[gg][p * n + j] : (p, j) -> w[gg][j * k + p], sum, abs);
            System.arraycopy(sum, 0, expected, r0 * n, sum.length);
            System.arraycopy(abs, 0, magnitude, r0 * n, abs.length);
        }
        for (int run = 0; run < 2; run++) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment[] ws = new MemorySegment[groups];
                for (int g = 0; g < groups; g++) {
                    int gg = g;
                    ws[g] = bf16(arena, w[g], Arrays.stream(misaligned).anyMatch(x -> x == gg));
                }
                MemorySegment off = ints(arena, offsets), sa = bf16(arena, a, misalignedA);
                MemorySegment c = poisoned(arena, BF16, rows * n, false);
                int status = mode == NN
                        ? HOST.pmoe_grouped_gemm_nn_bf16(groups, off, k, n, sa, pointers(arena, ws), c, NO_STREAM)
                        : HOST.pmoe_grouped_gemm_nt_bf16(groups, off, k, n, sa, pointers(arena, ws), c, NO_STREAM);
                assertOk(HOST, status, what);
                float[] exp32 = new float[rows * n];
                for (int i = 0; i < exp32.length; i++) exp32[i] = (float) expected[i];
                // one bf16 rounding of the f32 sum, whose error is bounded by (k + 2) ulps of the magnitude
                assertClose(what + " (run " + run + ")", exp32, read(c, BF16),
                        i -> BF16_EPS * Math.abs(expected[i]) + 2 * (k + 2) * F32_EPS * magnitude[i] + 1e-30);
            }
        }
    }

    /**
     * tn: {@code out[g] = beta * out[g] + a_g^T * b_g} into out_dtype on the harness against the double
     * reference; `misaligned` lists the groups whose out[g] starts off a 16-byte boundary.
     */
    private static void checkTn(Random rnd, int[] sizes, int k, int n, float beta, int outDtype, int... misaligned) {
        int groups = sizes.length;
        int[] offsets = offsets(sizes);
        int rows = offsets[groups];
        String what = String.format("tn bf16 rows=%s k=%d n=%d beta=%s out_dtype=%d misaligned out %s",
                Arrays.toString(sizes), k, n, beta, outDtype, Arrays.toString(misaligned));
        float[] a = bf16Values(gaussian(rnd, rows * k, 1)), b = bf16Values(gaussian(rnd, rows * n, 1));
        float[][] init = new float[groups][];
        for (int g = 0; g < groups; g++) init[g] = bf16Values(gaussian(rnd, k * n, 1));
        for (int run = 0; run < 2; run++) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment[] outs = new MemorySegment[groups];
                for (int g = 0; g < groups; g++) {
                    int gg = g;
                    boolean off16 = Arrays.stream(misaligned).anyMatch(x -> x == gg);
                    outs[g] = poisoned(arena, outDtype, k * n, off16);
                    // beta == 0: out[g] must not be read, so it stays NaN
                    if (beta != 0) outs[g].copyFrom(tensor(arena, outDtype, init[g]));
                }
                assertOk(HOST, HOST.pmoe_grouped_gemm_tn_bf16(groups, ints(arena, offsets), k, n,
                        tensor(arena, BF16, a), tensor(arena, BF16, b), beta, outDtype, pointers(arena, outs), NO_STREAM),
                        what);
                for (int g = 0; g < groups; g++) {
                    int r0 = offsets[g], depth = sizes[g], gg = g;
                    double[] sum = new double[k * n], magnitude = new double[k * n];
                    product(k, depth, n, (i, p) -> a[(r0 + p) * k + i], (p, j) -> b[(r0 + p) * n + j], sum, magnitude);
                    double[] expected = new double[k * n];
                    float[] exp32 = new float[k * n];
                    for (int i = 0; i < expected.length; i++) {
                        expected[i] = sum[i] + beta * (double) init[gg][i];
                        exp32[i] = (float) expected[i];
                    }
                    double rounding = outDtype == BF16 ? BF16_EPS : F32_EPS;
                    assertClose(what + " group " + g + " (run " + run + ")", exp32, read(outs[g], outDtype),
                            i -> rounding * Math.abs(expected[i])
                                    + 2 * (depth + 2) * F32_EPS * (magnitude[i] + Math.abs(beta * init[gg][i])) + 1e-30);
                }
            }
        }
    }

    @Test
    void nnOverRaggedGroups() {
        Random rnd = new Random(41);
        // 6 m tiles x 2 n tiles (the second 8 wide) > the harness's 8 blocks; 6 depth steps (4 stages), the last 8 deep
        checkNnNt(NN, rnd, new int[] {0, 130, 1, 0, 257}, 168, 136, false);
        checkNnNt(NN, rnd, new int[] {3, 0, 16}, 8, 8, false);
        checkNnNt(NN, rnd, new int[] {3, 0, 5}, 0, 16, false); // k = 0: zeros
        checkNnNt(NN, rnd, new int[] {}, 16, 16, false);
    }

    @Test
    void ntOverRaggedGroupsAnyShapeAndAlignment() {
        Random rnd = new Random(42);
        // k and n not multiples of 8: partial chunks in both operands and in the output rows
        checkNnNt(NT, rnd, new int[] {0, 129, 5, 0}, 171, 133, false);
        // aligned shape, but one weight and then the activations off a 16-byte boundary
        checkNnNt(NT, rnd, new int[] {40, 0, 70}, 64, 24, false, 2);
        checkNnNt(NT, rnd, new int[] {17, 9}, 40, 16, true);
        checkNnNt(NT, rnd, new int[] {0, 0}, 8, 8, false);
    }

    @Test
    void tnOverRaggedGroupsWithBeta() {
        Random rnd = new Random(43);
        for (int outDtype : new int[] {F32, BF16}) {
            for (float beta : new float[] {0f, 0.5f}) {
                // 2 m tiles per group; zero-row groups still write beta * out; up to 7 depth steps; n = 20:
                // 16-byte f32 stores with a 4-wide tail, element-wise bf16 stores
                checkTn(rnd, new int[] {0, 140, 0, 3, 200}, 136, 20, beta, outDtype);
            }
            checkTn(rnd, new int[] {33, 0, 65}, 21, 13, 1f, outDtype, 0, 1); // odd k and n, misaligned outputs
        }
    }
}
