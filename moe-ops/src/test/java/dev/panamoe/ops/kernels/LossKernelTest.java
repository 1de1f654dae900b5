package dev.panamoe.ops.kernels;

import static dev.panamoe.ops.kernels.KernelTestSupport.F32;
import static dev.panamoe.ops.kernels.KernelTestSupport.LIB;
import static dev.panamoe.ops.kernels.KernelTestSupport.NO_STREAM;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertClose;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertDeterministic;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertInvalid;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertOk;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertRejected;
import static dev.panamoe.ops.kernels.KernelTestSupport.bytes;
import static dev.panamoe.ops.kernels.KernelTestSupport.floats;
import static dev.panamoe.ops.kernels.KernelTestSupport.gaussian;
import static dev.panamoe.ops.kernels.KernelTestSupport.ints;
import static dev.panamoe.ops.kernels.KernelTestSupport.intsFilled;
import static dev.panamoe.ops.kernels.KernelTestSupport.maxAbs;
import static dev.panamoe.ops.kernels.KernelTestSupport.nanTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.numericGradient;
import static dev.panamoe.ops.kernels.KernelTestSupport.toDouble;
import static dev.panamoe.ops.kernels.KernelTestSupport.toFloats;
import static dev.panamoe.ops.kernels.KernelTestSupport.toInts;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.panamoe.bindings.panamoe_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Aux (load-balancing) loss, router z-loss and expert counts against the references and finite differences. */
class LossKernelTest {

    /** {tokens, experts, top_k}: including one token, k = E, tokens < experts. */
    static final int[][] SHAPES = {{1, 1, 1}, {1, 6, 2}, {13, 8, 2}, {4, 4, 4}, {3, 32, 5}, {64, 16, 1}};

    /** Softmax scores (f32) of random logits. */
    static float[] randomScores(Random rnd, int tokens, int experts) {
        double[] s = ReferenceKernels.routerScores(tokens, experts, ReferenceKernels.SOFTMAX, toDouble(gaussian(rnd, tokens * experts, 2)));
        float[] f = new float[s.length];
        for (int i = 0; i < s.length; i++) f[i] = (float) s[i];
        return f;
    }

    /**
     * K distinct experts per token, drawn from a skewed distribution so that some experts get no
     * slots and one gets many; `allToFirst` routes every token's first choice to expert 0.
     */
    static int[] randomIds(Random rnd, int tokens, int experts, int topK, boolean allToFirst) {
        int[] ids = new int[tokens * topK];
        for (int t = 0; t < tokens; t++) {
            boolean[] used = new boolean[experts];
            for (int j = 0; j < topK; j++) {
                int e = j == 0 && allToFirst ? 0 : Math.min(experts - 1, (int) (experts * Math.pow(rnd.nextDouble(), 2)));
                while (used[e]) e = (e + 1) % experts;
                used[e] = true;
                ids[t * topK + j] = e;
            }
        }
        return ids;
    }

    record AuxForward(float loss, int[] counts) {}

