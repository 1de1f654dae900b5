package dev.panamoe.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.bindings.CudaRuntime;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Choosing a backend for a device, and CudaBackend's own behaviour (the GPU parts skip with cudart's reason). */
class CudaBackendTest {
    private static final CudaRuntime.Devices DEVICES = CudaRuntime.probe();

    @Test
    void devicesParseAsTheyPrint() {
        assertEquals(Device.CPU, Device.parse("cpu"));
        assertEquals(Device.cuda(0), Device.parse("cuda"));
        assertEquals(Device.cuda(3), Device.parse("cuda:3"));
        assertEquals(Device.cuda(12), Device.parse(Device.cuda(12).toString()));
        for (String bad : new String[] {"gpu", "cuda:", "cuda:-1", "cuda:x", "CPU", "", null}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Device.parse(bad));
            assertTrue(e.getMessage().startsWith("device: expected cpu, cuda or cuda:N, got '" + bad + "'"),
                    e.getMessage());
        }
    }

    @Test
    void theCpuDeviceGetsTheCpuBackend() {
        assertSame(CpuBackend.get(), Backend.forDevice(Device.CPU));
        assertThrows(IllegalArgumentException.class, () -> Backend.forDevice(null));
    }

    @Test
    void withoutADeviceCudaIsUnavailableWithCudartsReason() {
        Assumptions.assumeFalse(DEVICES.available(), () -> "this machine has " + DEVICES.count() + " CUDA device(s)");
        BackendUnavailableException e = assertThrows(BackendUnavailableException.class,
                () -> Backend.forDevice(Device.cuda(0)));
        assertEquals("no usable CUDA device: " + DEVICES.reason(), e.getMessage());
        assertTrue(e.getMessage().contains("cudaGetDeviceCount") || e.getMessage().contains("libcudart"),
                e.getMessage());
        assertThrows(BackendUnavailableException.class, () -> CudaBackend.get(1));
    }

    @Tag("gpu")
    @Test
    void oneBackendPerDeviceWithACachingAllocator() {
        Assumptions.assumeTrue(DEVICES.available(), () -> "no usable CUDA device: " + DEVICES.reason());
        CudaBackend gpu = CudaBackend.get(0);
        assertSame(gpu, Backend.forDevice(Device.parse("cuda")));
        assertEquals(Device.cuda(0), gpu.device());
        assertTrue(gpu.properties().multiprocessors() > 0, gpu.properties().toString());
        BackendUnavailableException missing = assertThrows(BackendUnavailableException.class,
                () -> CudaBackend.get(DEVICES.count()));
        assertTrue(missing.getMessage().startsWith("no CUDA device " + DEVICES.count()), missing.getMessage());

        long hits = gpu.allocator().stats().cacheHits();
        for (int round = 0; round < 3; round++) {
            try (TensorScope scope = TensorScope.confined(gpu)) {
                Tensor t = scope.ofFloats("t", new float[] {1, 2, 3}, 3);
                t.setFloat(1, 5f);
                assertArrayEquals(new float[] {1, 5, 3}, t.toFloatArray());
            }
        }
        assertTrue(gpu.allocator().stats().cacheHits() >= hits + 2, gpu.allocator().stats().toString());
        gpu.synchronize();
        gpu.allocator().emptyCache();
        assertEquals(gpu.allocator().stats().allocatedBytes(), gpu.allocator().stats().reservedBytes());
    }
}
