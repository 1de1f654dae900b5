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
import static dev.panamoe.ops.kernels.KernelTestSupport.dot;
import static dev.panamoe.ops.kernels.KernelTestSupport.floats;
import static dev.panamoe.ops.kernels.KernelTestSupport.gaussian;
import static dev.panamoe.ops.kernels.KernelTestSupport.ints;
import static dev.panamoe.ops.kernels.KernelTestSupport.maxAbs;
import static dev.panamoe.ops.kernels.KernelTestSupport.nanTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.row;
import static dev.panamoe.ops.kernels.KernelTestSupport.rowwiseNumericGradient;
import static dev.panamoe.ops.kernels.KernelTestSupport.toDouble;
import static dev.panamoe.ops.kernels.KernelTestSupport.toFloats;
import static dev.panamoe.ops.kernels.KernelTestSupport.toInts;
import static dev.panamoe.ops.kernels.ReferenceKernels.SIGMOID;
import static dev.panamoe.ops.kernels.ReferenceKernels.SOFTMAX;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.panamoe.bindings.panamoe_h;
import dev.panamoe.bindings.pmoe_router_config;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** pmoe_router_forward / _backward against the router references and finite differences. */
class RouterKernelTest {

    /** {tokens, experts, top_k}: one token, one expert, k = E, tokens < experts, odd sizes, and every k of E = 6. */
    static final int[][] SHAPES = {{1, 1, 1}, {1, 8, 1}, {17, 8, 8}, {33, 16, 3}, {3, 64, 6}, {40, 7, 4},
        {5, 6, 1}, {5, 6, 2}, {5, 6, 3}, {5, 6, 4}, {5, 6, 5}, {5, 6, 6}};