    static AuxForward nativeAuxForward(int tokens, int experts, int topK, float[] scores, int[] ids, float coeff) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment loss = nanTensor(arena, F32, 1);
            MemorySegment counts = intsFilled(arena, experts, 0x7eadbeef);
            assertOk(LIB.pmoe_aux_loss_forward(tokens, experts, topK, floats(arena, scores), ints(arena, ids), coeff, loss,
                    counts, NO_STREAM), "pmoe_aux_loss_forward");
            return new AuxForward(toFloats(loss)[0], toInts(counts));
        }
    }

    static float[] nativeAuxBackward(int tokens, int experts, int topK, int[] counts, float coeff, float gradLoss) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment grad = nanTensor(arena, F32, tokens * experts); // overwritten
            assertOk(LIB.pmoe_aux_loss_backward(tokens, experts, topK, ints(arena, counts), coeff, gradLoss, grad, NO_STREAM),
                    "pmoe_aux_loss_backward");
            return toFloats(grad);
        }
    }

    static float nativeZForward(int tokens, int experts, float[] logits, float coeff) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment loss = nanTensor(arena, F32, 1);
            assertOk(LIB.pmoe_z_loss_forward(tokens, experts, floats(arena, logits), coeff, loss, NO_STREAM), "pmoe_z_loss_forward");
            return toFloats(loss)[0];
        }
    }

    /** Starts grad_logits at `initial`: the kernel adds into it. */
    static float[] nativeZBackward(int tokens, int experts, float[] logits, float coeff, float gradLoss, float[] initial) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment grad = floats(arena, initial);
            assertOk(LIB.pmoe_z_loss_backward(tokens, experts, floats(arena, logits), coeff, gradLoss, grad, NO_STREAM),
                    "pmoe_z_loss_backward");
            return toFloats(grad);
        }
    }

    @Test
    void auxLossForwardAndCountsMatchReference() {
        Random rnd = new Random(41);
        for (int[] shape : SHAPES) {
            int tokens = shape[0], experts = shape[1], topK = shape[2];
            for (boolean allToFirst : new boolean[] {false, true}) {
                float[] scores = randomScores(rnd, tokens, experts);
                int[] ids = randomIds(rnd, tokens, experts, topK, allToFirst);
                float coeff = 0.01f;
                AuxForward got = nativeAuxForward(tokens, experts, topK, scores, ids, coeff);
                int[] counts = ReferenceKernels.expertCounts(experts, ids);
                String what = String.format("T=%d E=%d K=%d", tokens, experts, topK);
                assertArrayEquals(counts, got.counts(), what + " expert_counts");
                double loss = ReferenceKernels.auxLoss(tokens, experts, topK, toDouble(scores), counts, coeff);
                // A sum of T * E non-negative terms in f32: relative error ~ sqrt(T E) ulps.
                assertClose(what + " aux loss", new double[] {loss}, new float[] {got.loss()}, 1e-5, 0);
            }
        }
    }

    @Test
    void auxLossBackwardMatchesFiniteDifferences() {
        Random rnd = new Random(42);
        for (int[] shape : SHAPES) {
            int tokens = shape[0], experts = shape[1], topK = shape[2];
            float[] scores = randomScores(rnd, tokens, experts);
            int[] counts = ReferenceKernels.expertCounts(experts, randomIds(rnd, tokens, experts, topK, false));
            float coeff = 0.02f, gradLoss = -1.75f;
            float[] got = nativeAuxBackward(tokens, experts, topK, counts, coeff, gradLoss);
            double[] expected = numericGradient(toDouble(scores),
                    s -> gradLoss * ReferenceKernels.auxLoss(tokens, experts, topK, s, counts, coeff));
            assertClose(String.format("aux grad_scores T=%d E=%d K=%d", tokens, experts, topK), expected, got,
                    1e-5, 1e-7 * maxAbs(expected));
        }
    }

    @Test
    void zLossForwardMatchesReferenceAndBackwardMatchesFiniteDifferences() {
        Random rnd = new Random(43);
        for (int[] shape : SHAPES) {
            int tokens = shape[0], experts = shape[1];
            float[] logits = gaussian(rnd, tokens * experts, 3);
            float coeff = 1e-3f, gradLoss = 2.5f;
            String what = String.format("T=%d E=%d", tokens, experts);
            double loss = ReferenceKernels.zLoss(tokens, experts, toDouble(logits), coeff);
            assertClose(what + " z loss", new double[] {loss}, new float[] {nativeZForward(tokens, experts, logits, coeff)}, 1e-5, 0);

            float[] initial = gaussian(rnd, tokens * experts, 1e-3);
            float[] got = nativeZBackward(tokens, experts, logits, coeff, gradLoss, initial);
            double[] gradient = numericGradient(toDouble(logits),
                    x -> gradLoss * ReferenceKernels.zLoss(tokens, experts, x, coeff));
            double[] expected = new double[gradient.length];
            for (int i = 0; i < expected.length; i++) expected[i] = initial[i] + gradient[i];
            // initial + gradient rounds once more in f32: covered by the relative term.
            assertClose(what + " z grad_logits (accumulated)", expected, got, 1e-5, 1e-7 * maxAbs(expected));
        }
    }

    @Test
    void zLossIsStableForLargeLogits() {
        float[] logits = {1000, 999, -1000, 0, -1000, -1001};
        double loss = ReferenceKernels.zLoss(2, 3, toDouble(logits), 1);
        assertClose("z loss of large logits", new double[] {loss}, new float[] {nativeZForward(2, 3, logits, 1)}, 1e-5, 0);
    }

    @Test
    void deterministicAcrossRunsAndThreadCounts() {
        Random rnd = new Random(44);
        int tokens = 4096, experts = 64, topK = 4;
        float[] scores = randomScores(rnd, tokens, experts);
        int[] ids = randomIds(rnd, tokens, experts, topK, false);
        float[] logits = gaussian(rnd, tokens * experts, 3);
        float[] initial = gaussian(rnd, tokens * experts, 1);
        assertDeterministic("aux loss forward", arena -> {
            AuxForward f = nativeAuxForward(tokens, experts, topK, scores, ids, 0.01f);
            return bytes(floats(arena, f.loss()), ints(arena, f.counts()));
        });
        int[] counts = ReferenceKernels.expertCounts(experts, ids);
        assertDeterministic("aux loss backward", arena -> bytes(floats(arena, nativeAuxBackward(tokens, experts, topK, counts, 0.01f, 1))));
        assertDeterministic("z loss forward", arena -> bytes(floats(arena, nativeZForward(tokens, experts, logits, 1e-3f))));
        assertDeterministic("z loss backward", arena -> bytes(floats(arena, nativeZBackward(tokens, experts, logits, 1e-3f, 1, initial))));
    }

    @Test
    void rejectsBadArguments() {
        int tokens = 2, experts = 4, topK = 2;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment scores = floats(arena, new float[tokens * experts]);
            MemorySegment ids = ints(arena, 0, 1, 2, 3);
            MemorySegment loss = floats(arena, 0f);
            MemorySegment counts = ints(arena, new int[experts]);
            MemorySegment grad = floats(arena, new float[tokens * experts]);

            assertInvalid(LIB.pmoe_aux_loss_forward(tokens, experts, topK, scores, ints(arena, 0, 1, 2, 4), 1, loss, counts, NO_STREAM),
                    "topk_ids", "4");
            assertInvalid(LIB.pmoe_aux_loss_forward(tokens, experts, topK, scores, ints(arena, 0, -3, 2, 1), 1, loss, counts, NO_STREAM),
                    "topk_ids", "-3");
            assertInvalid(LIB.pmoe_aux_loss_forward(tokens, experts, 0, scores, ids, 1, loss, counts, NO_STREAM), "top_k", "0");
            assertInvalid(LIB.pmoe_aux_loss_forward(tokens, experts, 5, scores, ids, 1, loss, counts, NO_STREAM), "top_k", "5");
            assertInvalid(LIB.pmoe_aux_loss_forward(-2, experts, topK, scores, ids, 1, loss, counts, NO_STREAM), "tokens", "-2");
            assertInvalid(LIB.pmoe_aux_loss_forward(tokens, experts, topK, MemorySegment.NULL, ids, 1, loss, counts, NO_STREAM), "scores", null);
            assertInvalid(LIB.pmoe_aux_loss_forward(tokens, experts, topK, scores, ids, 1, MemorySegment.NULL, counts, NO_STREAM), "loss", null);
            assertInvalid(LIB.pmoe_aux_loss_forward(tokens, experts, topK, scores, ids, 1, loss, MemorySegment.NULL, NO_STREAM),
                    "expert_counts", null);
            assertInvalid(LIB.pmoe_aux_loss_backward(tokens, experts, topK, MemorySegment.NULL, 1, 1, grad, NO_STREAM), "expert_counts", null);
            assertInvalid(LIB.pmoe_aux_loss_backward(tokens, experts, topK, counts, 1, 1, MemorySegment.NULL, NO_STREAM), "grad_scores", null);
            assertInvalid(LIB.pmoe_aux_loss_backward(tokens, -1, topK, counts, 1, 1, grad, NO_STREAM), "experts", "-1");
            assertInvalid(LIB.pmoe_aux_loss_backward(tokens, experts, topK, ints(arena, 1, -1, 2, 2), 1, 1, grad, NO_STREAM),
                    "expert_counts", "-1");
            assertInvalid(LIB.pmoe_aux_loss_backward(tokens, experts, topK, ints(arena, 0, 5, 0, 0), 1, 1, grad, NO_STREAM),
                    "expert_counts", "5"); // more than the T * K = 4 slots

            assertInvalid(LIB.pmoe_z_loss_forward(-1, experts, scores, 1, loss, NO_STREAM), "tokens", "-1");
            assertInvalid(LIB.pmoe_z_loss_forward(tokens, 0, scores, 1, loss, NO_STREAM), "experts", "0");
            assertInvalid(LIB.pmoe_z_loss_forward(tokens, experts, MemorySegment.NULL, 1, loss, NO_STREAM), "logits", null);
            assertInvalid(LIB.pmoe_z_loss_forward(tokens, experts, scores, 1, MemorySegment.NULL, NO_STREAM), "loss", null);
            assertInvalid(LIB.pmoe_z_loss_backward(tokens, experts, scores, 1, 1, MemorySegment.NULL, NO_STREAM), "grad_logits", null);
            assertInvalid(LIB.pmoe_z_loss_backward(tokens, experts, MemorySegment.NULL, 1, 1, grad, NO_STREAM), "logits", null);
            MemorySegment nan = floats(arena, 0, 1, 2, 3, 4, Float.NaN, 6, 7);
            assertRejected(panamoe_h.PMOE_ERR_NON_FINITE(), LIB.pmoe_z_loss_forward(tokens, experts, nan, 1, loss, NO_STREAM), "logits", "nan");
            assertRejected(panamoe_h.PMOE_ERR_NON_FINITE(), LIB.pmoe_z_loss_backward(tokens, experts, nan, 1, 1, grad, NO_STREAM), "logits",
                    "nan");
        }
    }
}
