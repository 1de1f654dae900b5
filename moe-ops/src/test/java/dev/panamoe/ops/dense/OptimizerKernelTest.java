package dev.panamoe.ops.dense;

import static dev.panamoe.ops.dense.DenseTestSupport.BF16;
import static dev.panamoe.ops.dense.DenseTestSupport.F32;
import static dev.panamoe.ops.dense.DenseTestSupport.LIB;
import static dev.panamoe.ops.dense.DenseTestSupport.NULL;
import static dev.panamoe.ops.dense.DenseTestSupport.assertClose;
import static dev.panamoe.ops.dense.DenseTestSupport.assertDeterministic;
import static dev.panamoe.ops.dense.DenseTestSupport.assertInvalid;
import static dev.panamoe.ops.dense.DenseTestSupport.assertOk;
import static dev.panamoe.ops.dense.DenseTestSupport.bytes;
import static dev.panamoe.ops.dense.DenseTestSupport.floats;
import static dev.panamoe.ops.dense.DenseTestSupport.read;
import static dev.panamoe.ops.dense.DenseTestSupport.readDouble;
import static dev.panamoe.ops.dense.DenseTestSupport.toDouble;
import static dev.panamoe.ops.dense.DenseTestSupport.uniform;
import static dev.panamoe.ops.kernels.KernelTestSupport.bf16Bits;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import dev.panamoe.bindings.panamoe_h;
import dev.panamoe.ops.kernels.KernelTestSupport;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** pmoe_adamw_step (with and without a working copy) and pmoe_sum_squares against double references. */
class OptimizerKernelTest {

    /** One AdamW step in double, in place on p, m, v (the header's formula). */
    static void adamw(double[] p, double[] g, double[] m, double[] v, double lr, double beta1, double beta2,
                      double eps, double weightDecay, int step) {
        for (int i = 0; i < p.length; i++) {
            m[i] = beta1 * m[i] + (1 - beta1) * g[i];
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
            double mHat = m[i] / (1 - Math.pow(beta1, step)), vHat = v[i] / (1 - Math.pow(beta2, step));
            p[i] -= lr * (mHat / (Math.sqrt(vHat) + eps) + weightDecay * p[i]);
        }
    }

