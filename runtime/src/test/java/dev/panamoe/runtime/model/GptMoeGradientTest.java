package dev.panamoe.runtime.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.Activation;
import dev.panamoe.ops.Backend;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The whole model's backward against central finite differences of forward's total loss
 * (cross-entropy + aux + z), on a few random coordinates of every parameter tensor.
 *
 * <p>The model runs in f32, so the difference quotient carries the rounding of the loss:
 * a few ulps of a loss near 2.5 (ulp 2.4e-7), amplified through the blocks to about 1e-6,
 * divided by the step 2h = 2e-2 gives ~5e-5. The step's truncation error h^2/6 * f''' is of the
 * same order for weights of size ~0.3. Hence |numeric - analytic| <= 2e-4 + 1e-2 * |analytic|:
 * the worst error measured is under a tenth of that, while a dropped term (the aux/z gradient,
 * a residual branch) fails it by a wide margin — coordinates are chosen where |analytic| > 1e-3.
 * A coordinate whose step changes the routing (a top-k flip makes the loss jump) is replaced.
 */
class GptMoeGradientTest {
    private static final Backend CPU = CpuBackend.get();
    private static final double H = 1e-2;
    private static final double ABS_TOL = 2e-4;
    private static final double REL_TOL = 1e-2;
    private static final int COORDS_PER_TENSOR = 3;
    private static final int BATCH = 2;
    private static final int SEQ = 5;

    /** LayerNorm, untied head, GeLU experts top-2 (renormalised), dropless; a dense and an MoE block. */
    @Test
    void layerNormUntiedTop2() {
        GptMoeConfig config = ModelTestData.small().tiedEmbeddings(false).auxLossCoeff(0.1f).zLossCoeff(0.01f).build();
        checkModel(config, 1);
    }

    /** RMSNorm, tied embeddings, SwiGLU experts top-1 (raw score weight), capacity 1.0 with drops, all blocks MoE. */
    @Test
    void rmsNormTiedTop1WithCapacity() {
        GptMoeConfig config = ModelTestData.small().norm(Norm.RMS).tiedEmbeddings(true).moeEvery(1).experts(3).topK(1)
                .expertActivation(Activation.SWIGLU).capacityFactor(1.0).auxLossCoeff(0.1f).zLossCoeff(0.01f).build();
        checkModel(config, 2);
    }

    private static void checkModel(GptMoeConfig config, long seed) {
        int threads = CPU.numThreads();
        CPU.setNumThreads(1); // hundreds of passes over 10 tokens: thread hand-offs would dominate
        try {
            checkCoordinates(config, seed);
        } finally {
            CPU.setNumThreads(threads);
        }
    }

    private static void checkCoordinates(GptMoeConfig config, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        int[] inputs = ModelTestData.ids(rng, BATCH * SEQ, 0, config.vocab());
        int[] targets = ModelTestData.ids(rng, BATCH * SEQ, 0, config.vocab());
        targets[3] = -1; // an ignored position
        try (GptMoeModel model = new GptMoeModel(CPU, config, seed)) {
            List<Parameter> params = model.parameters();
            randomise(params, rng);
            model.zeroGrad();
            model.forward(inputs, targets, BATCH, SEQ);
            model.backward(1f);
            Set<String> kinds = new HashSet<>();
            double worst = 0;
            for (Parameter p : params) {
                float[] grad = p.grad().toFloatArray();
                int checked = 0;
                for (int attempt = 0; attempt < 40 && checked < COORDS_PER_TENSOR; attempt++) {
                    int i = rng.nextInt(grad.length);
                    if (Math.abs(grad[i]) < 1e-3 && attempt < 30) {
                        continue; // prefer coordinates with a gradient to get wrong
                    }
                    double numeric = numericGradient(model, p.value(), i, inputs, targets);
                    if (Double.isNaN(numeric)) {
                        continue; // the step flipped a routing decision
                    }
                    double err = Math.abs(numeric - grad[i]);
                    assertTrue(err <= ABS_TOL + REL_TOL * Math.abs(grad[i]),
                            () -> p.name() + "[" + i + "]: analytic " + grad[i] + ", numeric " + numeric);
                    worst = Math.max(worst, err / (ABS_TOL + REL_TOL * Math.abs(grad[i])));
                    checked++;
                }
                assertEquals(COORDS_PER_TENSOR, checked, p.name() + ": too few coordinates could be checked");
                kinds.add(p.name().replaceAll("\\d+", "#"));
            }
            System.out.printf("gradient check %s: %d tensors, worst error %.3f of tolerance%n", config.norm(),
                    params.size(), worst);
            assertTrue(kinds.containsAll(expectedKinds(config)), () -> "kinds checked: " + kinds);
        }
    }

