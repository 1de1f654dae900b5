package dev.panamoe.runtime.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.EmulatedCudaBackend;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.report.StepMetrics;
import java.nio.file.Path;
import java.util.List;
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

    private record Run(List<StepMetrics> steps, double valLoss, List<float[]> values) {
    }

    private Run train(Backend backend, Path checkpoints) {
        try (GptMoeModel model = new GptMoeModel(backend, TinyRun.model(), 5);
                Trainer trainer = new Trainer(model, TinyRun.corpus(), TinyRun.config().checkpointDir(checkpoints)
                        .build())) {
            trainer.run(step -> { });
            double val = trainer.evaluate();
            trainer.saveCheckpoint();
            return new Run(trainer.history(), val, TinyRun.values(model));
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
        assertTrue(device.allocator().stats().cacheHits() > device.allocator().stats().deviceMallocs(),
                "steps reuse cached blocks: " + device.allocator().stats());

        try (GptMoeModel model = new GptMoeModel(device, TinyRun.model(), 99);
                Trainer trainer = new Trainer(model, TinyRun.corpus(), TinyRun.config()
                        .checkpointDir(dir.resolve("device")).build())) {
            trainer.resume();
            assertSameValues(cpu.values(), TinyRun.values(model), "resumed on the emulated device");
        }
    }
}
