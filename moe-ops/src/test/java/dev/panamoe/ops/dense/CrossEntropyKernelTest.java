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
import static dev.panamoe.ops.dense.DenseTestSupport.floats;
import static dev.panamoe.ops.dense.DenseTestSupport.ints;
import static dev.panamoe.ops.dense.DenseTestSupport.nans;
import static dev.panamoe.ops.dense.DenseTestSupport.numericGradient;
import static dev.panamoe.ops.dense.DenseTestSupport.randomInts;
import static dev.panamoe.ops.dense.DenseTestSupport.read;
import static dev.panamoe.ops.dense.DenseTestSupport.toDouble;
import static dev.panamoe.ops.dense.DenseTestSupport.name;
import static dev.panamoe.ops.dense.DenseTestSupport.rounding;
import static dev.panamoe.ops.dense.DenseTestSupport.uniform;
import static dev.panamoe.ops.kernels.KernelTestSupport.nanTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.readTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.representable;
import static dev.panamoe.ops.kernels.KernelTestSupport.tensor;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** pmoe_cross_entropy_forward/backward against a double reference and its finite differences. */
class CrossEntropyKernelTest {

    /** Per-row losses logsumexp(row) - row[target], 0 for target -1. */
    static double[] reference(int rows, int vocab, double[] logits, int[] targets) {
        double[] losses = new double[rows];
        for (int r = 0; r < rows; r++) {
            if (targets[r] < 0) continue;
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (int v = 0; v < vocab; v++) max = Math.max(max, logits[r * vocab + v]);
            for (int v = 0; v < vocab; v++) sum += Math.exp(logits[r * vocab + v] - max);
            losses[r] = Math.log(sum) + max - logits[r * vocab + targets[r]];
        }
        return losses;
    }

    /** Targets in [0, vocab), about a quarter of them -1 (ignored). */
    static int[] targets(Random rnd, int rows, int vocab) {
        int[] t = randomInts(rnd, rows, 0, vocab);
        for (int r = 0; r < rows; r++) if (rnd.nextInt(4) == 0) t[r] = -1;
        return t;
    }

    /** {rows, vocab}: a vocabulary of one and of two words, a single row, a wide vocabulary. */
    static final int[][] SHAPES = {{4, 2}, {3, 1}, {1, 5}, {9, 10}, {5, 1000}};

