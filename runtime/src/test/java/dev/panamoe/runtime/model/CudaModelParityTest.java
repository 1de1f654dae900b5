package dev.panamoe.runtime.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.bindings.CudaRuntime;
import dev.panamoe.ops.Backend;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.CudaBackend;
import dev.panamoe.ops.Parameter;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A small GPT-MoE on cuda:0 against the same model on the CPU (GPU suite; skipped with
 * cudart's reason where there is no usable device): identical initial parameters, loss and
 * every gradient after forward + backward within 1e-3 relative.
 */
@Tag("gpu")
class CudaModelParityTest {
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
}
