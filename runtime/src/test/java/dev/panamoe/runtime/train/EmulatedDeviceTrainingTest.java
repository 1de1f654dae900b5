package dev.panamoe.runtime.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.EmulatedCudaBackend;
import dev.panamoe.ops.HostSyncs;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.report.StepMetrics;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Training with the model on a device, without a GPU: on an emulated CUDA device (the CPU
 * kernels on device-style memory reached only through copies) every step, the evaluation, the
 * checkpoint and a resume from it are bitwise those of the CPU backend. What a real GPU adds
 * (its kernels) is CudaModelParityTest's.
 */
class EmulatedDeviceTrainingTest {
    @TempDir
    Path dir;

    /** mallocs: the device allocator's cudaMalloc count after the first step and after the last (0 on the CPU). */
    private record Run(List<StepMetrics> steps, double valLoss, List<float[]> values, long[] mallocs) {
    }

    private Run train(Backend backend, Path checkpoints) {
        long[] mallocs = new long[2];
        try (GptMoeModel model = new GptMoeModel(backend, TinyRun.model(), 5);
                Trainer trainer = new Trainer(model, TinyRun.corpus(), TinyRun.config().checkpointDir(checkpoints)
                        .build())) {
            trainer.run(step -> {
                if (backend instanceof EmulatedCudaBackend device) {
                    mallocs[step.step() == 1 ? 0 : 1] = device.allocator().stats().deviceMallocs();
                }
            });
            double val = trainer.evaluate();
            trainer.saveCheckpoint();
            return new Run(trainer.history(), val, TinyRun.values(model), mallocs);
        }
    }

    private static void assertSameValues(List<float[]> expected, List<float[]> actual, String what) {
        assertEquals(expected.size(), actual.size());
        for (int i = 0; i < expected.size(); i++) {
            assertArrayEquals(expected.get(i), actual.get(i), what + ": parameter " + i);
        }
    }

    @Test
    void trainingEvaluationAndResumeMatchTheCpuBitwise() {
        EmulatedCudaBackend device = new EmulatedCudaBackend(1L << 28);
        Run cpu = train(CpuBackend.get(), dir.resolve("cpu"));
        Run emulated = train(device, dir.resolve("device"));
        assertEquals(cpu.steps().size(), emulated.steps().size());
        for (int i = 0; i < cpu.steps().size(); i++) {
            StepMetrics c = cpu.steps().get(i);
            StepMetrics e = emulated.steps().get(i);
            assertEquals(c.loss(), e.loss(), "step " + c.step() + " loss");
            assertEquals(c.gradNorm(), e.gradNorm(), "step " + c.step() + " gradient norm");
            assertEquals(c.auxLoss(), e.auxLoss(), "step " + c.step() + " aux loss");
        }
        assertEquals(cpu.valLoss(), emulated.valLoss());
        assertSameValues(cpu.values(), emulated.values(), "trained on the emulated device");
        assertEquals(emulated.mallocs()[0], emulated.mallocs()[1],
                "the steps after the first take every block from the cache: " + device.allocator().stats());

        try (GptMoeModel model = new GptMoeModel(device, TinyRun.model(), 99);
                Trainer trainer = new Trainer(model, TinyRun.corpus(), TinyRun.config()
                        .checkpointDir(dir.resolve("device")).build())) {
            trainer.resume();
            assertSameValues(cpu.values(), TinyRun.values(model), "resumed on the emulated device");
        }
    }

    /**
     * Outside the debug mode a step waits for the device once per micro-batch for its loss and
     * once for the gradient norm; the trainer's reads of the aux and z losses and the expert counts come
     * right after a loss read and find the stream idle. Nothing else in a step (the value checks,
     * the dispatch plan's row count, copies of the batch from the host, the optimizer) waits.
     */
    @Test
    void aStepWaitsForTheDeviceOnlyForItsLossAndGradientNorm() {
        EmulatedCudaBackend device = new EmulatedCudaBackend(1L << 28, false);
        TrainingConfig config = TinyRun.config().evalEvery(1000).build();
        try (GptMoeModel model = new GptMoeModel(device, TinyRun.model(), 5);
                Trainer trainer = new Trainer(model, TinyRun.corpus(), config)) {
            trainer.trainStep(); // allocates the workspaces
            HostSyncs syncs = device.hostSyncs();
            for (int step = 2; step <= 3; step++) {
                syncs.reset();
                trainer.trainStep();
                int micro = config.microBatches();
                int moe = model.moeLayerCount();
                assertEquals(micro + 1, syncs.drains(), "step " + step + ": " + syncs);
                assertEquals(Map.of(
                        "copy to host at BlockOps.headForward", (long) micro,
                        "copy to host at MoELayer$Workspace.auxLoss", (long) micro * moe,
                        "copy to host at MoELayer$Workspace.routedCounts", (long) micro * moe,
                        "copy to host at MoELayer$Workspace.zLoss", (long) micro * moe,
                        "copy to host at Trainer.gradientNorm", 1L), syncs.bySite(), "step " + step);
            }
        }
    }
}