    @Test
    void forwardMatchesReference() {
        Random rnd = new Random(14);
        for (int dtype : DTYPES)
        for (int[] s : SHAPES) {
            for (double range : new double[] {5, 200}) { // 200: exp would overflow without the max
                int rows = s[0], vocab = s[1];
                float[] logits = representable(dtype, uniform(rnd, rows * vocab, -range, range));
                int[] targets = targets(rnd, rows, vocab);
                double[] expected = reference(rows, vocab, toDouble(logits), targets);
                double total = 0;
                int kept = 0;
                for (int r = 0; r < rows; r++) if (targets[r] >= 0) { total += expected[r]; kept++; }
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment losses = nans(arena, rows), mean = nans(arena, 1), count = ints(arena, -7);
                    assertOk(LIB.pmoe_cross_entropy_forward(dtype, rows, vocab, tensor(arena, dtype, logits),
                            ints(arena, targets), losses, mean, count, NULL), "pmoe_cross_entropy_forward");
                    String what = "cross-entropy " + name(dtype) + " rows=" + rows + " vocab=" + vocab + " range=" + range;
                    // f32 math on the (bf16-exact) logits, f32 losses: errors of a few ulps of max |logit|.
                    assertClose(what + " losses", expected, read(losses), 1e-6, range * 1e-6);
                    assertEquals(kept, count.get(JAVA_INT, 0), what + " kept_rows");
                    assertClose(what + " mean", new double[] {kept == 0 ? 0 : total / kept}, read(mean), 1e-6, range * 1e-6);
                }
            }
        }
    }

    @Test
    void allIgnoredAndEmptyGiveZeroMean() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment losses = nans(arena, 3), mean = nans(arena, 1), count = ints(arena, -7);
            assertOk(LIB.pmoe_cross_entropy_forward(F32, 3, 4, floats(arena, uniform(new Random(15), 12, -1, 1)),
                    ints(arena, -1, -1, -1), losses, mean, count, NULL), "all ignored");
            assertClose("all ignored losses", new double[3], read(losses), 0, 0);
            assertEquals(0f, mean.get(JAVA_FLOAT, 0));
            assertEquals(0, count.get(JAVA_INT, 0));
            MemorySegment mean0 = nans(arena, 1), count0 = ints(arena, -7);
            assertOk(LIB.pmoe_cross_entropy_forward(F32, 0, 4, NULL, NULL, NULL, mean0, count0, NULL), "rows 0");
            assertEquals(0f, mean0.get(JAVA_FLOAT, 0));
            assertEquals(0, count0.get(JAVA_INT, 0));
            assertOk(LIB.pmoe_cross_entropy_backward(F32, 0, 4, NULL, NULL, 1f, NULL, NULL), "backward, rows 0");
        }
    }

    /**
     * dlogits (overwritten, NaN before; also computed in place over the logits) against central
     * differences of grad_scale * sum_r loss_r; ignored rows must get exact zeros.
     */
    @Test
    void backwardMatchesFiniteDifferences() {
        Random rnd = new Random(16);
        for (int dtype : DTYPES)
        for (int[] s : SHAPES) {
            int rows = s[0], vocab = s[1];
            float[] logits = representable(dtype, uniform(rnd, rows * vocab, -5, 5));
            int[] targets = targets(rnd, rows, vocab);
            float scale = 1f / 3;
            double[] expected = numericGradient(toDouble(logits), x -> {
                double sum = 0;
                for (double l : reference(rows, vocab, x, targets)) sum += l;
                return scale * sum;
            });
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment targetSeg = ints(arena, targets), dlogits = nanTensor(arena, dtype, logits.length);
                assertOk(LIB.pmoe_cross_entropy_backward(dtype, rows, vocab, tensor(arena, dtype, logits), targetSeg, scale,
                        dlogits, NULL), "pmoe_cross_entropy_backward");
                // Probabilities in f32: a few ulps of 1, times the scale (plus one bf16 rounding).
                String what = "cross-entropy backward " + name(dtype) + " rows=" + rows + " vocab=" + vocab;
                double relative = 1e-5 + rounding(dtype);
                assertClose(what, expected, readTensor(dlogits, dtype), relative, 1e-7);
                MemorySegment inPlace = tensor(arena, dtype, logits);
                assertOk(LIB.pmoe_cross_entropy_backward(dtype, rows, vocab, inPlace, targetSeg, scale, inPlace, NULL),
                        "in place");
                assertClose(what + " in place", expected, readTensor(inPlace, dtype), relative, 1e-7);
                float[] got = readTensor(dlogits, dtype);
                for (int r = 0; r < rows; r++)
                    if (targets[r] < 0)
                        for (int v = 0; v < vocab; v++) assertEquals(0f, got[r * vocab + v], what + " ignored row " + r);
            }
        }
    }

    /**
     * A NaN logit, a +inf one, or a row of only -inf makes that row's loss, the mean and the row's
     * gradient NaN, as exp's arithmetic does (the kernels' fast exp alone would make numbers of
     * them); a -inf among finite logits is a probability of 0; the other rows are untouched. A wide
     * row too (4099 logits: the loops' vector bodies and tails).
     */
    @Test
    void aNonFiniteLogitMakesItsRowNaN() {
        float inf = Float.POSITIVE_INFINITY;
        for (int vocab : new int[] {3, 4099})
        for (int dtype : DTYPES) {
            int rows = 5;
            float[] logits = representable(dtype, uniform(new Random(18), rows * vocab, -3, 3));
            logits[vocab / 2] = Float.NaN;                                      // row 0
            logits[vocab + vocab - 1] = inf;                                    // row 1
            for (int v = 0; v < vocab; v++) logits[2 * vocab + v] = -inf;       // row 2
            logits[3 * vocab + 1] = -inf;                                       // row 3: finite loss
            int[] targets = {0, 0, 0, 0, 2};
            String what = "cross-entropy " + name(dtype) + " vocab=" + vocab;
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment losses = nans(arena, rows), mean = floats(arena, 0), count = ints(arena, -7);
                assertOk(LIB.pmoe_cross_entropy_forward(dtype, rows, vocab, tensor(arena, dtype, logits),
                        ints(arena, targets), losses, mean, count, NULL), what);
                float[] got = read(losses);
                for (int r = 0; r < 3; r++) assertEquals(Float.NaN, got[r], what + " loss of row " + r);
                double[] finite = reference(2, vocab, toDouble(Arrays.copyOfRange(logits, 3 * vocab, 5 * vocab)),
                        new int[] {0, 2});
                assertClose(what + " finite rows", finite, new float[] {got[3], got[4]}, 1e-6, 3e-6);
                assertEquals(Float.NaN, mean.get(JAVA_FLOAT, 0), what + " mean");

                MemorySegment dlogits = tensor(arena, dtype, new float[rows * vocab]);
                assertOk(LIB.pmoe_cross_entropy_backward(dtype, rows, vocab, tensor(arena, dtype, logits),
                        ints(arena, targets), 1f, dlogits, NULL), what + " backward");
                float[] d = readTensor(dlogits, dtype);
                for (int i = 0; i < 3 * vocab; i++) assertEquals(Float.NaN, d[i], what + " gradient " + i);
                for (int i = 3 * vocab; i < 5 * vocab; i++) assertTrue(Float.isFinite(d[i]), what + " gradient " + i);
                assertEquals(0f, d[3 * vocab + 1], what + ": a -inf logit's probability is 0");
            }
        }
    }

    @Test
    void deterministicAcrossThreadCounts() {
        Random rnd = new Random(17);
        int rows = 37, vocab = 300;
        float[] logits = uniform(rnd, rows * vocab, -5, 5);
        int[] targets = targets(rnd, rows, vocab);
        for (int dtype : DTYPES) {
            assertDeterministic("cross-entropy " + name(dtype), arena -> {
                MemorySegment x = tensor(arena, dtype, logits), t = ints(arena, targets);
                MemorySegment losses = nans(arena, rows), mean = nans(arena, 1);
                MemorySegment dlogits = nanTensor(arena, dtype, logits.length);
                assertOk(LIB.pmoe_cross_entropy_forward(dtype, rows, vocab, x, t, losses, mean, NULL, NULL), "forward");
                assertOk(LIB.pmoe_cross_entropy_backward(dtype, rows, vocab, x, t, 0.1f, dlogits, NULL), "backward");
                return bytes(losses, mean, dlogits);
            });
        }
    }

    @Test
    void rejectsBadArguments() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment x = floats(arena, new float[3 * 4]), losses = floats(arena, new float[3]);
            assertInvalid(LIB.pmoe_cross_entropy_forward(F32, 3, 4, x, ints(arena, 0, -2, 1), losses, NULL, NULL, NULL),
                    "targets", "targets[1] = -2");
            assertInvalid(LIB.pmoe_cross_entropy_backward(F32, 3, 4, x, ints(arena, 0, 1, 4), 1f, x, NULL),
                    "targets", "targets[2] = 4");
            MemorySegment good = ints(arena, 0, 1, 2);
            assertInvalid(LIB.pmoe_cross_entropy_forward(F32, 3, 0, x, good, losses, NULL, NULL, NULL), "vocab", "0");
            assertInvalid(LIB.pmoe_cross_entropy_forward(F32, -1, 4, x, good, losses, NULL, NULL, NULL), "rows", "-1");
            assertInvalid(LIB.pmoe_cross_entropy_forward(F32, 3, 4, x, good, NULL, NULL, NULL, NULL), "losses", "NULL");
            assertInvalid(LIB.pmoe_cross_entropy_backward(F32, 3, 4, x, good, Float.NaN, x, NULL), "grad_scale", "nan");
            assertInvalid(LIB.pmoe_cross_entropy_backward(F32, 3, 4, x, good, 1f, NULL, NULL), "dlogits", "NULL");
            assertInvalid(LIB.pmoe_cross_entropy_forward(5, 3, 4, x, good, losses, NULL, NULL, NULL), "dtype", "5");
        }
    }
}
