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

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** pmoe_embedding_forward/backward against a double reference and finite differences. */
class EmbeddingKernelTest {

    /** out[b, t, :] = wte[ids[b, t], :] + wpe[t, :]. */
    static double[] reference(int batch, int seq, int channels, int[] ids, double[] wte, double[] wpe) {
        double[] out = new double[batch * seq * channels];
        for (int n = 0; n < batch * seq; n++)
            for (int c = 0; c < channels; c++)
                out[n * channels + c] = wte[ids[n] * channels + c] + wpe[(n % seq) * channels + c];
        return out;
    }

    /** {batch, seq, channels, vocab, max_seq}: T = 1, one channel, one word, repeated ids over 3 column blocks. */
    static final int[][] SHAPES = {{2, 5, 7, 11, 8}, {1, 1, 1, 1, 1}, {3, 1, 4, 2, 6}, {3, 4, 130, 3, 4}};

    @Test
    void forwardMatchesReference() {
        Random rnd = new Random(1);
        for (int dtype : DTYPES)
        for (int[] s : SHAPES) {
            int batch = s[0], seq = s[1], channels = s[2], vocab = s[3], maxSeq = s[4];
            int[] ids = randomInts(rnd, batch * seq, 0, vocab);
            float[] wte = representable(dtype, uniform(rnd, vocab * channels, -1, 1));
            float[] wpe = representable(dtype, uniform(rnd, maxSeq * channels, -1, 1));
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment out = nanTensor(arena, dtype, batch * seq * channels);
                assertOk(LIB.pmoe_embedding_forward(dtype, batch, seq, channels, vocab, maxSeq, ints(arena, ids),
                        tensor(arena, dtype, wte), tensor(arena, dtype, wpe), out, NULL), "pmoe_embedding_forward");
                // One rounding (to f32 or bf16) of an exact sum.
                assertClose("embedding forward " + name(dtype) + " " + java.util.Arrays.toString(s),
                        reference(batch, seq, channels, ids, toDouble(wte), toDouble(wpe)), readTensor(out, dtype),
                        0x1p-24 + rounding(dtype), 0);
            }
        }
    }

    /** d<dout, out>/d(wte, wpe) by central differences, added to the gradients already there. */
    @Test
    void backwardAccumulatesFiniteDifferenceGradient() {
        Random rnd = new Random(2);
        for (int dtype : DTYPES)
        for (int[] s : SHAPES) {
            int batch = s[0], seq = s[1], channels = s[2], vocab = s[3], maxSeq = s[4];
            int[] ids = randomInts(rnd, batch * seq, 0, vocab);
            float[] dout = representable(dtype, uniform(rnd, batch * seq * channels, -1, 1));
            float[] dwte0 = uniform(rnd, vocab * channels, -1, 1), dwpe0 = uniform(rnd, maxSeq * channels, -1, 1);
            double[] wte = toDouble(uniform(rnd, vocab * channels, -1, 1));
            double[] wpe = toDouble(uniform(rnd, maxSeq * channels, -1, 1));
            double[] g = toDouble(dout);
            double[] numWte = numericGradient(wte, w -> dot(g, reference(batch, seq, channels, ids, w, wpe)));
            double[] numWpe = numericGradient(wpe, p -> dot(g, reference(batch, seq, channels, ids, wte, p)));
            for (int i = 0; i < numWte.length; i++) numWte[i] += dwte0[i];
            for (int i = 0; i < numWpe.length; i++) numWpe[i] += dwpe0[i];
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment dwte = floats(arena, dwte0), dwpe = floats(arena, dwpe0);
                assertOk(LIB.pmoe_embedding_backward(dtype, batch, seq, channels, vocab, maxSeq, ints(arena, ids),
                        tensor(arena, dtype, dout), dwte, dwpe, NULL), "pmoe_embedding_backward");
                // At most batch * seq + 1 terms of magnitude <= 1, summed in f32 (f32 gradients for
                // both dtypes: a bf16 dout is exact).
                double tol = (batch * seq + 1) * 0x1p-23;
                assertClose("dwte " + java.util.Arrays.toString(s), numWte, read(dwte), 1e-9, tol);
                assertClose("dwpe " + java.util.Arrays.toString(s), numWpe, read(dwpe), 1e-9, tol);
            }
        }
    }

    @Test
    void emptyBatchReadsNothing() {
        assertOk(LIB.pmoe_embedding_forward(F32, 0, 3, 4, 5, 3, NULL, NULL, NULL, NULL, NULL), "forward, batch 0");
        assertOk(LIB.pmoe_embedding_backward(F32, 0, 3, 4, 5, 3, NULL, NULL, NULL, NULL, NULL), "backward, batch 0");
    }

    @Test
    void deterministicAcrossThreadCounts() {
        Random rnd = new Random(3);
        int batch = 4, seq = 33, channels = 200, vocab = 17;
        int[] ids = randomInts(rnd, batch * seq, 0, vocab);
        float[] wte = uniform(rnd, vocab * channels, -1, 1), wpe = uniform(rnd, seq * channels, -1, 1);
        float[] dout = uniform(rnd, batch * seq * channels, -1, 1);
        for (int dtype : DTYPES) {
            assertDeterministic("embedding " + name(dtype), arena -> {
                MemorySegment out = nanTensor(arena, dtype, batch * seq * channels);
                MemorySegment dwte = floats(arena, wte), dwpe = floats(arena, wpe);
                MemorySegment idSeg = ints(arena, ids);
                assertOk(LIB.pmoe_embedding_forward(dtype, batch, seq, channels, vocab, seq, idSeg, tensor(arena, dtype, wte),
                        tensor(arena, dtype, wpe), out, NULL), "forward");
                assertOk(LIB.pmoe_embedding_backward(dtype, batch, seq, channels, vocab, seq, idSeg,
                        tensor(arena, dtype, dout), dwte, dwpe, NULL), "backward");
                return bytes(out, dwte, dwpe);
            });
        }
    }

    @Test
    void rejectsBadArguments() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment wte = floats(arena, new float[6 * 2]), wpe = floats(arena, new float[3 * 2]);
            MemorySegment out = floats(arena, new float[2 * 3 * 2]);
            MemorySegment ids = ints(arena, 0, 1, 2, 3, 6, 5);
            assertInvalid(LIB.pmoe_embedding_forward(F32, 2, 3, 2, 6, 3, ids, wte, wpe, out, NULL), "ids", "ids[4] = 6");
            assertInvalid(LIB.pmoe_embedding_backward(F32, 2, 3, 2, 6, 3, ints(arena, 0, -1, 0, 0, 0, 0), out, wte, wpe, NULL),
                    "ids", "ids[1] = -1");
            MemorySegment good = ints(arena, 0, 1, 2, 3, 4, 5);
            assertInvalid(LIB.pmoe_embedding_forward(F32, 2, 3, 2, 6, 2, good, wte, wpe, out, NULL), "max_seq", "2");
            assertInvalid(LIB.pmoe_embedding_forward(F32, 2, 3, 2, 0, 3, good, wte, wpe, out, NULL), "vocab", "0");
            assertInvalid(LIB.pmoe_embedding_forward(F32, -1, 3, 2, 6, 3, good, wte, wpe, out, NULL), "batch", "-1");
            assertInvalid(LIB.pmoe_embedding_forward(F32, 2, 3, 2, 6, 3, good, NULL, wpe, out, NULL), "wte", "NULL");
            assertInvalid(LIB.pmoe_embedding_backward(F32, 2, 3, 2, 6, 3, good, out, wte, NULL, NULL), "dwpe", "NULL");
            assertInvalid(LIB.pmoe_embedding_forward(3, 2, 3, 2, 6, 3, good, wte, wpe, out, NULL), "dtype", "3");
        }
    }
}
