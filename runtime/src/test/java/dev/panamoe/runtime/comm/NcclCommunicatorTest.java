package dev.panamoe.runtime.comm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamoe.bindings.CudaRuntime;
import dev.panamoe.bindings.NativeLibraryUnavailableException;
import dev.panamoe.ops.CudaBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Device;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import java.time.Duration;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * NCCL through FFM. Without a GPU: the library loads, the version and unique-id calls work, and
 * creating a communicator fails with a clear error. With one: a 1-rank communicator runs every
 * collective. Skipped with the loader's reason when libnccl.so.2 is absent (pip install
 * nvidia-nccl-cu13, or NCCL_LIBRARY).
 */
class NcclCommunicatorTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(30);

    @BeforeAll
    static void loadNccl() {
        String reason = null;
        try {
            NcclCommunicator.library();
        } catch (NativeLibraryUnavailableException e) {
            reason = e.getMessage();
        }
        assumeTrue(reason == null, "libnccl.so.2 unavailable, NCCL tests skipped: " + reason);
    }

    @Test
    void versionIsNccl2() {
        int v = NcclCommunicator.version();
        assertTrue(v >= 20000 && v < 30000, "ncclGetVersion gave " + v);
    }

    @Test
    void uniqueIdsAreFreshAndNotEmpty() {
        byte[] a = NcclCommunicator.uniqueId();
        byte[] b = NcclCommunicator.uniqueId();
        assertEquals(128, a.length);
        assertFalse(Arrays.equals(a, new byte[128]), "an all-zero unique id");
        assertFalse(Arrays.equals(a, b), "two calls gave the same unique id");
    }

    @Test
    void withoutAGpuCreationFailsWithTheReason() {
        assumeTrue(!CudaRuntime.probe().available(), "a CUDA device is present: see oneRankCommunicatorOnTheGpu");
        CommunicatorException e = assertThrows(CommunicatorException.class, () -> InJvmWorld.run(1, TIMEOUT,
                bootstrap -> NcclCommunicator.create(bootstrap, Device.cuda(0), TIMEOUT)));
        String message = e.getCause().getMessage();
        assertTrue(message.startsWith("NCCL communicator for rank 0 on cuda:0 cannot be created: no usable CUDA device"), message);
    }

    @Test
    void cpuDeviceIsRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> NcclCommunicator.create(InJvmWorld.create(1, TIMEOUT).getFirst(), Device.CPU, TIMEOUT));
        assertEquals("device: NCCL needs a CUDA device, got cpu", e.getMessage());
    }

    /** Every collective through a 1-rank communicator; the GPU suite (tag "gpu") runs it on a GPU machine. */
    @Test
    @Tag("gpu")
    void oneRankCommunicatorOnTheGpu() {
        assumeTrue(CudaRuntime.probe().available(), "no CUDA device: " + CudaRuntime.probe().reason());
        InJvmWorld.run(1, TIMEOUT, bootstrap -> {
            try (NcclCommunicator nccl = NcclCommunicator.create(bootstrap, Device.cuda(0), TIMEOUT);
                 TensorScope scope = TensorScope.shared(CudaBackend.get(0))) {
                float[] values = {1.5f, -2f, 3.25f};
                Tensor t = scope.ofFloats("t", values, 3);
                Tensor out = scope.allocate("out", DType.F32, 3);
                Tensor back = scope.allocate("back", DType.F32, 3);
                CudaBackend.get(0).hostSyncs().reset();
                nccl.allReduce(t);
                nccl.broadcast(t, 0);
                nccl.allGather(t, out);
                nccl.reduceScatter(out, t);
                nccl.allToAllV(t, new int[] {3}, back, new int[] {3});
                // ordered on the device with events: the host has not waited for any of them
                assertEquals(0, CudaBackend.get(0).hostSyncs().count(), CudaBackend.get(0).hostSyncs().toString());
                nccl.barrier();
                assertEquals(1, CudaBackend.get(0).hostSyncs().count(), CudaBackend.get(0).hostSyncs().toString());
                assertArrayEquals(values, back.toFloatArray());
                try (Communicator self = nccl.split(0, 0)) {
                    assertEquals(1, self.size());
                }
            }
            return null;
        });
    }
}