    /** (L(x+h) - L(x-h)) / (2h) for one coordinate, or NaN when the routing differs between the steps. */
    private static double numericGradient(GptMoeModel model, Tensor value, int i, int[] inputs, int[] targets) {
        float x = value.getFloat(i);
        float plus = (float) (x + H);
        float minus = (float) (x - H);
        int[][] routing = routing(model);
        value.setFloat(i, plus);
        double lossPlus = model.forward(inputs, targets, BATCH, SEQ) + (double) model.auxLoss();
        boolean flipped = !Arrays.deepEquals(routing, routing(model));
        value.setFloat(i, minus);
        double lossMinus = model.forward(inputs, targets, BATCH, SEQ) + (double) model.auxLoss();
        flipped |= !Arrays.deepEquals(routing, routing(model));
        value.setFloat(i, x);
        model.forward(inputs, targets, BATCH, SEQ);
        return flipped ? Double.NaN : (lossPlus - lossMinus) / ((double) plus - minus);
    }

    /** Each MoE layer's chosen experts and the rows it kept, after the last forward. */
    private static int[][] routing(GptMoeModel model) {
        int[][] r = new int[2 * model.moeLayerCount()][];
        for (int m = 0; m < model.moeLayerCount(); m++) {
            r[2 * m] = model.oneDeviceWorkspace("routing", m).topkIds().toIntArray();
            r[2 * m + 1] = model.oneDeviceWorkspace("routing", m).plan().slotPosition().toIntArray();
        }
        return r;
    }

    /** Weights ~ N(0, 0.3), norm weights ~ 1 + N(0, 0.1), biases ~ N(0, 0.1): every path carries gradient. */
    private static void randomise(List<Parameter> params, SplittableRandom rng) {
        for (Parameter p : params) {
            boolean normWeight = p.name().matches(".*(ln\\d|lnf)\\.weight");
            boolean bias = p.name().endsWith(".bias");
            float[] v = new float[Math.toIntExact(p.value().numel())];
            for (int i = 0; i < v.length; i++) {
                double g = rng.nextGaussian();
                v[i] = (float) (normWeight ? 1 + 0.1 * g : bias ? 0.1 * g : 0.3 * g);
            }
            p.value().copyFrom(v);
        }
    }

    private static List<String> expectedKinds(GptMoeConfig config) {
        List<String> kinds = new ArrayList<>(List.of("wte", "wpe", "blocks.#.ln#.weight", "blocks.#.attn.qkv.weight",
                "blocks.#.attn.qkv.bias", "blocks.#.attn.proj.weight", "blocks.#.attn.proj.bias", "blocks.#.moe.gate",
                "blocks.#.moe.experts.#.w#", "lnf.weight"));
        if (config.norm() == Norm.LAYER) {
            kinds.addAll(List.of("blocks.#.ln#.bias", "lnf.bias"));
        }
        if (config.moeEvery() > 1) {
            kinds.addAll(List.of("blocks.#.mlp.fc.weight", "blocks.#.mlp.fc.bias", "blocks.#.mlp.proj.weight",
                    "blocks.#.mlp.proj.bias"));
        }
        if (!config.tiedEmbeddings()) {
            kinds.add("head.weight");
        }
        return kinds;
    }
}
