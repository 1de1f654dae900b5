package dev.panamoe.ops.cuda;

import static dev.panamoe.ops.cuda.Harness.BF16;
import static dev.panamoe.ops.cuda.Harness.BF16_EPS;
import static dev.panamoe.ops.cuda.Harness.CPU;
import static dev.panamoe.ops.cuda.Harness.F32_EPS;
import static dev.panamoe.ops.cuda.Harness.NO_STREAM;
import static dev.panamoe.ops.cuda.Harness.assertClose;
import static dev.panamoe.ops.cuda.Harness.assertOk;
import static dev.panamoe.ops.cuda.Harness.bf16Values;
import static dev.panamoe.ops.cuda.Harness.gaussian;
import static dev.panamoe.ops.cuda.Harness.ints;
import static dev.panamoe.ops.cuda.Harness.pointers;
import static dev.panamoe.ops.cuda.Harness.tensor;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.bindings.panamoe_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The CPU library's pmoe_grouped_gemm_nn_bf16 (the reference for the CUDA tensor-core kernel)
 * against a double-precision product of the same bf16 values: each element must be the exact
 * product rounded once to bf16, up to f32 accumulation error.
 */
class GroupedGemmBf16Test {

    /** c[rows, n] of every group in double: a[rows_g, k] * w_g[k, n]. */
    private static double[] reference(int[] offsets, int k, int n, float[] a, float[][] w, double[] magnitude) {
        int rows = offsets[offsets.length - 1];
        double[] c = new double[rows * n];
        for (int g = 0; g < w.length; g++)
            for (int r = offsets[g]; r < offsets[g + 1]; r++)
                for (int j = 0; j < n; j++) {
                    double s = 0, m = 0;
                    for (int p = 0; p < k; p++) {
                        s += (double) a[r * k + p] * w[g][p * n + j];
                        m += Math.abs((double) a[r * k + p] * w[g][p * n + j]);
                    }
                    c[r * n + j] = s;
                    magnitude[r * n + j] = m;
                }
        return c;
    }

    @Test
    void matchesADoublePrecisionReference() {
        Random rnd = new Random(31);
        // ragged groups with empty ones, one group, no groups; k = 0 gives zeros; odd k and n
        int[][] groupRows = {{3, 0, 17, 0, 1}, {40}, {}, {0, 0}};
        int[][] kn = {{1, 1}, {7, 5}, {40, 72}, {0, 6}, {130, 3}};
        for (int[] sizes : groupRows) {
            for (int[] d : kn) {
                int k = d[0], n = d[1], groups = sizes.length;
                int[] offsets = new int[groups + 1];
                for (int g = 0; g < groups; g++) offsets[g + 1] = offsets[g] + sizes[g];
                int rows = offsets[groups];
                String what = String.format("cpu bf16 grouped rows=%s k=%d n=%d", Arrays.toString(sizes), k, n);
                try (Arena arena = Arena.ofConfined()) {
                    float[] a = bf16Values(gaussian(rnd, rows * k, 1));
                    float[][] w = new float[groups][];
                    MemorySegment[] ws = new MemorySegment[groups];
                    for (int g = 0; g < groups; g++) {
                        w[g] = bf16Values(gaussian(rnd, k * n, 1));
                        ws[g] = tensor(arena, BF16, w[g]);
                    }
                    MemorySegment c = Harness.allocate(arena, List.of(Harness.Out.of(BF16, (long) rows * n)))[0];
                    assertOk(CPU, CPU.pmoe_grouped_gemm_nn_bf16(groups, ints(arena, offsets), k, n,
                            tensor(arena, BF16, a), pointers(arena, ws), c, NO_STREAM), what);
                    double[] magnitude = new double[rows * n];
                    double[] expected = reference(offsets, k, n, a, w, magnitude);
                    float[] actual = Harness.read(c, BF16);
                    float[] exp32 = new float[expected.length];
                    for (int i = 0; i < exp32.length; i++) exp32[i] = (float) expected[i];
                    // one bf16 rounding (relative 2^-8) of the f32 sum, whose error is bounded by k ulps of the magnitude
                    assertClose(what, exp32, actual,
                            i -> BF16_EPS * Math.abs(expected[i]) + 2 * (k + 1) * F32_EPS * magnitude[i] + 1e-30);
                }
            }
        }
    }

    @Test
    void rejectsBadInputs() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = tensor(arena, BF16, new float[20]), w = tensor(arena, BF16, new float[8]);
            MemorySegment c = tensor(arena, BF16, new float[10]);
            int status = CPU.pmoe_grouped_gemm_nn_bf16(2, ints(arena, 0, 3, 1), 4, 2, a, pointers(arena, w, w), c,
                    NO_STREAM);
            assertEquals(panamoe_h.PMOE_ERR_INVALID_ARGUMENT(), status);
            assertTrue(Harness.lastError(CPU).contains("offsets[2] = 1"), Harness.lastError(CPU));
            status = CPU.pmoe_grouped_gemm_nn_bf16(2, ints(arena, 0, 3, 5), 4, 2, a,
                    pointers(arena, w, MemorySegment.NULL), c, NO_STREAM);
            assertEquals(panamoe_h.PMOE_ERR_INVALID_ARGUMENT(), status);
            assertEquals("weights[1] must not be NULL (group 1 has 2 rows)", Harness.lastError(CPU));
            status = CPU.pmoe_grouped_gemm_nn_bf16(1, ints(arena, 0, 5), 4, 2, MemorySegment.NULL, pointers(arena, w),
                    c, NO_STREAM);
            assertEquals("a must not be NULL", Harness.lastError(CPU));
            assertEquals(panamoe_h.PMOE_ERR_INVALID_ARGUMENT(), status);
        }
    }
}