    /** Three steps from zero moments with fresh gradients each step, for several settings and sizes. */
    @Test
    void adamwMatchesReferenceOverSteps() {
        Random rnd = new Random(18);
        // {lr, beta1, beta2, eps, weight_decay}: GPT-2 style, no decay, beta1 = 0 (RMSProp-like), large eps.
        float[][] settings = {{6e-4f, 0.9f, 0.95f, 1e-8f, 0.1f}, {1e-3f, 0.9f, 0.999f, 1e-8f, 0f},
                {1e-2f, 0f, 0.5f, 1e-3f, 0.5f}};
        for (int n : new int[] {1, 7, 1000}) {
            for (float[] h : settings) {
                float[] p0 = uniform(rnd, n, -1, 1);
                double[] p = toDouble(p0), m = new double[n], v = new double[n];
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment ps = floats(arena, p0), ms = floats(arena, new float[n]), vs = floats(arena, new float[n]);
                    for (int step = 1; step <= 3; step++) {
                        float[] g = uniform(rnd, n, -1, 1);
                        if (n > 1) g[0] = 0; // no gradient: only the moments' history and the decay move it
                        assertOk(LIB.pmoe_adamw_step(n, ps, floats(arena, g), 1f, ms, vs, h[0], h[1], h[2], h[3], h[4], step,
                                F32, NULL, NULL), "pmoe_adamw_step");
                        adamw(p, toDouble(g), m, v, h[0], h[1], h[2], h[3], h[4], step);
                        String what = "adamw n=" + n + " lr=" + h[0] + " wd=" + h[4] + " step=" + step;
                        // The kernel rounds m, v and the update to f32 every step: ~1e-7 relative each;
                        // an update is <= lr / (1 - beta1) in size.
                        assertClose(what + " m", m, read(ms), 1e-5, 1e-7);
                        assertClose(what + " v", v, read(vs), 1e-5, 1e-9);
                        assertClose(what + " params", p, read(ps), 1e-6, 1e-5 * h[0]);
                    }
                }
            }
        }
    }

    /**
     * With a working copy, the masters and moments are updated bit for bit as without one, and
     * the copy is the updated masters rounded once to its dtype (f32: the same bits), on the
     * serial and the parallel path.
     */
    @Test
    void adamwWritesTheWorkingCopyOfTheUpdatedMasters() {
        Random rnd = new Random(21);
        for (int n : new int[] {1, 7, 1000, 70001}) {
            float[] p = uniform(rnd, n, -3, 3), g = uniform(rnd, n, -1, 1), m = uniform(rnd, n, -0.1, 0.1);
            float[] v = uniform(rnd, n, 0, 0.01);
            for (int dtype : new int[] {F32, BF16}) {
                String what = "adamw n=" + n + " working " + DenseTestSupport.name(dtype);
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment gs = floats(arena, g);
                    MemorySegment ps = floats(arena, p), ms = floats(arena, m), vs = floats(arena, v);
                    assertOk(LIB.pmoe_adamw_step(n, ps, gs, 1f, ms, vs, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 3, F32, NULL, NULL),
                            what + " without a copy");
                    MemorySegment pc = floats(arena, p), mc = floats(arena, m), vc = floats(arena, v);
                    MemorySegment working = arena.allocate((dtype == BF16 ? 2L : 4L) * n, 4).fill((byte) 0xff);
                    assertOk(LIB.pmoe_adamw_step(n, pc, gs, 1f, mc, vc, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 3, dtype, working,
                            NULL), what);
                    assertArrayEquals(bytes(ps, ms, vs), bytes(pc, mc, vc), what + ": masters and moments");
                    float[] updated = read(pc);
                    if (dtype == F32) {
                        assertArrayEquals(updated, working.toArray(JAVA_FLOAT), what + ": copy");
                    } else {
                        short[] expected = new short[n];
                        for (int i = 0; i < n; i++) expected[i] = bf16Bits(updated[i]);
                        assertArrayEquals(expected, working.toArray(JAVA_SHORT), what + ": copy");
                    }
                }
            }
        }
    }

    /**
     * grad_scale (gradient clipping's factor) gives bitwise the update on the gradients scaled
     * beforehand, as pmoe_scale scales them (g * scale in f32), and leaves the gradients as they
     * were; 0 is an update on zero gradients (only the moments' history and the decay move).
     */
    @Test
    void adamwReadsTheGradientsScaled() {
        Random rnd = new Random(23);
        for (int n : new int[] {1, 7, 1000, 70001}) {
            float[] p = uniform(rnd, n, -3, 3), g = uniform(rnd, n, -1, 1), m = uniform(rnd, n, -0.1, 0.1);
            float[] v = uniform(rnd, n, 0, 0.01);
            for (float scale : new float[] {0.37f, 1e-3f, 0f}) {
                String what = "adamw n=" + n + " grad_scale " + scale;
                float[] scaled = new float[n];
                for (int i = 0; i < n; i++) scaled[i] = g[i] * scale;
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment gs = floats(arena, g), ws = arena.allocate(2L * n, 4), wc = arena.allocate(2L * n, 4);
                    MemorySegment ps = floats(arena, p), ms = floats(arena, m), vs = floats(arena, v);
                    assertOk(LIB.pmoe_adamw_step(n, ps, floats(arena, scaled), 1f, ms, vs, 1e-2f, 0.9f, 0.95f, 1e-8f,
                            0.1f, 3, BF16, ws, NULL), what + ", scaled beforehand");
                    MemorySegment pc = floats(arena, p), mc = floats(arena, m), vc = floats(arena, v);
                    assertOk(LIB.pmoe_adamw_step(n, pc, gs, scale, mc, vc, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 3, BF16,
                            wc, NULL), what);
                    assertArrayEquals(bytes(ps, ms, vs, ws), bytes(pc, mc, vc, wc), what + ": masters, moments, copy");
                    assertArrayEquals(g, read(gs), what + ": the gradients are only read");
                    assertNotEquals(p[0], read(pc)[0], what + ": the update moved the first master");
                }
            }
        }
    }

    /**
     * The update runs 8 lanes wide at AVX2 and 16 at AVX-512 with the same bits: masters,
     * moments and working copy (f32, bf16, none), on lengths covering every tail of both widths,
     * a chunk boundary (2048) and a parallel run, with a zero and a NaN gradient.
     */
    @Test
    void theAvx512UpdateGivesTheAvx2Bits() {
        Random rnd = new Random(22);
        for (int n : new int[] {1, 7, 15, 16, 17, 31, 33, 2047, 2049, 70001}) {
            float[] p = uniform(rnd, n, -3, 3), g = uniform(rnd, n, -1, 1), m = uniform(rnd, n, -0.1, 0.1);
            float[] v = uniform(rnd, n, 0, 0.01);
            if (n > 2) {
                g[1] = 0;
                g[n - 1] = Float.NaN;
            }
            for (int dtype : new int[] {-1, F32, BF16}) {
                byte[][] avx2 = new byte[1][];
                KernelTestSupport.atLevel(panamoe_h.PMOE_ISA_AVX2(), () -> avx2[0] = adamwOutputs(dtype, n, p, g, m, v));
                KernelTestSupport.atLevel(panamoe_h.PMOE_ISA_AVX512(), () -> assertArrayEquals(avx2[0],
                        adamwOutputs(dtype, n, p, g, m, v), "adamw n=" + n + " copy " + dtype + ": AVX-512 vs AVX2"));
            }
        }
    }

    /** One step (working copy of dtype, none when -1): masters, moments and the copy as bytes. */
    private static byte[] adamwOutputs(int dtype, int n, float[] p, float[] g, float[] m, float[] v) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ps = floats(arena, p), ms = floats(arena, m), vs = floats(arena, v);
            MemorySegment working = dtype < 0 ? NULL : arena.allocate((dtype == BF16 ? 2L : 4L) * n, 4).fill((byte) 0xff);
            assertOk(LIB.pmoe_adamw_step(n, ps, floats(arena, g), 1f, ms, vs, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 3,
                    dtype < 0 ? F32 : dtype, working, NULL), "pmoe_adamw_step");
            return dtype < 0 ? bytes(ps, ms, vs) : bytes(ps, ms, vs, working);
        }
    }

    @Test
    void sumSquaresMatchesReference() {
        Random rnd = new Random(19);
        // Around the 65536-element block size, and several blocks.
        for (int n : new int[] {0, 1, 7, 65536, 65537, 300001}) {
            float[] x = uniform(rnd, n, -3, 3);
            double expected = 0;
            for (float f : x) expected += (double) f * f;
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment out = arena.allocate(JAVA_DOUBLE);
                out.set(JAVA_DOUBLE, 0, Double.NaN);
                assertOk(LIB.pmoe_sum_squares(n, n == 0 ? NULL : floats(arena, x), out, NULL), "pmoe_sum_squares");
                // Exact products, n additions in double.
                assertEquals(expected, readDouble(out), 1e-15 * n * expected + 0.0, "sum_squares n=" + n);
            }
        }
    }

    @Test
    void emptyBuffersReadNothing() {
        assertOk(LIB.pmoe_adamw_step(0, NULL, NULL, 1f, NULL, NULL, 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1, F32, NULL, NULL), "adamw, n 0");
    }

    @Test
    void deterministicAcrossThreadCounts() {
        Random rnd = new Random(20);
        int n = 300001;
        float[] p = uniform(rnd, n, -1, 1), g = uniform(rnd, n, -1, 1), m = uniform(rnd, n, -0.1, 0.1), v = uniform(rnd, n, 0, 0.01);
        assertDeterministic("optimizer", arena -> {
            MemorySegment ps = floats(arena, p), ms = floats(arena, m), vs = floats(arena, v), gs = floats(arena, g);
            MemorySegment sum = arena.allocate(JAVA_DOUBLE);
            assertOk(LIB.pmoe_sum_squares(n, gs, sum, NULL), "sum_squares");
            MemorySegment working = arena.allocate(2L * n, 2);
            assertOk(LIB.pmoe_adamw_step(n, ps, gs, 1f, ms, vs, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 7, BF16, working, NULL),
                    "adamw");
            return bytes(sum, ps, ms, vs, working);
        });
    }

    @Test
    void rejectsBadArguments() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment b = floats(arena, new float[4]), out = arena.allocate(JAVA_DOUBLE);
            assertInvalid(LIB.pmoe_adamw_step(4, b, b, -1f, b, b, 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1, F32, NULL, NULL),
                    "grad_scale", "-1");
            assertInvalid(LIB.pmoe_adamw_step(4, b, b, Float.POSITIVE_INFINITY, b, b, 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1,
                    F32, NULL, NULL), "grad_scale", "inf");
            assertInvalid(LIB.pmoe_adamw_step(4, b, b, 1f, b, b, 1e-3f, 1f, 0.999f, 1e-8f, 0f, 1, F32, NULL, NULL), "beta1", "1");
            assertInvalid(LIB.pmoe_adamw_step(4, b, b, 1f, b, b, 1e-3f, 0.9f, -0.5f, 1e-8f, 0f, 1, F32, NULL, NULL), "beta2", "-0.5");
            assertInvalid(LIB.pmoe_adamw_step(4, b, b, 1f, b, b, -1f, 0.9f, 0.999f, 1e-8f, 0f, 1, F32, NULL, NULL), "lr", "-1");
            assertInvalid(LIB.pmoe_adamw_step(4, b, b, 1f, b, b, 1e-3f, 0.9f, 0.999f, 0f, 0f, 1, F32, NULL, NULL), "eps", "0");
            assertInvalid(LIB.pmoe_adamw_step(4, b, b, 1f, b, b, 1e-3f, 0.9f, 0.999f, 1e-8f, Float.NaN, 1, F32, NULL, NULL),
                    "weight_decay", "nan");
            assertInvalid(LIB.pmoe_adamw_step(4, b, b, 1f, b, b, 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 0, F32, NULL, NULL), "step", "0");
            assertInvalid(LIB.pmoe_adamw_step(-4, b, b, 1f, b, b, 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1, F32, NULL, NULL), "n", "-4");
            assertInvalid(LIB.pmoe_adamw_step(4, b, b, 1f, NULL, b, 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1, F32, NULL, NULL), "m", "NULL");
            assertInvalid(LIB.pmoe_adamw_step(4, b, b, 1f, b, b, 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1, 2, NULL, NULL),
                    "working_dtype", "2");
            assertInvalid(LIB.pmoe_sum_squares(4, b, NULL, NULL), "sum_squares", "NULL");
            assertInvalid(LIB.pmoe_sum_squares(4, NULL, out, NULL), "x", "NULL");
            assertInvalid(LIB.pmoe_sum_squares(-1, b, out, NULL), "n", "-1");
        }
    }
}
