package dev.panamoe.ops.kernels;

import static dev.panamoe.ops.kernels.GemmKernelTest.gemmTolerance;
import static dev.panamoe.ops.kernels.KernelTestSupport.LIB;
import static dev.panamoe.ops.kernels.KernelTestSupport.NO_STREAM;
import static dev.panamoe.ops.kernels.KernelTestSupport.abs;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertClose;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertDeterministic;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertInvalid;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertOk;
import static dev.panamoe.ops.kernels.KernelTestSupport.bytes;
import static dev.panamoe.ops.kernels.KernelTestSupport.BF16;
import static dev.panamoe.ops.kernels.KernelTestSupport.F32;
import static dev.panamoe.ops.kernels.KernelTestSupport.bf16;
import static dev.panamoe.ops.kernels.KernelTestSupport.floats;
import static dev.panamoe.ops.kernels.KernelTestSupport.nanTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.readTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.tensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.ints;
import static dev.panamoe.ops.kernels.KernelTestSupport.pointers;
import static dev.panamoe.ops.kernels.KernelTestSupport.toDouble;
import static dev.panamoe.ops.kernels.KernelTestSupport.uniform;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** pmoe_grouped_gemm_nn / _nt / _tn against {@link ReferenceKernels#groupedGemm} and {@link ReferenceKernels#groupedGemmTN}. */
class GroupedGemmKernelTest {

    /** Group sizes: ragged with empty groups, all rows in one group, one group, all empty, tile edges. */
    static List<int[]> groupSizes(Random rnd) {
        List<int[]> sizes = new ArrayList<>(List.of(
                new int[] {3, 0, 17, 0, 1},
                new int[] {0, 0, 40, 0},
                new int[] {23},
                new int[] {0, 0, 0},
                new int[] {1, 64, 65, 7, 0},
                new int[] {300, 0, 5})); // tn: a depth beyond one cache block
        int[] random = new int[8];
        for (int g = 0; g < random.length; g++) random[g] = rnd.nextInt(4) == 0 ? 0 : rnd.nextInt(70);
        sizes.add(random);
        return sizes;
    }

    static int[] offsets(int[] sizes) {
        int[] offsets = new int[sizes.length + 1];
        for (int g = 0; g < sizes.length; g++) offsets[g + 1] = offsets[g] + sizes[g];
        return offsets;
    }

    static final int[][] K_N = {{1, 1}, {7, 5}, {64, 65}, {33, 130}};

    /** Runs nn (transposed = false) or nt on separately allocated expert matrices; c starts as NaN. */
    static float[] nativeGrouped(boolean transposed, int[] offsets, int k, int n, float[] a, float[][] weights) {
        return nativeGrouped(F32, transposed, offsets, k, n, a, weights);
    }

    /** nn or nt with a, weights and c of dtype (the _bf16 entry points for bf16); returns c widened to f32. */
    static float[] nativeGrouped(int dtype, boolean transposed, int[] offsets, int k, int n, float[] a,
            float[][] weights) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment[] w = new MemorySegment[weights.length];
            for (int g = 0; g < w.length; g++) w[g] = tensor(arena, dtype, weights[g]);
            MemorySegment c = nanTensor(arena, dtype, offsets[weights.length] * n);
            int groups = weights.length;
            MemorySegment as = tensor(arena, dtype, a), ws = pointers(arena, w), os = ints(arena, offsets);
            String name = "pmoe_grouped_gemm_" + (transposed ? "nt" : "nn") + (dtype == BF16 ? "_bf16" : "");
            int status = switch (name) {
                case "pmoe_grouped_gemm_nn" -> LIB.pmoe_grouped_gemm_nn(groups, os, k, n, as, ws, c, NO_STREAM);
                case "pmoe_grouped_gemm_nt" -> LIB.pmoe_grouped_gemm_nt(groups, os, k, n, as, ws, c, NO_STREAM);
                case "pmoe_grouped_gemm_nn_bf16" -> LIB.pmoe_grouped_gemm_nn_bf16(groups, os, k, n, as, ws, c, NO_STREAM);
                default -> LIB.pmoe_grouped_gemm_nt_bf16(groups, os, k, n, as, ws, c, NO_STREAM);
            };
            assertOk(status, name);
            return readTensor(c, dtype);
        }
    }

    /** Runs tn; out[g] starts as `out[g]` and is returned per group. */
    static float[][] nativeGroupedTN(int[] offsets, int k, int n, float[] a, float[] b, float beta, float[][] out) {
        return nativeGroupedTN(F32, F32, offsets, k, n, a, b, beta, out);
    }

    /** tn with a and b of dtype and every out[g] of outDtype (pmoe_grouped_gemm_tn_bf16 for bf16 operands). */
    static float[][] nativeGroupedTN(int dtype, int outDtype, int[] offsets, int k, int n, float[] a, float[] b,
            float beta, float[][] out) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment[] o = new MemorySegment[out.length];
            for (int g = 0; g < o.length; g++) o[g] = tensor(arena, outDtype, out[g]);
            int status = dtype == F32
                    ? LIB.pmoe_grouped_gemm_tn(out.length, ints(arena, offsets), k, n, floats(arena, a), floats(arena, b),
                            beta, pointers(arena, o), NO_STREAM)
                    : LIB.pmoe_grouped_gemm_tn_bf16(out.length, ints(arena, offsets), k, n, bf16(arena, a), bf16(arena, b),
                            beta, outDtype, pointers(arena, o), NO_STREAM);
            assertOk(status, dtype == F32 ? "pmoe_grouped_gemm_tn" : "pmoe_grouped_gemm_tn_bf16");
            float[][] got = new float[out.length][];
            for (int g = 0; g < o.length; g++) got[g] = readTensor(o[g], outDtype);
            return got;
        }
    }

    static double[][] toDouble2(float[][] x) {
        double[][] d = new double[x.length][];
        for (int i = 0; i < x.length; i++) d[i] = toDouble(x[i]);
        return d;
    }

    static double[][] abs2(double[][] x) {
        double[][] d = new double[x.length][];
        for (int i = 0; i < x.length; i++) d[i] = abs(x[i]);
        return d;
    }

    @Test
    void nnAndNtMatchReferenceOnRaggedGroups() {
        Random rnd = new Random(21);
        for (int[] sizes : groupSizes(rnd)) {
            int[] offsets = offsets(sizes);
            int rows = offsets[sizes.length];
            for (int[] kn : K_N) {
                int k = kn[0], n = kn[1];
                float[] a = uniform(rnd, rows * k, -1, 1);
                float[][] w = new float[sizes.length][];
                for (int g = 0; g < w.length; g++) w[g] = uniform(rnd, k * n, -1, 1);
                for (boolean transposed : new boolean[] {false, true}) {
                    float[] got = nativeGrouped(transposed, offsets, k, n, a, w);
                    double[] expected = ReferenceKernels.groupedGemm(offsets, k, n, toDouble(a), toDouble2(w), transposed);
                    double[] magnitude = ReferenceKernels.groupedGemm(offsets, k, n, abs(toDouble(a)), abs2(toDouble2(w)), transposed);
                    assertClose((transposed ? "nt" : "nn") + " sizes=" + Arrays.toString(sizes) + " k=" + k + " n=" + n,
                            expected, got, i -> gemmTolerance(k, magnitude[i]));
                }
            }
        }
    }

    @Test
    void tnMatchesReferenceWithBetaZeroAndOneIncludingEmptyGroups() {
        Random rnd = new Random(22);
        for (int[] sizes : groupSizes(rnd)) {
            int[] offsets = offsets(sizes);
            int rows = offsets[sizes.length];
            int maxRows = Arrays.stream(sizes).max().orElse(0);
            for (int[] kn : K_N) {
                int k = kn[0], n = kn[1];
                float[] a = uniform(rnd, rows * k, -1, 1), b = uniform(rnd, rows * n, -1, 1);
                for (float beta : new float[] {0, 1}) {
                    float[][] out = new float[sizes.length][];
                    for (int g = 0; g < out.length; g++) {
                        out[g] = uniform(rnd, k * n, -1, 1);
                        if (beta == 0) Arrays.fill(out[g], Float.NaN); // beta == 0: out is not read
                    }
                    float[][] got = nativeGroupedTN(offsets, k, n, a, b, beta, out);
                    double[][] expected = ReferenceKernels.groupedGemmTN(offsets, k, n, toDouble(a), toDouble(b), beta, toDouble2(out));
                    double[][] magnitude = ReferenceKernels.groupedGemmTN(offsets, k, n, abs(toDouble(a)), abs(toDouble(b)), beta,
                            abs2(toDouble2(out)));
                    for (int g = 0; g < out.length; g++) {
                        double[] mag = magnitude[g];
                        assertClose("tn beta=" + beta + " sizes=" + Arrays.toString(sizes) + " k=" + k + " n=" + n + " group " + g,
                                expected[g], got[g], i -> gemmTolerance(maxRows, mag[i]));
                    }
                }
            }
        }
    }

    @Test
    void deterministicAcrossRunsAndThreadCounts() {
        Random rnd = new Random(23);
        int[] sizes = {0, 130, 3, 257, 64, 0, 1, 90};
        int[] offsets = offsets(sizes);
        int rows = offsets[sizes.length], k = 96, n = 80;
        float[] a = uniform(rnd, rows * k, -1, 1), b = uniform(rnd, rows * n, -1, 1);
        float[][] w = new float[sizes.length][];
        for (int g = 0; g < w.length; g++) w[g] = uniform(rnd, k * n, -1, 1);
        for (boolean transposed : new boolean[] {false, true}) {
            assertDeterministic(transposed ? "grouped nt" : "grouped nn", arena -> {
                float[] c = nativeGrouped(transposed, offsets, k, n, a, w);
                return bytes(floats(arena, c));
            });
        }
        assertDeterministic("grouped tn", arena -> {
            float[][] out = nativeGroupedTN(offsets, k, n, a, b, 1, w);
            MemorySegment[] segments = new MemorySegment[out.length];
            for (int g = 0; g < out.length; g++) segments[g] = floats(arena, out[g]);
            return bytes(segments);
        });
    }

    @Test
    void rejectsBadArguments() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = floats(arena, new float[64]), b = floats(arena, new float[64]), c = floats(arena, new float[64]);
            MemorySegment w = pointers(arena, floats(arena, new float[16]), floats(arena, new float[16]));
            MemorySegment good = ints(arena, 0, 2, 4);
            MemorySegment startsAt1 = ints(arena, 1, 2, 4);
            MemorySegment decreasing = ints(arena, 0, 3, 2);
            MemorySegment nullExpert = pointers(arena, floats(arena, new float[16]), MemorySegment.NULL);

            assertInvalid(LIB.pmoe_grouped_gemm_nn(2, startsAt1, 4, 4, a, w, c, NO_STREAM), "offsets", "1");
            assertInvalid(LIB.pmoe_grouped_gemm_nt(2, decreasing, 4, 4, a, w, c, NO_STREAM), "offsets", "2");
            assertInvalid(LIB.pmoe_grouped_gemm_tn(2, decreasing, 4, 4, a, b, 0, w, NO_STREAM), "offsets", "2");
            assertInvalid(LIB.pmoe_grouped_gemm_nn(-1, good, 4, 4, a, w, c, NO_STREAM), "groups", "-1");
            assertInvalid(LIB.pmoe_grouped_gemm_nn(2, good, -4, 4, a, w, c, NO_STREAM), "k", "-4");
            assertInvalid(LIB.pmoe_grouped_gemm_nt(2, good, 4, -5, a, w, c, NO_STREAM), "n", "-5");
            assertInvalid(LIB.pmoe_grouped_gemm_nn(2, MemorySegment.NULL, 4, 4, a, w, c, NO_STREAM), "offsets", null);
            assertInvalid(LIB.pmoe_grouped_gemm_nn(2, good, 4, 4, MemorySegment.NULL, w, c, NO_STREAM), "a", null);
            assertInvalid(LIB.pmoe_grouped_gemm_nt(2, good, 4, 4, a, MemorySegment.NULL, c, NO_STREAM), "weights", null);
            assertInvalid(LIB.pmoe_grouped_gemm_nn(2, good, 4, 4, a, nullExpert, c, NO_STREAM), "weights", "1");
            assertInvalid(LIB.pmoe_grouped_gemm_nn(2, good, 4, 4, a, w, MemorySegment.NULL, NO_STREAM), "c", null);
            assertInvalid(LIB.pmoe_grouped_gemm_tn(2, good, 4, 4, a, MemorySegment.NULL, 1, w, NO_STREAM), "b", null);
            assertInvalid(LIB.pmoe_grouped_gemm_tn(2, good, 4, 4, a, b, 1, MemorySegment.NULL, NO_STREAM), "out", null);
            assertInvalid(LIB.pmoe_grouped_gemm_tn(2, good, 4, 4, a, b, 1, nullExpert, NO_STREAM), "out", "1");
            // the bf16 entry points share the checks; tn_bf16 also checks the output dtype
            assertInvalid(LIB.pmoe_grouped_gemm_nt_bf16(2, startsAt1, 4, 4, a, w, c, NO_STREAM), "offsets", "1");
            assertInvalid(LIB.pmoe_grouped_gemm_nt_bf16(2, good, 4, 4, a, nullExpert, c, NO_STREAM), "weights", "1");
            assertInvalid(LIB.pmoe_grouped_gemm_nt_bf16(2, good, 4, 4, a, w, MemorySegment.NULL, NO_STREAM), "c", null);
            assertInvalid(LIB.pmoe_grouped_gemm_tn_bf16(2, good, 4, 4, a, b, 1, 5, w, NO_STREAM), "out_dtype", "5");
            assertInvalid(LIB.pmoe_grouped_gemm_tn_bf16(2, decreasing, 4, 4, a, b, 1, F32, w, NO_STREAM), "offsets", "2");
            assertInvalid(LIB.pmoe_grouped_gemm_tn_bf16(2, good, 4, -1, a, b, 1, BF16, w, NO_STREAM), "n", "-1");
            assertInvalid(LIB.pmoe_grouped_gemm_tn_bf16(2, good, 4, 4, a, b, 1, F32, nullExpert, NO_STREAM), "out", "1");
        }
    }
}