    /**
     * Logits on a 1/8 grid in [-8, 8]: equal logits give exactly equal scores (so ties are real
     * ties in every implementation) and distinct ones differ by far more than f32 rounding of the
     * scores, so the top-k choice does not depend on how the scores are rounded.
     */
    static float[] gridLogits(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) Math.max(-8, Math.min(8, Math.rint(rnd.nextGaussian() * 16) / 8));
        return v;
    }

    static MemorySegment config(Arena arena, int tokens, int experts, int topK, int scoreFunc, boolean renormalize) {
        MemorySegment cfg = pmoe_router_config.allocate(arena);
        pmoe_router_config.tokens(cfg, tokens);
        pmoe_router_config.experts(cfg, experts);
        pmoe_router_config.top_k(cfg, topK);
        pmoe_router_config.score_func(cfg, scoreFunc);
        pmoe_router_config.renormalize(cfg, renormalize ? 1 : 0);
        pmoe_router_config.reserved(cfg, 0);
        return cfg;
    }

    record Forward(float[] scores, float[] weights, int[] ids) {}

    static Forward nativeForward(int tokens, int experts, int topK, int scoreFunc, boolean renormalize, float[] logits) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment scores = nanTensor(arena, F32, tokens * experts);
            MemorySegment weights = nanTensor(arena, F32, tokens * topK);
            MemorySegment ids = ints(arena, new int[tokens * topK]);
            assertOk(LIB.pmoe_router_forward(config(arena, tokens, experts, topK, scoreFunc, renormalize),
                    floats(arena, logits), scores, weights, ids, NO_STREAM), "pmoe_router_forward");
            return new Forward(toFloats(scores), toFloats(weights), toInts(ids));
        }
    }

    /** grad_scores may be null (the kernel then gets NULL). */
    static float[] nativeBackward(int tokens, int experts, int topK, int scoreFunc, boolean renormalize, float[] scores,
                                  int[] ids, float[] gradWeights, float[] gradScores) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment gradLogits = nanTensor(arena, F32, tokens * experts);
            assertOk(LIB.pmoe_router_backward(config(arena, tokens, experts, topK, scoreFunc, renormalize),
                    floats(arena, scores), ints(arena, ids), floats(arena, gradWeights),
                    gradScores == null ? MemorySegment.NULL : floats(arena, gradScores), gradLogits, NO_STREAM),
                    "pmoe_router_backward");
            return toFloats(gradLogits);
        }
    }

    static String describe(int[] shape, int scoreFunc, boolean renormalize) {
        return String.format("T=%d E=%d K=%d %s renormalize=%b", shape[0], shape[1], shape[2],
                scoreFunc == SOFTMAX ? "softmax" : "sigmoid", renormalize);
    }

    @Test
    void forwardMatchesReference() {
        Random rnd = new Random(31);
        for (int[] shape : SHAPES) {
            int tokens = shape[0], experts = shape[1], topK = shape[2];
            for (int scoreFunc : new int[] {SOFTMAX, SIGMOID}) {
                for (boolean renormalize : new boolean[] {false, true}) {
                    String what = describe(shape, scoreFunc, renormalize);
                    float[] logits = gridLogits(rnd, tokens * experts);
                    Forward got = nativeForward(tokens, experts, topK, scoreFunc, renormalize, logits);
                    double[] scores = ReferenceKernels.routerScores(tokens, experts, scoreFunc, toDouble(logits));
                    int[] ids = ReferenceKernels.topkIds(tokens, experts, topK, scores);
                    double[] weights = ReferenceKernels.topkWeights(tokens, experts, topK, renormalize, scores, ids);
                    // exp/sigmoid and an E-term normalisation in f32: a few ulps, << 1e-5 relative.
                    assertClose(what + " scores", scores, got.scores(), 1e-5, 0);
                    assertArrayEquals(ids, got.ids(), what + " topk_ids (largest first, ties to the lower id)");
                    assertClose(what + " topk_weights", weights, got.weights(), 1e-5, 0);
                }
            }
        }
    }

    @Test
    void tiesGoToTheLowerExpertId() {
        // Row 0: all equal; row 1: a tie between experts 5 and 2 for the last place; row 2: 0 and 7 tie for first.
        int experts = 8, topK = 3;
        float[] logits = {
            1, 1, 1, 1, 1, 1, 1, 1,
            0, 0, 2, 0, 3, 2, 4, 0,
            5, 0, 0, 0, 0, 0, 0, 5};
        int[] expected = {0, 1, 2, 6, 4, 2, 0, 7, 1};
        for (int scoreFunc : new int[] {SOFTMAX, SIGMOID}) {
            assertArrayEquals(expected, nativeForward(3, experts, topK, scoreFunc, false, logits).ids(),
                    scoreFunc == SOFTMAX ? "softmax" : "sigmoid");
        }
    }

    @Test
    void softmaxRenormalizedWeightsAreASoftmaxOverTheSelectedLogits() {
        Random rnd = new Random(32);
        int tokens = 9, experts = 12, topK = 4;
        float[] logits = gridLogits(rnd, tokens * experts);
        Forward got = nativeForward(tokens, experts, topK, SOFTMAX, true, logits);
        double[] expected = new double[tokens * topK];
        for (int t = 0; t < tokens; t++) {
            double sum = 0;
            for (int j = 0; j < topK; j++) sum += Math.exp(logits[t * experts + got.ids()[t * topK + j]]);
            for (int j = 0; j < topK; j++) expected[t * topK + j] = Math.exp(logits[t * experts + got.ids()[t * topK + j]]) / sum;
        }
        assertClose("softmax over selected logits", expected, got.weights(), 1e-5, 0);
    }

    /**
     * The backward's loss is sum gw * topk_weights + sum gs * scores, a function of the logits with
     * the selected ids held fixed (so ties do not matter); its central differences on the double
     * forward, token by token, are the reference.
     */
    @Test
    void backwardMatchesFiniteDifferencesOfReferenceForward() {
        Random rnd = new Random(33);
        for (int[] shape : SHAPES) {
            int tokens = shape[0], experts = shape[1], topK = shape[2];
            for (int scoreFunc : new int[] {SOFTMAX, SIGMOID}) {
                for (boolean renormalize : new boolean[] {false, true}) {
                    for (boolean withGradScores : new boolean[] {false, true}) {
                        String what = describe(shape, scoreFunc, renormalize) + " grad_scores=" + withGradScores;
                        float[] logits = gridLogits(rnd, tokens * experts);
                        Forward fwd = nativeForward(tokens, experts, topK, scoreFunc, renormalize, logits);
                        float[] gradWeights = gaussian(rnd, tokens * topK, 1);
                        float[] gradScores = withGradScores ? gaussian(rnd, tokens * experts, 1) : null;
                        float[] got = nativeBackward(tokens, experts, topK, scoreFunc, renormalize, fwd.scores(), fwd.ids(),
                                gradWeights, gradScores);

                        double[] gw = toDouble(gradWeights);
                        double[] gs = gradScores == null ? null : toDouble(gradScores);
                        double[] expected = rowwiseNumericGradient(toDouble(logits), experts, (t, x) -> {
                            double[] s = ReferenceKernels.routerScores(1, experts, scoreFunc, x);
                            double[] w = ReferenceKernels.topkWeights(1, experts, topK, renormalize, s, row(fwd.ids(), t, topK));
                            return dot(row(gw, t, topK), w) + (gs == null ? 0 : dot(row(gs, t, experts), s));
                        });
                        // f32 chain rule over <= E terms per row: a few ulps of the largest term, which
                        // is O(max |gradient input|) since scores lie in (0, 1).
                        double floor = 1e-6 * (maxAbs(gw) + (gs == null ? 0 : maxAbs(gs)));
                        assertClose(what + " grad_logits", expected, got, 1e-5, floor);
                    }
                }
            }
        }
    }

    @Test
    void deterministicAcrossRunsAndThreadCounts() {
        Random rnd = new Random(34);
        int tokens = 1024, experts = 64, topK = 6;
        float[] logits = gridLogits(rnd, tokens * experts);
        float[] gradWeights = gaussian(rnd, tokens * topK, 1), gradScores = gaussian(rnd, tokens * experts, 1);
        for (int scoreFunc : new int[] {SOFTMAX, SIGMOID}) {
            Forward fwd = nativeForward(tokens, experts, topK, scoreFunc, true, logits);
            assertDeterministic("router forward", arena -> {
                Forward f = nativeForward(tokens, experts, topK, scoreFunc, true, logits);
                return bytes(floats(arena, f.scores()), floats(arena, f.weights()), ints(arena, f.ids()));
            });
            assertDeterministic("router backward", arena -> bytes(floats(arena,
                    nativeBackward(tokens, experts, topK, scoreFunc, true, fwd.scores(), fwd.ids(), gradWeights, gradScores))));
        }
    }

    @Test
    void rejectsBadArgumentsAndNonFiniteLogits() {
        int tokens = 2, experts = 4;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment logits = floats(arena, new float[tokens * experts]);
            MemorySegment scores = floats(arena, new float[tokens * experts]);
            MemorySegment weights = floats(arena, new float[tokens * experts]);
            MemorySegment ids = ints(arena, new int[tokens * experts]);
            MemorySegment grad = floats(arena, new float[tokens * experts]);

            assertInvalid(LIB.pmoe_router_forward(MemorySegment.NULL, logits, scores, weights, ids, NO_STREAM), "cfg", null);
            assertInvalid(forward(config(arena, tokens, experts, 0, SOFTMAX, false), logits, scores, weights, ids), "top_k", "0");
            assertInvalid(forward(config(arena, tokens, experts, 5, SOFTMAX, false), logits, scores, weights, ids), "top_k", "5");
            assertInvalid(forward(config(arena, -1, experts, 1, SOFTMAX, false), logits, scores, weights, ids), "tokens", "-1");
            assertInvalid(forward(config(arena, tokens, 0, 1, SOFTMAX, false), logits, scores, weights, ids), "experts", "0");
            assertInvalid(forward(config(arena, tokens, experts, 1, 2, false), logits, scores, weights, ids), "score_func", "2");
            MemorySegment reserved = config(arena, tokens, experts, 1, SOFTMAX, false);
            pmoe_router_config.reserved(reserved, 7);
            assertInvalid(forward(reserved, logits, scores, weights, ids), "reserved", "7");
            MemorySegment good = config(arena, tokens, experts, 2, SOFTMAX, true);
            assertInvalid(forward(good, MemorySegment.NULL, scores, weights, ids), "logits", null);
            assertInvalid(forward(good, logits, MemorySegment.NULL, weights, ids), "scores", null);
            assertInvalid(forward(good, logits, scores, MemorySegment.NULL, ids), "topk_weights", null);
            assertInvalid(forward(good, logits, scores, weights, MemorySegment.NULL), "topk_ids", null);

            for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
                float[] values = new float[tokens * experts];
                values[6] = bad;
                assertRejected(panamoe_h.PMOE_ERR_NON_FINITE(), forward(good, floats(arena, values), scores, weights, ids),
                        "logits", null);
            }

            MemorySegment badIds = ints(arena, 0, 1, 3, 4); // expert 4 of 4
            assertInvalid(LIB.pmoe_router_backward(good, scores, badIds, grad, MemorySegment.NULL, grad, NO_STREAM), "topk_ids", "4");
            MemorySegment negativeId = ints(arena, 0, -1, 3, 2);
            assertInvalid(LIB.pmoe_router_backward(good, scores, negativeId, grad, MemorySegment.NULL, grad, NO_STREAM), "topk_ids", "-1");
            MemorySegment okIds = ints(arena, 0, 1, 3, 2);
            assertInvalid(LIB.pmoe_router_backward(good, MemorySegment.NULL, okIds, grad, grad, grad, NO_STREAM), "scores", null);
            assertInvalid(LIB.pmoe_router_backward(good, scores, okIds, MemorySegment.NULL, grad, grad, NO_STREAM), "grad_topk_weights", null);
            assertInvalid(LIB.pmoe_router_backward(good, scores, okIds, grad, grad, MemorySegment.NULL, NO_STREAM), "grad_logits", null);
            assertInvalid(LIB.pmoe_router_backward(config(arena, tokens, experts, 9, SOFTMAX, true), scores, okIds, grad,
                    grad, grad, NO_STREAM), "top_k", "9");
        }
    }

    private static int forward(MemorySegment cfg, MemorySegment logits, MemorySegment scores, MemorySegment weights, MemorySegment ids) {
        return LIB.pmoe_router_forward(cfg, logits, scores, weights, ids, NO_STREAM);
    }
}
