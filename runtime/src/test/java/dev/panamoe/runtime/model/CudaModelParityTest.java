package dev.panamoe.runtime.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.bindings.CudaRuntime;
import dev.panamoe.ops.Backend;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.CudaBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Parameter;
import dev.panamoe.runtime.data.SyntheticCorpus;
import dev.panamoe.runtime.report.StepMetrics;
import dev.panamoe.runtime.train.Precision;
import dev.panamoe.runtime.train.Trainer;
import dev.panamoe.runtime.train.TrainingConfig;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A small GPT-MoE on cuda:0 against the same model on the CPU (GPU suite; skipped with
 * cudart's reason where there is no usable device): identical initial parameters, loss and
 * every gradient after forward + backward within 1e-3 relative; and a short bf16 training run
 * on both.
 */
@Tag("gpu")
class CudaModelParityTest {
    /**
     * Relative difference of a bf16 run's losses and gradient norms on cuda:0 and on the CPU. The
     * two sum in different orders (in f32 within 1e-4, the test below); a value near a bf16
     * rounding boundary then rounds the other way (one bf16 ulp, 2^-8 = 3.9e-3 relative) and
     * AdamW carries that into the next steps. On the CPU, plans whose f32 sums differ by ~1e-7
     * came to at most 3.0e-4 after 3 steps (MixedPrecisionTrainingTest.PLAN_TOLERANCE, 1e-3), and
     * this run at the avx512_bf16 level against avx2 (vdpbf16ps pairs against widened products)
     * to 4.1e-4 (2026-12-05); the GPU's sums differ more, so such flips are more frequent: the
     * bound is 1e-2, between two and three bf16 ulps of the loss. Not yet measured on a GPU (none
     * has been available): the test prints the largest difference for the first GPU run to
     * tighten it.
     */
    static final double BF16_RUN_TOLERANCE = 1e-2;

    /** Per test, so that each is reported as skipped with the reason (a class-level abort shows as no tests). */
    @BeforeEach
    void needsAGpu() {
        CudaRuntime.Devices devices = CudaRuntime.probe();
        Assumptions.assumeTrue(devices.available(), () -> "no usable CUDA device: " + devices.reason());
    }

    @Test
    void forwardAndBackwardMatchTheCpu() {
        GptMoeConfig config = ModelTestData.small().build();
        int batch = 3;
        int seq = 6;
        SplittableRandom rng = new SplittableRandom(5);
        int[] inputs = ModelTestData.ids(rng, batch * seq, 0, config.vocab());
        int[] targets = ModelTestData.ids(rng, batch * seq, 0, config.vocab());
        Backend gpu = CudaBackend.get(0);
        try (GptMoeModel cpuModel = new GptMoeModel(CpuBackend.get(), config, 9);
                GptMoeModel gpuModel = new GptMoeModel(gpu, config, 9)) {
            List<Parameter> expected = cpuModel.parameters();
            List<Parameter> actual = gpuModel.parameters();
            for (int i = 0; i < expected.size(); i++) {
                assertArrayEquals(ModelTestData.values(expected.get(i)), ModelTestData.values(actual.get(i)),
                        expected.get(i).name() + " initial value");
            }
            for (GptMoeModel m : List.of(cpuModel, gpuModel)) {
                m.zeroGrad();
            }
            float cpuLoss = cpuModel.forward(inputs, targets, batch, seq);
            CudaBackend.get(0).hostSyncs().reset();
            float gpuLoss = gpuModel.forward(inputs, targets, batch, seq);
            assertEquals(cpuLoss, gpuLoss, 1e-4 * Math.abs(cpuLoss), "loss");
            cpuModel.backward(1f);
            gpuModel.backward(1f);
            assertEquals(java.util.Map.of("copy to host at BlockOps.headForward", 1L),
                    CudaBackend.get(0).hostSyncs().bySite(), "forward + backward on cuda:0 waits only to read the loss");
            for (int i = 0; i < expected.size(); i++) {
                float[] e = ModelTestData.grads(expected.get(i));
                float[] a = ModelTestData.grads(actual.get(i));
                for (int j = 0; j < e.length; j++) {
                    assertTrue(Math.abs(e[j] - a[j]) <= 1e-3 * (1e-2 + Math.abs(e[j])),
                            expected.get(i).name() + " grad[" + j + "] is " + a[j] + " on cuda:0, " + e[j] + " on the CPU");
                }
            }
        }
    }

    /**
     * 4 steps of the tiny preset in bf16 (f32 masters and AdamW moments, bf16 working copies and
     * activations) from the same seed on cuda:0 and on the CPU: each step's loss and gradient
     * norm and the final validation loss within {@link #BF16_RUN_TOLERANCE}.
     */
    @Test
    void trainsInBf16LikeTheCpu() {
        int seq = 16;
        GptMoeConfig config = GptMoeConfig.preset("tiny").toBuilder().maxSeq(seq).build();
        // eps 1e-4: AdamW would turn rounding noise in near-zero gradients into full-size updates (ParallelTraining)
        TrainingConfig training = TrainingConfig.builder().steps(4).batch(8).microBatches(2).seq(seq).lr(1e-3f)
                .minLr(1e-4f).eps(1e-4f).warmup(1).evalEvery(0).evalBatches(2).seed(5).precision(Precision.BF16)
                .build();
        List<StepMetrics> cpu = bf16Run(CpuBackend.get(), config, training);
        List<StepMetrics> gpu = bf16Run(CudaBackend.get(0), config, training);
        assertEquals(cpu.size(), gpu.size(), "steps");
        double worst = relative("final validation loss", cpu.getLast().valLoss(), gpu.getLast().valLoss());
        for (int s = 0; s < cpu.size(); s++) {
            worst = Math.max(worst, relative("step " + (s + 1) + " loss", cpu.get(s).loss(), gpu.get(s).loss()));
            worst = Math.max(worst, relative("step " + (s + 1) + " gradient norm", cpu.get(s).gradNorm(),
                    gpu.get(s).gradNorm()));
        }
        System.out.printf(Locale.ROOT, "bf16 training on cuda:0 against the CPU: largest relative difference %.2e%n",
                worst);
    }

    private static List<StepMetrics> bf16Run(Backend backend, GptMoeConfig config, TrainingConfig training) {
        SyntheticCorpus corpus = new SyntheticCorpus(SyntheticCorpus.Config.tinyDefaults().withSeqLen(training.seq()));
        try (GptMoeModel model = new GptMoeModel(backend, config, training.seed(), DType.BF16);
                Trainer trainer = new Trainer(model, corpus, training)) {
            return trainer.run(m -> { });
        }
    }

    /** |gpu - cpu| / |cpu|, asserted within BF16_RUN_TOLERANCE. */
    private static double relative(String what, double cpu, double gpu) {
        double rel = Math.abs(gpu - cpu) / Math.abs(cpu);
        assertTrue(rel <= BF16_RUN_TOLERANCE, what + " is " + gpu + " on cuda:0, " + cpu + " on the CPU");
        return rel;
    }
}
