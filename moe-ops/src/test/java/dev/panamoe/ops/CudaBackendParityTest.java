package dev.panamoe.ops;

import dev.panamoe.bindings.CudaRuntime;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;

/**
 * CudaBackend on cuda:0 against the CPU backend (GPU suite; skipped with cudart's reason where
 * there is no usable device). Floats within 1e-4 relative: the GPU sums in other orders.
 */
@Tag("gpu")
class CudaBackendParityTest extends BackendParityTest {
    /** Per test, so that each is reported as skipped with the reason (a class-level abort shows as no tests). */
    @BeforeEach
    void needsAGpu() {
        CudaRuntime.Devices devices = CudaRuntime.probe();
        Assumptions.assumeTrue(devices.available(), () -> "no usable CUDA device: " + devices.reason());
    }

    @Override
    Backend backend() {
        return CudaBackend.get(0);
    }

    @Override
    double tolerance() {
        return 1e-4;
    }
}
